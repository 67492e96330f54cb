#!/usr/bin/env bash
# Many batches in one flush against the simulator's defaults (Target keeps
# the last 10 batch statuses per client): 3000 profiles, max_batch_rows 50 =
# 60 batches.  No fault is injected, so `flush --wait` must deliver every
# update (nothing dead), and a clean run needs no resubmission: every
# profile is sent once.
. "$(dirname "$0")/bulk_lib.sh"
new_scenario many
{ echo "thirdPartyId,a,b"; for i in $(seq 0 2999); do echo "m-$i,v$i,w$i"; done; } >"$T/many/in.csv"
tail -n +2 "$T/many/in.csv" | python3 -c '
import json, sys
for line in sys.stdin:
    i, a, b = line.rstrip("\n").split(",")
    print(json.dumps({"t": "thirdPartyId", "id": i, "a": "a", "v": a}))
    print(json.dumps({"t": "thirdPartyId", "id": i, "a": "b", "v": b}))' >"$LOG"
sim_start --seed 1
write_conf "max_batch_rows = 50"
pb import "$T/many/in.csv" >/dev/null
flush_wait many 0 120
check_eq "many: nothing dead" 0 "$(state_count dead)"
check_store many
check_all_delivered many
check_eq "many: no batch status lost (polled before Target forgot it)" 0 "$(sim_counter calls.batch_status.not_found)"
check_eq "many: every profile sent once (no resubmission in a clean run)" 3000 "$(sim_counter rows_received)"
finish
