# Shared helpers for the credential tests (tests/integration/cli_creds_*.sh),
# sourced with the build dir as $1, on top of bulk_lib.sh.
#
# The simulator plays Adobe IMS and Target's Admin API (tools/sim/README.md,
# "Credentials"); pobox is pointed at it with ims_base_url/admin_base_url.
# Secrets are collected from the simulator itself (GET /_sim/auth lists
# every token it issued), so the leak check looks for the real ones.
. "$(dirname "${BASH_SOURCE[0]}")/bulk_lib.sh"
command -v jq >/dev/null || { fail "jq is needed"; finish; }

IMS_ID=pobox-test-client
IMS_SECRET='p0b0x&s3cret=+/'
IMS_SCOPES=openid,AdobeID,target_sdk,additional_info.projectedProductContext
TENANT=acme
PS_PID=

# The simulator flags for IMS + Admin API with auth required.
sim_ims_flags() {
	printf '%s\n' --ims-client-id "$IMS_ID" --ims-client-secret "$IMS_SECRET" \
		--ims-scopes "$IMS_SCOPES" --tenant "$TENANT" --require-auth
}

# write_secret FILE [SECRET]: a mode-600 secret file.
write_secret() {
	printf '%s\n' "${2:-$IMS_SECRET}" >"$1"
	chmod 600 "$1"
}

# ims_conf_lines SECRET_FILE: config lines for IMS against the simulator.
ims_conf_lines() {
	printf '%s\n' "ims_client_id = $IMS_ID" "ims_client_secret_file = $1" \
		"ims_scopes = $IMS_SCOPES" "target_tenant = $TENANT" \
		"ims_base_url = $B" "admin_base_url = $B" "token_min_interval = 1s"
}

# secrets_file OUT [extra secrets...]: every secret of the run, one a line:
# the client secret, every IMS and profile token the simulator issued.
secrets_file() {
	local out=$1; shift
	{
		printf '%s\n' "$IMS_SECRET" "$@"
		curl -s "$B/_sim/auth" | jq -r '.profile_tokens[], .ims_tokens[]'
	} | grep -v '^$' | sort -u >"$out"
}

# ps_watch_start / ps_watch_stop: record every process's command line
# (several times a second) into $T/ps.log while pobox runs.
ps_watch_start() {
	# the simulator stands in for Adobe: its own flags hold the test's
	# secrets by design, so its line is left out
	( while :; do ps -eww -o args | grep -v pobox-target-sim; sleep 0.1; done ) >>"$T/ps.log" 2>/dev/null &
	PS_PID=$!
	bg "$PS_PID"
}
ps_watch_stop() {
	[ -n "$PS_PID" ] && kill "$PS_PID" 2>/dev/null && wait "$PS_PID" 2>/dev/null
	PS_PID=
}

# leak_check NAME SECRETS_FILE FILES...: no secret in any of the files
# (grep -a: the outbox and its WAL are binary), in the process list seen
# while pobox ran, or in pobox status / status --json / --prometheus /
# batches / dead.
leak_check() {
	local name=$1 secrets=$2 s f hits=""; shift 2
	pb status >"$T/leak.status" 2>&1
	pb status --json >>"$T/leak.status" 2>&1
	pb status --prometheus >>"$T/leak.status" 2>&1
	pb batches --json >>"$T/leak.status" 2>&1
	pb dead --json >>"$T/leak.status" 2>&1
	local files=("$@" "$T/leak.status" "$T/ps.log" "$DB" "$DB-wal" "$DB-shm")
	local n=0
	while IFS= read -r s; do
		n=$((n + 1))
		for f in "${files[@]}"; do
			[ -e "$f" ] || continue
			if grep -aqF -- "$s" "$f"; then hits="$hits
  secret #$n in $f"; fi
		done
	done <"$secrets"
	if [ -z "$hits" ]; then pass "$name: none of $n secrets in logs, status, ps, the outbox or its WAL"
	else fail "$name: secrets leaked" "$hits"; fi
}

# one_reason NAME FILE PATTERN: the pause message (the "pobox: delivery
# paused" line) is one line and names the step (PATTERN, grep -E).
one_reason() {
	local line
	line=$(grep '^pobox: delivery paused' "$2" | head -1)
	if [ -n "$line" ] && printf '%s' "$line" | grep -Eq -- "$3"; then pass "$1: $(printf '%.230s' "$line")"
	else fail "$1: the pause names the step ($3)" "$(grep -v ' info ' "$2" | tail -8)"; fi
}

# put_urgent TYPE ID ATTR=VALUE...: pobox put --urgent, logged like put_logged.
put_urgent() {
	local t=$1 id=$2 kv; shift 2
	if "$POBOX" -c "$CONF" put "$t:$id" "$@" --urgent >"$T/put.out" 2>"$T/put.err"; then
		for kv in "$@"; do
			jq -cn --arg t "$t" --arg id "$id" --arg a "${kv%%=*}" --arg v "${kv#*=}" \
				'{t: $t, id: $id, a: $a, v: $v}' >>"$LOG"
		done
	else
		fail "put --urgent $t:$id $*" "$(cat "$T/put.err")"
	fi
}

# import_logged PREFIX FROM TO: thirdPartyIds PREFIX-FROM..TO with a=vN,
# imported in one `pobox import` and logged for check_store (cheaper than a
# put and a python start per update).
import_logged() {
	local csv=$T/import.$1.$2.csv
	awk -v p="$1" -v a="$2" -v b="$3" 'BEGIN { print "thirdPartyId,a"; for (i = a; i <= b; i++) print p "-" i ",v" i }' >"$csv"
	awk -v p="$1" -v a="$2" -v b="$3" 'BEGIN { for (i = a; i <= b; i++) printf "{\"t\":\"thirdPartyId\",\"id\":\"%s-%d\",\"a\":\"a\",\"v\":\"v%d\"}\n", p, i, i }' >>"$LOG"
	pb import "$csv" >"$T/import.out" 2>"$T/import.err" || fail "import $csv" "$(cat "$T/import.err")"
}

# nothing_lost NAME TOTAL: nothing dead, every update still there.
nothing_lost() {
	check_eq "$1: nothing dead" 0 "$(state_count dead)"
	check_eq "$1: every update still waiting or delivered" "$2" \
		"$(q "SELECT count(*) FROM v_updates WHERE state IN ('pending','batched','superseded','delivered')")"
	check_eq "$1: no attempt charged" 0 "$(q "SELECT count(*) FROM v_updates WHERE attempts > 0")"
}
