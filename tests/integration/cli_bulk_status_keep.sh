#!/usr/bin/env bash
# Batch statuses evicted by count (Target keeps the last 10 per client; here
# --status-keep 1) with a processing delay and many small batches in flight:
# most batches' statuses are gone (404) before pobox polls them.  pobox must
# still get everything delivered (lost status = re-send, and it has to stop
# evicting its own statuses, e.g. by having fewer batches in flight than
# Target keeps), exit 0, nothing dead, and the store equals the newest
# enqueued values.
. "$(dirname "$0")/bulk_lib.sh"
seed=${BULK_SEED:-7501}
echo "# seed $seed"

new_scenario keep
std_data "$seed" --tp 200 --pc 40 --updates 1200 --files 3
sim_start --seed "$seed" --preload "$PRELOAD" --status-keep 1 --process-delay-ms 300
write_conf "max_batch_rows = 30" "stuck_resubmits = 1000"
enqueue_imports "$T/keep/gen"
flush_wait keep 0 60
std_checks keep
check_ge "keep: status polls answered 404 (evicted)" 1 "$(sim_counter calls.batch_status.not_found)"

finish
