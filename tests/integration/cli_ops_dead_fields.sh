#!/usr/bin/env bash
# pobox dead must show, per dead update, the attempts actually made and the
# last HTTP status Target answered.
#  1. every call answered HTTP 500, max_attempts = 2: the batch made 2
#     attempts (the reason says "gave up after 2 attempts"), so each dead
#     update shows attempts 2 and HTTP 500.
#  2. max_attempts = 1: attempts 1 and HTTP 500.
#  3. a refused batch (HTTP 400, the file too large) split down to one
#     profile: the dead update shows HTTP 400 (its reason says so).
. "$(cd "$(dirname "$0")" && pwd)/ops_lib.sh" "$@"

fields() { # SEQ -> "attempts http"
	"$POBOX" -c "$CONF" dead --json --id "$1" | python3 -c 'import json,sys; r=json.load(sys.stdin)[0]; print(r["attempts"], r["last_http_status"])'
}

new_scenario two_attempts
sim_start --error-rate 1 --error-codes 500
write_conf "max_attempts = 2" "backoff_base = 10ms" "backoff_cap = 50ms"
put_logged thirdPartyId p1 a=1
flush_wait "500 x2" 65 30
S=$(seq_of thirdPartyId p1 a 1)
check_eq "500 x2: the simulator got 2 submits" 2 "$(sim_counter calls.batch_update_v2.total)"
check_eq "500 x2: dead shows attempts 2, HTTP 500" "2 500" "$(fields "$S")"

new_scenario one_attempt
sim_start --error-rate 1 --error-codes 500
write_conf "max_attempts = 1" "backoff_base = 10ms" "backoff_cap = 50ms"
put_logged thirdPartyId p1 a=1
flush_wait "500 x1" 65 30
S=$(seq_of thirdPartyId p1 a 1)
check_eq "500 x1: dead shows attempts 1, HTTP 500" "1 500" "$(fields "$S")"

new_scenario refused
sim_start --max-batch-bytes 6000
write_conf "max_value_chars = 10000"
put_logged thirdPartyId a x=1
pb put thirdPartyId:big x="$(printf 'v%.0s' $(seq 1 8000))" >/dev/null
put_logged thirdPartyId c x=3
flush_wait "refused" 65 30
S=$(q "SELECT seq FROM v_dead WHERE profile_id = 'big'")
check_eq "refused: the reason names HTTP 400" 1 "$(q "SELECT count(*) FROM v_dead WHERE seq = $S AND reason LIKE '%HTTP 400%'")"
check_eq "refused: dead shows HTTP 400" 400 "$(fields "$S" | cut -d' ' -f2)"
finish
