#!/bin/bash
# 'Profile not found' on a single call sends the profile by bulk v2 (which
# creates it), so it ends up in the simulator's store:
#  A. pcIds the simulator does not hold (pcIds are assumed to exist, and the
#     pcId bulk API is v1, which would not create them: the fallback must be
#     v2), and thirdPartyIds with assume_profiles_exist = yes.  Each
#     not-found call costs a unit (Target counts it); once delivered by bulk
#     the profile goes single again.
#  B. With --notfound-silent (Target answers success and drops the update)
#     and the default assume_profiles_exist = no, a thirdPartyId pobox never
#     delivered is sent by bulk v2, so nothing is silently lost.
. "$(dirname "$0")/single_lib.sh" "$@"

preload_pc "$T/pre.csv" 3 known a

new_scenario A
sim_start --preload "$T/pre.csv"
write_conf "assume_profiles_exist = yes"
for i in 1 2 3; do
	put_ok A pcId "ghost$i" "a=g$i" "b=x&y $i" --urgent
	put_ok A thirdPartyId "new-$i" "a=n$i" --urgent
	put_ok A pcId "known$i" "a=k$i" --urgent
done
pb plan >"$T/A/plan.out" 2>&1
check_eq "A plan: all 9 by single calls (assume_profiles_exist)" 1 "$(grep -c '9 by single calls (9 urgent)' "$T/A/plan.out")"
flush_wait A 0 30
check_eq "A: 6 single calls answered Profile not found" 6 "$(single_calls not_found)"
check_eq "A: 3 single calls ok (the known pcIds)" 3 "$(single_calls ok)"
check_ge "A: the not-found profiles went to bulk v2" 1 "$(sim_counter calls.batch_update_v2.ok)"
check_eq "A: ... not v1 (v1 cannot create them)" 0 "$(sim_counter calls.batch_update_v1.total)"
check_eq "A: pobox batches: v2 bulk rows = 6" 6 \
	"$(q "SELECT coalesce(sum(profiles), 0) FROM batches WHERE lane='bulk' AND api='v2' AND state='done'")"
check_eq "A: ledger counts every call made, found or not (9)" 9 "$(ledger_used)"
check_eq "A: ledger = simulator's single calls" "$(single_calls total)" "$(ledger_used)"
check_ledger_clean A
check_eq "A: no attempt charged for not found" 0 "$(q "SELECT coalesce(max(attempts), 0) FROM v_updates")"
check_store A --preload "$T/pre.csv"
check_all_delivered A

# delivered once by bulk: the next urgent update goes single and is found
put_ok A2 pcId ghost1 a=again --urgent
put_ok A2 thirdPartyId new-1 a=again --urgent
v2=$(sim_counter calls.batch_update_v2.total)
flush_wait A2 0 30
check_eq "A2: both by single calls, found" 5 "$(single_calls ok)"
check_eq "A2: no new not-found" 6 "$(single_calls not_found)"
check_eq "A2: no new bulk batch" "$v2" "$(sim_counter calls.batch_update_v2.total)"
check_store A2 --preload "$T/pre.csv"

new_scenario B
sim_start --preload "$T/pre.csv" --notfound-silent
write_conf
for i in 1 2 3; do put_ok B thirdPartyId "silent-$i" "a=s$i" --urgent; done
flush_wait B 0 30
check_eq "B: no single call for never-delivered thirdPartyIds" 0 "$(single_calls total)"
check_eq "B: nothing dropped silently" 0 "$(sim_counter single_updates_dropped_silently)"
check_store B --preload "$T/pre.csv"
check_all_delivered B
finish
