#!/usr/bin/env bash
# Bulk delivery under HTTP-level faults: 30% of calls (submits and status
# polls) answered 5xx with an HTML body; then 30% answered 429 with
# Retry-After.  `pobox flush --wait` must retry (backoff, honouring
# Retry-After), finish with exit 0, and the simulator's store must equal the
# newest enqueued values (no missing, extra or stale value), nothing dead.
. "$(dirname "$0")/bulk_lib.sh"
seed=${BULK_SEED:-7001}
echo "# seed $seed"

new_scenario 5xx
std_data "$seed" --tp 200 --pc 40 --updates 2000 --files 4
sim_start --seed "$seed" --preload "$PRELOAD" --error-rate 0.3 --process-delay-ms 50
write_conf "max_batch_rows = 40" "max_attempts = 20"
enqueue_imports "$T/5xx/gen"
flush_wait 5xx 0 120
std_checks 5xx
check_ge "5xx: errors were injected" 3 "$(sim_fault_total fault_error)"

new_scenario 429
std_data $((seed + 1)) --tp 100 --pc 20 --updates 800 --files 3
sim_start --seed "$seed" --preload "$PRELOAD" --rate-429 0.3 --retry-after-s 1 --process-delay-ms 50
write_conf "max_batch_rows = 50" "max_attempts = 20"
enqueue_imports "$T/429/gen"
flush_wait 429 0 120
std_checks 429
check_ge "429: throttles were injected" 1 "$(sim_fault_total fault_429)"
finish
