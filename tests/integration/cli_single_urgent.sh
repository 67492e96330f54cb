#!/bin/bash
# Urgent updates are delivered by single profile-update calls: pcIds that the
# simulator already holds (--preload), and thirdPartyIds once pobox has
# delivered them by bulk v2 (single calls cannot create profiles, so a
# never-delivered thirdPartyId goes bulk first).  Asserts the simulator's
# store (newest values, awkward characters survive URL-encoding), its
# single_update counters, the lane of pobox's batches and the quota ledger.
. "$(dirname "$0")/single_lib.sh" "$@"

preload_pc "$T/pre.csv" 20 pc a
sim_start --preload "$T/pre.csv"
write_conf

# -- phase 1: thirdPartyIds pobox has never delivered go bulk (v2) ----------
for i in 1 2 3 4 5; do put_ok "tp first" thirdPartyId "tp-$i" b=first --urgent; done
pb plan >"$T/plan1.out" 2>&1
check_eq "plan: never-delivered thirdPartyIds are planned bulk v2" 1 \
	"$(grep -Ec '^bulk +v2 +thirdPartyId +5 ' "$T/plan1.out")"
flush_wait "tp first" 0 30
check_eq "tp first: no single call for never-delivered thirdPartyIds" 0 "$(single_calls total)"
check_eq "tp first: one bulk v2 batch" 1 "$(q "SELECT count(*) FROM batches WHERE lane='bulk' AND api='v2'")"
check_eq "tp first: ledger untouched" 0 "$(ledger_used)"
v2_before=$(sim_counter calls.batch_update_v2.total)
v1_before=$(sim_counter calls.batch_update_v1.total)

# -- phase 2: urgent updates of existing profiles go single ------------------
vals=("a,b,c" "x&y=z" "1+1=2" "100%" "ünïcødé ✓ 日本語 🎉" "say \"hi\"" "#hash?q=1&r=2"
	"back\\slash" "%41%zz%" "space in value" "=leading" "semi;colon" "<xml>&amp;</xml>"
	"plain" "+plus" "%" "&" "a%2Cb" "tab	here"  "end")
for i in $(seq 1 20); do put_ok "pc urgent" pcId "pc$i" "a=${vals[$((i - 1))]}" "c=v$i" --urgent; done
for i in 1 2 3 4 5; do put_ok "tp urgent" thirdPartyId "tp-$i" "b=second $i" --urgent; done
pb plan >"$T/plan2.out" 2>&1
check_eq "plan: 25 profiles by single calls, 25 urgent" 1 \
	"$(grep -c '25 by single calls (25 urgent)' "$T/plan2.out")"
check_eq "plan changed nothing" 0 "$(q "SELECT count(*) FROM batches WHERE state='ready'")"
flush_wait "urgent" 0 30
check_eq "urgent: 25 single-update calls answered ok" 25 "$(single_calls ok)"
check_eq "urgent: no other single-update outcome" 25 "$(single_calls total)"
check_eq "urgent: no bulk call for them" "$((v1_before + v2_before))" "$(bulk_submits)"
check_ge "urgent: batches in lane single" 1 "$(lane_batches single)"
check_eq "urgent: every single batch is done" 0 \
	"$(q "SELECT count(*) FROM batches WHERE lane='single' AND state <> 'done'")"
check_eq "urgent: ledger used = 25" 25 "$(ledger_used)"
check_eq "urgent: ledger urgent = 25" 25 "$(ledger_urgent)"
check_ledger_clean "urgent"
check_eq "status --json quota.used_24h" 25 "$(quota_json used_24h)"
check_eq "status --json quota.urgent_used_24h" 25 "$(quota_json urgent_used_24h)"
check_eq "status --json quota.remaining" 999975 "$(quota_json remaining)"
check_store "urgent" --preload "$T/pre.csv"
check_all_delivered "urgent"

# -- phase 3: a few non-urgent updates, plenty of budget: single too ----------
for i in 1 2 3; do put_ok "non-urgent" pcId "pc$i" "d=n$i"; done
flush_wait "non-urgent" 0 30
check_eq "non-urgent few: by single calls" 28 "$(single_calls ok)"
check_eq "non-urgent few: ledger used 28, urgent still 25" "28 25" "$(ledger_used) $(ledger_urgent)"
check_store "non-urgent" --preload "$T/pre.csv"

# -- phase 4: single_lane = no sends everything bulk ---------------------------
write_conf "single_lane = no"
put_ok "lane off" pcId pc4 d=off --urgent
flush_wait "lane off" 0 30
check_eq "single_lane=no: no new single call" 28 "$(single_calls total)"
check_eq "single_lane=no: ledger unchanged" 28 "$(ledger_used)"
check_store "lane off" --preload "$T/pre.csv"
finish
