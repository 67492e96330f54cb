#!/bin/bash
# The simulator never crashes on malformed input: replay the parser corpus
# (the fuzz harness's seeds) through the parsers, then throw hostile HTTP at
# a running simulator and check it still answers and exits cleanly.  Under
# -DPOBOX_SANITIZE=ON any memory error or leak fails this test.
. "$(dirname "$0")/lib.sh"

REPLAY=${POBOX_SIM_REPLAY:?set POBOX_SIM_REPLAY to pobox-sim-parse-replay}
CORPUS=$HERE/../../tools/sim/fuzz/corpus
OUT=$("$REPLAY" "$CORPUS" 2>&1)
check "parser corpus replays without a crash" 0 "$?"
check_match "corpus is not empty" '^replayed [1-9][0-9]* inputs$' "$OUT"

sim_start --bulk-per-minute 0
python3 "$HERE/hostile.py" "$PORT"
check "hostile HTTP: simulator still answering after every case" 0 "$?"
# the hostile-cells batch was accepted; its '+' and '/' rows failed
check "rows with '+' or '/' ids were not applied" 0 \
  "$(profiles | python3 -c 'import json,sys; print(sum(1 for p in json.load(sys.stdin)["profiles"] if p["id"] in ("+", "/")))')"
check "and were counted as failed" 3 "$(counter rows_failed)"
sim_stop
finish
