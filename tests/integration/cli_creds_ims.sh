#!/usr/bin/env bash
# Adobe IMS OAuth server-to-server + Target's Admin API, against the
# simulator playing both (auth required on the profile endpoints):
#  expiry  the profile token (and the IMS token) expire mid-delivery on the
#          accelerated clock: delivery completes without a pause, the
#          refused calls retried with a new token;
#  single  the token revoked between two urgent updates: the single lane
#          gets a new token and delivers without a pause;
#  shared  four processes starting at once mint one token (the cache beside
#          the outbox, mode 600); later runs reuse it; a token regenerated
#          in the UI (403) is replaced once;
#  secret  a wrong client secret: flush --wait exits 69 at once with a
#          one-line reason naming IMS, nothing lost; fixed + SIGHUP to a
#          running `pobox run`: delivered;
#  fail    IMS 400, Admin API 406, an unknown tenant, IMS unreachable: each
#          exits 69 with a reason naming the step; configuration mistakes
#          exit 78; then the next run with everything fixed delivers it all;
#  leaks   no secret in logs, status, ps, the outbox or its WAL.
. "$(dirname "$0")/creds_lib.sh"
seed=${BULK_SEED:-1313}
echo "# seed $seed"
LOGS=()

# ---- expiry: tokens run out mid-delivery (x100 clock) ----
new_scenario expiry
std_data "$seed" --tp 120 --pc 40 --updates 700 --files 2
# profile token 150 s (1.5 real s), IMS token 400 s (4 real s); each batch
# is applied 200 s (2 real s) after it arrives, so every completion is
# polled after the first profile token has expired
mapfile -t F < <(sim_ims_flags)
sim_start --seed "$seed" --preload "$PRELOAD" "${F[@]}" --clock-scale 100 \
	--profile-token-lifetime-s 150 --ims-token-lifetime-s 400 --process-delay-ms 200000
write_secret "$T/expiry/secret"
BULK_SINGLE_LANE=1 write_conf "max_batch_rows = 40"
ims_conf_lines "$T/expiry/secret" >>"$CONF"
enqueue_imports "$T/expiry/gen"
ps_watch_start
flush_wait "expiry" 0 120
ps_watch_stop
cp "$T/flush.out" "$T/flush.err" "$T/expiry/"
LOGS+=("$T/expiry/flush.out" "$T/expiry/flush.err")
std_checks expiry
check_ge "expiry: the simulator refused an expired profile token" 1 "$(sim_counter expired_token_refusals)"
check_ge "expiry: more than one profile token was minted" 2 "$(sim_counter profile_tokens_created)"
echo "# expiry: $(sim_counter ims_tokens_issued) IMS tokens, $(sim_counter profile_tokens_created) profile tokens created, $(sim_counter profile_tokens_retrieved) retrieved, $(sim_counter expired_token_refusals) expired-token refusals, single calls $(sim_counter calls.single_update.ok)"
if grep -q 'lane_paused' "$T/flush.err"; then fail "expiry: no lane paused" "$(grep lane_paused "$T/flush.err")"
else pass "expiry: no lane paused"; fi
check_ge "expiry: refused calls were retried with a new token" 1 "$(grep -c 'token_refused .*action=retry_with_new_token' "$T/flush.err")"
check_ge "expiry: lifetimes and refresh times are logged" 2 "$(grep -Ec 'token_obtained source=ims .*lifetime_s=[0-9]+ expires_at=[0-9T:Z-]+ refresh_at=' "$T/flush.err")"
check_ge "expiry: the IMS token's lifetime is logged" 1 "$(grep -Ec 'ims_token_obtained lifetime_s=400 ' "$T/flush.err")"
secrets_file "$T/expiry/secrets"
leak_check expiry "$T/expiry/secrets" "$T/expiry/flush.out" "$T/expiry/flush.err"

# ---- single: the token revoked between two urgent updates ----
new_scenario single
printf 'pcId,tier\n1001-1,bronze\n1001-2,bronze\n' >"$T/single/pre.csv"
mapfile -t F < <(sim_ims_flags)
sim_start --seed "$seed" --preload "$T/single/pre.csv" "${F[@]}"
write_secret "$T/single/secret"
BULK_SINGLE_LANE=1 write_conf
ims_conf_lines "$T/single/secret" >>"$CONF"
"$POBOX" -c "$CONF" run >"$T/single/run.out" 2>"$T/single/run.err" &
RUN_PID=$!; bg "$RUN_PID"
put_urgent pcId 1001-1 tier=silver
wait_for "single: first urgent update delivered" 30 counter_ge calls.single_update.ok 1
sleep 1.2   # past token_min_interval (1s): a refusal now may ask for a new token
curl -s -X POST "$B/_sim/auth?expire=revoke" >/dev/null   # regenerated in the Target UI
put_urgent pcId 1001-2 tier=gold
wait_for "single: second urgent update delivered after the revocation" 30 counter_ge calls.single_update.ok 2
check_ge "single: the revoked token was refused (403)" 1 "$(sim_counter calls.single_update.forbidden)"
kill -TERM "$RUN_PID"; wait "$RUN_PID"
check_eq "single: pobox run stops cleanly" 0 "$?"
check_store single --preload "$T/single/pre.csv"
check_ge "single: the single lane retried with a new token" 1 "$(grep -c 'token_refused lane=single action=retry_with_new_token' "$T/single/run.err")"
if grep -q 'lane_paused' "$T/single/run.err"; then fail "single: no lane paused" "$(grep lane_paused "$T/single/run.err")"
else pass "single: no lane paused"; fi
check_eq "single: no update charged an attempt" 0 "$(q "SELECT count(*) FROM v_updates WHERE attempts > 0")"
LOGS+=("$T/single/run.out" "$T/single/run.err")
secrets_file "$T/single/secrets"
leak_check single "$T/single/secrets" "$T/single/run.out" "$T/single/run.err"

# ---- shared: one mint for processes starting together ----
new_scenario shared
mapfile -t F < <(sim_ims_flags)
sim_start --seed "$seed" "${F[@]}"
write_secret "$T/shared/secret"
write_conf
ims_conf_lines "$T/shared/secret" >>"$CONF"
pids=
for i in 1 2 3 4; do pb auth >"$T/shared/auth.$i.out" 2>"$T/shared/auth.$i.err" & pids="$pids $!"; done
rcs=0; for p in $pids; do wait "$p" || rcs=$((rcs + 1)); done
check_eq "shared: four pobox auth at once all succeed" 0 "$rcs"
check_eq "shared: one IMS token for the four" 1 "$(sim_counter ims_tokens_issued)"
check_eq "shared: one profile token for the four" 1 "$(sim_counter profile_tokens_created)"
check_eq "shared: two Admin API calls (GET: none yet, POST)" 2 "$(sim_counter calls.admin_token.total)"
check_eq "shared: three of them took the cached token" 3 "$(grep -l '^token: from cache' "$T"/shared/auth.*.out | wc -l)"
check_eq "shared: the cache is mode 600" 600 "$(stat -c %a "$DB-token.cache")"
check_eq "shared: pobox auth never prints a token" 0 "$(cat "$T"/shared/auth.*.out | grep -cE 'ptk-|ims-[0-9]')"
pb auth --json >"$T/shared/auth.json" 2>"$T/shared/auth.json.err"
check_eq "shared: pobox auth --json" "ims true cache true true" \
	"$(jq -r '"\(.source) \(.have_token) \(.origin) \(.expires_at | test("Z$")) \(.ims_expires_at | test("Z$"))"' "$T/shared/auth.json")"
import_logged s 1 40
"$POBOX" -c "$CONF" run >"$T/shared/run.out" 2>"$T/shared/run.err" &
RUN_PID=$!; bg "$RUN_PID"
flush_wait "shared: flush --wait while run delivers" 0 60
kill -TERM "$RUN_PID"; wait "$RUN_PID"
check_store shared
check_eq "shared: run and flush used the cached token (no new mint)" "1 1 2" \
	"$(sim_counter ims_tokens_issued) $(sim_counter profile_tokens_created) $(sim_counter calls.admin_token.total)"
# the token is regenerated in the Target UI: the next run is refused (403),
# replaces it once, delivers
curl -s -X POST "$B/_sim/auth?expire=revoke" >/dev/null
import_logged s 41 60
flush_wait "shared: after the token was regenerated elsewhere" 0 60
check_store shared
check_eq "shared: a new profile token, with the cached IMS token" "1 2" \
	"$(sim_counter ims_tokens_issued) $(sim_counter profile_tokens_created)"
check_ge "shared: the 403 came first" 1 "$(sim_fault_total forbidden)"
cp "$T/flush.out" "$T/flush.err" "$T/shared/"
LOGS+=("$T"/shared/*.out "$T"/shared/*.err)
secrets_file "$T/shared/secrets"
leak_check shared "$T/shared/secrets" "$T"/shared/*.out "$T"/shared/*.err

# ---- secret: a wrong client secret, fixed while `run` waits ----
new_scenario secret
std_data "$seed" --tp 60 --pc 10 --updates 200 --files 1
mapfile -t F < <(sim_ims_flags)
sim_start --seed "$seed" --preload "$PRELOAD" "${F[@]}"
write_secret "$T/secret/secret" 'not-the-secret'
write_conf "max_batch_rows = 40"
ims_conf_lines "$T/secret/secret" >>"$CONF"
enqueue_imports "$T/secret/gen"
total=$(q "SELECT count(*) FROM v_updates")
start=$(date +%s)
flush_wait "secret: wrong client secret" 69 60
cp "$T/flush.err" "$T/secret/first.err"; LOGS+=("$T/secret/first.err")
check_le "secret: exits at once (seconds)" 15 "$(( $(date +%s) - start ))"
one_reason "secret" "$T/flush.err" 'IMS token: POST http://127\.0\.0\.1:[0-9]+/ims/token/v3: HTTP 401 invalid_client: invalid client_secret parameter'
nothing_lost secret "$total"
CHECK_LOG=/dev/null check_store "secret: nothing delivered" --preload "$PRELOAD"
check_eq "secret: no profile call was made without a token" 0 "$(sim_fault_total unauthorized)"
"$POBOX" -c "$CONF" run >"$T/secret/run.out" 2>"$T/secret/run.err" &
RUN_PID=$!; bg "$RUN_PID"
wait_for "secret: run pauses on the wrong secret" 30 grep -q 'lane_paused lane=bulk class=auth' "$T/secret/run.err"
write_secret "$T/secret/secret"
kill -HUP "$RUN_PID"
wait_for "secret: delivered after the fix and SIGHUP" 60 sh -c "[ \"\$(sqlite3 -cmd '.timeout 30000' '$DB' \"SELECT count(*) FROM v_updates WHERE state IN ('pending','batched')\")\" = 0 ]"
kill -TERM "$RUN_PID"; wait "$RUN_PID"
std_checks secret
check_ge "secret: run reloaded" 1 "$(grep -c ' reloaded ' "$T/secret/run.err")"
cp "$T/flush.out" "$T/flush.err" "$T/secret/"
LOGS+=("$T/secret/flush.out" "$T/secret/flush.err" "$T/secret/run.out" "$T/secret/run.err")
secrets_file "$T/secret/secrets" not-the-secret
leak_check secret "$T/secret/secrets" "$T/secret/flush.out" "$T/secret/flush.err" "$T/secret/run.out" "$T/secret/run.err"

# ---- fail: each step's failure, then the next run with the fix ----
new_scenario fail
mapfile -t F < <(sim_ims_flags)
sim_start --seed "$seed" "${F[@]}"
write_secret "$T/fail/secret"
fconf() { write_conf; ims_conf_lines "$T/fail/secret" >>"$CONF"; local l; for l in "$@"; do echo "$l" >>"$CONF"; done; }
fconf
import_logged f 1 30
total=$(q "SELECT count(*) FROM v_updates")

fconf; sim_faults 'ims_fail=400'
flush_wait "fail: IMS answers 400" 69 60
one_reason "fail: IMS 400" "$T/flush.err" 'IMS token: POST http://[^ ]+/ims/token/v3: HTTP 400 invalid_request'
cp "$T/flush.err" "$T/fail/ims400.err"; LOGS+=("$T/fail/ims400.err")
pb auth >"$T/fail/auth.out" 2>"$T/fail/auth.err"
check_eq "fail: pobox auth exits 69 too" 69 "$?"
check_ge "fail: pobox auth names the step" 1 "$(grep -c '^pobox: auth: no profile API token: IMS token: POST .*HTTP 400 invalid_request' "$T/fail/auth.err")"
LOGS+=("$T/fail/auth.out" "$T/fail/auth.err")
sim_faults 'ims_fail=0&admin_fail=406'
flush_wait "fail: the Admin API answers 406" 69 60
one_reason "fail: Admin API 406" "$T/flush.err" 'Admin API token: GET http://[^ ]+/acme/target/authentication/token: HTTP 406 Simulated'
cp "$T/flush.err" "$T/fail/admin406.err"; LOGS+=("$T/fail/admin406.err")
sim_faults 'admin_fail=0'
fconf "target_tenant = nope"
sed -i '/^target_tenant = acme$/d' "$CONF"
flush_wait "fail: unknown tenant" 69 60
one_reason "fail: unknown tenant" "$T/flush.err" 'Admin API token: POST http://[^ ]+/nope/target/authentication/token: HTTP 404 NotFound: unknown tenant .nope. \(check target_tenant\)'
cp "$T/flush.err" "$T/fail/tenant.err"; LOGS+=("$T/fail/tenant.err")
fconf; sed -i "s|^ims_base_url = .*|ims_base_url = http://127.0.0.1:1|" "$CONF"
flush_wait "fail: IMS unreachable" 69 60
one_reason "fail: IMS unreachable" "$T/flush.err" 'IMS token: POST http://127\.0\.0\.1:1/ims/token/v3: connect: '
cp "$T/flush.err" "$T/fail/unreach.err"; LOGS+=("$T/fail/unreach.err")
nothing_lost fail "$total"
check_eq "fail: no profile call was made without a token" 0 "$(sim_fault_total unauthorized)"
# configuration mistakes: exit 78 before anything is sent
ims_calls=$(sim_counter calls.ims_token.total)
fconf; sed -i '/^ims_scopes/d' "$CONF"
flush_wait "fail: no ims_scopes" 78 30
check_ge "fail: no ims_scopes: says what to copy" 1 "$(grep -c 'ims_scopes is not set: copy the scopes' "$T/flush.err")"
fconf; chmod 644 "$T/fail/secret"
flush_wait "fail: secret file readable by others" 78 30
check_ge "fail: mode 644 secret: refused with the fix" 1 "$(grep -c 'is readable by other users (mode 0644); run chmod 600' "$T/flush.err")"
chmod 600 "$T/fail/secret"
fconf "token_file = $T/fail/secret"
flush_wait "fail: two sources" 78 30
check_ge "fail: two sources: named" 1 "$(grep -c 'set only one of token_file, token_command and ims_client_id' "$T/flush.err")"
check_eq "fail: nothing reached IMS for the configuration errors" "$ims_calls" \
	"$(sim_counter calls.ims_token.total)"
write_conf
pb auth --json >"$T/fail/auth.json" 2>&1
check_eq "fail: no credentials configured: pobox auth says so" 'none false null' \
	"$(jq -r '"\(.source) \(.have_token) \(.obtained_at)"' "$T/fail/auth.json")"
# the next run, fixed: everything is delivered
fconf
flush_wait "fail: fixed" 0 60
check_store fail
check_all_delivered fail
cp "$T/flush.out" "$T/flush.err" "$T/fail/"
LOGS+=("$T/fail/flush.out" "$T/fail/flush.err")
secrets_file "$T/fail/secrets"
leak_check fail "$T/fail/secrets" "${LOGS[@]}"
finish
