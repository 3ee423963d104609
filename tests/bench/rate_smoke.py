"""Smoke test: stanzad-bench rate (200 msg/s over 2 pairs, 2 s, one generator thread) against a
fresh stanzad: the rate is kept, nothing is lost, and the generator wakes about once per
message it sends, not on a fixed 500 µs tick (issue 7: each wake-up of the generator is CPU
taken from the server on the same cores; the fixed tick woke it ~4,000 times here)."""
import resource
import subprocess

from smoke_server import BENCH, result_fields, smoke_server

RATE, DURATION = 200, 2


def main():
    with smoke_server() as (tls_port, server):
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_nvcsw
        run = subprocess.run([BENCH, "rate", "--port", str(tls_port), "--pairs", "2",
                              "--rate", str(RATE), "--duration", str(DURATION),
                              "--threads", "1", "--time-limit", "20",
                              "--server-pid", str(server.pid), "--server-name", "stanzad"],
                             capture_output=True, text=True, timeout=40)
        # The generator's sleeps (voluntary context switches), whole run with connecting; the
        # server is not reaped yet, so not counted.
        wakeups = resource.getrusage(resource.RUSAGE_CHILDREN).ru_nvcsw - before
        print(run.stdout, run.stderr, f"generator wake-ups: {wakeups}", sep="\n")
        _, fields = result_fields(run.stdout)
        assert fields["scenario"] == "rate"
        assert fields["lost"] == "0", "lost messages"
        sent = int(fields["sent"])
        assert abs(sent - RATE * DURATION) <= RATE * DURATION // 20, f"sent {sent}"
        assert run.returncode == 0, f"stanzad-bench exited with {run.returncode}"
        assert wakeups < 2000, f"the generator woke {wakeups} times for {sent} messages"
        print("ok")


if __name__ == "__main__":
    main()
