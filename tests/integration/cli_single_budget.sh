#!/bin/bash
# Budget exhaustion under a small budget.
#
#  A. pobox's budget = the simulator's = 5: of 8 urgent updates 5 go by
#     single calls and 3 are routed to bulk at the cut (plan says so first);
#     the simulator never answers 429.  Then the window frees: pobox's ledger
#     counts real minutes, so the test SIMULATES 24 HOURS PASSING by moving
#     every quota_minutes row back 1440 minutes with sqlite3, and advances
#     the simulator's clock by a day (POST /_sim/clock?advance_s=86400).
#     New urgent updates go single again, 5 more at most.
#  B. The reservation is checked at send time: with budget 5 and two cuts
#     (the first not yet sent when the second is made) the total never
#     passes 5, the rest go bulk (budget_low) — nothing is lost.
#  (C, the simulator's budget spent while pobox's is not, is in
#  cli_single_budget_park.sh.)
. "$(dirname "$0")/single_lib.sh" "$@"

preload_pc "$T/pre.csv" 40 pc a

# ---------------------------------------------------------------- A
new_scenario A
sim_start --preload "$T/pre.csv" --single-budget 5
write_conf "single_budget = 5" "urgent_reserve = 0"
for i in $(seq 1 8); do put_ok A pcId "pc$i" "a=A$i" --urgent; done
pb plan >"$T/A/plan.out" 2>&1
check_eq "A plan: 5 by single calls" 1 "$(grep -c '5 by single calls (5 urgent)' "$T/A/plan.out")"
check_eq "A plan: the other 3 bulk" 1 "$(grep -Ec '^bulk +v1 +pcId +3 ' "$T/A/plan.out")"
flush_wait A 0 30
check_eq "A: 5 single calls ok" 5 "$(single_calls ok)"
check_eq "A: no 429 from the simulator" 0 "$(single_calls budget_exhausted)"
check_eq "A: 1 bulk call for the rest" 1 "$(bulk_submits)"
check_eq "A: ledger used 5" 5 "$(ledger_used)"
check_ledger_clean A
check_eq "A: status remaining 0" 0 "$(quota_json remaining)"
check_store A --preload "$T/pre.csv"
check_all_delivered A

# budget spent: the next urgent updates go bulk
for i in 9 10; do put_ok A2 pcId "pc$i" "a=A$i" --urgent; done
flush_wait A2 0 30
check_eq "A2: spent budget: no new single call" 5 "$(single_calls total)"
check_eq "A2: bulk call" 2 "$(bulk_submits)"
check_eq "A2: ledger still 5" 5 "$(ledger_used)"
check_store A2 --preload "$T/pre.csv"

# 24 hours pass (simulated on both sides; see the header)
curl -s -X POST "$B/_sim/clock?advance_s=86400" >/dev/null
check_eq "A3: simulator's window is empty after a day" 0 "$(sim_counter single_calls_last_24h)"
q "UPDATE quota_minutes SET minute = minute - 1440" >/dev/null
check_eq "A3: pobox sees the window free" 5 "$(quota_json remaining)"
for i in $(seq 11 18); do put_ok A3 pcId "pc$i" "a=A$i" --urgent; done
flush_wait A3 0 30
check_eq "A3: singles resume: 5 more calls" 10 "$(single_calls ok)"
check_eq "A3: simulator never said 429" 0 "$(single_calls budget_exhausted)"
check_eq "A3: the other 3 bulk" 3 "$(bulk_submits)"
check_eq "A3: ledger: 10 units in all, 5 in the last 24 h" "10 5" "$(ledger_used) $(quota_json used_24h)"
check_ledger_clean A3
check_store A3 --preload "$T/pre.csv"
check_all_delivered A3

# ---------------------------------------------------------------- B
new_scenario B
sim_start --preload "$T/pre.csv" --single-budget 5
write_conf "single_budget = 5" "urgent_reserve = 0"
for i in 1 2 3 4; do put_ok B pcId "pc$i" "a=B$i" --urgent; done
pb flush >/dev/null 2>&1   # cut 1: 4 single (not sent)
for i in 5 6 7 8; do put_ok B pcId "pc$i" "a=B$i" --urgent; done
pb flush >/dev/null 2>&1   # cut 2: the ledger has no units used yet
flush_wait B 0 30
check_le "B: single calls never above the budget" 5 "$(single_calls total)"
check_eq "B: no 429 from the simulator" 0 "$(single_calls budget_exhausted)"
check_le "B: ledger used never above the budget" 5 "$(ledger_used)"
check_eq "B: ledger used = calls made" "$(single_calls total)" "$(ledger_used)"
check_ledger_clean B
check_store B --preload "$T/pre.csv"
check_all_delivered B

finish
