#!/bin/bash
# Authorization: Bearer: 401 without it, 403 with a wrong token, on every
# Target endpoint; from --token, --token-file, and set at run time.
. "$(dirname "$0")/lib.sh"

printf 'thirdPartyId,a\np1,0\n' >pre.csv
printf 's3cret-token\n' >token.txt
UNAUTH='<response><success>false</success><message>Unauthorized: this API requires Authorization: Bearer &lt;token&gt;</message></response>'
FORBID='<response><success>false</success><message>Forbidden: invalid token</message></response>'

endpoints() {
	printf '%s\n' "GET $B/m2/demo/profile/update?mbox3rdPartyId=p1&profile.a=1" \
	  "POST $B/m2/demo/v2/profile/batchUpdate" \
	  "POST $B/m2/demo/profile/batchUpdate" \
	  "GET $B/m2/demo/profile/batchStatus?batchId=x" \
	  "GET $B/rest/v1/profiles/thirdPartyId/p1?client=demo"
}

auth_suite() {
	local label=$1 m u
	while read -r m u; do
		req -X "$m" --data-binary $'batch=thirdPartyId,a\np1,9\n' "$u"
		[ "$m" = GET ] && req "$u"
		check "$label: $m ${u#$B} without token: 401" 401 "$STATUS"
		check "$label: 401 body" "$UNAUTH" "$BODY"
		check "$label: 401 WWW-Authenticate" Bearer "$(header WWW-Authenticate)"
		req -H 'Authorization: Bearer wrong' "$u"
		[ "$m" = POST ] && req -H 'Authorization: Bearer wrong' --data-binary $'batch=thirdPartyId,a\np1,9\n' "$u"
		check "$label: $m ${u#$B} wrong token: 403" 403 "$STATUS"
		check "$label: 403 body" "$FORBID" "$BODY"
		req -H 'Authorization: Basic czNjcmV0' "$u"
		[ "$m" = POST ] && req -H 'Authorization: Basic czNjcmV0' --data-binary $'batch=thirdPartyId,a\np1,9\n' "$u"
		check "$label: $m ${u#$B} non-Bearer scheme: 401" 401 "$STATUS"
		req -H 'Authorization: Bearer s3cret-token' "$u"
		[ "$m" = POST ] && req -H 'Authorization: Bearer s3cret-token' --data-binary $'batch=thirdPartyId,a\np1,9\n' "$u"
		check_match "$label: $m ${u#$B} right token: not 401/403" '^(200|404)$' "$STATUS"
	done < <(endpoints)
	check "$label: refused calls changed nothing" 9 "$(jget "$(profiles)" profiles.0.attributes.a)"
	req "$B/_sim/profiles"
	check "$label: control endpoints need no token" 200 "$STATUS"
}

sim_start --preload pre.csv --token s3cret-token --bulk-per-minute 0
auth_suite "--token"
check "401s counted (no header twice, Basic once)" 3 "$(counter calls.single_update.unauthorized)"
check "403s counted" 1 "$(counter calls.batch_status.forbidden)"
sim_stop

sim_start --preload pre.csv --token-file token.txt --bulk-per-minute 0
auth_suite "--token-file"
sim_stop

sim_start --preload pre.csv --bulk-per-minute 0
req "$B/m2/demo/profile/update?mbox3rdPartyId=p1&profile.a=1"
check "no token configured: open" 200 "$STATUS"
curl -s -X POST --data 'token=s3cret-token' "$B/_sim/faults" >/dev/null
req "$B/m2/demo/profile/update?mbox3rdPartyId=p1&profile.a=1"
check "token set at run time: 401" 401 "$STATUS"
check "plan shows the token only as set" '"(set)"' "$(curl -s "$B/_sim/faults" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["token"]))')"
curl -s -X POST --data 'token=' "$B/_sim/faults" >/dev/null
req "$B/m2/demo/profile/update?mbox3rdPartyId=p1&profile.a=1"
check "token cleared at run time: open again" 200 "$STATUS"
sim_stop

"$SIM" --token-file /nonexistent/token >/dev/null 2>err.txt
check "missing token file: exit 64" 64 "$?"
check_match "missing token file: clear message" 'token-file: cannot open /nonexistent/token' "$(cat err.txt)"

finish
