#!/bin/bash
# Round trips to the coordinator per single call at steady state: a host
# sending 10 calls a second with the default lease (2 minutes) asks the
# coordinator at most once per 100 calls (the ledger counts every round
# trip of every host; the simulator every call).
. "$(dirname "$0")/fleet_lib.sh" "$@"

pg_start
sim_start --notfound-silent --single-budget 0 --call-log "$T/calls.log"
fleet_init --grant pobox_host || { fail "fleet init" "$(cat "$T/init.err")"; finish; }
HOSTS=(h0)
host_conf h0 0 "flush_max_delay = 1s"
host_start h0
wait_for "h0 joins" 30 grep -q fleet_joined "$T/h0/run.log" || finish
"$LOADBIN" --seconds 33 "$T/h0/o.db:10" >"$T/load.out" 2>"$T/load.err" &
LOAD_PID=$!
bg "$LOAD_PID"
trips() { pgq "SELECT requests FROM pobox_fleet.hosts WHERE host = 'h0'"; }
sleep 8 # warm-up: the rate is learnt
T1=$(sim_now_ms); R1=$(trips)
sleep 22
T2=$(sim_now_ms); R2=$(trips)
wait "$LOAD_PID"
host_stop h0
CALLS=$(calls_between single "$T1" "$T2")
echo "# steady state, 22 s: $CALLS single calls, $((R2 - R1)) round trips (all of the run: $(trips))"
check_ge "the host sent ~10 calls a second" 200 "$CALLS"
check_le "at most one round trip per 100 calls" $((CALLS / 100)) $((R2 - R1))
finish
