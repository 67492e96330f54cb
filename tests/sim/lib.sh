# Shared helpers for the simulator's tests (sourced by each test_*.sh).
#
# Each test runs in its own temporary directory, starts pobox-target-sim
# with --port 0 and reads the port from the "listening on" line; nothing
# here hard-codes a port.  Assertions compare exact bytes and print both
# sides on failure; the script exits 1 at the end if any assertion failed.
#
# Environment: POBOX_SIM = path of the pobox-target-sim binary (set by
# CMake).  SIM_KEEP=1 keeps the temporary directory for inspection.

set -u
SIM=${POBOX_SIM:?set POBOX_SIM to the pobox-target-sim binary}
case $SIM in /*) ;; *) SIM=$PWD/$SIM ;; esac
if [ -n "${POBOX_SIM_REPLAY:-}" ]; then
	case $POBOX_SIM_REPLAY in /*) ;; *) POBOX_SIM_REPLAY=$PWD/$POBOX_SIM_REPLAY ;; esac
fi
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pobox-sim-test.XXXXXX")
cd "$TMP" || exit 1
FAILS=0
CHECKS=0
SIM_PID=
PORT=
B=

cleanup() {
	if [ -n "$SIM_PID" ]; then kill -TERM "$SIM_PID" 2>/dev/null; wait "$SIM_PID" 2>/dev/null; fi
	if [ "${SIM_KEEP:-0}" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# sim_start [flags...]: start the simulator, set PORT and B (base URL).
sim_start() {
	: >sim.out
	"$SIM" --port 0 "$@" >sim.out 2>sim.err &
	SIM_PID=$!
	for _ in $(seq 1 200); do
		if grep -q '^listening on 127.0.0.1:' sim.out 2>/dev/null; then break; fi
		if ! kill -0 "$SIM_PID" 2>/dev/null; then break; fi
		sleep 0.05
	done
	PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' sim.out)
	if [ -z "$PORT" ]; then
		echo "FATAL: simulator did not start: $(cat sim.err)"
		exit 1
	fi
	B="http://127.0.0.1:$PORT"
}

# sim_stop: SIGTERM, and the exit status must be 0.
sim_stop() {
	kill -TERM "$SIM_PID"
	wait "$SIM_PID"
	local rc=$?
	SIM_PID=
	check "simulator exits 0 on SIGTERM" 0 "$rc"
}

# req [curl args...] URL: sets STATUS, BODY, HDRS (headers file), CURLRC.
req() {
	: >body.out
	: >hdrs.out
	STATUS=$(curl -s -o body.out -D hdrs.out -w '%{http_code}' "$@")
	CURLRC=$?
	BODY=$(cat body.out)
	HDRS=hdrs.out
}

# header NAME: value of a response header of the last req (no CR).
header() {
	grep -i "^$1:" "$HDRS" | head -1 | sed 's/^[^:]*: *//' | tr -d '\r'
}

check() {
	CHECKS=$((CHECKS + 1))
	if [ "$2" = "$3" ]; then
		echo "ok   - $1"
	else
		FAILS=$((FAILS + 1))
		echo "FAIL - $1"
		echo "  expected: $2"
		echo "  actual:   $3"
	fi
}

# check_match NAME EXTENDED_REGEX ACTUAL
check_match() {
	CHECKS=$((CHECKS + 1))
	if printf '%s' "$3" | grep -Eq -- "$2"; then
		echo "ok   - $1"
	else
		FAILS=$((FAILS + 1))
		echo "FAIL - $1"
		echo "  expected to match: $2"
		echo "  actual:            $3"
	fi
}

# jget JSON PATH: a value from JSON, PATH like calls.single_update.ok
jget() {
	printf '%s' "$1" | python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(json.dumps(v, separators=(",", ":"), ensure_ascii=False) if isinstance(v, (dict, list)) else v)' "$2"
}

# counter PATH: one value of GET /_sim/counters
counter() {
	jget "$(curl -s "$B/_sim/counters")" "$1"
}

profiles() {
	curl -s "$B/_sim/profiles"
}

# batch URL_PATH FILE_OR_STRING: POST a batch body like the docs' curl example.
batch() {
	req --data-binary "$2" "$B$1"
}

# status_url: the batchStatus URL from the last batch answer.
status_url() {
	printf '%s' "$BODY" | sed -n 's:.*<batchStatus>\(.*\)</batchStatus>.*:\1:p'
}

finish() {
	echo "# $CHECKS checks, $FAILS failed"
	[ "$FAILS" -eq 0 ]
	exit $?
}
