#!/usr/bin/env bash
# Bulk delivery with answers slower than pobox's request_timeout (1 s):
# first every answer takes 1.5 s (every call times out; the simulator still
# processes them), then the latency drops to 0..1.4 s at random (about a third
# time out).  `pobox flush --wait` must keep retrying, exit 0, and the store
# must equal the newest enqueued values, nothing dead.
. "$(dirname "$0")/bulk_lib.sh"
seed=${BULK_SEED:-7201}
echo "# seed $seed"

new_scenario timeout
std_data "$seed" --tp 60 --pc 10 --updates 500 --files 2
sim_start --seed "$seed" --preload "$PRELOAD" --latency-ms 1500 --process-delay-ms 50
BULK_REQUEST_TIMEOUT=1s write_conf "max_batch_rows = 100" "max_attempts = 30"
enqueue_imports "$T/timeout/gen"
timeout -s KILL 140 "$POBOX" -c "$CONF" flush --wait --timeout 120s >"$T/flush.out" 2>"$T/flush.err" &
fpid=$!; bg $fpid
# let a few calls time out at the full latency
wait_for "timeouts happen" 20 counter_ge calls.batch_update_v2.total 2 &&
	wait_for "more timeouts" 20 counter_ge calls.batch_update_v2.total 3
sim_faults 'latency_ms=0&latency_jitter_ms=1400'
wait $fpid; rc=$?
check_eq "timeout: flush --wait exits 0" 0 "$rc"
[ "$rc" -eq 0 ] || tail -15 "$T/flush.err"
std_checks timeout
# each timed-out submit was processed, so the simulator accepted more
# batches than pobox finished
done_batches=$(q "SELECT count(*) FROM v_batches WHERE state = 'done'")
check_ge "timeout: timed-out submits were re-sent" $((done_batches + 1)) "$(sim_counter batches_accepted)"
finish
