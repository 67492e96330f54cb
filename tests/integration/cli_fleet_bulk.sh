#!/bin/bash
# The bulk limit is the account's too.  Three hosts flush their nightly
# batches at the same moment against a simulator that allows 8 bulk calls
# (submits and status polls) per rolling minute - a minute of 10 real
# seconds here (--clock-scale 6, fleet_bulk_window = 10s).  Without the
# fleet each host keeps its own 8 a minute and together they draw 503s;
# with it every bulk call takes a permit from the coordinator first and
# the simulator never refuses one, and everything is delivered.  Batches
# are complete at once (no --process-delay-ms), so each costs exactly a
# submit, a poll and a details call: a permit is never spent on a poll
# whose details call then found none and had to be polled again.
. "$(dirname "$0")/fleet_lib.sh" "$@"

N=3 LIMIT=8
pg_start
FLEET_OWNER_EXTRA=("bulk_calls_per_minute = $LIMIT" "fleet_bulk_window = 10s" "fleet_permit_life = 3s")
fleet_init --grant pobox_host || { fail "fleet init" "$(cat "$T/init.err")"; finish; }
FLEET_CONF_EXTRA=("single_lane = no" "bulk_calls_per_minute = $LIMIT" "fleet_timeout = 2s"
                  "max_batch_rows = 50" "bulk_max_in_flight = 2" "poll_initial = 300ms"
                  "request_timeout = 30s") # no call times out and is made again, however loaded

# run_flushes NAME: every host flushes its 100 profiles (2 batches) at once
run_flushes() {
	local h i pids=()
	for h in "${HOSTS[@]}"; do
		for i in $(seq 1 100); do echo "$h-$i,v$i"; done | sed '1i thirdPartyId,a' >"$T/$h.csv"
		"$POBOX" -c "$T/$h/pobox.conf" import "$T/$h.csv" >/dev/null
	done
	for h in "${HOSTS[@]}"; do
		timeout -s KILL 200 "$POBOX" -c "$T/$h/pobox.conf" flush --wait --timeout 180s \
			>"$T/$h/flush.out" 2>"$T/$h/flush.err" &
		pids+=($!)
	done
	local rc=0
	for i in "${pids[@]}"; do wait "$i" || rc=$?; done
	check_eq "$1: every host's flush --wait exits 0" 0 "$rc"
}

# --- without the fleet: each host alone within 8 a minute, together over
sim_start --clock-scale 6 --bulk-per-minute $LIMIT --status-keep 1000
for i in $(seq 0 $((N - 1))); do HOSTS+=("s$i"); host_conf "s$i" "$i"; sed -i '/^fleet_/d' "$T/s$i/pobox.conf"; done
run_flushes "no fleet"
SOLO_503=$(sim_fault_total rate_limited)
echo "# without the fleet: $SOLO_503 bulk calls refused with 503"
check_ge "without the fleet the hosts together overstep the limit (503s)" 1 "$SOLO_503"
sim_stop

# --- with it: never a 503
sim_start --clock-scale 6 --bulk-per-minute $LIMIT --status-keep 1000 --call-log "$T/calls.log"
HOSTS=()
for i in $(seq 0 $((N - 1))); do HOSTS+=("f$i"); host_conf "f$i" "$i"; done
run_flushes "fleet"
check_eq "with the fleet: no bulk call refused (503)" 0 "$(sim_fault_total rate_limited)"
for h in "${HOSTS[@]}"; do
	check_eq "$h: all 100 delivered" 100 "$(hq "$h" "SELECT count(*) FROM v_updates WHERE state = 'delivered'")"
done
TOTAL=$(calls_between bulk 0 9999999999999)
read -r MAX AT <<<"$(oracle_max bulk 60000)"
echo "# bulk calls: $TOTAL; the most in any simulated minute: $MAX"
check_le "oracle: no simulated minute over the limit" $LIMIT "$MAX"
check_ge "the hosts needed several minutes' worth (the limit was binding)" $((2 * LIMIT)) "$TOTAL"
check_eq "3 calls per batch (submit, poll, details): no batch polled twice" $((N * 2 * 3)) "$TOTAL"
check_eq "every bulk call took a permit (coordinator's bulk charges = calls)" "$TOTAL" \
	"$(pgq "SELECT coalesce(sum(n), 0) FROM pobox_fleet.host_use WHERE lane = 'bulk'")"
sim_stop
finish
