#!/bin/bash
# fleet_share scales the budget: single_budget 20 x fleet_share 0.25 = 5
# single calls at most (status says budget 5); the rest go bulk and are
# delivered.  urgent_reserve applies to the scaled budget.
. "$(dirname "$0")/single_lib.sh" "$@"

preload_pc "$T/pre.csv" 20 pc a
sim_start --preload "$T/pre.csv"
write_conf "single_budget = 20" "fleet_share = 0.25" "urgent_reserve = 0"
for i in $(seq 1 8); do put_ok fleet pcId "pc$i" "a=F$i" --urgent; done
check_eq "status: budget = 20 x 0.25" 5 "$(quota_json budget)"
pb plan >"$T/plan.out" 2>&1
check_eq "plan: 5 by single calls" 1 "$(grep -c '5 by single calls' "$T/plan.out")"
flush_wait fleet 0 30
check_eq "at most 5 single calls" 5 "$(single_calls total)"
check_eq "ledger 5" 5 "$(ledger_used)"
check_eq "status: remaining 0" 0 "$(quota_json remaining)"
for i in $(seq 9 12); do put_ok fleet2 pcId "pc$i" "a=F$i" --urgent; done
flush_wait fleet2 0 30
check_eq "spent share: no more single calls" 5 "$(single_calls total)"
check_ledger_clean fleet2
check_store fleet2 --preload "$T/pre.csv"
check_all_delivered fleet2
finish
