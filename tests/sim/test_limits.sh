#!/bin/bash
# The bulk limit (calls per rolling minute, shared by batchUpdate and
# batchStatus; 503 + Retry-After) and the single-update budget per rolling
# 24 hours (429 + Retry-After + the time of the next allowed call), both on
# an accelerated clock.
. "$(dirname "$0")/lib.sh"

# 50 calls on the real clock, then jump the clock a minute forward.
sim_start --status-keep 100
batch /m2/demo/v2/profile/batchUpdate $'batch=thirdPartyId,a\nu1,1\n'
URL=$(status_url)
for i in $(seq 2 50); do
	if [ $((i % 2)) = 0 ]; then req "$URL"; else batch /m2/demo/profile/batchUpdate $'batch=thirdPartyId,a\nu1,1\n'; fi
	[ "$STATUS" = 200 ] || break
done
check "50 bulk calls in a minute (updates and status polls) admitted" "50 200" "$i $STATUS"
req "$URL"
check "51st (a status poll): 503" 503 "$STATUS"
check_match "51st: Retry-After (real seconds, within a minute)" '^([1-9]|[1-5][0-9]|60)$' "$(header Retry-After)"
check "51st: XML message" \
  "<response><success>false</success><message>Too many requests: the bulk profile APIs accept 50 calls per minute</message></response>" "$BODY"
batch /m2/demo/v2/profile/batchUpdate $'batch=thirdPartyId,a\nu2,1\n'
check "a batchUpdate is refused too: 503" 503 "$STATUS"
check "refused batch not applied" '{"profiles":[{"idType":"thirdPartyId","id":"u1","attributes":{"a":"1"}}]}' "$(profiles)"
req "$B/m2/demo/profile/update?mbox3rdPartyId=u1&profile.b=1"
check "single updates are not subject to the bulk limit" 200 "$STATUS"
req "$B/rest/v1/profiles/thirdPartyId/u1?client=demo"
check "nor is fetch" 200 "$STATUS"
check "counted as rate limited" 2 "$(( $(counter calls.batch_status.rate_limited) + $(counter calls.batch_update_v2.rate_limited) ))"
curl -s -X POST "$B/_sim/clock?advance_s=60" >/dev/null
req "$URL"
check "a minute later: admitted again" 200 "$STATUS"
sim_stop

# the same on an accelerated clock: x30, a simulated minute is 2 real s
sim_start --clock-scale 30 --bulk-per-minute 3
for i in 1 2 3; do req "$B/m2/demo/profile/batchStatus?batchId=x"; done
req "$B/m2/demo/profile/batchStatus?batchId=x"
check "accelerated: 4th call refused" 503 "$STATUS"
check_match "accelerated: Retry-After scaled to real seconds" '^[12]$' "$(header Retry-After)"
sleep 2.2
req "$B/m2/demo/profile/batchStatus?batchId=x"
check "accelerated: admitted after 2 real seconds" 404 "$STATUS"
sim_stop

# --- run-time change of the bulk limit
sim_start
curl -s -X POST --data 'bulk_per_minute=2' "$B/_sim/faults" >/dev/null
req "$B/m2/demo/profile/batchStatus?batchId=x"
req "$B/m2/demo/profile/batchStatus?batchId=x"
check "limit lowered at run time: 2 admitted" 404 "$STATUS"
req "$B/m2/demo/profile/batchStatus?batchId=x"
check "3rd refused" 503 "$STATUS"
check_match "Retry-After within a minute" '^([1-9]|[1-5][0-9]|60)$' "$(header Retry-After)"
sim_stop

# --- single budget: 5 per rolling 24 h, at x43200 (a day in 2 s)
printf 'thirdPartyId,a\np1,0\n' >pre.csv
sim_start --preload pre.csv --single-budget 5 --clock-scale 43200
for i in 1 2 3 4; do req "$B/m2/demo/profile/update?mbox3rdPartyId=p1&profile.a=$i"; done
req "$B/m2/demo/profile/update?mbox3rdPartyId=ghost&profile.a=5"
check "5th call (not found) still spends budget" \
  "<response><success>false</success><pcId></pcId><message>Profile not found</message></response>" "$BODY"
req "$B/m2/demo/profile/update?mbox3rdPartyId=p1&profile.a=6"
check "6th call: 429" 429 "$STATUS"
check_match "6th call: Retry-After in real seconds (at most 2)" '^[12]$' "$(header Retry-After)"
check_match "6th call: names the next allowed time" \
  '^<response><success>false</success><pcId></pcId><message>Limit of 5 profile update calls per 24 hours reached; next call allowed at [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z</message></response>$' "$BODY"
NEXT=$(printf '%s' "$BODY" | sed -n 's/.*allowed at \([^<]*\)<.*/\1/p')
CLOCK=$(jget "$(curl -s "$B/_sim/clock")" now)
check "next allowed time is within the next 24 simulated hours" 1 \
  "$(python3 -c "
from datetime import datetime as d
f = lambda s: d.strptime(s, '%Y-%m-%dT%H:%M:%S.%fZ')
dt = (f('$NEXT') - f('$CLOCK')).total_seconds()
print(1 if 0 < dt <= 86400 else dt)")"
check "refused update not applied" 4 "$(jget "$(profiles)" profiles.0.attributes.a)"
check "counted as budget exhausted" 1 "$(counter calls.single_update.budget_exhausted)"
sleep 2.2
req "$B/m2/demo/profile/update?mbox3rdPartyId=p1&profile.a=7"
check "after 24 simulated hours: allowed again" 200 "$STATUS"
sim_stop

# --- the window is rolling: calls spread out free up one by one
sim_start --preload pre.csv --single-budget 2 --clock-scale 1
curl -s "$B/m2/demo/profile/update?mbox3rdPartyId=p1&profile.a=1" >/dev/null
curl -s -X POST "$B/_sim/clock?advance_s=43200" >/dev/null
curl -s "$B/m2/demo/profile/update?mbox3rdPartyId=p1&profile.a=2" >/dev/null
req "$B/m2/demo/profile/update?mbox3rdPartyId=p1&profile.a=3"
check "budget of 2 spent" 429 "$STATUS"
check "Retry-After: the first call leaves the window in 12 h" 43200 "$(header Retry-After)"
curl -s -X POST "$B/_sim/clock?advance_s=43200" >/dev/null
req "$B/m2/demo/profile/update?mbox3rdPartyId=p1&profile.a=3"
check "12 h later the first call has left the window" 200 "$STATUS"
req "$B/m2/demo/profile/update?mbox3rdPartyId=p1&profile.a=4"
check "but the second has not" 429 "$STATUS"
sim_stop

# --- a shorter single window, and the call log: one line per call that
# reached a limit check, with the simulated time it was counted at
sim_start --preload pre.csv --single-budget 2 --single-window-s 60 --call-log calls.log
for i in 1 2 3; do req "$B/m2/demo/profile/update?mbox3rdPartyId=p1&profile.a=$i"; done
check "window 60 s: the 3rd call is over the budget" 429 "$STATUS"
check_match "the message names the window" 'Limit of 2 profile update calls per 60 seconds reached' "$BODY"
req "$B/m2/demo/profile/update?profile.a=1"
check "a call without an id is refused before the budget" 400 "$STATUS"
req "$B/m2/demo/profile/batchStatus?batchId=x"
curl -s -X POST "$B/_sim/clock?advance_s=61" >/dev/null
req "$B/m2/demo/profile/update?mbox3rdPartyId=p1&profile.a=4"
check "61 simulated s later: admitted again" 200 "$STATUS"
sim_stop
check "call log: lanes and verdicts in order" "single admitted,single admitted,single refused,bulk admitted,single admitted," \
  "$(cut -f2,3 calls.log | tr '\t\n' ' ,')"
T0=$(sed -n 1p calls.log | cut -f1); T5=$(sed -n 5p calls.log | cut -f1)
check "call log: simulated ms, the jump included" 1 "$(( T5 - T0 >= 61000 && T5 - T0 < 70000 ))"
check "call log: every line has a millisecond time" 5 "$(grep -cE '^1[0-9]{12}'$'\t' calls.log)"
req_bad() { "$SIM" --port 0 "$@" >bad.out 2>bad.err; echo $?; }
check "--single-window-s 0 is refused" 64 "$(req_bad --single-window-s 0)"
check "an unwritable --call-log is refused" 71 "$(req_bad --call-log /nonexistent/dir/x.log)"

finish
