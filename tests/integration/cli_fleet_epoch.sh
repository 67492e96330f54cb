#!/bin/bash
# The coordinator loses data: its cluster is put back to a copy taken
# seconds earlier (a restore from backup), so every grant and report since
# is gone.  The first host to talk has seen a newer serial than the ledger
# holds: the epoch changes; every host re-reports its calls of the window
# from its own outbox before it is granted anything, and the ledger holds
# back what unheard hosts held.  The oracle still holds, and the hosts go
# on delivering by single calls afterwards.
. "$(dirname "$0")/fleet_lib.sh" "$@"

W=30000 BUDGET=1500 MARGIN=15 N=3
pg_start
sim_start --notfound-silent --single-budget 0 --status-keep 100000 --call-log "$T/calls.log"
FLEET_OWNER_EXTRA=("single_budget = $BUDGET" "fleet_window = 30s" "fleet_margin = 0.01"
                   "fleet_lease = 2s" "fleet_reserve_life = 20s" "fleet_reserve_share = 0.02"
                   "fleet_size = $N" "urgent_reserve = 0" "bulk_calls_per_minute = 6000")
fleet_init --grant pobox_host || { fail "fleet init" "$(cat "$T/init.err")"; finish; }
E1=$(pgq "SELECT epoch FROM pobox_fleet.accounts")
FLEET_CONF_EXTRA=("single_budget = $BUDGET" "bulk_calls_per_minute = 6000" "fleet_timeout = 1s")
for i in $(seq 0 $((N - 1))); do HOSTS+=("h$i"); host_conf "h$i" "$i"; host_start "h$i"; done
for h in "${HOSTS[@]}"; do wait_for "$h joins" 30 grep -q fleet_joined "$T/$h/run.log" || finish; done
loads=()
for h in "${HOSTS[@]}"; do loads+=("$T/$h/o.db:40"); done
"$LOADBIN" --seconds 40 "${loads[@]}" >"$T/load.out" 2>"$T/load.err" &
LOAD_PID=$!
bg "$LOAD_PID"

sleep 6
# the backup: a copy of the stopped cluster
pg_stop fast
pg_as cp -a "$PGROOT/data" "$PGROOT/backup"
pg_launch || finish
SERIAL_AT_BACKUP=$(pgq "SELECT serial FROM pobox_fleet.accounts")
sleep 8
check_ge "the ledger moved on after the backup" $((SERIAL_AT_BACKUP + 10)) "$(pgq "SELECT serial FROM pobox_fleet.accounts")"
# the loss: the cluster goes back to the copy
pg_stop immediate
pg_as rm -rf "$PGROOT/data"
pg_as mv "$PGROOT/backup" "$PGROOT/data"
pg_launch || finish
T_RESTORE=$(sim_now_ms)
changed() { [ "$(pgq "SELECT epoch FROM pobox_fleet.accounts")" != "$E1" ]; }
wait_for "the restored ledger changes its epoch" 20 changed
E2=$(pgq "SELECT epoch FROM pobox_fleet.accounts")
heard() { [ "$(pgq "SELECT count(*) FROM pobox_fleet.hosts WHERE heard_epoch = '$E2'")" = "$N" ]; }
wait_for "every host re-reports its history in the new epoch" 20 heard
wait "$LOAD_PID"
sleep 2
for h in "${HOSTS[@]}"; do host_stop "$h"; done
sim_stop
for h in "${HOSTS[@]}"; do
	check_ge "$h noticed the epoch change" 1 "$(grep -c fleet_epoch_changed "$T/$h/run.log")"
done
check_eq "the hosts' outboxes hold the new epoch, re-reported" "$N" \
	"$(for h in "${HOSTS[@]}"; do hq "$h" "SELECT count(*) FROM fleet_state WHERE epoch = '$E2' AND reported_epoch = '$E2'"; done | awk '{ s += $1 } END { print s }')"
AFTER=$(calls_between single $((T_RESTORE + 5000)) 9999999999999)
check_ge "single calls go on after the epoch change" 100 "$AFTER"
read -r MAX AT <<<"$(oracle_max single $W)"
echo "# single calls: $(calls_between single 0 9999999999999); the most in any 30 s window: $MAX"
check_le "oracle: no rolling window over budget - margin, across the loss" $((BUDGET - MARGIN)) "$MAX"
finish
