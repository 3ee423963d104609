#!/usr/bin/env bash
# Runs the same scenarios against stanzad, Prosody and ejabberd, one server at a time (the
# others stopped), and appends every RESULT line to $BENCH_ROOT/results.txt (and stdout).
#   SERVERS="stanzad prosody ejabberd" FLOOD_S=10 IDLE=10000 ./run-all.sh
# stanzad runs with the plugins STANZAD_PLUGINS names (see stanzad.sh). run-all's default is
# "disco ping roster", the same features as the peers' configured modules (Prosody: roster,
# disco, ping; ejabberd: mod_roster, mod_disco, mod_ping); STANZAD_PLUGINS=default measures the
# whole shipped IM set.
# Prerequisites: ./install-peers.sh; stanzad built (STANZAD_BUILD, default build/).
set -euo pipefail
source "$(dirname "$0")/common.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=${BENCH:-$REPO/build/tools/bench/stanzad-bench}
SERVERS=${SERVERS:-"stanzad prosody ejabberd"}
SCENARIOS=${SCENARIOS:-"flood login idle rate"}
THREADS=${THREADS:-2}
FLOOD_S=${FLOOD_S:-10}
LOGIN_S=${LOGIN_S:-10}
RATE_S=${RATE_S:-10}
IDLE=${IDLE:-10000}
# Handshakes in flight while the idle sessions connect: ejabberd refused sessions and its node
# stopped at 100 (27 Nov 2026), so the default is gentler.
CONNECT=${CONNECT:-20}
RESULTS=$BENCH_ROOT/results.txt
mkdir -p "$BENCH_ROOT"

declare -A PORT=([stanzad]=15223 [prosody]=25223 [ejabberd]=35223)

export STANZAD_PLUGINS=${STANZAD_PLUGINS:-disco ping roster}
for s in $SERVERS; do "$HERE/$s.sh" setup; done
for s in stanzad prosody ejabberd; do "$HERE/$s.sh" stop; done

for s in $SERVERS; do
  pid=$("$HERE/$s.sh" start | tail -1)
  sleep 2
  common=(--port "${PORT[$s]}" --threads "$THREADS" --server-pid "$pid" --server-name "$s"
          --domain "$BENCH_DOMAIN" --password "$BENCH_PASSWORD" --time-limit 600)
  echo "== $s (pid $pid)" | tee -a "$RESULTS"
  for sc in $SCENARIOS; do
    case $sc in
      flood) args=(flood --pairs 100 --window 10 --duration "$FLOOD_S") ;;
      login) args=(login --concurrency 50 --users 200 --duration "$LOGIN_S") ;;
      idle)  args=(idle --sessions "$IDLE" --hold 3 --connect-concurrency "$CONNECT") ;;
      rate)  args=(rate --rate 2000 --pairs 100 --idle "$IDLE" --duration "$RATE_S" --connect-concurrency "$CONNECT") ;;
    esac
    echo "+ stanzad-bench ${args[*]} ${common[*]}" >&2
    "$BENCH" "${args[@]}" "${common[@]}" | grep '^RESULT' | tee -a "$RESULTS" || true
    sleep 3  # let the server settle (closing sessions) between scenarios
  done
  "$HERE/$s.sh" stop
  sleep 2
done
