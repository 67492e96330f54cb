#!/bin/bash
# Control endpoints (/_sim/...), command line handling, start-up line,
# clean shutdown, several client codes.
. "$(dirname "$0")/lib.sh"

cat >pre.csv <<'CSV'
thirdPartyId,zeta,alpha,mid
b-user,3,1,2
a-user,,x%20y,
CSV
printf 'pcId,k\n999,v\n' >pre_pc.csv

sim_start --preload pre.csv --client acme --client beta,gamma
check "start-up line" "listening on 127.0.0.1:$PORT" "$(cat sim.out)"
req "$B/m2/acme/profile/update?mbox3rdPartyId=a-user&profile.k=1"
check "--client acme accepted" 200 "$STATUS"
req "$B/m2/gamma/profile/update?mbox3rdPartyId=a-user&profile.k=2"
check "comma list: gamma accepted" 200 "$STATUS"
req "$B/m2/demo/profile/update?mbox3rdPartyId=a-user&profile.k=3"
check "default 'demo' replaced by --client" 400 "$STATUS"
batch /m2/beta/v2/profile/batchUpdate $'batch=pcId,k\n1000,w\n'
check_match "status URL carries the client code called" "/m2/beta/profile/batchStatus\\?batchId=beta-" "$BODY"

check "GET /_sim/profiles: sorted by id type, id; keys sorted" \
  '{"profiles":[{"idType":"pcId","id":"1000","attributes":{"k":"w"}},{"idType":"thirdPartyId","id":"a-user","attributes":{"alpha":"x y","k":"2"}},{"idType":"thirdPartyId","id":"b-user","attributes":{"alpha":"1","mid":"2","zeta":"3"}}]}' \
  "$(profiles)"

C=$(curl -s "$B/_sim/counters")
check "counters: single update ok" 2 "$(jget "$C" calls.single_update.ok)"
check "counters: single update refused (unknown client)" 1 "$(jget "$C" calls.single_update.refused)"
check "counters: v2 batch ok" 1 "$(jget "$C" calls.batch_update_v2.ok)"
check "counters: rows applied" 1 "$(jget "$C" rows_applied)"
check "counters: profiles" 3 "$(jget "$C" profiles)"
check "counters: seed" 1 "$(jget "$C" seed)"
check "counters: bulk calls in the last minute" 1 "$(jget "$C" bulk_calls_last_minute)"
check "counters: single calls in the last 24h" 2 "$(jget "$C" single_calls_last_24h)"

req -X POST "$B/_sim/visit?thirdPartyId=c-user"
check "visit: ok" '{"ok":true}' "$BODY"
req -X POST "$B/_sim/visit?pcId=77"
check "visit by pcId" 200 "$STATUS"
check "visit created the profiles" 5 "$(counter profiles)"
check "visits counted" 2 "$(counter visits)"
req -X POST "$B/_sim/visit"
check "visit without id: 400" 400 "$STATUS"
check "visit without id: message" '{"error":"need thirdPartyId=ID or pcId=ID"}' "$BODY"

req "$B/_sim/faults"
check "GET /_sim/faults: current plan" \
  '{"process_delay_ms":0,"stuck_rate":0,"status_keep":10,"status_ttl_s":86400,"shuffle_window_ms":0,"override":true,"max_batch_bytes":50000000,"max_batch_rows":500000,"bulk_per_minute":50,"single_budget":1000000,"max_get_bytes":8192,"max_post_bytes":61440,"notfound_silent":false,"error_rate":0,"error_codes":[500,502,503,504],"rate_429":0,"retry_after_s":1,"latency_ms":0,"latency_jitter_ms":0,"drop_rate":0,"reset_rate":0,"malformed_rate":0,"token":"","outage_start_s":0,"outage_len_s":0,"outage_drop":false,"require_auth":false,"ims_client_id":"","ims_client_secret":"","ims_scopes":"","tenant":"demo","ims_token_lifetime_s":86399,"profile_token_lifetime_s":86400,"ims_fail":0,"admin_fail":0,"status_base":""}' "$BODY"
req -X POST --data 'error_rate=0.25&error-codes=503&process_delay_ms=5000' "$B/_sim/faults"
check "POST /_sim/faults answers the new plan" "0.25 [503] 5000" \
  "$(jget "$BODY" error_rate) $(jget "$BODY" error_codes) $(jget "$BODY" process_delay_ms)"
req -X POST "$B/_sim/faults?error_rate=0"
check "settings may also come in the query" 0 "$(jget "$BODY" error_rate)"

batch /m2/acme/profile/batchUpdate $'batch=thirdPartyId,k\nb-user,9\n'
check "pending batch listed" 1 "$(counter batches_pending)"
req -X POST "$B/_sim/process"
check "process: how many" '{"processed":1}' "$BODY"
check "processed" 9 "$(jget "$(profiles)" profiles.3.attributes.k)"

T1=$(jget "$(curl -s "$B/_sim/clock")" now_ms)
req -X POST "$B/_sim/clock?advance_s=3600"
T2=$(jget "$BODY" now_ms)
check "clock advanced by an hour" 1 "$(( T2 - T1 >= 3600000 && T2 - T1 < 3700000 ))"
req -X POST "$B/_sim/clock?advance_s=-5"
check "clock never goes back" 400 "$STATUS"

req -X POST "$B/_sim/reset"
check "reset: ok" '{"ok":true}' "$BODY"
check "reset: store back to the preload" \
  '{"profiles":[{"idType":"thirdPartyId","id":"a-user","attributes":{"alpha":"x y"}},{"idType":"thirdPartyId","id":"b-user","attributes":{"alpha":"1","mid":"2","zeta":"3"}}]}' "$(profiles)"
check "reset: counters zeroed" 0 "$(counter calls.single_update.ok)"
check "reset: plan back to the flags" 5000 "$(jget "$(curl -s -X POST --data process_delay_ms=5000 "$B/_sim/faults")" process_delay_ms)"
curl -s -X POST "$B/_sim/reset" >/dev/null
check "reset: plan restored" 0 "$(jget "$(curl -s "$B/_sim/faults")" process_delay_ms)"
req "$B/_sim/nosuch"
check "unknown control endpoint: 404" 404 "$STATUS"
req -X POST "$B/_sim/profiles"
check "wrong method on a control endpoint: 404" 404 "$STATUS"
req "$B/nowhere"
check "unknown Target path: 404" 404 "$STATUS"
check "unknown Target path: XML" "<response><success>false</success><message>no such endpoint</message></response>" "$BODY"

# a second simulator on the same port cannot start
"$SIM" --port "$PORT" >/dev/null 2>err.txt
check "port in use: exit 71" 71 "$?"
check_match "port in use: message" "cannot listen on 127.0.0.1:$PORT" "$(cat err.txt)"
sim_stop

# SIGINT stops it cleanly too
sim_start --preload pre_pc.csv
check "pcId preload" '{"profiles":[{"idType":"pcId","id":"999","attributes":{"k":"v"}}]}' "$(profiles)"
kill -INT "$SIM_PID"; wait "$SIM_PID"; RC=$?; SIM_PID=
check "SIGINT: exit 0" 0 "$RC"

# command line errors: exit 64 and a clear message
usage() {
	"$SIM" "$@" >/dev/null 2>err.txt
	echo "$? $(head -1 err.txt)"
}
check "unknown flag" "64 pobox-target-sim: unknown flag '--bogus' (try --help)" "$(usage --bogus)"
check "bad rate" "64 pobox-target-sim: --error-rate: '1.5' is not a number in [0, 1]" "$(usage --error-rate 1.5)"
check "bad port" "64 pobox-target-sim: --port: '70000' is not an integer in [0, 65535]" "$(usage --port 70000)"
check "missing value" "64 pobox-target-sim: --seed needs a value" "$(usage --seed)"
check "bad codes" "64 pobox-target-sim: --error-codes: '500,abc' is not a comma list of at most 16 HTTP error codes (400-599)" "$(usage --error-codes 500,abc)"
check "bad client" "64 pobox-target-sim: --client: 'a b' is not a client code (letters, digits, '-', '_')" "$(usage --client 'a b')"
check "bad bool" "64 pobox-target-sim: --override: 'maybe' is not a boolean (1/0, on/off, true/false)" "$(usage --override=maybe)"
check "stray argument" "64 pobox-target-sim: unexpected argument 'x' (try --help)" "$(usage x)"
check "missing preload" "64 pobox-target-sim: --preload: cannot open /nonexistent.csv: No such file or directory" "$(usage --preload /nonexistent.csv)"
printf 'email,a\nx,1\n' >badpre.csv
check "preload with a bad id column" "64 pobox-target-sim: --preload: badpre.csv: unknown id column 'email': the first header must be pcId or thirdPartyId" "$(usage --preload badpre.csv)"
"$SIM" --help >help.txt
check "--help exits 0" 0 "$?"
check_match "--help lists every flag" '--clock-scale.*' "$(tr '\n' ' ' <help.txt)"

finish
