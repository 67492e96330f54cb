#!/bin/bash
# Fault switches, by flag and at run time: injected 5xx, 429, latency,
# dropped connections, resets mid-answer, malformed XML, outage window,
# and seeded replay.  Control endpoints are never faulted.
. "$(dirname "$0")/lib.sh"

printf 'thirdPartyId,a\np1,0\n' >pre.csv
U="/m2/demo/profile/update?mbox3rdPartyId=p1&profile.a"
OK='<response><success>true</success><pcId></pcId><message>Request successfully submitted</message></response>'
faults() { curl -s -X POST --data "$1" "$B/_sim/faults" >/dev/null; }

# --- injected errors, by flag
sim_start --preload pre.csv --error-rate 1 --error-codes 502
req "$B$U=1"
check "--error-rate 1 --error-codes 502: 502" 502 "$STATUS"
check "502 body is a gateway's HTML" "<html><body><h1>502 Bad Gateway</h1></body></html>" "$BODY"
check "errored update not applied" 0 "$(jget "$(profiles)" profiles.0.attributes.a)"
req "$B/_sim/counters"
check "control endpoints are never faulted" 200 "$STATUS"
check "counted as fault_error" 1 "$(counter calls.single_update.fault_error)"
sim_stop

# --- run-time changes on one simulator
sim_start --preload pre.csv --retry-after-s 7
faults 'error_rate=1&error_codes=503'
req "$B$U=1"
check "503 injected at run time" 503 "$STATUS"
check "injected 503 carries Retry-After" 7 "$(header Retry-After)"
faults 'error_rate=1&error_codes=500,504'
CODES=
for i in 1 2 3 4 5 6 7 8 9 10; do req "$B$U=1"; CODES="$CODES $STATUS"; done
check_match "codes drawn from the list only" '^( (500|504)){10}$' "$CODES"
check_match "both codes occur" '500.*504|504.*500' "$CODES"
faults 'error_rate=0&rate_429=1'
req "$B$U=1"
check "429 injected" 429 "$STATUS"
check "429 Retry-After" 7 "$(header Retry-After)"
check "429 body" "<response><success>false</success><message>Too many requests</message></response>" "$BODY"
faults 'rate_429=0&retry_after_s=2&error_rate=1&error_codes=503'
req "$B$U=1"
check "retry_after_s changed at run time" 2 "$(header Retry-After)"
faults 'error_rate=0'
req "$B$U=1"
check "faults off again: normal answer" "$OK" "$BODY"
req -X POST --data 'error_rate=2' "$B/_sim/faults"
check "invalid setting refused: 400" 400 "$STATUS"
check "invalid setting: message" '{"error":"error-rate: '"'"'2'"'"' is not a number in [0, 1]"}' "$BODY"
req -X POST --data 'port=1' "$B/_sim/faults"
check "start-up-only setting refused" '{"error":"'"'"'port'"'"' is not a run-time setting"}' "$BODY"

# latency: fixed, without blocking other connections
faults 'latency_ms=700'
curl -s -o /dev/null -w '%{time_total}' "$B$U=2" >lat.txt &
LPID=$!
sleep 0.1
T0=$(date +%s%N)
req "$B/_sim/counters"
T1=$(date +%s%N)
wait $LPID
check "control answers while a slow request is held" 1 "$(( (T1 - T0) < 400000000 ))"
check "--latency-ms 700: answer after >= 0.7 s" 1 "$(python3 -c "print(1 if float('$(cat lat.txt)') >= 0.69 else '$(cat lat.txt)')")"
faults 'latency_ms=0&latency_jitter_ms=300'
MAX=0
for i in 1 2 3 4 5 6; do
	t=$(curl -s -o /dev/null -w '%{time_total}' "$B$U=3")
	MAX=$(python3 -c "print(max($MAX, $t))")
done
check "jitter: delays within [0, 0.3 s) (+ slack for slow machines)" 1 "$(python3 -c "print(1 if $MAX < 0.6 else $MAX)")"
check "jitter: some delay seen" 1 "$(python3 -c "print(1 if $MAX > 0.02 else $MAX)")"
faults 'latency_jitter_ms=0'

# dropped: request read, connection closed without an answer
faults 'drop_rate=1'
curl -s -o /dev/null "$B$U=4"
check "drop: curl sees an empty reply (exit 52)" 52 "$?"
check "drop counted" 1 "$(counter calls.single_update.fault_drop)"
check "dropped request not applied" 3 "$(jget "$(profiles)" profiles.0.attributes.a)"
faults 'drop_rate=0'

# reset half-way through the answer: the update itself was applied
faults 'reset_rate=1'
curl -s -o part.txt "$B$U=5"
RC=$?
check_match "reset: curl fails mid-body (exit 18 or 56)" '^(18|56)$' "$RC"
check "reset: applied although the answer was lost" 5 "$(jget "$(profiles)" profiles.0.attributes.a)"
check "reset counted" 1 "$(counter calls.single_update.fault_reset)"
faults 'reset_rate=0'

# malformed: valid HTTP, broken XML; the update was applied
faults 'malformed_rate=1'
PARSE_OK=0
for i in 1 2 3 4 5 6; do
	req "$B$U=6"
	[ "$STATUS" = 200 ] || break
	printf '%s' "$BODY" | python3 -c 'import sys, xml.dom.minidom as m; m.parseString(sys.stdin.buffer.read())' 2>/dev/null && PARSE_OK=1
done
check "malformed: HTTP 200 each time" 200 "$STATUS"
check "malformed: no answer parses as XML" 0 "$PARSE_OK"
check "malformed: applied" 6 "$(jget "$(profiles)" profiles.0.attributes.a)"
batch /m2/demo/v2/profile/batchUpdate $'batch=thirdPartyId,a\np2,1\n'
check_match "malformed applies to batch answers too" '.' "$BODY"
printf '%s' "$BODY" | python3 -c 'import sys, xml.dom.minidom as m; m.parseString(sys.stdin.buffer.read())' 2>/dev/null
check "batch answer does not parse" 1 "$?"
faults 'malformed_rate=0'
sim_stop

# --- outage window on the simulated clock: 503 for its length, then back
sim_start --preload pre.csv --outage-start-s 0 --outage-len-s 10
req "$B$U=7"
check "outage: 503" 503 "$STATUS"
check "outage: body" "Service Unavailable (simulated outage)" "$BODY"
batch /m2/demo/v2/profile/batchUpdate $'batch=thirdPartyId,a\np1,1\n'
check "outage covers every endpoint" 503 "$STATUS"
check "outage counted" 1 "$(counter calls.single_update.outage)"
# 5 s short of the end: the simulated clock also runs in real time, and
# the checks above (python3 starts) can take over a second on a loaded
# machine - '9 s in, still out' failed once in a clean-clone CI run
curl -s -X POST "$B/_sim/clock?advance_s=5" >/dev/null
req "$B$U=7"
check "5 simulated s in: still out" 503 "$STATUS"
curl -s -X POST "$B/_sim/clock?advance_s=5" >/dev/null
req "$B$U=7"
check "after the outage: normal" "$OK" "$BODY"
faults 'outage_start_s=5&outage_len_s=3600&outage_drop=1'
req "$B$U=8"
check "a run-time outage starts relative to when it is set" 200 "$STATUS"
curl -s -X POST "$B/_sim/clock?advance_s=5" >/dev/null
curl -s -o /dev/null "$B$U=8"
check "outage_drop set at run time: connection closed (exit 52)" 52 "$?"
sim_stop

# --- seeded replay: same seed, same faults; another seed, others
sequence() {
	sim_start --preload pre.csv --seed "$1" --error-rate 0.5 --rate-429 0.3
	local s=
	for i in $(seq 1 24); do s="$s$(curl -s -o /dev/null -w '%{http_code}' "$B$U=$i") "; done
	sim_stop >/dev/null
	echo "$s"
}
S1=$(sequence 7)
check "same seed replays the same faults" "$S1" "$(sequence 7)"
S3=$(sequence 8)
check "another seed gives another run" 1 "$([ "$S1" != "$S3" ] && echo 1 || echo "$S3")"
check_match "a run mixes outcomes" '200.*(50[0-4]|429)|(50[0-4]|429).*200' "$S1"

finish
