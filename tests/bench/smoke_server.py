"""A fresh stanzad on free ports with four accounts, for the load generator's smoke tests."""
import contextlib
import os
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


@contextlib.contextmanager
def smoke_server():
    """Yields (direct TLS port, server process)."""
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
        yield tls_port, server
    finally:
        if server and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def result_fields(stdout):
    line = next((l for l in stdout.splitlines() if l.startswith("RESULT ")), None)
    assert line, "no RESULT line"
    return line, dict(kv.split("=", 1) for kv in line.split()[1:])
