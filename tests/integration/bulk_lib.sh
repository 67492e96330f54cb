# Shared helpers for the bulk-delivery integration tests
# (tests/integration/cli_bulk_*.sh), sourced with the build dir as $1.
#
# Each test gets its own temporary directory ($T), starts pobox-target-sim
# with --port 0 (reading the port from its "listening on" line), writes a
# pobox config pointing at it, enqueues updates while logging each one to its
# own log (never trusting pobox's view), runs `pobox flush --wait`, and then
# compares the simulator's store with the expected store computed from that
# log (bulk_expect.py compare: missing / extra / stale).
#
# Environment: POBOX_TEST_TMP (parent of temp dirs), BULK_KEEP=1 keeps $T,
# BULK_SEED overrides a test's seed.
set -u
build=${1:?usage: $0 BUILD_DIR}
case $build in /*) ;; *) build=$PWD/$build ;; esac
POBOX=$build/src/pobox
SIMBIN=$build/tools/sim/pobox-target-sim
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
EXPECT=$HERE/bulk_expect.py
mkdir -p "${POBOX_TEST_TMP:-/tmp}"
T=$(mktemp -d "${POBOX_TEST_TMP:-/tmp}/bulk.XXXXXX")
DB=$T/o.db
CONF=$T/pobox.conf
LOG=$T/enqueued.log
: >"$LOG"
passes=0 fails=0
SIM_PID= PORT= B=
BG_PIDS=
T0=$(date +%s.%N)

bulk_cleanup() {
	local p
	for p in $BG_PIDS; do kill -KILL "$p" 2>/dev/null; done
	if [ -n "$SIM_PID" ]; then kill -TERM "$SIM_PID" 2>/dev/null; wait "$SIM_PID" 2>/dev/null; fi
	if [ "${BULK_KEEP:-0}" = 1 ] || [ "$fails" -ne 0 ]; then
		echo "# kept $T"
	else
		rm -rf "$T"
	fi
}
trap bulk_cleanup EXIT

for f in "$POBOX" "$SIMBIN"; do
	[ -x "$f" ] || { echo "FATAL: $f not built"; echo "0 passed, 1 failed"; exit 1; }
done
if ! "$POBOX" flush --help >/dev/null 2>&1; then
	echo "FATAL: this pobox has no 'flush' command"; echo "0 passed, 1 failed"; fails=1; exit 1
fi

pass() { passes=$((passes + 1)); echo "ok   - $1"; }
fail() { fails=$((fails + 1)); echo "FAIL - $1"; [ $# -gt 1 ] && printf '%s\n' "$2" | sed 's/^/  /' | head -40; return 0; }
check_eq() { # NAME WANT GOT
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected: $2
got:      $3"; fi
}
check_ge() { # NAME MIN GOT
	if [ "$3" -ge "$2" ] 2>/dev/null; then pass "$1 ($3 >= $2)"; else fail "$1" "expected >= $2, got $3"; fi
}
check_le() { # NAME MAX GOT
	if [ "$3" -le "$2" ] 2>/dev/null; then pass "$1 ($3 <= $2)"; else fail "$1" "expected <= $2, got $3"; fi
}
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$T0" "$(date +%s.%N)"; }
finish() {
	echo "# $(basename "$0"): $(elapsed)s"
	echo "$passes passed, $fails failed"
	[ "$fails" -eq 0 ]
	exit $?
}

# sim_start [flags...]: start the simulator; sets SIM_PID, PORT, B.
sim_start() {
	: >"$T/sim.out"
	# no bulk limit unless the test asks for one (its flags come last and win)
	"$SIMBIN" --port 0 --no-ipv6 --bulk-per-minute 0 "$@" >"$T/sim.out" 2>"$T/sim.err" &
	SIM_PID=$!
	local i
	for i in $(seq 1 200); do
		grep -q '^listening on 127.0.0.1:' "$T/sim.out" 2>/dev/null && break
		kill -0 "$SIM_PID" 2>/dev/null || break
		sleep 0.05
	done
	PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$T/sim.out")
	if [ -z "$PORT" ]; then
		fail "simulator starts" "$(cat "$T/sim.err")"; finish
	fi
	B=http://127.0.0.1:$PORT
}
sim_stop() {
	[ -n "$SIM_PID" ] || return 0
	kill -TERM "$SIM_PID"; wait "$SIM_PID"; SIM_PID=
}
# sim_faults 'k=v&k=v': change the run-time fault plan.
sim_faults() {
	local out
	out=$(curl -s -f -X POST --data "$1" "$B/_sim/faults") || fail "POST /_sim/faults $1" "$out"
}
# sim_counter PATH: e.g. calls.batch_update_v2.ok, batches_stuck
sim_counter() {
	curl -s "$B/_sim/counters" | python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[k]
print(v)' "$1"
}
sim_counters_dump() { curl -s "$B/_sim/counters" >"$T/counters.json"; }

# write_conf [KEY = VALUE lines...]: $CONF for this sim, with fast timings;
# the extra lines are appended, so pass only keys not set below (those are
# overridden with the BULK_* variables).
write_conf() {
	{
		echo "[pobox]"
		echo "db = $DB"
		echo "client = demo"
		echo "base_url = $B"
		echo "poll_initial = ${BULK_POLL_INITIAL:-100ms}"
		echo "poll_cap = ${BULK_POLL_CAP:-500ms}"
		echo "backoff_base = ${BULK_BACKOFF_BASE:-100ms}"
		echo "backoff_cap = ${BULK_BACKOFF_CAP:-1s}"
		echo "connect_timeout = ${BULK_CONNECT_TIMEOUT:-2s}"
		echo "request_timeout = ${BULK_REQUEST_TIMEOUT:-10s}"
		echo "max_value_chars = ${BULK_MAX_VALUE_CHARS:-256}"
		echo "bulk_calls_per_minute = ${BULK_CALLS_PER_MINUTE:-6000}"
		echo "seed = ${BULK_POBOX_SEED:-1}"
		# these tests are about the bulk lane: no single calls unless asked
		echo "single_lane = ${BULK_SINGLE_LANE:-0}"
		local l
		for l in "$@"; do echo "$l"; done
	} >"$CONF"
}

pb() { "$POBOX" -c "$CONF" "$@"; }

# flush_wait NAME WANT_EXIT [TIMEOUT_S] [extra flush args]: run
# `pobox flush --wait` (hard-killed after TIMEOUT_S+20 s so a hang cannot
# stall CI); output in $T/flush.out / $T/flush.err; sets FLUSH_RC.
flush_wait() {
	local name=$1 want=$2 to=${3:-60}; shift 3 2>/dev/null || shift $#
	timeout -s KILL $((to + 20)) "$POBOX" -c "$CONF" flush --wait --timeout "${to}s" "$@" >"$T/flush.out" 2>"$T/flush.err"
	FLUSH_RC=$?
	if [ "$FLUSH_RC" -eq "$want" ]; then pass "$name: flush --wait exits $want"; else
		fail "$name: flush --wait exits $want" "got exit $FLUSH_RC
stdout: $(tail -5 "$T/flush.out")
stderr: $(tail -15 "$T/flush.err")"
	fi
}

# enqueue_imports DIR: import DIR/import_*.csv in name order (gen's order).
enqueue_imports() {
	local f rc
	for f in "$1"/import_*.csv; do
		pb import "$f" >"$T/import.out" 2>"$T/import.err"; rc=$?
		if [ "$rc" -ne 0 ]; then fail "import $(basename "$f")" "exit $rc: $(cat "$T/import.err")"; fi
	done
}

# put_logged TYPE ID ATTR=VALUE...: pobox put, logged only when it succeeded.
put_logged() {
	local t=$1 id=$2; shift 2
	if pb put "$t:$id" "$@" >"$T/put.out" 2>"$T/put.err"; then
		local kv
		for kv in "$@"; do
			python3 -c 'import json,sys; print(json.dumps({"t":sys.argv[1],"id":sys.argv[2],"a":sys.argv[3].split("=",1)[0],"v":sys.argv[3].split("=",1)[1]},ensure_ascii=False))' "$t" "$id" "$kv" >>"$LOG"
		done
	else
		fail "put $t:$id $*" "$(cat "$T/put.err")"
	fi
}

# check_store NAME [compare args: --preload F, --exclude TYPE:ID, --log F]
check_store() {
	local name=$1; shift
	local out
	if out=$(python3 "$EXPECT" compare --url "$B" --log "${CHECK_LOG:-$LOG}" "$@" 2>&1); then
		pass "$name: $out"
	else
		fail "$name: simulator store equals the newest enqueued values" "$out"
	fi
}

# q SQL: one value from the outbox (read-only).
q() { sqlite3 -cmd '.timeout 30000' "$DB" "$1"; }

# state_count STATE: updates in a derived state (v_updates)
state_count() { q "SELECT count(*) FROM v_updates WHERE state = '$1'"; }

# check_all_delivered NAME: nothing pending, batched or dead; every enqueued
# update is still in the outbox (delivered or superseded).
check_all_delivered() {
	local name=$1 logged
	check_eq "$name: nothing pending" 0 "$(state_count pending)"
	check_eq "$name: nothing batched" 0 "$(state_count batched)"
	check_eq "$name: nothing dead" 0 "$(state_count dead)"
	logged=$(grep -c . "$LOG")
	check_eq "$name: every enqueued update is in the outbox (delivered/superseded)" "$logged" \
		"$(q "SELECT count(*) FROM v_updates WHERE state IN ('delivered','superseded')")"
	check_eq "$name: no unfinished batch" 0 \
		"$(q "SELECT count(*) FROM v_batches WHERE state NOT IN ('done','dead','split','replaced')")"
}

# bg PID: remember a background pid to kill on exit.
bg() { BG_PIDS="$BG_PIDS $1"; }

# sim_seed_v2 CSV: existing thirdPartyId data for a test, set up the way
# Target would have it (not by pobox): the file (preload dialect, header
# thirdPartyId,...) is posted as a v2 batch, applied, and every id gets a
# page visit so no later v2 batch can override it.  Pass the same file to
# check_store with --preload.
sim_seed_v2() {
	local out id
	out=$(curl -s --data-binary "batch=$(cat "$1")" "$B/m2/demo/v2/profile/batchUpdate")
	case $out in *'<success>true</success>'*) ;; *) fail "seed v2 data" "$out"; return ;; esac
	curl -s -X POST "$B/_sim/process" >/dev/null
	tail -n +2 "$1" | cut -d, -f1 | while IFS= read -r id; do
		curl -s -X POST "$B/_sim/visit?thirdPartyId=$id" >/dev/null
	done
}

# new_scenario NAME: a fresh outbox, config and log under $T/NAME (stops the
# simulator; start a new one with sim_start).
new_scenario() {
	sim_stop
	mkdir -p "$T/$1"
	DB=$T/$1/o.db CONF=$T/$1/pobox.conf LOG=$T/$1/enqueued.log
	: >"$LOG"
	echo "# scenario $1"
}

# sim_fault_total KIND: calls answered with a fault KIND (fault_error,
# fault_429, fault_drop, fault_reset, fault_malformed, rate_limited,
# unauthorized, forbidden, not_found, ok, total) on the bulk endpoints.
sim_fault_total() {
	curl -s "$B/_sim/counters" | python3 -c '
import json, sys
c = json.load(sys.stdin)["calls"]
print(sum(c[e][sys.argv[1]] for e in ("batch_update_v1", "batch_update_v2", "batch_status")))' "$1"
}

# std_data SEED [gen args]: the usual data set for a fault test: thirdPartyIds
# and preloaded pcIds, repeated updates, awkward values; imported.
# Start the simulator with --preload "$PRELOAD" before calling enqueue_imports.
std_data() {
	local seed=$1; shift
	python3 "$EXPECT" gen --seed "$seed" --out "$(dirname "$LOG")/gen" --log "$LOG" --tricky "$@" >/dev/null
	PRELOAD=$(dirname "$LOG")/gen/preload.csv
}

# std_checks NAME: store equals expected, everything delivered.
std_checks() {
	echo "# $1: pobox batches by state: $(q "SELECT group_concat(state || '=' || n, ' ') FROM (SELECT state, count(*) n FROM v_batches GROUP BY state)")"
	check_store "$1" --preload "$PRELOAD"
	check_all_delivered "$1"
}

# wait_for NAME SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local name=$1 secs=$2 i; shift 2
	for i in $(seq 1 $((secs * 10))); do
		"$@" && return 0
		sleep 0.1
	done
	fail "$name: timed out after ${secs}s waiting for: $*"
	return 1
}
counter_ge() { [ "$(sim_counter "$1")" -ge "$2" ]; }
