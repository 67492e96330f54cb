#!/bin/bash
# A host SIGKILLed while single calls are on the wire (the simulator holds
# every answer 1.5 s): the units those calls took stay recorded as taken in
# the outbox, the next start counts them as used at their lease's charge
# (they may have reached Target - they did), and the calls are made again
# from new units.  Every call the simulator counted is charged at the
# coordinator: the host's reported use is at least the simulator's count.
. "$(dirname "$0")/fleet_lib.sh" "$@"

pg_start
sim_start --notfound-silent --single-budget 0 --latency-ms 1500 --call-log "$T/calls.log"
FLEET_OWNER_EXTRA=("fleet_lease = 5s")
fleet_init --grant pobox_host || { fail "fleet init" "$(cat "$T/init.err")"; finish; }
HOSTS=(h0)
host_conf h0 0 "request_timeout = 5s" "single_concurrency = 16" "single_threads = 2"
host_start h0
wait_for "h0 joins" 30 grep -q fleet_joined "$T/h0/run.log" || finish
for i in $(seq 1 40); do "$POBOX" -c "$T/h0/pobox.conf" put "thirdPartyId:c$i" "a=$i" --urgent >/dev/null; done
on_wire() { [ "$(calls_between single 0 9999999999999)" -ge 8 ]; }
wait_for "calls on the wire" 20 on_wire || finish
host_kill h0
TAKEN=$(hq h0 "SELECT coalesce(sum(reserved), 0) FROM fleet_leases")
check_ge "the killed process left units taken and unsettled" 1 "$TAKEN"
sim_faults "latency_ms=0"
host_start h0
delivered() { [ "$(hq h0 "SELECT count(*) FROM v_updates WHERE state = 'delivered'")" = 40 ]; }
wait_for "all 40 delivered after the restart" 30 delivered
check_eq "the restart counted them as used" 1 \
	"$(grep -c "fleet_units_recovered units=$TAKEN " "$T/h0/run.log")"
host_stop h0
SIM=$(calls_between single 0 9999999999999)
CHARGED=$(pgq "SELECT coalesce(sum(n), 0) FROM pobox_fleet.host_use WHERE host = 'h0' AND lane = 'single'")
echo "# the simulator counted $SIM single calls; the coordinator has $CHARGED charged to h0"
check_ge "more than 40 calls reached the simulator (the killed ones were made again)" 41 "$SIM"
check_ge "every call the simulator counted is charged at the coordinator" "$SIM" "$CHARGED"
check_eq "nothing is still taken" 0 "$(hq h0 "SELECT coalesce(sum(reserved), 0) FROM fleet_leases")"
finish
