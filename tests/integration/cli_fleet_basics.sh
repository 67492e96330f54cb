#!/bin/bash
# The fleet's set-up against a real PostgreSQL: `pobox fleet init` creates
# and upgrades the coordinator's schema and grants the hosts' role exactly
# the four entry points; hosts log in with a password from a passfile or
# from fleet_password_file (never in fleet_url); a host whose budgets differ
# from the account's is refused; a host delivers single calls through its
# leases, and quota, status (text, --json, --prometheus) and fleet status
# show the fleet.
. "$(dirname "$0")/fleet_lib.sh" "$@"

pg_start
sim_start --notfound-silent --single-budget 0 --call-log "$T/calls.log"
FLEET_OWNER_EXTRA=("single_budget = 2000" "fleet_window = 60s" "fleet_lease = 2s" "fleet_reserve_life = 30s" "fleet_size = 2")

# --- init: schema, grants, account; idempotent
fleet_init --grant pobox_host
check_eq "fleet init exits 0" 0 $?
check_eq "init: schema 0 -> 1" 1 "$(grep -c 'schema version 0 -> 1' "$T/init.out")"
check_eq "init: account created" 1 "$(grep -c 'account chain created: single_budget 2000 per 60s' "$T/init.out")"
check_eq "the coordinator records version 1" "1|0001_ledger.sql" "$(pgq "SELECT version, name FROM pobox_fleet.schema_version")"
fleet_init --grant pobox_host
check_eq "init again: up to date, account unchanged" "1 1" \
	"$(grep -c 'schema version 1, up to date' "$T/init.out") $(grep -c 'exists, unchanged' "$T/init.out")"
check_eq "... still one account" 1 "$(pgq "SELECT count(*) FROM pobox_fleet.accounts")"

# the hosts' role: the four functions, nothing else
hostsql() { PGPASSFILE=$T/pgpass psql -X -q -At -h 127.0.0.1 -p "$PGPORT" -U pobox_host -d pobox -c "$1" 2>&1; }
check_eq "host role may call account_status" 2000 \
	"$(hostsql "SELECT budget FROM pobox_fleet.account_status('chain')")"
case $(hostsql "SELECT count(*) FROM pobox_fleet.charges") in
*"permission denied"*) pass "host role may not read the ledger's tables" ;;
*) fail "host role may not read the ledger's tables" "$(hostsql "SELECT count(*) FROM pobox_fleet.charges")" ;;
esac
case $(hostsql "SELECT pobox_fleet.add_charge('chain', 'single', 0, -1000000)") in
*"permission denied"*) pass "host role may not call the ledger's helpers" ;;
*) fail "host role may not call the ledger's helpers" ;;
esac

# a newer coordinator schema is refused, not downgraded
pgq "INSERT INTO pobox_fleet.schema_version (version, name) VALUES (99, 'future')" >/dev/null
fleet_init; rc=$?
check_eq "init against a newer schema: exit 78" 78 "$rc"
check_eq "... says why" 1 "$(grep -c 'version 99, newer than this pobox knows' "$T/init.err")"
pgq "DELETE FROM pobox_fleet.schema_version WHERE version = 99" >/dev/null

# --- configuration errors
host_conf h1 0 "single_budget = 2000"
sed -i 's/^fleet_url = .*/fleet_url = postgresql:\/\/pobox_host:s3cr3tpw@127.0.0.1:'"$PGPORT"'\/pobox/' "$T/h1/pobox.conf"
"$POBOX" -c "$T/h1/pobox.conf" run --once >"$T/o.out" 2>"$T/o.err"; rc=$?
check_eq "a password in fleet_url: exit 78" 78 "$rc"
check_eq "... says to use a passfile" 1 "$(grep -c 'fleet_url holds a password' "$T/o.err")"
check_eq "... and never prints it" 0 "$(grep -c s3cr3tpw "$T/o.err" "$T/o.out" | awk -F: '{ s += $2 } END { print s }')"
host_conf h1 0 "single_budget = 2000" "fleet_password_file = $T/pw"
sed -i 's/ passfile=[^ ]*//' "$T/h1/pobox.conf"
printf '%s\n' "$HOSTPW" >"$T/pw"; chmod 644 "$T/pw"
"$POBOX" -c "$T/h1/pobox.conf" run --once >"$T/o.out" 2>"$T/o.err"; rc=$?
check_eq "a password file others can read: exit 78" "78 1" "$rc $(grep -c 'readable by other users' "$T/o.err")"
chmod 600 "$T/pw"
host_conf h2 1 "single_budget = 1999"
timeout 30 "$POBOX" -c "$T/h2/pobox.conf" run >"$T/o.out" 2>"$T/o.err"; rc=$?
check_eq "a host whose single_budget differs from the account's: refused, exit 78" 78 "$rc"
check_eq "... naming both budgets" 1 \
	"$(grep -c "^pobox: fleet: the coordinator refused this host: .*account 'chain' has single_budget = 2000 and bulk_calls_per_minute = 45 at the coordinator, but host 'h2' is configured with 1999 and 45" "$T/o.err")"

# --- a host delivers single calls through leases (password from the file)
host_start h1
wait_for "h1 joined" 20 grep -q fleet_joined "$T/h1/run.log"
for i in $(seq 1 40); do "$POBOX" -c "$T/h1/pobox.conf" put "thirdPartyId:u$i" "a=v$i" >/dev/null; done
wait_for "h1 delivered 40 updates" 30 sh -c "[ \"\$(sqlite3 -cmd '.timeout 5000' $T/h1/o.db \"SELECT count(*) FROM v_updates WHERE state = 'delivered'\")\" = 40 ]"
check_eq "40 single calls at the simulator" 40 "$(calls_between single 0 9999999999999)"
check_eq "all under leases: used units recorded by lease" 40 "$(hq h1 "SELECT coalesce(sum(n), 0) FROM fleet_usage")"
check_eq "no bulk batch" 0 "$(hq h1 "SELECT count(*) FROM batches WHERE lane = 'bulk'")"
"$POBOX" -c "$T/h1/pobox.conf" status >"$T/status.out" 2>&1
check_eq "status: the fleet section" 1 "$(grep -c '^fleet       account chain, host h1: coordinator reachable' "$T/status.out")"
check_eq "status: this host's calls" 1 "$(grep -c '^single calls in the last 24 h: 40 by this host' "$T/status.out")"
J=$("$POBOX" -c "$T/h1/pobox.conf" status --json)
check_eq "status --json: fleet.reachable, account_budget, margin" "True 2000 10" \
	"$(json_get "$J" fleet.reachable) $(json_get "$J" fleet.account_budget) $(json_get "$J" fleet.margin)"
check_eq "status --json: reserve held (fleet_reserve_share 5% of 1990 over fleet_size 2)" 49 "$(json_get "$J" fleet.reserve)"
"$POBOX" -c "$T/h1/pobox.conf" status --prometheus >"$T/prom.out"
check_eq "prometheus: pobox_fleet_reachable 1, budget 2000" "1 1" \
	"$(grep -c '^pobox_fleet_reachable 1$' "$T/prom.out") $(grep -c '^pobox_fleet_budget_calls 2000$' "$T/prom.out")"
"$POBOX" -c "$T/h1/pobox.conf" quota >"$T/quota.out"
check_eq "quota: the fleet section" 1 "$(grep -c 'account budget 2,000 per 1m00s, margin 10' "$T/quota.out")"
# the coordinator learns a host's use when it reports a closed lease
fs_used() { "$POBOX" -c "$T/h1/pobox.conf" fleet status >"$T/fs.out" 2>&1; [ "$(awk '$1 == "h1" { print $2 }' "$T/fs.out")" = "$1" ]; }
wait_for "fleet status shows h1's calls once its lease is reported" 15 fs_used 40
check_eq "fleet status: the account" 1 "$(grep -c '^account     chain' "$T/fs.out")"
check_eq "fleet status: h1 with its 40 calls" 40 "$(awk '$1 == "h1" { print $2 }' "$T/fs.out")"
FJ=$("$POBOX" -c "$T/h1/pobox.conf" fleet status --json)
check_eq "fleet status --json: hosts[0]" "h1 40 True" \
	"$(python3 -c "import json,sys; h=json.loads(sys.argv[1])['hosts'][0]; print(h['host'], h['used'], h['heard'])" "$FJ")"
host_stop h1
check_eq "after stop: leases given back, the reserve kept" "0 1" \
	"$(hq h1 "SELECT count(*) FROM fleet_leases WHERE kind = 'lease'") $(hq h1 "SELECT count(*) FROM fleet_leases WHERE kind = 'reserve'")"
check_eq "... and the coordinator agrees" "0" "$(pgq "SELECT count(*) FROM pobox_fleet.leases WHERE kind = 'lease'")"
check_eq "the fleet's single charges = 40 calls + the reserve" 89 \
	"$(pgq "SELECT sum(n) FROM pobox_fleet.charges WHERE lane = 'single'")"

# --- without fleet_url nothing changes: no fleet state, no coordinator
new_host_conf() { sed '/^fleet_/d' "$T/h1/pobox.conf" | sed "s|$T/h1/o.db|$T/solo.db|" >"$T/solo.conf"; }
new_host_conf
"$POBOX" -c "$T/solo.conf" put thirdPartyId:solo a=1 --urgent >/dev/null
timeout 30 "$POBOX" -c "$T/solo.conf" flush --wait --timeout 20s >/dev/null 2>"$T/solo.err"
check_eq "no fleet_url: delivered by a single call, no fleet state" "1 0" \
	"$(sqlite3 "$T/solo.db" "SELECT count(*) FROM quota_minutes") $(sqlite3 "$T/solo.db" "SELECT count(*) FROM fleet_state")"
finish
