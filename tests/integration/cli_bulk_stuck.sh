#!/usr/bin/env bash
# Stuck batches: every batch the simulator receives ends 'stuck' (its rows
# are never applied).  pobox (stuck_wait 1s) must resubmit; once we switch
# stuck batches off at run time (POST /_sim/faults stuck_rate=0) the
# resubmits succeed, `flush --wait` exits 0 and the store equals the newest
# enqueued values, nothing dead.
. "$(dirname "$0")/bulk_lib.sh"
seed=${BULK_SEED:-7401}
echo "# seed $seed"

new_scenario stuck
std_data "$seed" --tp 150 --pc 30 --updates 1000 --files 3
sim_start --seed "$seed" --preload "$PRELOAD" --stuck-rate 1 --process-delay-ms 100
write_conf "max_batch_rows = 60" "stuck_wait = 1s" "stuck_resubmits = 20"
enqueue_imports "$T/stuck/gen"
timeout -s KILL 140 "$POBOX" -c "$CONF" flush --wait --timeout 120s >"$T/flush.out" 2>"$T/flush.err" &
fpid=$!; bg $fpid
# wait until pobox has seen stuck batches and resubmitted at least one
wait_for "stuck batches seen" 30 counter_ge batches_stuck 2
nb=$(q "SELECT count(*) FROM v_batches")
wait_for "a stuck batch is resubmitted" 30 counter_ge batches_accepted $((nb + 1))
sim_faults 'stuck_rate=0'
wait $fpid; rc=$?
check_eq "stuck: flush --wait exits 0" 0 "$rc"
[ "$rc" -eq 0 ] || tail -15 "$T/flush.err"
std_checks stuck
check_ge "stuck: batches ended stuck at the simulator" 2 "$(sim_counter batches_stuck)"
check_ge "stuck: pobox records replaced (resubmitted) batches" 1 \
	"$(q "SELECT count(*) FROM v_batches WHERE state = 'replaced'")"
finish
