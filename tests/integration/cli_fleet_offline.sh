#!/bin/bash
# The coordinator goes away for a while (stopped, as for maintenance).
# Every host keeps accepting updates, urgent ones too; its single calls
# while cut off stay within what it held - the rest of its leases, then
# its standing reserve - and the rest goes bulk within the offline bulk
# share.  When the coordinator is back the hosts report exactly what they
# used (the coordinator's per-host use equals each host's own ledger) and
# return to leases.  A host that starts while the coordinator is down has
# its reserve from before and delivers within it.
. "$(dirname "$0")/fleet_lib.sh" "$@"

W=30000 BUDGET=3000 N=4
pg_start
sim_start --notfound-silent --single-budget 0 --status-keep 100000 --call-log "$T/calls.log"
FLEET_OWNER_EXTRA=("single_budget = $BUDGET" "fleet_window = 30s" "fleet_margin = 0.01"
                   "fleet_lease = 2s" "fleet_reserve_life = 60s" "fleet_reserve_share = 0.04"
                   "fleet_size = $N" "urgent_reserve = 0.2" "bulk_calls_per_minute = 6000")
fleet_init --grant pobox_host || { fail "fleet init" "$(cat "$T/init.err")"; finish; }
FLEET_CONF_EXTRA=("single_budget = $BUDGET" "bulk_calls_per_minute = 6000" "fleet_timeout = 1s"
                  "urgent_reserve = 0.2" "fleet_offline_bulk_per_minute = 30")
for i in $(seq 0 $((N - 1))); do HOSTS+=("h$i"); host_conf "h$i" "$i"; host_start "h$i"; done
for h in "${HOSTS[@]}"; do wait_for "$h joins" 30 grep -q fleet_joined "$T/$h/run.log" || finish; done
has_reserve() { [ "$(hq "$1" "SELECT count(*) FROM fleet_leases WHERE kind = 'reserve' AND closed = 0")" -ge 1 ]; }
for h in "${HOSTS[@]}"; do wait_for "$h holds a reserve" 20 has_reserve "$h" || finish; done
loads=()
for h in "${HOSTS[@]}"; do loads+=("$T/$h/o.db:20"); done
"$LOADBIN" --seconds 38 --urgent-every 4 "${loads[@]}" >"$T/load.out" 2>"$T/load.err" &
LOAD_PID=$!
bg "$LOAD_PID"
sleep 5

# --- the coordinator stops; what each host holds is its ceiling
# (units taken for calls still on the wire count as held: they are
# settled as used afterwards)
ceiling() { # leases + reserve not yet used, as the outbox has them
	hq "$1" "SELECT coalesce(sum(granted - used), 0) FROM fleet_leases WHERE closed = 0"
}
mine() { hq "$1" "SELECT coalesce(sum(used), 0) FROM quota_minutes"; }
declare -A CEIL BEFORE
pg_stop immediate
sleep 1.5 # an answer that left before the stop is recorded; the next attempt fails
T_DOWN=$(sim_now_ms)
for h in "${HOSTS[@]}"; do CEIL[$h]=$(ceiling "$h"); BEFORE[$h]=$(mine "$h"); done
BULK_BEFORE=$(calls_between bulk 0 9999999999999)
sleep 15
# a host restarted while the coordinator is down keeps its reserve
host_stop h3
host_start h3
sleep 5
T_UP=$(sim_now_ms)
for h in "${HOSTS[@]}"; do
	used=$(( $(mine "$h") - ${BEFORE[$h]} ))
	echo "# $h: $used single calls while cut off, it held ${CEIL[$h]}"
	check_le "$h: single calls while cut off <= what it held" "${CEIL[$h]}" "$used"
done
check_ge "the hosts went on delivering by bulk while cut off" 1 \
	$(( $(calls_between bulk 0 9999999999999) - BULK_BEFORE ))
J=$("$POBOX" -c "$T/h1/pobox.conf" status --json)
check_eq "status: the coordinator unreachable" False "$(json_get "$J" fleet.reachable)"
"$POBOX" -c "$T/h1/pobox.conf" status >"$T/st.out"
check_eq "status says so, and what the host does meanwhile" 1 \
	"$(grep -c 'coordinator UNREACHABLE.*then the reserve, then bulk only' "$T/st.out")"
"$POBOX" -c "$T/h1/pobox.conf" fleet status >/dev/null 2>"$T/fs.err"; rc=$?
check_eq "fleet status with the coordinator down: exit 69, at once" 69 "$rc"

# --- back: exact reports, leases again
pg_launch || finish
wait "$LOAD_PID"; check_eq "producers kept putting while the coordinator was down" 0 $?
check_eq "... every update accepted" "$(awk '{ s += $3 } END { print s }' "$T/load.out")" \
	"$(for h in "${HOSTS[@]}"; do hq "$h" "SELECT count(*) FROM v_updates"; done | awk '{ s += $1 } END { print s }')"
back() { [ "$(calls_between single "$T_UP" 9999999999999)" -ge 100 ]; }
wait_for "single calls resume on leases" 30 back
all_delivered() {
	local h
	for h in "${HOSTS[@]}"; do
		[ "$(hq "$h" "SELECT count(*) FROM v_updates WHERE state IN ('pending', 'batched')")" = 0 ] || return 1
	done
}
wait_for "everything delivered" 60 all_delivered
for h in "${HOSTS[@]}"; do host_stop "$h"; done
# every grant reported (leases closed at stop; reserves stay open): the
# coordinator's use per host is the host's own, bucket by bucket
C=$(( $(sim_now_ms) - W + 3000 )) # both sides prune what leaves the window
for h in "${HOSTS[@]}"; do
	hq "$h" "SELECT k, n FROM fleet_usage WHERE k > $C ORDER BY k" >"$T/$h.host_use"
	pgq "SELECT k, n FROM pobox_fleet.host_use WHERE host = '$h' AND lane = 'single' AND k > $C ORDER BY k" \
		>"$T/$h.coord_use"
	check_ge "$h: calls to compare" 1 "$(grep -c . "$T/$h.host_use")"
	check_eq "$h: the coordinator has exactly the host's use, per bucket" \
		"$(md5sum <"$T/$h.host_use")" "$(md5sum <"$T/$h.coord_use")"
done
sim_stop
read -r MAX AT <<<"$(oracle_max single $W)"
check_le "oracle: no rolling window over budget - margin" 2970 "$MAX"
finish
