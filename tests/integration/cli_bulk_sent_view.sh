#!/usr/bin/env bash
# v_profile_state (the last value Target was sent for each profile
# attribute) against what the simulator holds, over rounds that leave the
# view's three sources mixed: delivered writes not folded yet, values folded
# into `sent` when a profile is cut again, and history purged into `sent`.
# Superseded values (several updates of one attribute in one round) must
# not show.  A lookup by profile_id
# reads that profile's writes through writes_by_profile, never a scan of
# all writes (the view used to cost minutes at a million profiles).
. "$(dirname "$0")/bulk_lib.sh"

# view_vs_sim NAME: every (type, id, attr, value) of v_profile_state equals
# GET /_sim/profiles, in both directions.
view_vs_sim() {
	local out
	sqlite3 -cmd '.timeout 30000' -json "$DB" \
		"SELECT id_type, profile_id, attr, value FROM v_profile_state" >"$T/view.json"
	if out=$(python3 - "$T/view.json" "$B" <<'EOF' 2>&1
import json, sys, urllib.request
text = open(sys.argv[1]).read().strip()
view = {}
for r in (json.loads(text) if text else []):
    key = (r["id_type"], r["profile_id"], r["attr"])
    if key in view:
        sys.exit(f"two rows for {key}")
    view[key] = str(r["value"])
with urllib.request.urlopen(sys.argv[2] + "/_sim/profiles", timeout=30) as f:
    doc = json.load(f)
sim = {(p["idType"], p["id"], a): v for p in doc["profiles"] for a, v in p["attributes"].items()}
bad = [f"{k}: view {view.get(k)!r}, simulator {sim.get(k)!r}"
       for k in sorted(set(view) | set(sim)) if view.get(k) != sim.get(k)]
if bad or not sim:
    sys.exit(f"{len(bad)} differ of {len(sim)}:\n" + "\n".join(bad[:20]))
print(f"{len(sim)} attribute values agree")
EOF
); then pass "$1: v_profile_state equals the simulator ($out)"; else
		fail "$1: v_profile_state equals the simulator" "$out"; fi
}

sim_start --seed 3
write_conf
for round in 1 2 3 4; do
	mkdir -p "$T/r$round"
	python3 "$EXPECT" gen --seed "$round" --out "$T/r$round" --log "$T/r$round.log" \
		--tp 120 --pc 0 --attrs 5 --updates 700 --files 2 --tricky >/dev/null
	cat "$T/r$round.log" >>"$LOG"
	enqueue_imports "$T/r$round"
	flush_wait "round $round" 0 60
	[ "$round" = 3 ] && pb purge --delivered --yes >/dev/null
	view_vs_sim "round $round"
done
check_store "after four rounds"
check_ge "some values are folded into sent" 1 "$(q "SELECT count(*) FROM sent")"
check_ge "some delivered writes are not folded yet" 1 \
	"$(q "SELECT count(*) FROM profiles WHERE done_seq > sent_seq")"

ID=$(q "SELECT profile_id FROM profiles WHERE done_seq > sent_seq AND id IN (SELECT profile FROM sent) LIMIT 1")
plan=$(q "EXPLAIN QUERY PLAN SELECT * FROM v_profile_state WHERE profile_id = '$ID'")
if printf '%s\n' "$plan" | grep -q 'SCAN w\b'; then
	fail "one profile's state does not scan all writes" "$plan"
else
	pass "one profile's state does not scan all writes"
fi
check_eq "one profile's state, from both sources" \
	"$(q "SELECT count(*) FROM v_profile_state WHERE profile_id = '$ID'")" \
	"$(curl -s "$B/_sim/profiles" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(sum(len(p["attributes"]) for p in d["profiles"] if p["id"] == sys.argv[1]))' "$ID")"
finish
