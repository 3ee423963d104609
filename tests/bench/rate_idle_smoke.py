"""Smoke test: stanzad-bench rate --idle holds its idle sessions in a child process (issue 7).
On the benchmark VM a kernel thread (DAMON's kdamond) stalls a process for ~10-25 ms every
~0.5 s about in proportion to its memory; 10,000 idle TLS clients made the generator 800 MB
and most of the p99 it reported was its own. Checks: the child exists while the rate runs,
the server holds pairs + idle sessions, nothing is lost, the latency log has one line per
delivered message, and the child is gone afterwards; --idle-in-process keeps the old way."""
import os
import subprocess
import time

from smoke_server import BENCH, result_fields, smoke_server

PAIRS, IDLE = 2, 20


def established(port):
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    return len(out.splitlines())


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return [l for l in out.splitlines() if "--hold-until-eof" in l]


def run_rate(tls_port, server, log, extra):
    gen = subprocess.Popen([BENCH, "rate", "--port", str(tls_port), "--pairs", str(PAIRS),
                            "--idle", str(IDLE), "--rate", "100", "--duration", "3",
                            "--threads", "1", "--time-limit", "30", "--latency-log", log,
                            "--server-pid", str(server.pid), "--server-name", "stanzad"] + extra,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen_child, most_sessions = False, 0
    deadline = time.monotonic() + 40
    while gen.poll() is None and time.monotonic() < deadline:
        seen_child = seen_child or bool(children(gen.pid))
        most_sessions = max(most_sessions, established(tls_port))
        time.sleep(0.1)
    stdout, stderr = gen.communicate(timeout=10)
    print(stdout, stderr, f"child seen: {seen_child}, most sessions: {most_sessions}", sep="\n")
    assert gen.returncode == 0, f"stanzad-bench exited with {gen.returncode}"
    return result_fields(stdout)[1], seen_child, most_sessions


def main():
    log = f"/tmp/stanzad-rate-idle-smoke-{os.getpid()}.txt"
    with smoke_server(accounts=2 * PAIRS + IDLE) as (tls_port, server):
        fields, seen_child, most = run_rate(tls_port, server, log, [])
        assert fields["idle"] == str(IDLE) and fields["lost"] == "0", fields
        assert "idle_gen_cpu_cores" in fields, "no CPU figure for the idle sessions' process"
        assert seen_child, "the idle sessions were not held by a child process"
        assert most >= 2 * PAIRS + IDLE, f"the server held at most {most} sessions"
        lines = open(log).read().splitlines()
        os.unlink(log)
        assert lines[0].startswith("# t0 "), lines[0]
        assert len(lines) - 1 == int(fields["received"]), (len(lines), fields["received"])
        assert all(float(l.split()[1]) >= 0 for l in lines[1:])

        fields, seen_child, most = run_rate(tls_port, server, log, ["--idle-in-process"])
        os.unlink(log)
        assert fields["lost"] == "0" and not seen_child and "idle_gen_cpu_cores" not in fields
        assert most >= 2 * PAIRS + IDLE, f"the server held at most {most} sessions"
    leftover = subprocess.run(["pgrep", "-f", "stanzad-bench idle --hold-until-eof"],
                              capture_output=True, text=True).stdout.split()
    assert not leftover, f"idle sessions' process left running: {leftover}"
    print("ok")


if __name__ == "__main__":
    main()
