#!/usr/bin/env bash
# Bulk delivery under transport faults: connection resets after half the
# answer (the request *was* processed), connections closed without an answer
# (curl: empty reply), and garbled XML answers (the request was processed).
# Each under its own simulator: `pobox flush --wait` exits 0 and the store
# equals the newest enqueued values (no missing, extra or stale value), with
# nothing dead.  Re-sent batches are idempotent sets, so duplicates are fine.
. "$(dirname "$0")/bulk_lib.sh"
seed=${BULK_SEED:-7101}
echo "# seed $seed"

run_fault() { # NAME SIM-FLAG COUNTER
	new_scenario "$1"
	std_data "$seed" --tp 120 --pc 20 --updates 1000 --files 3
	sim_start --seed "$seed" --preload "$PRELOAD" "$2" 0.3 --process-delay-ms 50
	write_conf "max_batch_rows = 100" "max_attempts = 20"
	enqueue_imports "$T/$1/gen"
	flush_wait "$1" 0 120
	std_checks "$1"
	check_ge "$1: faults were injected" 3 "$(sim_fault_total "$3")"
}
run_fault reset --reset-rate fault_reset
run_fault drop --drop-rate fault_drop
run_fault malformed --malformed-rate fault_malformed
finish
