#!/bin/bash
# The simulated Adobe credentials: the IMS token endpoint (client
# credentials grant), the Admin API's profile-token endpoint (retrieve with
# GET, create with POST), their documented answers and error bodies, tokens
# that expire on the simulated clock, and the profile endpoints accepting a
# minted profile token and refusing an expired (401) or superseded (403) one.
. "$(dirname "$0")/lib.sh"

command -v jq >/dev/null || { echo "FATAL: jq is needed"; exit 1; }
J() { printf '%s' "$BODY" | jq -cr "$1"; }
TGT='application/vnd.adobe.target.v1+json'
ims() { req -X POST --data "$1" "$B/ims/token/v3"; }
admin() { # METHOD IMS_TOKEN [extra curl args]
	local m=$1 t=$2; shift 2
	req -X "$m" -H "Authorization: Bearer $t" -H 'X-Api-Key: cid-1' -H "Accept: ${ACCEPT:-$TGT}" "$@" \
		"$B/acme/target/authentication/token?authorizationScope=profile_api"
}
fetch() { req "$@" "$B/rest/v1/profiles/thirdPartyId/p1?client=demo"; }

printf 'thirdPartyId,a\np1,0\n' >pre.csv
sim_start --preload pre.csv --no-ipv6 --ims-client-id cid-1 --ims-client-secret 's3c&ret' \
	--ims-scopes 'openid,AdobeID,target_sdk' --tenant acme --require-auth \
	--profile-token-lifetime-s 3600 --ims-token-lifetime-s 7200

# ---- IMS ----
GOOD='grant_type=client_credentials&client_id=cid-1&client_secret=s3c%26ret&scope=openid,AdobeID'
ims "$GOOD"
check "IMS: 200" 200 "$STATUS"
check "IMS: JSON content type" 'application/json;charset=UTF-8' "$(header Content-Type)"
check "IMS: token_type bearer, expires_in in (simulated) seconds" 'bearer 7200' "$(J '"\(.token_type) \(.expires_in)"')"
check_match "IMS: access_token" '^ims-1-[0-9a-f]{16}$' "$(J .access_token)"
IMS1=$(J .access_token)
req -X POST "$B/ims/token/v3?$GOOD"
check "IMS: parameters in the query work too" 200 "$STATUS"
IMS2=$(J .access_token)
check "IMS: every call issues a new token" 1 "$([ "$IMS1" != "$IMS2" ] && echo 1)"

ims 'grant_type=client_credentials&client_id=cid-1&client_secret=wrong&scope=openid'
check "IMS: wrong secret: 401" 401 "$STATUS"
check "IMS: wrong secret: body" '{"error":"invalid_client","error_description":"invalid client_secret parameter"}' "$BODY"
ims 'grant_type=client_credentials&client_id=other&client_secret=s3c%26ret&scope=openid'
check "IMS: unknown client_id: 401 invalid_client" '401 invalid_client invalid client_id parameter' "$STATUS $(J '"\(.error) \(.error_description)"')"
ims 'client_id=cid-1&client_secret=s3c%26ret&scope=openid'
check "IMS: no grant_type: 400 invalid_request" '400 invalid_request missing grant_type parameter' "$STATUS $(J '"\(.error) \(.error_description)"')"
ims 'grant_type=password&client_id=cid-1&client_secret=s3c%26ret&scope=openid'
check "IMS: other grant: 400 unsupported_grant_type" '400 unsupported_grant_type' "$STATUS $(J .error)"
ims 'grant_type=client_credentials&client_secret=s3c%26ret&scope=openid'
check "IMS: no client_id: 400" '400 missing client_id parameter' "$STATUS $(J .error_description)"
ims 'grant_type=client_credentials&client_id=cid-1&scope=openid'
check "IMS: no client_secret: 400" '400 missing client_secret parameter' "$STATUS $(J .error_description)"
ims 'grant_type=client_credentials&client_id=cid-1&client_secret=s3c%26ret'
check "IMS: no scope: 400" '400 missing scope parameter' "$STATUS $(J .error_description)"
ims 'grant_type=client_credentials&client_id=cid-1&client_secret=s3c%26ret&scope=openid,write_everything'
check "IMS: scope not granted: 400 invalid_scope" '400 invalid_scope invalid scope (write_everything)' "$STATUS $(J '"\(.error) \(.error_description)"')"
req "$B/ims/token/v3"
check "IMS: GET: 405" 405 "$STATUS"
curl -s -X POST --data 'ims_fail=503' "$B/_sim/faults" >/dev/null
ims "$GOOD"
check "IMS: ims_fail=503 answers 503 server_error" '503 server_error' "$STATUS $(J .error)"
curl -s -X POST --data 'ims_fail=400' "$B/_sim/faults" >/dev/null
ims "$GOOD"
check "IMS: ims_fail=400 answers 400 invalid_request" '400 invalid_request' "$STATUS $(J .error)"
curl -s -X POST --data 'ims_fail=0' "$B/_sim/faults" >/dev/null
req -X POST --data 'ims_fail=200' "$B/_sim/faults"
check "faults: ims_fail must be 0 or an error status" 400 "$STATUS"
check "faults: the secret is shown only as set" '"(set)" "cid-1" "acme"' \
	"$(curl -s "$B/_sim/faults" | jq -c '.ims_client_secret, .ims_client_id, .tenant' | tr '\n' ' ' | sed 's/ $//')"
check "counters: IMS tokens issued" 2 "$(counter ims_tokens_issued)"
check "counters: IMS calls by outcome (ok refused unauthorized fault_error)" '2 8 2 1' \
	"$(curl -s "$B/_sim/counters" | jq -r '.calls.ims_token | "\(.ok) \(.refused) \(.unauthorized) \(.fault_error)"')"

# ---- Admin API ----
admin GET "$IMS1"
check "Admin GET before any token: 404" 404 "$STATUS"
check "Admin: ErrorResponse shape" 'true NotFound' "$(J '"\((.httpStatus == 404) and (.requestId | type == "string") and (.requestTime | test("T"))) \(.errors[0].errorCode)"')"
check "Admin: errors are JSON" 'application/json;charset=UTF-8' "$(header Content-Type)"
admin POST "$IMS1"
check "Admin POST: 201" 201 "$STATUS"
check "Admin: answers in the versioned media type" "$TGT" "$(header Content-Type)"
check "Admin POST: tokenType, scope, expiresIn" 'bearer profile_api 3600' "$(J '"\(.tokenType) \(.scope) \(.expiresIn)"')"
PT1=$(J .accessToken)
check_match "Admin POST: accessToken" '^ptk-1-[0-9a-f]{16}$' "$PT1"
admin GET "$IMS2"
check "Admin GET: 200 with the current token" "200 $PT1" "$STATUS $(J .accessToken)"
check_match "Admin GET: expiresIn is what is left" '^(3599|3600)$' "$(J .expiresIn)"
check "counters: created / retrieved" '1 1' "$(counter profile_tokens_created) $(counter profile_tokens_retrieved)"

ACCEPT=application/json admin GET "$IMS1"
check "Admin: wrong Accept: 406" '406 NotAcceptable' "$STATUS $(J '.errors[0].errorCode')"
req -H "Authorization: Bearer $IMS1" -H 'X-Api-Key: cid-1' "$B/acme/target/authentication/token?authorizationScope=profile_api"
check "Admin: no Accept (curl's */*): 406" 406 "$STATUS"
admin GET "not-an-ims-token"
check "Admin: unknown IMS token: 401" '401 Oauth token is not valid' "$STATUS $(J '.errors[0].message')"
req -H 'X-Api-Key: cid-1' -H "Accept: $TGT" "$B/acme/target/authentication/token?authorizationScope=profile_api"
check "Admin: no Authorization: 401" 401 "$STATUS"
req -H "Authorization: Bearer $IMS1" -H 'X-Api-Key: someone-else' -H "Accept: $TGT" "$B/acme/target/authentication/token?authorizationScope=profile_api"
check "Admin: wrong X-Api-Key: 403" '403 Api Key is invalid' "$STATUS $(J '.errors[0].message')"
req -H "Authorization: Bearer $IMS1" -H 'X-Api-Key: cid-1' -H "Accept: $TGT" "$B/other/target/authentication/token?authorizationScope=profile_api"
check "Admin: unknown tenant: 404" 404 "$STATUS"
req -H "Authorization: Bearer $IMS1" -H 'X-Api-Key: cid-1' -H "Accept: $TGT" "$B/acme/target/authentication/token?scope=profile_api"
check "Admin: scope= instead of authorizationScope=: 400" '400 BadRequest' "$STATUS $(J '.errors[0].errorCode')"
req -X DELETE -H "Authorization: Bearer $IMS1" "$B/acme/target/authentication/token?authorizationScope=profile_api"
check "Admin: DELETE: 405" 405 "$STATUS"
curl -s -X POST --data 'admin_fail=406' "$B/_sim/faults" >/dev/null
admin GET "$IMS1"
check "Admin: admin_fail=406" '406 Simulated' "$STATUS $(J '.errors[0].errorCode')"
curl -s -X POST --data 'admin_fail=0' "$B/_sim/faults" >/dev/null

# ---- the profile endpoints and the minted token ----
fetch
check "require-auth: no token: 401" 401 "$STATUS"
fetch -H "Authorization: Bearer $PT1"
check "profile token accepted by fetch" 200 "$STATUS"
req -H "Authorization: Bearer $PT1" "$B/m2/demo/profile/update?mbox3rdPartyId=p1&profile.a=5"
check "profile token accepted by single update" 200 "$STATUS"
fetch -H "Authorization: Bearer $IMS1"
check "an IMS token is no profile token: 403" 403 "$STATUS"
admin POST "$IMS1"
PT2=$(J .accessToken)
fetch -H "Authorization: Bearer $PT1"
check "a superseded profile token: 403" '403 <response><success>false</success><message>Forbidden: invalid token</message></response>' "$STATUS $BODY"
fetch -H "Authorization: Bearer $PT2"
check "the new one works" 200 "$STATUS"
req -X POST "$B/_sim/auth?expire=profile"
check "control: expire the profile token" true "$(J .profile_token.expired)"
fetch -H "Authorization: Bearer $PT2"
check "an expired profile token: 401" '401 <response><success>false</success><message>Unauthorized: the token has expired</message></response>' "$STATUS $BODY"
check "expired: WWW-Authenticate names invalid_token" 'Bearer error="invalid_token"' "$(header WWW-Authenticate)"
check "counters: expired-token refusals" 1 "$(counter expired_token_refusals)"
admin GET "$IMS1"
check "Admin GET after expiry: 404" 404 "$STATUS"
admin POST "$IMS1"
PT3=$(J .accessToken)
req -X POST "$B/_sim/auth?expire=revoke"
fetch -H "Authorization: Bearer $PT3"
check "control: revoked (regenerated in the UI): 403" 403 "$STATUS"
req -X POST "$B/_sim/auth?expire=ims"
admin POST "$IMS1"
check "control: expired IMS tokens: 401 Oauth token has expired" '401 Oauth token has expired' "$STATUS $(J '.errors[0].message')"
req -X POST "$B/_sim/auth?expire=everything"
check "control: unknown expire word: 400" 400 "$STATUS"
req "$B/_sim/auth"
check "control: GET lists the tokens issued" "3 2" "$(J '"\(.profile_tokens | length) \(.ims_tokens | length)"')"
sim_stop

# ---- lifetimes run on the simulated clock ----
sim_start --preload pre.csv --no-ipv6 --ims-client-id cid-1 --ims-client-secret x --tenant acme \
	--require-auth --clock-scale 100 --profile-token-lifetime-s 300 --ims-token-lifetime-s 200
ims 'grant_type=client_credentials&client_id=cid-1&client_secret=x&scope=openid'
I=$(J .access_token)
admin POST "$I"
check "accelerated: expiresIn is the simulated lifetime" 300 "$(J .expiresIn)"
P=$(J .accessToken)
fetch -H "Authorization: Bearer $P"
check "accelerated: valid at first" 200 "$STATUS"
sleep 3.5   # 350 simulated seconds
fetch -H "Authorization: Bearer $P"
check "accelerated: expired after 300 simulated s (3 real s)" 401 "$STATUS"
admin GET "$I"
check "accelerated: the IMS token (200 s) has expired too" '401 Oauth token has expired' "$STATUS $(J '.errors[0].message')"
sim_stop

# ---- without --require-auth or --token the profile endpoints stay open ----
sim_start --preload pre.csv --no-ipv6
fetch
check "no auth configured: open" 200 "$STATUS"
curl -s -X POST --data 'require_auth=1' "$B/_sim/faults" >/dev/null
fetch
check "require_auth at run time: 401" 401 "$STATUS"
sim_stop

finish
