#!/bin/bash
# bench.sh -- how many single-update requests a second the simulator serves.
#
# Starts pobox-target-sim on a free port with one preloaded profile (p1),
# runs wrk with keep-alive against the single-update endpoint, prints wrk's
# report and one summary line.  A benchmark, not a test: it never fails on
# a number.  The single-update budget is lifted (--single-budget 0) so a long
# run measures the simulator, not its 1,000,000-a-day limit.
#
# Usage: tools/sim/bench.sh [SIM_BINARY] [DURATION] [CONNECTIONS] [WRK_THREADS] [SIM_THREADS]
# Defaults: build-sim/tools/sim/pobox-target-sim, 10s, 32, 2, 4.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
SIM=${1:-$HERE/../../build-sim/tools/sim/pobox-target-sim}
DUR=${2:-10s}
CONNS=${3:-32}
WRK_THREADS=${4:-2}
SIM_THREADS=${5:-4}
command -v wrk >/dev/null || { echo "bench.sh: wrk is not installed" >&2; exit 69; }
[ -x "$SIM" ] || { echo "bench.sh: no simulator at $SIM (build it first)" >&2; exit 66; }

TMP=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
printf 'thirdPartyId,a\np1,0\n' >"$TMP/pre.csv"
"$SIM" --port 0 --preload "$TMP/pre.csv" --threads "$SIM_THREADS" --single-budget 0 >"$TMP/out" 2>"$TMP/err" &
PID=$!
for _ in $(seq 1 100); do grep -q '^listening' "$TMP/out" && break; sleep 0.05; done
PORT=$(sed -n 's/^listening on 127\.0\.0\.1://p' "$TMP/out")
[ -n "$PORT" ] || { echo "bench.sh: simulator did not start: $(cat "$TMP/err")" >&2; exit 70; }
URL="http://127.0.0.1:$PORT/m2/demo/profile/update?mbox3rdPartyId=p1&profile.a=1"
# sanity: the endpoint answers success before we measure it
curl -s "$URL" | grep -q '<success>true</success>' || { echo "bench.sh: sanity request failed" >&2; exit 70; }

echo "wrk -t$WRK_THREADS -c$CONNS -d$DUR '$URL'"
wrk -t"$WRK_THREADS" -c"$CONNS" -d"$DUR" "$URL" | tee "$TMP/wrk"
RPS=$(sed -n 's/^Requests\/sec: *//p' "$TMP/wrk")
APPLIED=$(curl -s "http://127.0.0.1:$PORT/_sim/counters" | python3 -c 'import json,sys; print(json.load(sys.stdin)["single_updates_applied"])' 2>/dev/null || echo "?")
echo "single updates per second: $RPS (applied by the simulator: $APPLIED; sim threads: $SIM_THREADS, $(nproc) CPUs)"
