#!/usr/bin/env bash
# pobox quota [--json]: the numbers of the 24-hour chart.  K urgent single
# calls (preloaded pcIds) with single_budget 100 and fleet_share 0.25:
# budget 25, used K, remaining 25 - K, the last hour's bucket K; synthetic
# ledger rows for earlier minutes land in the right hourly bucket, rows 24 h
# old or older are not counted; the text chart, status --json and
# status --prometheus show the same numbers.
OPS_SINGLE=1
. "$(cd "$(dirname "$0")" && pwd)/ops_lib.sh" "$@"

K=5
preload_pc "$T/preload.csv" 10 pc a
sim_start --preload "$T/preload.csv"
write_conf "single_budget = 100" "fleet_share = 0.25" "urgent_reserve = 0.2"

for i in $(seq 1 $K); do put_ok "urgent put $i" pcId "pc$i" a="new$i" --urgent; done
pbr 0 "empty ledger (puts only): quota --json" quota --json
jq_() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$T/r.out" "$1"; }
check_eq "empty: budget = 100 x 0.25" 25 "$(jq_ 'd["budget"]')"
check_eq "empty: used 0, remaining 25" "0 25" "$(jq_ "'%s %s' % (d['used'], d['remaining'])")"
check_eq "empty: 24 buckets, all 0" "24 0" "$(jq_ "'%s %s' % (len(d['hours']), sum(h['used'] for h in d['hours']))")"
check_eq "empty: urgent reserve 0.2 x 25" 5 "$(jq_ 'd["urgent_reserve"]')"

flush_wait "K urgent single calls" 0 30
check_eq "the simulator got K single calls" "$K" "$(single_calls total)"
check_eq "... and no bulk call" 0 "$(bulk_submits)"
check_eq "the ledger holds K" "$K" "$(ledger_used)"
check_store "single calls delivered" --preload "$T/preload.csv"

pbr 0 "quota --json after K calls" quota --json
check_eq "used == K" "$K" "$(jq_ 'd["used"]')"
check_eq "remaining == 25 - K" $((25 - K)) "$(jq_ 'd["remaining"]')"
check_eq "urgent used == K" "$K" "$(jq_ 'd["urgent_used"]')"
check_eq "the last hour's bucket holds K (K urgent)" "$K $K" "$(jq_ "'%s %s' % (d['hours'][23]['used'], d['hours'][23]['urgent'])")"
check_eq "the other buckets are empty" 0 "$(jq_ 'sum(h["used"] for h in d["hours"][:23])')"
# labels: the newest bucket ends now (UTC HH:MM), each earlier one an hour before
LBL=$(jq_ '",".join(h["ending"] for h in d["hours"])')
python3 - "$LBL" >"$T/lbl" <<'EOF'
import sys, time
got = sys.argv[1].split(",")
ok = False
for back in (0, 1):
    now_min = int(time.time() // 60) - back
    want = [time.strftime("%H:%M", time.gmtime((now_min - (23 - i) * 60) * 60)) for i in range(24)]
    ok |= got == want
print("ok" if ok else f"got {got}")
EOF
check_eq "bucket labels end at now, an hour apart" ok "$(cat "$T/lbl")"

pbr 0 "quota (text) after K calls" quota
LAST=$(grep -E '^  [0-9]{2}:[0-9]{2} ' "$T/r.out" | tail -1)
case $LAST in *" $K |"*"($K urgent)"*) pass "text chart: the last bucket shows K ($LAST)" ;;
*) fail "text chart: the last bucket shows K" "$LAST" ;; esac
check_eq "text chart: 24 bars" 24 "$(grep -cE '^  [0-9]{2}:[0-9]{2} ' "$T/r.out")"
out_has "text: budget with fleet_share" "budget      25 per rolling 24 hours (fleet_share 0.25 of 100)"
out_has "text: used" "used        $K (0 in flight)"
out_has "text: remaining" "remaining   $((25 - K)), of which 5 kept for urgent updates"

# ---- synthetic earlier minutes -------------------------------------------------------------
NOW_MIN=$(( $(date +%s) / 60 ))
# (each offset stays in the same bucket if the minute turns meanwhile)
q "INSERT INTO quota_minutes (minute, used, urgent) VALUES
     ($((NOW_MIN - 30)), 2, 0),      -- last hour: bucket 23
     ($((NOW_MIN - 90)), 7, 1),      -- 1.5 h ago: bucket 22
     ($((NOW_MIN - 125)), 3, 0),     -- ~2 h ago: bucket 21
     ($((NOW_MIN - 1438)), 4, 0),    -- almost 24 h ago: bucket 0
     ($((NOW_MIN - 1440)), 100, 0),  -- 24 h ago: out of the window
     ($((NOW_MIN - 3000)), 50, 0)    -- two days ago: out
   ON CONFLICT (minute) DO UPDATE SET used = used + excluded.used, urgent = urgent + excluded.urgent" >/dev/null
USED=$((K + 2 + 7 + 3 + 4))
pbr 0 "quota --json with earlier minutes" quota --json
check_eq "used counts only the last 24 h" "$USED" "$(jq_ 'd["used"]')"
check_eq "remaining = 25 - used" $((25 - USED)) "$(jq_ 'd["remaining"]')"
check_eq "buckets 0, 21, 22, 23" "4,3,7,$((K + 2))" "$(jq_ '",".join(str(d["hours"][i]["used"]) for i in (0, 21, 22, 23))')"
check_eq "urgent in bucket 22" 1 "$(jq_ 'd["hours"][22]["urgent"]')"
check_eq "the buckets add up to used" "$USED" "$(jq_ 'sum(h["used"] for h in d["hours"])')"
check_eq "every other bucket is empty" 0 "$(jq_ 'sum(d["hours"][i]["used"] for i in range(1, 21))')"
check_eq "v_quota agrees on the 24-hour total" "$USED" "$(q "SELECT sum(used) FROM v_quota")"

pbr 0 "quota (text) with earlier minutes" quota
grep -E '^  [0-9]{2}:[0-9]{2} ' "$T/r.out" | awk '{ gsub(",", "", $2); print $2 }' | paste -sd, - >"$T/bars"
check_eq "text chart: the same 24 numbers" "4,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,3,7,$((K + 2))" "$(cat "$T/bars")"
out_has "text: used" "used        $USED (0 in flight)"
out_has "text: remaining" "remaining   $((25 - USED)),"

pbr 0 "status --json" status --json
check_eq "status --json: the same quota" "25 $USED $((25 - USED))" \
	"$(jq_ "'%s %s %s' % (d['quota']['budget'], d['quota']['used_24h'], d['quota']['remaining'])")"
pbr 0 "status --prometheus" status --prometheus
check_eq "prometheus: budget, used, remaining" "25 $USED $((25 - USED))" \
	"$(awk '$1 == "pobox_quota_budget_calls" { b = $2 } $1 == "pobox_quota_used_calls" { u = $2 } $1 == "pobox_quota_remaining_calls" { r = $2 } END { print b, u, r }' "$T/r.out")"
check_eq "prometheus: single calls with status 200 = K" "$K" \
	"$(awk '$1 == "pobox_calls_total{lane=\"single\",status=\"200\"}" { print $2 }' "$T/r.out")"
finish
