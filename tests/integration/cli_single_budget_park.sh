#!/bin/bash
# Only the simulator's budget is small (pobox believes it has 1,000,000, as
# when another system shares the account): Target's 429 "limit reached"
# parks the single lane (lanes row, class budget, until the time named),
# counts no attempt and charges no unit.  DESIGN rule 5 ("when the single
# budget is short, work routes to bulk instead of failing"): the updates
# already cut for the single lane, and those cut while it is parked, must
# still be delivered - by bulk - rather than wait a day.
. "$(dirname "$0")/single_lib.sh" "$@"

preload_pc "$T/pre.csv" 40 pc a
sim_start --preload "$T/pre.csv" --single-budget 5
# One connection, so "no call after the 429" is exactly "one 429": the call
# queued behind it (a sender keeps two per connection) must be held back and
# never sent.  With more connections, calls already on the wire when the
# first 429 comes back are answered 429 too.  Groups of 3 still leave a
# prepared, reserved group behind the parked one, which must go bulk.
write_conf "single_group = 3" "single_concurrency = 1"
for i in $(seq 1 8); do put_ok C pcId "pc$i" "a=C$i" --urgent; done
flush_wait C 0 20
check_eq "C: the simulator answered one 429" 1 "$(single_calls budget_exhausted)"
check_eq "C: the lane is parked for the budget" budget "$(q "SELECT pause_class FROM lanes WHERE lane='single'")"
check_ge "C: parked for hours" 3600000 \
	"$(q "SELECT paused_until_ms - CAST(strftime('%s','now') AS INTEGER) * 1000 FROM lanes WHERE lane='single'")"
check_eq "C: a budget 429 counts no attempt" 0 "$(q "SELECT coalesce(max(attempts), 0) FROM v_updates")"
check_eq "C: ledger charges only the 5 calls Target took" 5 "$(ledger_used)"
check_ledger_clean C
check_store "C: parked lane -> bulk, all delivered" --preload "$T/pre.csv"
check_all_delivered C

# while the lane is parked for a day, a new urgent update is planned bulk
put_ok C2 pcId pc20 a=C20 --urgent
pb plan >"$T/plan.out" 2>&1
check_eq "C2: plan routes an urgent update to bulk while the single lane is parked" 1 \
	"$(grep -Ec '^bulk +v1 +pcId +' "$T/plan.out")"
flush_wait C2 0 10
check_store C2 --preload "$T/pre.csv"
finish
