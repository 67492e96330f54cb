#!/usr/bin/env bash
# pobox dead / requeue: listing and selecting dead letters exactly, dry runs
# that change nothing, and requeueing that respects coalescing.
#
# Dead letters of three kinds in one outbox:
#   A  HTTP 500 on every call, max_attempts = 2      (reason has "HTTP 500")
#      (their dead_at_ms is then moved 3 days back, for --since)
#   B  HTTP 502 on every call                        (reason has "HTTP 502")
#   C  one profile over Target's 64 KB cap, at cut   (reason "per-profile cap")
. "$(cd "$(dirname "$0")" && pwd)/ops_lib.sh" "$@"

sim_start --error-rate 1 --error-codes 500
write_conf "max_attempts = 2" "backoff_base = 10ms" "backoff_cap = 50ms"

# ---- A: HTTP 500 -----------------------------------------------------------
put_logged thirdPartyId p1 a=old1 b=b1
put_logged thirdPartyId p2 a=x2
put_logged thirdPartyId p6 a=v1
flush_wait "A1 (HTTP 500)" 65 30
put_logged thirdPartyId p6 a=v2          # a second dead value of p6.a
flush_wait "A2 (HTTP 500)" 65 30
A=$(list "SELECT seq FROM v_updates WHERE state = 'dead' ORDER BY seq")
check_eq "A: all 5 updates are dead" 5 "$(state_count dead)"
# pretend A died 3 days ago
q "UPDATE fates SET dead_at_ms = dead_at_ms - 3 * 86400000 WHERE state = 'dead'" >/dev/null

# ---- B: HTTP 502 -----------------------------------------------------------
sim_faults 'error_codes=502'
put_logged thirdPartyId p4 a=x4
put_logged thirdPartyId p5 a=x5
flush_wait "B (HTTP 502)" 65 30
Bs=$(list "SELECT seq FROM v_updates WHERE state = 'dead' AND seq NOT IN ($A) ORDER BY seq")
check_eq "B: 2 more dead" 2 "$(echo "$Bs" | tr , '\n' | grep -c .)"

# ---- C: over the per-profile cap (dead at cut, nothing sent) ----------------
big=()
for i in $(seq 1 300); do big+=("k$i=$(printf 'v%.0s' $(seq 1 256))"); done
pb put thirdPartyId:big "${big[@]}" >/dev/null 2>"$T/put.err" || fail "put big profile" "$(cat "$T/put.err")"
pbr 0 "C: flush (cut only)" flush
C=$(list "SELECT seq FROM v_updates WHERE state = 'dead' AND seq NOT IN ($A,$Bs) ORDER BY seq")
check_eq "C: the 300 updates of the big profile are dead" 300 "$(echo "$C" | tr , '\n' | grep -c .)"
sim_faults 'error_rate=0'

ALLDEAD=$(list "SELECT seq FROM v_updates WHERE state = 'dead' ORDER BY seq")
# seqs of a `pobox dead` text listing / JSON listing
text_seqs() { awk 'NR > 1 && $1 ~ /^[0-9]+$/ && !/ dead updates/ { print $1 }' "$T/r.out" | paste -sd, -; }
json_seqs() { python3 -c 'import json,sys; print(",".join(str(r["seq"]) for r in json.load(open(sys.argv[1]))))' "$T/r.out"; }

H0=$(dump_hash)
# ---- pobox dead ---------------------------------------------------------------
pbr 0 "dead" dead
check_eq "dead lists exactly the dead updates" "$ALLDEAD" "$(text_seqs)"
out_has "dead: summary count" "307 dead updates"
pbr 0 "dead --json" dead --json
check_eq "dead --json: the same seqs" "$ALLDEAD" "$(json_seqs)"
# every row: reason, last HTTP status, attempts, age, equal to the outbox's
python3 - "$T/r.out" "$DB" "$A" >"$T/fields.txt" <<'EOF'
import json, sqlite3, sys, time
rows = json.load(open(sys.argv[1]))
db = sqlite3.connect(sys.argv[2])
A = {int(s) for s in sys.argv[3].split(",")}
now = time.time() * 1000
bad = []
for r in rows:
    for k in ("seq", "reason", "last_http_status", "attempts", "age_s", "profile_id", "attr", "value"):
        if k not in r:
            bad.append(f"{r.get('seq')}: no {k}")
    le, st, at, dead_at = db.execute("SELECT last_error, last_http_status, attempts, dead_at_ms FROM fates WHERE seq = ?", (r["seq"],)).fetchone()
    if r["reason"] != le or not le:
        bad.append(f"{r['seq']}: reason {r['reason']!r} vs {le!r}")
    if r["last_http_status"] != st:
        bad.append(f"{r['seq']}: http {r['last_http_status']} vs {st}")
    if r["attempts"] != at:
        bad.append(f"{r['seq']}: attempts {r['attempts']} vs {at}")
    want_age = (now - dead_at) / 1000
    if abs(r["age_s"] - want_age) > 30:
        bad.append(f"{r['seq']}: age_s {r['age_s']} vs {want_age:.0f}")
    if r["seq"] in A and not (259000 <= r["age_s"] <= 260000):
        bad.append(f"{r['seq']}: A died 3 days ago, age_s {r['age_s']}")
    if r["seq"] in A and ("HTTP 500" not in r["reason"] or r["last_http_status"] != 500):
        bad.append(f"{r['seq']}: A: reason/status {r['reason']!r} {r['last_http_status']}")
print("\n".join(bad) if bad else "ok")
EOF
check_eq "dead --json: each row has reason, HTTP status, attempts, age as stored" ok "$(cat "$T/fields.txt")"
# the text listing shows the HTTP status and the reason too
pbr 0 "dead --id (text)" dead --id "${A%%,*}"
row=$(awk 'NR == 2' "$T/r.out")
check_eq "dead --id: one row" "${A%%,*}" "$(text_seqs)"
case $row in *" 500 "*"gave up after 2 attempts"*"HTTP 500"*) pass "dead: text row shows HTTP status and reason" ;;
*) fail "dead: text row shows HTTP status and reason" "$row" ;; esac

pbr 0 "dead --reason 'HTTP 500'" dead --reason "HTTP 500"
check_eq "dead --reason 'HTTP 500': exactly A" "$A" "$(text_seqs)"
pbr 0 "dead --reason 'HTTP 502' --json" dead --reason "HTTP 502" --json
check_eq "dead --reason 'HTTP 502': exactly B" "$Bs" "$(json_seqs)"
pbr 0 "dead --reason 'per-profile cap'" dead --reason "per-profile cap"
check_eq "dead --reason 'per-profile cap': exactly C" "$C" "$(text_seqs)"
pbr 0 "dead --since 24h" dead --since 24h --json
check_eq "dead --since 24h: exactly B and C" "$Bs,$C" "$(json_seqs)"
pbr 0 "dead --since 4d" dead --since 4d --json
check_eq "dead --since 4d: all" "$ALLDEAD" "$(json_seqs)"
pbr 0 "dead --since 24h --reason HTTP" dead --since 24h --reason "HTTP" --json
check_eq "dead --since 24h --reason HTTP: exactly B (criteria combine)" "$Bs" "$(json_seqs)"
pbr 0 "dead --reason nomatch" dead --reason "no such reason" --json
check_eq "dead --reason nomatch --json: empty array" "[]" "$(tr -d ' \n' <"$T/r.out")"
pbr 64 "dead --since 1x (bad duration)" dead --since 1x
check_eq "listing changes nothing" "$H0" "$(dump_hash)"

# ---- requeue: refusals and dry runs ---------------------------------------------
S1=$(seq_of thirdPartyId p2 a x2)
S2=$(seq_of thirdPartyId p1 b b1)
"$POBOX" -c "$CONF" requeue >"$T/r.out" 2>"$T/r.err" </dev/null; RC=$?
if [ "$RC" -ne 0 ] && grep -q "selection" "$T/r.err"; then pass "requeue without a selection is refused (exit $RC)"; else
	fail "requeue without a selection is refused" "exit $RC: $(cat "$T/r.out" "$T/r.err")"; fi
pbr 64 "requeue --id abc" requeue --id abc
pbr 64 "requeue --bogus" requeue --bogus
check_eq "refused requeues change nothing" "$H0" "$(dump_hash)"
pbr 0 "requeue --id S1,S2 --dry-run" requeue --id "$S1,$S2" --dry-run
out_has "requeue --dry-run reports the count" "2 dead updates selected"
out_has "requeue --dry-run says nothing changed" "nothing was changed"
pbr 0 "requeue --all --dry-run" requeue --all --dry-run
out_has "requeue --all --dry-run counts all" "307 dead updates selected"
pbr 0 "requeue --reason 'HTTP 502' --since 24h --dry-run" requeue --reason "HTTP 502" --since 24h --dry-run
out_has "requeue criteria combine (dry run)" "2 dead updates selected"
check_eq "requeue dry runs change nothing" "$H0" "$(dump_hash)"

# ---- requeue --id: exactly those --------------------------------------------------
PEND0=$(state_count pending)
pbr 0 "requeue --id S1,S2" requeue --id "$S1,$S2"
out_has "requeue --id: count" "2 dead updates selected: 2 requeued as pending"
check_eq "requeue --id: exactly 2 more pending" $((PEND0 + 2)) "$(state_count pending)"
check_eq "requeue --id: p2.a=x2 pending again" pending \
	"$(q "SELECT state FROM v_updates WHERE profile_id = 'p2' AND attr = 'a' AND value = 'x2' ORDER BY seq DESC LIMIT 1")"
check_eq "requeue --id: p1.b=b1 pending again" pending \
	"$(q "SELECT state FROM v_updates WHERE profile_id = 'p1' AND attr = 'b' AND value = 'b1' ORDER BY seq DESC LIMIT 1")"
check_eq "requeue --id: the selected rows are no longer dead" "" "$(list "SELECT seq FROM v_updates WHERE seq IN ($S1,$S2) AND state = 'dead'")"
check_eq "requeue --id: every other dead update is still dead" \
	"$(echo "$ALLDEAD" | tr , '\n' | grep -vx -e "$S1" -e "$S2" | paste -sd, -)" \
	"$(list "SELECT seq FROM v_updates WHERE state = 'dead' ORDER BY seq")"

# ---- coalescing: a newer pending value wins -------------------------------------------
OLD1=$(seq_of thirdPartyId p1 a old1)
put_logged thirdPartyId p1 a=new1
NEW1=$(seq_of thirdPartyId p1 a new1)
# ---- coalescing: a newer delivered value wins -----------------------------------------
X4=$(seq_of thirdPartyId p4 a x4)
put_logged thirdPartyId p4 a=x4new
X4NEW=$(seq_of thirdPartyId p4 a x4new)
# deliver only p4's new value now: p1.a=new1 and the requeued ones go too
flush_wait "deliver newer values" 0 30
check_eq "p4.a=x4new delivered" delivered "$(vstate "$X4NEW")"
check_eq "p1.a=new1 delivered" delivered "$(vstate "$NEW1")"
# another newer pending value for p5? no: p5 has no newer value
pbr 0 "requeue --id OLD1 (newer delivered value exists)" requeue --id "$OLD1"
out_has "requeue: the replaced value is counted as superseded" "0 requeued as pending, 1 superseded"
check_eq "requeue: p1.a=old1 superseded, not pending" superseded "$(vstate "$OLD1")"
check_eq "requeue: p1.a=old1 superseded by new1" "$NEW1" "$(q "SELECT superseded_by FROM v_updates WHERE seq = $OLD1")"
check_eq "requeue: no pending copy of old1" 0 "$(q "SELECT count(*) FROM v_updates WHERE value = 'old1' AND state = 'pending'")"
# a newer *pending* value: p6.a has two dead values (v1 older, v2 newer);
# put v3 pending, then requeue both: neither is sent
put_logged thirdPartyId p6 a=v3
V3=$(seq_of thirdPartyId p6 a v3)
pbr 0 "requeue --reason 'HTTP 500' (p6 values replaced by a pending one)" requeue --reason "HTTP 500"
check_eq "requeue: p6.a v1 and v2 superseded by the pending v3" "superseded $V3,superseded $V3" \
	"$(q "SELECT state || ' ' || superseded_by FROM v_updates WHERE profile_id = 'p6' AND value IN ('v1','v2') ORDER BY seq" | paste -sd, -)"
check_eq "requeue: p6.a v3 still the only pending value" "v3" "$(q "SELECT group_concat(value) FROM v_updates WHERE profile_id = 'p6' AND state = 'pending'")"
check_eq "requeue --reason 'HTTP 500': nothing of A left dead" 0 "$(q "SELECT count(*) FROM v_updates WHERE state = 'dead' AND seq IN ($A)")"
check_eq "requeue --reason 'HTTP 500': B and C still dead" "$Bs,$C" "$(list "SELECT seq FROM v_updates WHERE state = 'dead' ORDER BY seq")"

pbr 0 "requeue --id X4 (newer value delivered)" requeue --id "$X4"
check_eq "requeue: p4.a=x4 superseded by the delivered x4new" "superseded $X4NEW" "$(q "SELECT state || ' ' || superseded_by FROM v_updates WHERE seq = $X4")"

# ---- --all: the rest, including the over-cap profile (dead again at cut) ------------
X5=$(seq_of thirdPartyId p5 a x5)
pbr 0 "requeue --all" requeue --all
out_has "requeue --all: 301 selected" "301 dead updates selected: 301 requeued as pending"
check_eq "requeue --all: p5.a=x5 pending (a new row)" pending \
	"$(q "SELECT state FROM v_updates WHERE profile_id = 'p5' AND value = 'x5' ORDER BY seq DESC LIMIT 1")"
check_eq "requeue --all: nothing dead" 0 "$(state_count dead)"
check_eq "requeue --all: p5's old row is not dead" superseded "$(vstate "$X5")"

SENT_BEFORE=$(curl -s "$B/_sim/counters" | python3 -c 'import json,sys; c=json.load(sys.stdin); print(c["rows_received"])')
flush_wait "deliver requeued" 65 30   # the big profile dies again at the cut
check_eq "after flush: p1.a = new1 (the newer value)" new1 "$(sim_get thirdPartyId p1 a)"
check_eq "after flush: p1.b = b1 (requeued)" b1 "$(sim_get thirdPartyId p1 b)"
check_eq "after flush: p2.a = x2 (requeued)" x2 "$(sim_get thirdPartyId p2 a)"
check_eq "after flush: p4.a = x4new (not the requeued x4)" x4new "$(sim_get thirdPartyId p4 a)"
check_eq "after flush: p5.a = x5 (requeued, no newer value)" x5 "$(sim_get thirdPartyId p5 a)"
check_eq "after flush: p6.a = v3" v3 "$(sim_get thirdPartyId p6 a)"
check_eq "after flush: the big profile never reached Target" 0 "$(sim_has_profile thirdPartyId big)"
check_eq "after flush: the big profile is dead again (per-profile cap)" 300 \
	"$(q "SELECT count(*) FROM v_dead WHERE profile_id = 'big' AND reason LIKE '%per-profile cap%'")"
check_eq "after flush: nothing pending or batched" 0 "$(q "SELECT count(*) FROM v_updates WHERE state IN ('pending','batched')")"
check_eq "after flush: x4 and old1 were never sent again (no pending copy ever)" 0 \
	"$(q "SELECT count(*) FROM v_updates WHERE value IN ('x4','old1') AND state NOT IN ('superseded', 'dead')")"
check_store "store equals the newest enqueued values" --exclude thirdPartyId:big
finish
