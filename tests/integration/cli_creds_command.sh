#!/usr/bin/env bash
# token_command, the credential helper pobox runs (no shell unless asked):
#  expiry    a helper that mints tokens from the simulated Admin API (which
#            expire mid-delivery on the accelerated clock): delivery completes
#            without a pause; the helper ran again after the refusal
#            (POBOX_TOKEN_REASON=refused);
#  proactive a helper stating a 5 s expiry: pobox runs it again before the
#            expiry, never more than once per token_min_interval, and Target
#            never sees a call without a valid token;
#  fail      non-zero exit (its stderr in the log), a timeout (the helper and
#            its child killed), malformed JSON, nothing printed, JSON without
#            a token, a helper that does not exist: each exits 69 with a
#            one-line reason, nothing lost; a bad command line exits 78; the
#            next run with a working helper delivers everything;
#  leaks     no token in logs, status, ps, the outbox or its WAL.
. "$(dirname "$0")/creds_lib.sh"
seed=${BULK_SEED:-2424}
echo "# seed $seed"
LOGS=()

# write_minter FILE BASE RUNS_LOG SECRET_FILE: a helper that mints a profile
# token from the simulator the way an operator's would (IMS, then the Admin
# API), secrets passed to curl on stdin so they never show in ps; prints
# {"token", "expires_at"} and logs why it ran.
write_minter() {
	{
		printf '#!/bin/sh\nset -eu\nbase=%s log=%s secret_file=%s\n' "$2" "$3" "$4"
		cat <<'EOF'
echo "$(date +%s.%N) ${POBOX_TOKEN_REASON:-?}" >>"$log"
ims=$( { printf 'data = "grant_type=client_credentials&client_id=pobox-test-client&scope=openid"\n'
         printf 'data-urlencode = "client_secret@%s"\n' "$secret_file"; } |
       curl -sf -K - "$base/ims/token/v3" | jq -r .access_token)
ans=$(printf 'header = "Authorization: Bearer %s"\n' "$ims" |
      curl -sf -K - -X POST -H 'X-Api-Key: pobox-test-client' \
        -H 'Accept: application/vnd.adobe.target.v1+json' \
        "$base/acme/target/authentication/token?authorizationScope=profile_api")
echo "minted a profile token" >&2
printf '%s' "$ans" | jq -c --argjson now "$(date +%s)" '{token: .accessToken, expires_at: ($now + .expiresIn)}'
EOF
	} >"$1"
	chmod 755 "$1"
}

# ---- expiry: minted tokens expire mid-delivery (x100 clock) ----
new_scenario expiry
std_data "$seed" --tp 100 --pc 20 --updates 500 --files 2
mapfile -t F < <(sim_ims_flags)
sim_start --seed "$seed" --preload "$PRELOAD" "${F[@]}" --clock-scale 100 \
	--profile-token-lifetime-s 150 --process-delay-ms 200000
printf '%s' "$IMS_SECRET" >"$T/expiry/secret"; chmod 600 "$T/expiry/secret"
write_minter "$T/expiry/mint.sh" "$B" "$T/expiry/runs.log" "$T/expiry/secret"
write_conf "max_batch_rows = 40" "token_min_interval = 1s" "token_command = $T/expiry/mint.sh"
enqueue_imports "$T/expiry/gen"
ps_watch_start
flush_wait "expiry" 0 120
ps_watch_stop
cp "$T/flush.out" "$T/flush.err" "$T/expiry/"
LOGS+=("$T/expiry/flush.out" "$T/expiry/flush.err")
std_checks expiry
check_ge "expiry: the simulator refused an expired token" 1 "$(sim_counter expired_token_refusals)"
check_ge "expiry: the helper ran again after the refusal" 1 "$(grep -c ' refused$' "$T/expiry/runs.log")"
check_eq "expiry: the first run said why" start "$(head -1 "$T/expiry/runs.log" | cut -d' ' -f2)"
if grep -q 'lane_paused' "$T/expiry/flush.err"; then fail "expiry: no lane paused" "$(grep lane_paused "$T/expiry/flush.err")"
else pass "expiry: no lane paused"; fi
check_ge "expiry: the helper's stderr is in the log" 1 "$(grep -c 'token_command_stderr line="minted a profile token"' "$T/expiry/flush.err")"
check_ge "expiry: lifetimes and refresh times are logged" 1 "$(grep -Ec 'token_obtained source=token_command from="command" reason=start lifetime_s=1(49|50) expires_at=[0-9T:Z-]+ refresh_at=' "$T/expiry/flush.err")"
secrets_file "$T/expiry/secrets"
leak_check expiry "$T/expiry/secrets" "$T/expiry/flush.out" "$T/expiry/flush.err"

# ---- proactive: refreshed before the stated expiry ----
new_scenario proactive
std_data "$seed" --tp 60 --pc 10 --updates 300 --files 1
stat_tok=st4t1c-T0ken-for-proactive
sim_start --seed "$seed" --preload "$PRELOAD" --token "$stat_tok" --process-delay-ms 1500
cat >"$T/proactive/helper.sh" <<EOF
#!/bin/sh
echo "\$(date +%s.%N) \${POBOX_TOKEN_REASON}" >>"$T/proactive/runs.log"
printf '{"token":"%s","expires_in":5}\n' "$stat_tok"
EOF
chmod 755 "$T/proactive/helper.sh"
write_conf "max_batch_rows = 20" "token_min_interval = 1s" "token_command = sh -c '$T/proactive/helper.sh'"
enqueue_imports "$T/proactive/gen"
flush_wait "proactive" 0 120
cp "$T/flush.out" "$T/flush.err" "$T/proactive/"
LOGS+=("$T/proactive/flush.out" "$T/proactive/flush.err")
std_checks proactive
check_ge "proactive: the helper ran again before the expiry" 1 "$(grep -c ' expiry$' "$T/proactive/runs.log")"
check_eq "proactive: never after a refusal" 0 "$(grep -c ' refused$' "$T/proactive/runs.log")"
check_eq "proactive: Target never refused a call" 0 "$(( $(sim_fault_total unauthorized) + $(sim_fault_total forbidden) ))"
gap=$(awk 'NR > 1 { d = $1 - prev; if (min == "" || d < min) min = d } { prev = $1 } END { printf "%d", (min == "" ? 9 : min) * 1000 }' "$T/proactive/runs.log")
# the helper notes its own start, a process start after pobox's clock
# check: allow for that jitter (without the limit it would run on every
# call, 100-500 ms apart)
check_ge "proactive: runs about token_min_interval (1s) apart or more (ms; $(grep -c . "$T/proactive/runs.log") runs)" 800 "$gap"
check_ge "proactive: the refresh is logged as due to the expiry" 1 "$(grep -c 'token_obtained source=token_command from="command" reason=expiry lifetime_s=5 ' "$T/proactive/flush.err")"
printf '%s\n' "$stat_tok" >"$T/proactive/secrets"
leak_check proactive "$T/proactive/secrets" "$T/proactive/flush.out" "$T/proactive/flush.err"

# ---- fail: each way a helper fails ----
new_scenario fail
sim_start --seed "$seed" --token "$stat_tok"
write_conf
import_logged f 1 25
total=$(q "SELECT count(*) FROM v_updates")
cmdfail() { # NAME COMMAND PATTERN [extra config]
	local name=$1 cmd=$2 pat=$3; shift 3
	write_conf "token_command = $cmd" "$@"
	flush_wait "fail: $name" 69 60
	one_reason "fail: $name" "$T/flush.err" "$pat"
	cp "$T/flush.err" "$T/fail/$(echo "$name" | tr -c 'a-z0-9\n' _).err"
	LOGS+=("$T/fail/$(echo "$name" | tr -c 'a-z0-9\n' _).err")
}
cmdfail "non-zero exit" "sh -c 'echo vault: permission denied >&2; exit 3'" \
	'could not obtain a profile API token: token_command exited with status 3 \(its stderr is in the log: token_command_stderr\)'
check_ge "fail: non-zero exit: its stderr is logged" 1 "$(grep -c 'token_command_stderr line="vault: permission denied"' "$T/flush.err")"
start=$(date +%s)
cmdfail "timeout" "sh -c 'sleep 61.375; echo never'" \
	'token_command timed out after 1s and was killed \(token_command_timeout\)' "token_command_timeout = 1s"
check_le "fail: timeout: flush returned soon after the timeout (seconds)" 20 "$(( $(date +%s) - start ))"
check_eq "fail: timeout: the helper's child was killed too" 0 "$(pgrep -f 'sleep 61.375' | wc -l)"
cmdfail "malformed JSON" "printf '{\"token\": \"abc\",'" \
	'token_command printed malformed JSON on stdout: member name expected at byte 16'
cmdfail "nothing printed" "true" 'token_command printed nothing on stdout'
cmdfail "no token in the JSON" "echo '{\"access_token\":\"x\"}'" 'token_command printed JSON without a "token" string'
cmdfail "no such helper" "/nonexistent/pobox-helper --vault" \
	"token_command: cannot run '/nonexistent/pobox-helper': No such file or directory"
cmdfail "expired token" "echo '{\"token\":\"x\",\"expires_at\":1000000000}'" \
	'token_command printed a token that expired at 2001-09-09T01:46:40Z'
nothing_lost fail "$total"
check_eq "fail: no call reached Target without a token" 0 "$(sim_fault_total unauthorized)"
write_conf "token_command = sh -c 'echo unterminated"
flush_wait "fail: bad command line" 78 30
check_ge "fail: bad command line: named" 1 "$(grep -c "token_command: unterminated ' quote" "$T/flush.err")"
# a command line longer than the configuration reader takes: said so
write_conf "token_command = /usr/bin/env $(printf 'x%.0s' $(seq 1 200))"
flush_wait "fail: command line too long" 78 30
check_ge "fail: command line too long: named" 1 "$(grep -c 'pobox.conf:[0-9]*: line longer than 199 bytes' "$T/flush.err")"
# a helper that prints the wrong token: Target refuses it, it is asked
# once more (same answer), then the lane pauses
write_conf "token_command = echo wrong-token" "token_min_interval = 1s"
flush_wait "fail: the helper's token is refused" 69 60
one_reason "fail: refused token" "$T/flush.err" 'HTTP 403: .*Forbidden: invalid token.*a new token could not be had: token_command printed the same token Target had just refused|HTTP 403: .*obtained [0-9]+s ago'
nothing_lost fail "$total"
# the next run with a working helper delivers everything
write_conf "token_command = echo $stat_tok"
flush_wait "fail: fixed" 0 60
check_store fail
check_all_delivered fail
cp "$T/flush.out" "$T/flush.err" "$T/fail/"
LOGS+=("$T/fail/flush.out" "$T/fail/flush.err")
printf '%s\n' "$stat_tok" >"$T/fail/secrets"
leak_check fail "$T/fail/secrets" "${LOGS[@]}"
finish
