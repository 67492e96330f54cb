#!/usr/bin/env bash
# pobox verify against the simulator's Profile Fetch API: what Target holds
# against what pobox sent, attribute by attribute.
#  - clean: after a clean delivery every attribute matches (thirdPartyId by
#    v2, pcId by v1), exit 0; the run is recorded and status --prometheus
#    shows it;
#  - another writer: values changed at the simulator behind pobox's back
#    (POST /_sim/set) are exactly the attributes reported different, exit 65;
#  - processing delay: a batch Target took and has not applied (flush
#    --wait timed out) is "not yet applied", never "different" (exit 0);
#    past the grace the same values are different / missing (exit 65);
#    once Target applies the batch they match;
#  - the metrics file (metrics_file) carries the last run's figures at
#    once, without pobox run;
#  - the nightly job runs verify after the flush only when told to.
. "$(cd "$(dirname "$0")" && pwd)/ops_lib.sh" "$@"
command -v jq >/dev/null || { fail "jq is needed"; finish; }

# verify_json WANT NAME ARGS...: pobox verify --json ARGS; the JSON in $T/v.json
verify_json() {
	local want=$1 name=$2; shift 2
	pbr "$want" "$name" verify --json --rate 1000 "$@"
	cp "$T/r.out" "$T/v.json"
}
J() { jq -r "$1" "$T/v.json"; }
# findings CLASS: "id_type:profile_id attr why" lines of that class, sorted
findings() { jq -r --arg c "$1" '.findings[] | select(.class == $c) | "\(.id_type):\(.profile_id) \(.attr) \(.why)"' "$T/v.json" | sort | paste -sd' ' -; }
prom() { pb status --prometheus | sed -n "s/^$1 //p"; }

# ---- clean ---------------------------------------------------------------------------------
new_scenario clean
printf 'pcId,tier\npc-1,old\npc-2,old\n' >"$T/clean/pre.csv"
sim_start --preload "$T/clean/pre.csv"
write_conf "bulk_api_pcid = v1"
{
	echo "thirdPartyId,tier,city,note"
	for i in $(seq 1 20); do echo "v-$i,t$i,City $i,\"a, b & c = 100% ✓\""; done
} >"$T/clean/in.csv"
pbr 0 "clean: import" import "$T/clean/in.csv"
pbr 0 "clean: put pcIds" put pcId:pc-1 tier=gold
pbr 0 "clean: put pcId 2" put pcId:pc-2 tier=silver points=12
flush_wait clean 0 60
verify_json 0 "clean: verify --all"
check_eq "clean: 22 profiles compared, 63 attributes" "22 63 22" "$(J '"\(.profiles) \(.attributes) \(.population)"')"
check_eq "clean: all match" "63 0 0 0" "$(J '.classes | "\(.matching.attributes) \(.not_yet_applied.attributes) \(.different.attributes) \(.missing.attributes)"')"
check_eq "clean: share 1, no findings" "1 0" "$(J '"\(.classes.matching.share) \(.findings | length)"')"
check_eq "clean: every fetch was a 200, pcIds by their path" "22 2" \
	"$(curl -s "$B/_sim/fetches" | jq -r '"\([.fetches[] | select(.status == 200)] | length) \([.fetches[] | select(.id_type == "pcId")] | length)"')"
pbr 0 "clean: verify (text)" verify --rate 1000
out_has "clean: the summary" "verify: 22 profiles compared (of 22 selected), 63 attributes"
out_has "clean: matching line" "matching               63  100.0%"
out_has "clean: verdict" "verify: nothing differs past the grace"
pbr 0 "clean: --sample 5" verify --sample 5 --rate 1000 --json
check_eq "clean: --sample 5 fetches 5 of 22" "5 22" "$(jq -r '"\(.profiles) \(.population)"' "$T/r.out")"
pbr 0 "clean: --id" verify --id pcId:pc-2 --json
check_eq "clean: --id: one profile, its two attributes" "1 2 2" "$(jq -r '"\(.profiles) \(.attributes) \(.classes.matching.attributes)"' "$T/r.out")"
pbr 0 "clean: --batch 1" verify --batch 1 --all --rate 1000 --json
check_eq "clean: --batch 1: the batch's 20 (thirdPartyId) profiles" "20" "$(jq -r .profiles "$T/r.out")"
pbr 0 "clean: --since 1h" verify --since 1h --all --rate 1000 --json
check_eq "clean: --since 1h: everything was sent in the last hour" "22" "$(jq -r .profiles "$T/r.out")"
check_eq "clean: recorded runs" 6 "$(q "SELECT count(*) FROM v_verifications")"
check_eq "clean: prometheus: last verification's matching" 63 "$(prom 'pobox_verify_attributes{class="matching"}')"
check_eq "clean: prometheus: not failed" 0 "$(prom pobox_verify_failed)"
check_eq "clean: prometheus: profiles" 22 "$(prom pobox_verify_profiles)"
# the metrics file carries them at once, without pobox run
write_conf "bulk_api_pcid = v1" "metrics_file = $T/clean/pobox.prom"
pbr 0 "clean: verify with metrics_file" verify --all --rate 1000
mfile() { sed -n "s/^$1 //p" "$T/clean/pobox.prom"; }
check_eq "clean: metrics file: the verification's figures" "22 63 0 0 0" \
	"$(mfile pobox_verify_profiles) $(mfile 'pobox_verify_attributes{class="matching"}') $(mfile 'pobox_verify_attributes{class="different"}') $(mfile pobox_verify_failed) $(mfile pobox_verify_fetch_errors)"
check_eq "clean: metrics file: the rest of the metrics too" 1 "$(grep -c '^# TYPE pobox_updates gauge' "$T/clean/pobox.prom")"

# ---- another writer ------------------------------------------------------------------------
curl -s -X POST "$B/_sim/set?thirdPartyId=v-3&profile.city=Elsewhere" >/dev/null
curl -s -X POST "$B/_sim/set?thirdPartyId=v-7&profile.tier=by%20hand&profile.extra=x" >/dev/null
curl -s -X POST "$B/_sim/set?pcId=pc-1&profile.tier=gold" >/dev/null # the same value: still matches
verify_json 65 "writer: verify --all"
check_eq "writer: exactly the changed attributes differ" \
	"thirdPartyId:v-3 city another_writer thirdPartyId:v-7 tier another_writer" "$(findings different)"
check_eq "writer: the rest match" "61 0 2 0" "$(J '.classes | "\(.matching.attributes) \(.not_yet_applied.attributes) \(.different.attributes) \(.missing.attributes)"')"
check_eq "writer: the finding has both values and Target's time" "City 3|Elsewhere|true" \
	"$(J '.findings[] | select(.profile_id == "v-3") | "\(.sent)|\(.target)|\(.target_modified_at > .sent_at)"')"
pbr 65 "writer: verify (text)" verify --all --rate 1000
out_has "writer: listed" "thirdPartyId:v-7 tier: sent \"t7\""
out_has "writer: says who" "Target has \"by hand\""
out_has "writer: another writer" "another writer, after pobox's delivery"
out_has "writer: verdict" "verify: 2 of 63 attributes differ past the grace"
check_eq "writer: prometheus: failed" 1 "$(prom pobox_verify_failed)"
check_eq "writer: metrics file: failed, 2 different" "1 2" \
	"$(mfile pobox_verify_failed) $(mfile 'pobox_verify_attributes{class="different"}')"
check_eq "writer: prometheus: different" 2 "$(prom 'pobox_verify_attributes{class="different"}')"
check_eq "writer: findings recorded" 2 "$(q "SELECT count(*) FROM v_verify_findings WHERE verification = (SELECT max(id) FROM verifications)")"

# ---- processing delay ----------------------------------------------------------------------
new_scenario delay
sim_start
write_conf
printf 'thirdPartyId,tier,city\nd-1,a,Oslo\nd-2,b,Bonn\nd-3,c,Nice\n' >"$T/delay/in1.csv"
pbr 0 "delay: import 1" import "$T/delay/in1.csv"
flush_wait "delay: first delivery" 0 60
# Target now takes an hour to apply a batch: the next flush times out with
# the batch submitted (taken, not applied)
sim_faults 'process_delay_ms=3600000'
printf 'thirdPartyId,tier\nd-1,a2\nd-4,new\n' >"$T/delay/in2.csv"
pbr 0 "delay: import 2" import "$T/delay/in2.csv"
flush_wait "delay: the flush times out waiting for Target" 75 3
check_eq "delay: the batch is submitted" submitted "$(q "SELECT state FROM batches WHERE id = 2")"
verify_json 0 "delay: verify --all within the grace"
check_eq "delay: d-1's new tier and new d-4 are not yet applied" \
	"thirdPartyId:d-1 tier older_value thirdPartyId:d-4 tier no_profile" "$(findings not_yet_applied)"
check_eq "delay: nothing different or missing, the rest match" "5 2 0 0" "$(J '.classes | "\(.matching.attributes) \(.not_yet_applied.attributes) \(.different.attributes) \(.missing.attributes)"')"
check_eq "delay: in flight, sent when Target took the batch" "true true" "$(J '[.findings[].in_flight] | map(tostring) | join(" ")')"
pbr 0 "delay: verify (text)" verify --all --rate 1000
out_has "delay: not yet applied line" "not yet applied         2   28.6%"
out_has "delay: the grace" "(grace 1d00h)"
sleep 1.2
verify_json 65 "delay: past a 1s grace"  --grace 1s
check_eq "delay: past the grace the older value is different" "thirdPartyId:d-1 tier older_value" "$(findings different)"
check_eq "delay: past the grace the profile Target lacks is missing" "thirdPartyId:d-4 tier no_profile" "$(findings missing)"
pbr 65 "delay: past the grace (text)" verify --all --rate 1000 --grace 1s
out_has "delay: text: no such profile" "thirdPartyId:d-4 tier: sent \"new\""
out_has "delay: text: older value" "still an older value past the grace"
curl -s -X POST "$B/_sim/process" >/dev/null
verify_json 0 "delay: once Target applied the batch" --grace 1s
check_eq "delay: everything matches (the batch still not complete for pobox)" "7 0 0 0" "$(J '.classes | "\(.matching.attributes) \(.not_yet_applied.attributes) \(.different.attributes) \(.missing.attributes)"')"

# ---- the nightly job -----------------------------------------------------------------------
new_scenario nightly
sim_start
write_conf
printf 'thirdPartyId,tier\nn-1,a\nn-2,b\n' >"$T/nightly/in.csv"
nightly() { # extra env assignments...: packaging/nightly; exit in NRC, output in $T/n.out
	env POBOX_NIGHTLY_FILE="$T/nightly/in.csv" POBOX_NIGHTLY_CONFIG="$CONF" POBOX_NIGHTLY_POBOX="$POBOX" \
		POBOX_NIGHTLY_REJECT_FILE="$T/nightly/rejects.csv" POBOX_NIGHTLY_TIMEOUT=30s "$@" \
		sh "$HERE/../../packaging/nightly" >"$T/n.out" 2>&1 </dev/null
	NRC=$?
}
nightly
check_eq "nightly: verify is off by default" "0 0" "$NRC $(q "SELECT count(*) FROM verifications")"
nightly POBOX_NIGHTLY_VERIFY=yes POBOX_NIGHTLY_VERIFY_ARGS="--all --rate 100"
check_eq "nightly: with POBOX_NIGHTLY_VERIFY=yes it verifies after the flush" "0 1 2" \
	"$NRC $(q "SELECT count(*) FROM verifications") $(q "SELECT profiles FROM verifications")"
grep -q "verify: nothing differs past the grace" "$T/n.out" && pass "nightly: verify's verdict in the job's output" ||
	fail "nightly: verify's verdict in the job's output" "$(cat "$T/n.out")"
curl -s -X POST "$B/_sim/set?thirdPartyId=n-2&profile.tier=zz" >/dev/null
nightly POBOX_NIGHTLY_VERIFY=yes POBOX_NIGHTLY_VERIFY_ARGS="--all --rate 100"
check_eq "nightly: a difference fails the job with verify's 65" 65 "$NRC"
grep -q "verify did not pass (exit 65)" "$T/n.out" && pass "nightly: says verify did not pass" ||
	fail "nightly: says verify did not pass" "$(cat "$T/n.out")"
nightly POBOX_NIGHTLY_VERIFY=maybe
check_eq "nightly: a bad POBOX_NIGHTLY_VERIFY is a configuration error" 78 "$NRC"
finish
