"""Smoke test: stanzad-bench flood (2 pairs, window 10, 2 s) against a fresh stanzad on free
ports must deliver messages with nothing lost, duplicated or reordered."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

STANZAD = os.environ.get("STANZAD", "build/server/stanzad")
STANZACTL = os.environ.get("STANZACTL", "build/tools/stanzactl/stanzactl")
BENCH = os.environ.get("STANZAD_BENCH", "build/tools/bench/stanzad-bench")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    workdir = tempfile.mkdtemp(prefix="stanzad-bench-smoke-")
    port, tls_port = free_port(), free_port()
    config = os.path.join(workdir, "stanzad.xml")
    with open(config, "w") as f:
        f.write(f"""<?xml version="1.0"?>
<stanzad>
  <server shards="2" data-dir="data"/>
  <log level="warn" file=""/>
  <host name="localhost"/>
  <c2s address="127.0.0.1" port="{port}" require-tls="true"/>
  <c2s-tls address="127.0.0.1" port="{tls_port}"/>
  <limits connections-per-ip="0" sessions-per-account="0" bytes-per-second="0"/>
</stanzad>
""")
    server = None
    try:
        for i in range(1, 5):
            subprocess.run([STANZACTL, "--config", config, "adduser", f"user{i}@localhost"],
                           input="password\n", text=True, check=True, capture_output=True,
                           timeout=30)
        log = open(os.path.join(workdir, "stanzad.log"), "w")
        server = subprocess.Popen([STANZAD, "--config", config], stdout=log,
                                  stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", tls_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("stanzad did not start")
                time.sleep(0.05)
        run = subprocess.run([BENCH, "flood", "--port", str(tls_port), "--pairs", "2",
                              "--window", "10", "--duration", "2", "--time-limit", "20",
                              "--server-pid", str(server.pid), "--server-name", "stanzad"],
                             capture_output=True, text=True, timeout=40)
        print(run.stdout, run.stderr, sep="\n")
        line = next((l for l in run.stdout.splitlines() if l.startswith("RESULT ")), None)
        assert line, "no RESULT line"
        fields = dict(kv.split("=", 1) for kv in line.split()[1:])
        assert fields["scenario"] == "flood"
        assert int(fields["delivered"]) > 0, "nothing delivered"
        assert fields["lost"] == "0", "lost messages"
        assert fields["duplicated"] == "0", "duplicated messages"
        assert fields["out_of_order"] == "0", "messages out of order"
        assert run.returncode == 0, f"stanzad-bench exited with {run.returncode}"
        assert re.search(r"server_us_per_msg=\d", line), "no server CPU figure"
        print("ok")
    finally:
        if server and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
