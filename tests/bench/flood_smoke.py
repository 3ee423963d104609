"""Smoke test: stanzad-bench flood (2 pairs, window 10, 2 s) against a fresh stanzad on free
ports must deliver messages with nothing lost, duplicated or reordered."""
import re
import subprocess

from smoke_server import BENCH, result_fields, smoke_server


def main():
    with smoke_server() as (tls_port, server):
        run = subprocess.run([BENCH, "flood", "--port", str(tls_port), "--pairs", "2",
                              "--window", "10", "--duration", "2", "--time-limit", "20",
                              "--server-pid", str(server.pid), "--server-name", "stanzad"],
                             capture_output=True, text=True, timeout=40)
        print(run.stdout, run.stderr, sep="\n")
        line, fields = result_fields(run.stdout)
        assert fields["scenario"] == "flood"
        assert int(fields["delivered"]) > 0, "nothing delivered"
        assert fields["lost"] == "0", "lost messages"
        assert fields["duplicated"] == "0", "duplicated messages"
        assert fields["out_of_order"] == "0", "messages out of order"
        assert run.returncode == 0, f"stanzad-bench exited with {run.returncode}"
        assert re.search(r"server_us_per_msg=\d", line), "no server CPU figure"
        print("ok")


if __name__ == "__main__":
    main()
