#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build-fuzz/ and fuzzes each for a bounded time.
# Usage: tests/fuzz/run.sh [seconds per target (default 60)] [target...]
# Installs clang-14 and libclang-rt-14-dev when missing (scripts/deps.sh fuzz); see docs/fuzzing.md.
# Exits non-zero if any target crashed, leaked, timed out or broke an invariant. CI runs it.
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/deps.sh fuzz
seconds=${1:-60}
# A fixed seed makes a run reproducible: a CI failure replays with the same command. Set
# FUZZ_SEED=0 for a fresh random seed (libFuzzer's default) when fuzzing by hand.
seed=${FUZZ_SEED:-1}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(stream_parser jid sasl config tls13_records)

cxx=${CXX:-$(command -v clang++ || command -v clang++-14 || true)}
cc=${CC:-$(command -v clang || command -v clang-14 || true)}
if [ -z "$cxx" ] || [ -z "$cc" ]; then
  echo "run.sh: clang not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 1
fi
if [ ! -f build-fuzz/build.ninja ]; then
  cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" -DSTANZAD_FUZZ=ON
fi
cmake --build build-fuzz -j2 --target "${targets[@]/%/_fuzz}"

status=0
for t in "${targets[@]}"; do
  # New inputs go to build-fuzz/corpus/<t>; the checked-in seeds are only read.
  # Crash inputs land in build-fuzz/artifacts/<t>/.
  mkdir -p "build-fuzz/corpus/$t" "build-fuzz/artifacts/$t"
  echo "== $t: ${seconds}s"
  rc=0
  "build-fuzz/tests/fuzz/${t}_fuzz" -max_total_time="$seconds" -seed="$seed" -print_final_stats=1 \
    -artifact_prefix="build-fuzz/artifacts/$t/" \
    "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" </dev/null >"build-fuzz/$t.log" 2>&1 || rc=$?
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|peak_rss)|ERROR|SUMMARY|fuzz invariant|round trip failed' \
    "build-fuzz/$t.log" || true
  if [ "$rc" -ne 0 ]; then
    echo "== $t: FAILED (log: build-fuzz/$t.log, input in build-fuzz/artifacts/$t/)"
    status=1
  fi
done
exit $status
