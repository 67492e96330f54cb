#!/bin/bash
# Target, not the coordinator, is unreachable (nobody listens on its port)
# for several lease lives while urgent updates wait for the single lane.
# The lane goes offline (outage.h) and keeps one batch as its probe; the
# calls that could not connect give their units back, so nothing is
# counted as used.  When the probe comes due and the leases it could have
# drawn on have run out, it waits in its batch for the next lease instead
# of leaving it (with no batch left to probe, the lane would stay offline
# and the updates pending for good).  When Target is back, everything is
# delivered by single calls, each charged at the coordinator.
. "$(dirname "$0")/fleet_lib.sh" "$@"

N=30
pg_start
FLEET_OWNER_EXTRA=("fleet_lease = 2s")
fleet_init --grant pobox_host || { fail "fleet init" "$(cat "$T/init.err")"; finish; }
port=$(free_port)
B=http://127.0.0.1:$port
HOSTS=(h0)
host_conf h0 0 "backoff_base = 6s" "backoff_cap = 8s" "recovery_ramp = 1s"
host_start h0
wait_for "h0 joins" 30 grep -q fleet_joined "$T/h0/run.log" || finish
for i in $(seq 1 $N); do
	"$POBOX" -c "$T/h0/pobox.conf" put "thirdPartyId:o$i" "a=$i" --urgent >/dev/null ||
		fail "put o$i while Target is down"
done
down() { grep -q 'network_down lane=single' "$T/h0/run.log"; }
wait_for "the single lane finds Target unreachable" 30 down || finish
sleep 20 # ten lease lives, and probes further apart than two: whatever the host held has run out
check_eq "no unit counted as used for a call that never connected" "0 0" \
	"$(hq h0 "SELECT coalesce(sum(used), 0) FROM quota_minutes") $(hq h0 "SELECT coalesce(sum(n), 0) FROM fleet_usage")"
check_eq "every update waits, pending or in the probe batch" $N \
	"$(hq h0 "SELECT count(*) FROM v_updates WHERE state IN ('pending', 'batched')")"

sim_start_on "$port" --notfound-silent --call-log "$T/calls.log"
delivered() { [ "$(hq h0 "SELECT count(*) FROM v_updates WHERE state = 'delivered'")" = $N ]; }
wait_for "Target back: all $N delivered" 60 delivered
check_eq "the single lane is back (network_back)" 1 "$(grep -c 'network_back lane=single' "$T/h0/run.log")"
check_eq "no bulk batch: the probe waited for a lease, it did not go bulk" 0 \
	"$(hq h0 "SELECT count(*) FROM batches WHERE lane = 'bulk'")"
host_stop h0
SIM=$(calls_between single 0 9999999999999)
check_eq "one single call per update reached Target" $N "$SIM"
check_eq "every one is charged at the coordinator" "$SIM" \
	"$(pgq "SELECT coalesce(sum(n), 0) FROM pobox_fleet.host_use WHERE host = 'h0' AND lane = 'single'")"
finish
