#!/usr/bin/env bash
# Batch statuses that expire (Target keeps them about 24 h): the simulated
# clock jumps a day ahead while batches are in flight (processing delay 2 s),
# so every status has expired (404) when pobox polls.  pobox must treat a
# lost status as "outcome unknown" and re-send (updates are idempotent
# sets); `flush --wait` exits 0 and the store equals the newest enqueued
# values, nothing dead.
. "$(dirname "$0")/bulk_lib.sh"
seed=${BULK_SEED:-7501}
echo "# seed $seed"

new_scenario ttl
std_data $((seed + 1)) --tp 150 --pc 30 --updates 800 --files 2
sim_start --seed "$seed" --preload "$PRELOAD" --process-delay-ms 2000
write_conf "max_batch_rows = 40" "stuck_resubmits = 1000"
enqueue_imports "$T/ttl/gen"
timeout -s KILL 140 "$POBOX" -c "$CONF" flush --wait --timeout 120s >"$T/flush.out" 2>"$T/flush.err" &
fpid=$!; bg $fpid
wait_for "batches in flight" 20 counter_ge batches_accepted 3
curl -s -X POST "$B/_sim/clock?advance_s=90000" >/dev/null
wait $fpid; rc=$?
check_eq "ttl: flush --wait exits 0" 0 "$rc"
[ "$rc" -eq 0 ] || tail -15 "$T/flush.err"
std_checks ttl
check_ge "ttl: status polls answered 404 (expired)" 1 "$(sim_counter calls.batch_status.not_found)"

finish
