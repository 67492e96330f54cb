#!/bin/bash
# What a verifier (`pobox verify`) needs from the Profile Fetch API: each
# attribute's modifiedAt on the simulated clock, the processing delay (a
# batch not yet applied still shows the older values and times), values
# changed behind the client's back (POST /_sim/set), and the arrival time of
# every fetch (GET /_sim/fetches) so a test can check a client's rate.
. "$(dirname "$0")/lib.sh"

command -v jq >/dev/null || { echo "FATAL: jq is needed"; exit 1; }
J() { printf '%s' "$BODY" | jq -cr "$1"; }
ms() { date -d "$1" +%s%3N; }   # ISO 8601 with offset -> epoch ms
fetch() { req "$B/rest/v1/profiles/thirdPartyId/$1?client=demo"; }
clock_ms() { curl -s "$B/_sim/clock" | jq -r .now_ms; }

printf 'thirdPartyId,tier,city\nalice,gold,Berlin\n' >pre.csv
sim_start --preload pre.csv --no-ipv6 --bulk-per-minute 0 --clock-scale 60 --process-delay-ms 600000

fetch alice
check "fetch: 200" 200 "$STATUS"
check "fetch: values" 'gold Berlin' "$(J '"\(.profileAttributes.tier.value) \(.profileAttributes.city.value)"')"
check_match "fetch: modifiedAt with an explicit offset" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}\+00:00$' "$(J .profileAttributes.tier.modifiedAt)"
pre_mod=$(ms "$(J .profileAttributes.tier.modifiedAt)")

# a v2 batch with a 10-minute (simulated) processing delay: 10 real s at x60
req --data-binary $'batch=thirdPartyId,tier\nalice,platinum\n' "$B/m2/demo/v2/profile/batchUpdate"
check "batch accepted" 200 "$STATUS"
sent=$(clock_ms)
sleep 1
fetch alice
check "before processing: the older value" gold "$(J .profileAttributes.tier.value)"
check "before processing: the older modifiedAt" "$pre_mod" "$(ms "$(J .profileAttributes.tier.modifiedAt)")"
curl -s -X POST "$B/_sim/clock?advance_s=600" >/dev/null
fetch alice
check "after the delay: the new value" platinum "$(J .profileAttributes.tier.value)"
mod=$(ms "$(J .profileAttributes.tier.modifiedAt)")
check "after the delay: modifiedAt is when it was applied (>= submit + 600 simulated s)" 1 \
	"$([ "$mod" -ge $((sent + 600000)) ] && echo 1)"
check "an attribute the batch did not touch keeps its modifiedAt" "$pre_mod" "$(ms "$(J .profileAttributes.city.modifiedAt)")"
check "the profile's modifiedAt is the newest" "$mod" "$(ms "$(J .modifiedAt)")"

# another writer changes a value behind the client's back
before=$(clock_ms)
req -X POST "$B/_sim/set?thirdPartyId=alice&profile.tier=silver&profile.note=by%20hand"
check "set: ok" '200 {"ok":true,"set":2}' "$STATUS $BODY"
fetch alice
check "set: the value changed" 'silver by hand platinum' "$(J '"\(.profileAttributes.tier.value) \(.profileAttributes.note.value) platinum"')"
check "set: modifiedAt moved to the time of the change" 1 \
	"$([ "$(ms "$(J .profileAttributes.tier.modifiedAt)")" -ge "$before" ] && echo 1)"
req -X POST "$B/_sim/set?thirdPartyId=bob&profile.tier=new"
fetch bob
check "set: creates a missing profile (as a page visit would)" new "$(J .profileAttributes.tier.value)"
req -X POST "$B/_sim/set?thirdPartyId=alice"
check "set: no value: 400" 400 "$STATUS"
check "counters: values_set" 3 "$(counter values_set)"

# the fetch log: arrival times in real ms
fetch ghost
check "unknown: 404" 404 "$STATUS"
req "$B/rest/v1/profiles/1234-5?client=demo"
req "$B/_sim/fetches"
check "fetches: every fetch logged, in order" '7 ["alice","alice","alice","alice","bob","ghost","1234-5"]' \
	"$(J '"\(.count) \([.fetches[].id] | tostring)"')"
check "fetches: status and id type" '[200,404,404] ["thirdPartyId","thirdPartyId","pcId"]' \
	"$(J '"\([.fetches[-3:][].status] | tostring) \([.fetches[-3:][].id_type] | tostring)"')"
check "fetches: real times never go back" true "$(J '[.fetches[].real_ms] | . == sort')"
curl -s -X POST --data 'process_delay_ms=0' "$B/_sim/faults" >/dev/null
curl -s -X POST "$B/_sim/reset" >/dev/null
check "reset clears the log" 0 "$(curl -s "$B/_sim/fetches" | jq .count)"
# 5 fetches at least 350 ms apart (sleep never returns early): no two
# share a 300 ms window, and a day-long window holds them all
for i in 1 2 3 4 5; do fetch alice; sleep 0.35; done
req "$B/_sim/fetches?window_ms=300&list=0"
check "fetches: list=0 leaves the list out" 'null 5' "$(J '"\(.fetches) \(.count)"')"
check "fetches: spaced fetches: at most 1 in any 300 ms" 1 "$(J .max_in_window)"
check "fetches: first to last spans the spacing" 1 "$(J 'if .last_real_ms - .first_real_ms >= 1396 then 1 else 0 end')"
req "$B/_sim/fetches?window_ms=86400000&list=0"
check "fetches: a day-long window holds all 5" 5 "$(J .max_in_window)"
req "$B/_sim/fetches?window_ms=0"
check "fetches: bad window: 400" 400 "$STATUS"
sim_stop
finish
