#!/usr/bin/env bash
# pobox verify: its fetch rate, bad input, and a Target that refuses it.
#  - --rate R: the simulator's fetch log (arrival times in real ms) never
#    holds more than R fetches in any second (plus one at the window's
#    edges), and N fetches span at least (N-1)/R, less 10% for arrival
#    jitter; verify_rate in the configuration does the same.  Only
#    slowness is asserted, never speed: machines are loaded;
#  - bad options are refused with what is wrong, before any fetch (exit 64);
#    a profile or batch pobox does not have is 66, a batch Target never took
#    is 64;
#  - a Target that wants a token pobox does not have: one clear line, 69;
#    with the right token_file it passes; a missing token_file is a
#    configuration error (78), and so is a token with a plain http
#    base_url off loopback (the token would cross the network); a wrong client code is 69 naming client and
#    base_url; Target failing every fetch stops the run (75) and says why.
. "$(cd "$(dirname "$0")" && pwd)/ops_lib.sh" "$@"
command -v jq >/dev/null || { fail "jq is needed"; finish; }

# last_fetches N WINDOW_MS: "most-in-any-window span_ms" over the last N fetches
last_fetches() {
	curl -s "$B/_sim/fetches" | jq -r --argjson n "$1" --argjson w "$2" '
		[.fetches[-$n:][].real_ms] | sort as $t
		| [range(0; $t | length) as $i | [$t[] | select(. >= $t[$i] and . < $t[$i] + $w)] | length] | max as $m
		| "\($m) \($t[-1] - $t[0])"'
}
fetch_count() { curl -s "$B/_sim/fetches?list=0" | jq -r .count; }

new_scenario rate
sim_start
write_conf "verify_rate = 8"
{
	echo "thirdPartyId,tier"
	for i in $(seq 1 12); do echo "r-$i,t$i"; done
} >"$T/rate/in.csv"
pbr 0 "rate: import" import "$T/rate/in.csv"
flush_wait rate 0 60

pbr 0 "rate: --rate 4" verify --all --rate 4
check_eq "rate: 12 fetches" 12 "$(fetch_count)"
read -r most span <<<"$(last_fetches 12 1000)"
check_le "rate: --rate 4: at most 4 (+1 at the edges) fetches in any second" 5 "$most"
check_ge "rate: --rate 4: 12 fetches span at least 11 x 250 ms - 10%" 2475 "$span"
pbr 0 "rate: verify_rate = 8 from the configuration" verify --all
read -r most span <<<"$(last_fetches 12 1000)"
check_le "rate: verify_rate 8: at most 8 (+1) in any second" 9 "$most"
check_ge "rate: verify_rate 8: 12 fetches span at least 11 x 125 ms - 10%" 1237 "$span"
pbr 0 "rate: --rate 0.5 with one profile is one fetch, no wait" verify --id thirdPartyId:r-1 --rate 0.5
check_eq "rate: 25 fetches in all" 25 "$(fetch_count)"

# ---- bad input: refused before any fetch ---------------------------------------------------
before=$(fetch_count)
bad() { # NAME EXIT TEXT ARGS...
	local name=$1 want=$2 text=$3; shift 3
	pbr "$want" "bad input: $name" verify "$@"
	out_has "bad input: $name: says what is wrong" "$text"
}
bad "--id unknown type" 64 "verify: --id: " --id email:a@b.c
bad "--id ECID" 64 "ECID (marketingCloudVisitorId) is not supported" --id ECID:123
bad "--id without a type" 64 "is not TYPE:ID; write e.g. thirdPartyId:crm-42" --id crm-42
bad "--sample 0" 64 "verify: --sample '0': give how many profiles to fetch, 1 or more" --sample 0
bad "--sample -3" 64 "verify: --sample '-3'" --sample -3
bad "--sample x" 64 "verify: --sample 'x'" --sample x
bad "--rate 0" 64 "verify: --rate: verify_rate = '0': expected a rate per second" --rate 0
bad "--rate nan" 64 "verify_rate = 'nan'" --rate nan
bad "--grace soon" 64 "verify: --grace: verify_grace = 'soon'" --grace soon
bad "--since -1h" 64 "verify: --since '-1h' is not a duration" --since -1h
bad "--batch x" 64 "verify: --batch 'x' is not a batch id" --batch x
bad "--sample with --all" 64 "--sample and --all exclude each other" --sample 3 --all
bad "--id with --since" 64 "--id names one profile" --id thirdPartyId:r-1 --since 1h
bad "an argument" 64 "unexpected argument 'r-1'" r-1
bad "an unknown profile" 66 "thirdPartyId:nobody is not in the outbox" --id thirdPartyId:nobody
bad "an unknown batch" 66 "there is no batch 99" --batch 99
check_eq "bad input: no fetch was made" "$before" "$(fetch_count)"
check_eq "bad input: nothing recorded" 3 "$(q "SELECT count(*) FROM verifications")"
# a batch Target never took: cut while Target is down, never sent
pbr 0 "a batch not sent: put" put thirdPartyId:r-99 tier=x
pbr 0 "a batch not sent: flush (cut only)" flush
bad "a batch Target never took" 64 "is ready: Target has not taken it" --batch 2
bad "a profile never sent" 66 "nothing of thirdPartyId:r-99 has reached Target yet" --id thirdPartyId:r-99

# ---- auth ----------------------------------------------------------------------------------
sim_faults 'token=s3cret-token'
pbr 69 "auth: Target wants a token and none is configured" verify --all --rate 100
out_has "auth: says so, with Target's answer and the keys to set" \
	"it wants a token and none is configured; set token_file, token_command or ims_* (pobox.conf(5))"
out_has "auth: the HTTP status and path" "GET /rest/v1/profiles/thirdPartyId/r-1: HTTP 401"
check_eq "auth: one refused fetch, then it stopped" "$((before + 1))" "$(fetch_count)"
printf 's3cret-token\n' >"$T/rate/token"
chmod 600 "$T/rate/token"
write_conf "token_file = $T/rate/token"
pbr 0 "auth: with token_file" verify --all --rate 100
printf 'wrong\n' >"$T/rate/token"
pbr 69 "auth: a wrong token" verify --all --rate 100
out_has "auth: refused even after re-reading the token" "Target refused the profile fetch"
out_has "auth: 403" "HTTP 403"
write_conf "token_file = $T/rate/missing"
pbr 78 "auth: a token_file that is not there" verify --all
out_has "auth: names the file" "$T/rate/missing"
# the token goes only to base_url's origin, and never in clear over the network
printf 's3cret-token\n' >"$T/rate/token"
write_conf "token_file = $T/rate/token"
sed -i "s#^base_url = .*#base_url = http://target.example.invalid:$PORT#" "$CONF"
before=$(fetch_count)
pbr 78 "auth: a token over plain http to a non-loopback host" verify --all --rate 100
out_has "auth: says why" "is plain http: the bearer token would cross the network"
check_eq "auth: no fetch made" "$before" "$(fetch_count)"
sim_faults 'token='

# ---- Target answering something else -------------------------------------------------------
write_conf "client = nosuchclient"
pbr 69 "a wrong client code" verify --all --rate 100
out_has "a wrong client code: says to check client and base_url" "check client and base_url"
out_has "a wrong client code: Target's message" "HTTP 400"
write_conf
sim_faults 'error_rate=1&error_codes=503&retry_after_s=0'
pbr 75 "Target failing every fetch" verify --all --rate 100
out_has "failing: stops and says why" "5 profiles in a row could not be fetched: stopped"
out_has "failing: the HTTP status" "HTTP 503"
check_eq "failing: recorded with its fetch errors" "5 0" \
	"$(q "SELECT fetch_errors || ' ' || profiles FROM verifications ORDER BY id DESC LIMIT 1")"
sim_faults 'error_rate=0'
finish
