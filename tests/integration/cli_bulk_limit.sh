#!/usr/bin/env bash
# Bulk delivery against Target's per-minute limit on the bulk APIs, scaled
# down: the simulator admits 5 batchUpdate + batchStatus calls per rolling
# (simulated) minute and answers 503 with Retry-After above it; its clock runs
# 30x (a minute is 2 s), and pobox's batches are small (max_batch_rows 15),
# so about 15 batches and twice as many calls are needed: several minutes'
# worth.  pobox must back off on the 503s, not burn attempts on them (nothing
# dead with max_attempts 3), not hammer the server, and still deliver
# everything: the store equals the newest enqueued values.
. "$(dirname "$0")/bulk_lib.sh"
seed=${BULK_SEED:-7301}
echo "# seed $seed"

new_scenario limit
std_data "$seed" --tp 200 --pc 0 --updates 400 --files 2 --attrs 3
sim_start --seed "$seed" --bulk-per-minute 5 --clock-scale 30 --process-delay-ms 100
write_conf "max_batch_rows = 15" "max_attempts = 3"
enqueue_imports "$T/limit/gen"
flush_wait limit 0 150
check_store limit
check_all_delivered limit
ok_calls=$(sim_fault_total ok)
limited=$(sim_fault_total rate_limited)
echo "# bulk calls admitted $ok_calls, refused with 503 $limited"
check_ge "limit: the limit was reached (503s seen)" 1 "$limited"
# backing off means at most a few refused calls per admitted one
check_le "limit: pobox backs off instead of hammering (503s <= 3 x admitted calls)" $((ok_calls * 3)) "$limited"
finish
