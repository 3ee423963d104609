"""A fresh stanzad on free ports with accounts user1…userN (four unless asked), for the load generator's smoke tests: the
integration tests' harness.Server, logging at warn so that the log does not cost the server."""
import contextlib
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Server  # noqa: E402

BENCH = os.environ.get("STANZAD_BENCH", "build/tools/bench/stanzad-bench")


@contextlib.contextmanager
def smoke_server(accounts=4):
    """Yields (direct TLS port, server process); accounts user1, user2, … password "password"."""
    users = [(f"user{i}", "password") for i in range(1, accounts + 1)]
    limits = 'connections-per-ip="0" sessions-per-account="0" bytes-per-second="0"'
    with Server(users=users, limits=limits, log_level="warn") as server:
        yield server.tls_port, server.proc


def result_fields(stdout):
    line = next((l for l in stdout.splitlines() if l.startswith("RESULT ")), None)
    assert line, "no RESULT line"
    return line, dict(kv.split("=", 1) for kv in line.split()[1:])
