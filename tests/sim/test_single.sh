#!/bin/bash
# Single profile update (GET and POST) and profile fetch: answers, not
# found (both modes), empty values, size limits, id rules, unknown client.
. "$(dirname "$0")/lib.sh"

printf 'thirdPartyId,name\np1,Ann\n' >pre.csv
printf 'pcId,name\n1368007744041-575948.01_00,Pat\n' >pre_pc.csv
sim_start --preload pre.csv

OK='<response><success>true</success><pcId></pcId><message>Request successfully submitted</message></response>'
NF='<response><success>false</success><pcId></pcId><message>Profile not found</message></response>'

req "$B/m2/demo/profile/update?mbox3rdPartyId=p1&profile.tier=gold&profile.city=S%C3%A3o+Paulo&profile.name="
check "GET update: HTTP 200" 200 "$STATUS"
check "GET update: answer" "$OK" "$BODY"
check "Content-Type is XML" "application/xml;charset=UTF-8" "$(header Content-Type)"
check "applied, decoded, empty value ignored" \
  '{"profiles":[{"idType":"thirdPartyId","id":"p1","attributes":{"city":"São Paulo","name":"Ann","tier":"gold"}}]}' "$(profiles)"

req -X POST "$B/m2/demo/profile/update?mbox3rdPartyId=p1&profile.tier=platinum"
check "POST with query only (as Segment does)" "$OK" "$BODY"
req --data 'mbox3rdPartyId=p1&profile.note=a%26b' "$B/m2/demo/profile/update"
check "POST with a form body" "$OK" "$BODY"
check "POST updates applied" \
  '{"profiles":[{"idType":"thirdPartyId","id":"p1","attributes":{"city":"São Paulo","name":"Ann","note":"a&b","tier":"platinum"}}]}' "$(profiles)"

req "$B/m2/demo/profile/update?mbox3rdPartyId=ghost&profile.a=1"
check "unknown profile: HTTP 200" 200 "$STATUS"
check "unknown profile: not found, not created" "$NF" "$BODY"
check "ghost not created" 1 "$(jget "$(profiles)" profiles | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"

req "$B/m2/demo/profile/update?mbox3rdPartyId=a%2Bb&profile.a=1"
check "'+' in mbox3rdPartyId: 400" 400 "$STATUS"
check "'+' in mbox3rdPartyId: message" \
  "<response><success>false</success><pcId></pcId><message>invalid mbox3rdPartyId: &apos;+&apos; and &apos;/&apos; are not allowed, at most 256 characters</message></response>" "$BODY"
req "$B/m2/demo/profile/update?mbox3rdPartyId=a/b&profile.a=1"
check "'/' in mbox3rdPartyId: 400" 400 "$STATUS"
req "$B/m2/demo/profile/update?profile.a=1"
check "no id: message" \
  "<response><success>false</success><pcId></pcId><message>missing mbox3rdPartyId or mboxPC</message></response>" "$BODY"
req "$B/m2/other/profile/update?mbox3rdPartyId=p1&profile.a=1"
check "unknown client: 400" 400 "$STATUS"
check "unknown client: message" \
  "<response><success>false</success><pcId></pcId><message>unknown client code &apos;other&apos;</message></response>" "$BODY"

# GET limit 8 KB: the request target (path + '?' + query) counts
P="/m2/demo/profile/update?mbox3rdPartyId=p1&profile.big="
PAD=$(python3 -c "print('x' * (8192 - len('$P')))")
req "$B$P$PAD"
check "GET of exactly 8192 bytes accepted" "$OK" "$BODY"
req "$B${P}x$PAD"
check "GET of 8193 bytes: 414" 414 "$STATUS"
check "GET of 8193 bytes: message" \
  "<response><success>false</success><pcId></pcId><message>request too large: a GET may be at most 8192 bytes</message></response>" "$BODY"
# POST limit 60 KB (61440 bytes): query + body
Q="/m2/demo/profile/update?mbox3rdPartyId=p1"
python3 -c "import sys; sys.stdout.write('profile.big=' + 'y' * (61440 - len('$Q') - len('profile.big=')))" >post_ok.txt
req --data-binary @post_ok.txt "$B$Q"
check "POST of exactly 61440 bytes accepted" "$OK" "$BODY"
printf 'y' >>post_ok.txt
req --data-binary @post_ok.txt "$B$Q"
check "POST of 61441 bytes: 413" 413 "$STATUS"
check "POST of 61441 bytes: message" \
  "<response><success>false</success><pcId></pcId><message>request too large: a POST may be at most 61440 bytes</message></response>" "$BODY"
req -X PUT "$B/m2/demo/profile/update?mbox3rdPartyId=p1"
check "PUT: 405" 405 "$STATUS"

# --- fetch
req "$B/rest/v1/profiles/thirdPartyId/p1?client=demo"
check "fetch: 200" 200 "$STATUS"
check "fetch: JSON type" "application/json;charset=UTF-8" "$(header Content-Type)"
check "fetch: visitorId" p1 "$(jget "$BODY" visitorId)"
check "fetch: client" demo "$(jget "$BODY" client)"
check "fetch: attribute value" platinum "$(jget "$BODY" profileAttributes.tier.value)"
check_match "fetch: per-attribute modifiedAt" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}\+00:00$' \
  "$(jget "$BODY" profileAttributes.tier.modifiedAt)"
check "fetch: attribute names" '["big","city","name","note","tier"]' \
  "$(printf '%s' "$BODY" | python3 -c 'import json,sys; print(json.dumps(sorted(json.load(sys.stdin)["profileAttributes"]),separators=(",",":")))')"
req "$B/rest/v1/profiles/thirdPartyId/ghost?client=demo"
check "fetch unknown: 404" 404 "$STATUS"
check "fetch unknown: documented JSON" \
  '{"status" : 404, "message" : "No profile found for client demo with third party id=ghost"}' "$BODY"
req "$B/rest/v1/profiles/1234-5?client=demo"
check "fetch unknown pcId: documented JSON" \
  '{"status" : 404, "message" : "No profile found for client demo with mboxPC=1234-5"}' "$BODY"
req "$B/rest/v1/profiles/thirdPartyId/p1"
check "fetch without client: 400" 400 "$STATUS"
sim_stop

# --- silent not-found: success=true, nothing kept
sim_start --preload pre.csv --notfound-silent
req "$B/m2/demo/profile/update?mbox3rdPartyId=ghost&profile.a=1"
check "silent mode: success=true for an unknown profile" "$OK" "$BODY"
check "silent mode: dropped, not created" '{"profiles":[{"idType":"thirdPartyId","id":"p1","attributes":{"name":"Ann"}}]}' "$(profiles)"
check "silent mode: counted" 1 "$(counter single_updates_dropped_silently)"
sim_stop

# --- pcId single updates; a visit creates a profile that updates can reach
sim_start --preload pre_pc.csv
req "$B/m2/demo/profile/update?mboxPC=1368007744041-575948.01_00&profile.a=1"
check "mboxPC update" "$OK" "$BODY"
req "$B/m2/demo/profile/update?mbox3rdPartyId=newbie&profile.a=1"
check "before a visit: not found" "$NF" "$BODY"
curl -s -X POST "$B/_sim/visit?thirdPartyId=newbie" >/dev/null
req "$B/m2/demo/profile/update?mbox3rdPartyId=newbie&profile.a=2"
check "after a visit: updated" "$OK" "$BODY"
check "store" '{"profiles":[{"idType":"pcId","id":"1368007744041-575948.01_00","attributes":{"a":"1","name":"Pat"}},{"idType":"thirdPartyId","id":"newbie","attributes":{"a":"2"}}]}' "$(profiles)"
sim_stop

finish
