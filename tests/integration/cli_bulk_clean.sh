#!/usr/bin/env bash
# Bulk delivery, clean run: several thousand updates to thirdPartyIds (v2)
# and preloaded pcIds (v1), with repeated updates to the same profile and
# attribute (coalescing) and values that need URL-encoding (commas, &, =, +,
# %, quotes, newlines, CR, tabs, UTF-8), imported in several files plus a
# few `put`s, then one `pobox flush --wait`.  The simulator's store must
# equal the newest enqueued value of every attribute, plus the preloaded data
# (no missing, no extra, no stale value).
. "$(dirname "$0")/bulk_lib.sh"
seed=${BULK_SEED:-4242}
echo "# seed $seed"

python3 "$EXPECT" gen --seed "$seed" --out "$T/gen" --log "$LOG" --tp 400 --pc 120 --tp-preload 20 \
	--attrs 8 --updates 5000 --files 9 --tricky --tricky-ids >/dev/null
sim_start --preload "$T/gen/preload.csv"
# the simulator takes one --preload (one id type): give the thirdPartyIds
# their existing data as Target would have it (a v2 batch, then a page visit)
sim_seed_v2 "$T/gen/preload_tp.csv"
preloads=(--preload "$T/gen/preload.csv" --preload "$T/gen/preload_tp.csv")
CHECK_LOG=/dev/null check_store "simulator holds the preloaded data before pobox runs" "${preloads[@]}"
write_conf "max_batch_rows = 150"

enqueue_imports "$T/gen"
# a few puts on top, to the same profiles, with awkward values
put_logged thirdPartyId tp-1 a0="put, & = + % \"q\"" a1=$'multi\nline'
put_logged thirdPartyId tp-1 a0="newest ✓ 100%"
put_logged pcId "1700000000001-007919.01_00" a0="pc newest a+b=c&d"
put_logged thirdPartyId "id with space" a7="sp ace"

n_enq=$(grep -c . "$LOG")
check_eq "outbox holds every enqueued update" "$n_enq" "$(q 'SELECT count(*) FROM v_updates')"

v2_before=$(sim_counter calls.batch_update_v2.ok)
flush_wait clean 0 120
check_store clean "${preloads[@]}"
check_all_delivered clean
# coalescing, from the test's own log: exactly one delivered update per
# (profile, attribute), every older one superseded
distinct=$(python3 -c '
import json, sys
print(len({(o["t"], o["id"], o["a"]) for o in map(json.loads, open(sys.argv[1]))}))' "$LOG")
check_eq "coalescing: one delivered update per (profile, attribute)" "$distinct" "$(state_count delivered)"
check_eq "coalescing: every older update superseded" "$((n_enq - distinct))" "$(state_count superseded)"
check_eq "no failed rows at the simulator" 0 "$(sim_counter rows_failed)"
check_eq "no pcId row not found (all preloaded)" 0 "$(sim_counter rows_not_found)"
check_ge "v1 batches were used for pcIds" 1 "$(sim_counter calls.batch_update_v1.ok)"
check_ge "v2 batches were used for thirdPartyIds" 1 "$(( $(sim_counter calls.batch_update_v2.ok) - v2_before ))"

# a second flush --wait with nothing pending is a no-op that exits 0
before=$(sim_counter calls.batch_update_v2.total)
flush_wait idle 0 30
check_eq "idle flush sends nothing" "$before" "$(sim_counter calls.batch_update_v2.total)"
check_store "after idle flush" "${preloads[@]}"
finish
