#!/bin/bash
# The urgent reserve and the non-urgent routing thresholds:
#  A. single_max_pending = 10 and 30 non-urgent profiles pending: all bulk.
#  B. budget 20, urgent_reserve 0.5 (single_min_budget_share = 0, so only
#     the reserve limits): 30 non-urgent updates -> exactly 10 single calls,
#     the other 20 bulk; then urgent updates still go single (5 of them);
#     more non-urgent ones get no single call; then 8 urgent with 5 units
#     left -> 5 single, 3 bulk.  The budget (20) is never passed.
#  C. single_min_budget_share = 0.5 with budget 20 and 12 units used by
#     urgent calls: non-urgent updates go bulk although the reserve (0.1)
#     would allow more.
. "$(dirname "$0")/single_lib.sh" "$@"

preload_pc "$T/pre.csv" 60 pc a

new_scenario A
sim_start --preload "$T/pre.csv"
write_conf "single_max_pending = 10"
for i in $(seq 1 30); do put_ok A pcId "pc$i" "a=A$i"; done
flush_wait A 0 30
check_eq "A: more pending than single_max_pending: no single call" 0 "$(single_calls total)"
check_store A --preload "$T/pre.csv"
check_all_delivered A

new_scenario B
sim_start --preload "$T/pre.csv" --single-budget 20
write_conf "single_budget = 20" "urgent_reserve = 0.5" "single_min_budget_share = 0"
for i in $(seq 1 30); do put_ok B pcId "pc$i" "a=B$i"; done
flush_wait B 0 30
check_eq "B: non-urgent stop at budget - reserve = 10 single calls" 10 "$(single_calls ok)"
check_eq "B: ledger 10, none urgent" "10 0" "$(ledger_used) $(ledger_urgent)"
check_eq "B: status: urgent_reserve 10, remaining 10" "10 10" "$(quota_json urgent_reserve) $(quota_json remaining)"
check_store B --preload "$T/pre.csv"
for i in $(seq 31 35); do put_ok B2 pcId "pc$i" "a=B$i" --urgent; done
flush_wait B2 0 30
check_eq "B2: urgent still go single (reserve)" 15 "$(single_calls ok)"
for i in $(seq 36 40); do put_ok B3 pcId "pc$i" "a=B$i"; done
flush_wait B3 0 30
check_eq "B3: non-urgent: no single call inside the reserve" 15 "$(single_calls total)"
for i in $(seq 41 48); do put_ok B4 pcId "pc$i" "a=B$i" --urgent; done
flush_wait B4 0 30
check_eq "B4: urgent use the last 5 units, then bulk" 20 "$(single_calls ok)"
check_eq "B4: simulator never said 429" 0 "$(single_calls budget_exhausted)"
check_eq "B4: ledger 20 used, 10 urgent" "20 10" "$(ledger_used) $(ledger_urgent)"
check_ledger_clean B4
check_store B4 --preload "$T/pre.csv"
check_all_delivered B4

new_scenario C
sim_start --preload "$T/pre.csv"
write_conf "single_budget = 20"
for i in $(seq 1 12); do put_ok C pcId "pc$i" "a=C$i" --urgent; done
flush_wait C 0 30
check_eq "C: 12 urgent single calls" 12 "$(single_calls ok)"
for i in $(seq 13 16); do put_ok C2 pcId "pc$i" "a=C$i"; done
flush_wait C2 0 30
check_eq "C2: under single_min_budget_share (8 of 20 left): non-urgent go bulk" 12 "$(single_calls total)"
check_store C2 --preload "$T/pre.csv"
check_all_delivered C2
finish
