#!/usr/bin/env bash
# Stuck is Target's transient state (issue 10, item 8).
#  1. Every batch ends stuck until each of the 20 batches has been stuck at
#     least four times (more than stuck_resubmits = 3): their rows go back
#     to pending with an attempt counted and are cut again, never dead
#     because of it; then stuck batches stop, `flush --wait` exits 0 and
#     the store equals the newest values.
#  2. Always stuck with max_attempts = 3: the rows die after three stuck
#     rounds, with that reason and attempt count.
#  3. 30% of batches stuck at random (seeded), 20 batches: all delivered.
#  4. A forced dead letter (max_attempts = 2, every call a 500): `flush
#     --wait` exits 65 and says how many updates ended dead; so does the
#     nightly script (packaging/nightly), which fails with it.
. "$(dirname "$0")/bulk_lib.sh"
seed=${BULK_SEED:-7801}
echo "# seed $seed"

# 20 thirdPartyId profiles per scenario, one per batch
profiles20() { # PREFIX
	local i
	for i in $(seq 1 20); do put_logged thirdPartyId "$1-$i" tier=gold "n=$i"; done
}
common="max_batch_rows = 1"

new_scenario always
sim_start --seed "$seed" --stuck-rate 1 --process-delay-ms 50
write_conf "$common" "stuck_wait = 300ms" "stuck_resubmits = 3" "max_attempts = 10"
profiles20 a
timeout -s KILL 140 "$POBOX" -c "$CONF" flush --wait --timeout 120s >"$T/flush.out" 2>"$T/flush.err" &
fpid=$!; bg $fpid
wait_for "each batch stuck four times" 90 counter_ge batches_stuck 80
sim_faults 'stuck_rate=0'
wait $fpid; rc=$?
check_eq "always: flush --wait exits 0" 0 "$rc"
[ "$rc" -eq 0 ] || tail -5 "$T/flush.err"
check_eq "always: no batch died of being stuck" 0 "$(grep -c 'stuck again\|batch_dead' "$T/flush.err")"
check_store always
check_all_delivered always
check_ge "always: stuck batches at the simulator" 80 "$(sim_counter batches_stuck)"
check_ge "always: pobox replaced stuck batches" 80 "$(q "SELECT count(*) FROM v_batches WHERE state = 'replaced'")"
check_ge "always: stuck batches' rows went back to pending with an attempt counted" 80 \
	"$(q "SELECT count(*) FROM v_batches WHERE state = 'replaced' AND last_error LIKE '%stuck at Target%went back to pending (attempt counted)%'")"

new_scenario attempts
sim_start --seed "$seed" --stuck-rate 1 --process-delay-ms 50
write_conf "max_batch_rows = 2" "stuck_wait = 300ms" "max_attempts = 3"
for i in 1 2 3 4; do put_logged thirdPartyId "m-$i" tier=gold; done
flush_wait attempts 65 60
check_eq "attempts: stuck rows die only of max_attempts" 4 \
	"$(q "SELECT count(*) FROM v_dead WHERE attempts = 3 AND reason LIKE '%stuck at Target%'")"
check_eq "attempts: three rounds of two batches were stuck" 6 "$(sim_counter batches_stuck)"

new_scenario share
sim_start --seed "$seed" --stuck-rate 0.3 --process-delay-ms 50
write_conf "$common" "stuck_wait = 300ms"
profiles20 s
flush_wait share 0 120
check_eq "share: no batch died of being stuck" 0 "$(grep -c 'stuck again\|batch_dead' "$T/flush.err")"
check_store share
check_all_delivered share
check_ge "share: some batches were stuck" 1 "$(sim_counter batches_stuck)"

new_scenario dead
sim_start --seed "$seed" --error-rate 1 --error-codes 500
write_conf "$common" "max_attempts = 2" "max_batch_rows = 5"
profiles20 d
flush_wait dead 65 60
check_eq "dead: flush says how many ended dead" 1 \
	"$(grep -c '^flush: 40 updates ended dead instead of delivered' "$T/flush.out")"
check_eq "dead: and on stderr" 1 "$(grep -c 'pobox: flush: 40 updates ended dead' "$T/flush.err")"
check_eq "dead: 40 dead updates (20 profiles, 2 each)" 40 "$(state_count dead)"
# the nightly job fails with it (and says why)
printf 'thirdPartyId,tier\nd-21,silver\n' >"$T/dead/export.csv"
POBOX_NIGHTLY_POBOX=$POBOX POBOX_NIGHTLY_CONFIG=$CONF POBOX_NIGHTLY_FILE=$T/dead/export.csv \
	POBOX_NIGHTLY_REJECT_FILE=$T/dead/rejects.csv POBOX_NIGHTLY_TIMEOUT=60s \
	timeout -s KILL 90 sh "$HERE/../../packaging/nightly" >"$T/nightly.out" 2>"$T/nightly.err"
rc=$?
check_eq "dead: the nightly script exits 65" 65 "$rc"
check_eq "dead: the nightly script says updates died" 1 \
	"$(grep -c 'pobox-nightly: .*ended dead' "$T/nightly.err")"
# plain flush (no --wait) waits for nothing and exits 0
pb flush >/dev/null 2>&1
check_eq "dead: flush without --wait exits 0" 0 $?
finish
