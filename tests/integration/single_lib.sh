# Shared helpers for the single-call-lane integration tests
# (tests/integration/cli_single_*.sh), sourced with the build dir as $1.
#
# Builds on bulk_lib.sh (simulator start/stop, config, pass/fail, store
# comparison against a log the test writes itself) and adds what the single
# lane needs: the simulator's single-update counters, the quota ledger
# (quota_minutes / quota_reservations), urgent puts that are logged, a
# fixed-port simulator restart, and a small logging proxy that records the
# method and size of every single-update request (the simulator counts calls
# but not GET vs POST).
#
# Environment: as bulk_lib.sh (POBOX_TEST_TMP, BULK_KEEP=1).
# bulk_lib's write_conf turns the single lane off unless told otherwise
BULK_SINGLE_LANE=${SINGLE_LANE:-yes}
# shellcheck source=bulk_lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bulk_lib.sh" "$@"

# single_calls OUTCOME: single_update calls answered OUTCOME (ok, not_found,
# budget_exhausted, outage, total, ...) at the simulator.
single_calls() { sim_counter "calls.single_update.$1"; }
bulk_submits() { # v1 + v2 batchUpdate calls (all outcomes)
	curl -s "$B/_sim/counters" | python3 -c '
import json, sys
c = json.load(sys.stdin)["calls"]
print(c["batch_update_v1"]["total"] + c["batch_update_v2"]["total"])'
}

# The ledger, as pobox keeps it (all minutes, not only the last 24 h).
ledger_used() { q "SELECT coalesce(sum(used), 0) FROM quota_minutes"; }
ledger_urgent() { q "SELECT coalesce(sum(urgent), 0) FROM quota_minutes"; }
ledger_reserved() { q "SELECT coalesce(sum(units), 0) FROM quota_reservations"; }
lane_batches() { q "SELECT count(*) FROM batches WHERE lane = '$1'"; }

# json_get JSON PATH: one member of a JSON document (a.b.c).
json_get() {
	python3 -c '
import json, sys
v = json.loads(sys.argv[1])
for k in sys.argv[2].split("."):
    v = v[k]
print(v)' "$1" "$2"
}
quota_json() { json_get "$(pb status --json 2>/dev/null)" "quota.$1"; }

# put_u TYPE ID ATTR=VALUE... [--urgent]: pobox put; the pairs are logged
# only when pobox exited 0.  Sets PUT_RC.
put_u() {
	local t=$1 id=$2 kv; shift 2
	local pairs=() flags=()
	for kv in "$@"; do
		case $kv in --*) flags+=("$kv") ;; *) pairs+=("$kv") ;; esac
	done
	pb put "$t:$id" "${pairs[@]}" "${flags[@]}" >"$T/put.out" 2>"$T/put.err"
	PUT_RC=$?
	if [ "$PUT_RC" -eq 0 ]; then
		case "${pairs[*]}" in
		*$'\t'* | *$'\n'* | *$'\r'*)
			python3 -c '
import json, sys
for kv in sys.argv[3:]:
    a, v = kv.split("=", 1)
    print(json.dumps({"t": sys.argv[1], "id": sys.argv[2], "a": a, "v": v}, ensure_ascii=False))' \
				"$t" "$id" "${pairs[@]}" >>"$LOG" ;;
		*)
			for kv in "${pairs[@]}"; do
				printf '%s\t%s\t%s\t%s\n' "$t" "$id" "${kv%%=*}" "${kv#*=}" >>"$LOG"
			done ;;
		esac
	fi
	return "$PUT_RC"
}
# put_ok NAME TYPE ID ATTR=VALUE... [--urgent]: put_u, failing the test on a
# non-zero exit.
put_ok() {
	local name=$1; shift
	put_u "$@" || fail "$name: put $(printf '%s' "$*" | cut -c1-120)" "exit $PUT_RC: $(cut -c1-300 "$T/put.err")"
}

# preload_pc FILE N [PREFIX] [ATTR]: a preload CSV of N pcIds PREFIX1..N
# holding ATTR=old.
preload_pc() {
	local f=$1 n=$2 pre=${3:-pc} at=${4:-a}
	{ echo "pcId,$at"; seq 1 "$n" | sed "s/^/$pre/; s/\$/,old/"; } >"$f"
}

# free_port: a TCP port nobody listens on now.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# sim_start_on PORT [flags...]: start the simulator on a fixed port (so it
# can be stopped and started again at the same address).
sim_start_on() {
	local p=$1; shift
	sim_start --port "$p" "$@"
}

# proxy_start: a logging HTTP/1.1 proxy in front of the simulator; sets
# PROXY_URL and writes one line per request to $T/proxy.log:
#   METHOD <TAB> request-target length <TAB> body length <TAB> path
proxy_start() {
	cat >"$T/proxy.py" <<'EOF'
import http.client, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
up_port = int(sys.argv[1]); logf = open(sys.argv[2], "a", buffering=1)
lock = threading.Lock()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def relay(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with lock:
            logf.write(f"{self.command}\t{len(self.path)}\t{len(body)}\t{self.path.split('?')[0]}\n")
        c = http.client.HTTPConnection("127.0.0.1", up_port, timeout=30)
        hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "host")}
        hdrs["Host"] = self.headers.get("Host", "127.0.0.1")
        c.request(self.command, self.path, body=body if body else None, headers=hdrs)
        r = c.getresponse(); data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers(); self.wfile.write(data); c.close()
    do_GET = do_POST = relay
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
EOF
	: >"$T/proxy.log"
	python3 "$T/proxy.py" "$PORT" "$T/proxy.log" >"$T/proxy.port" 2>"$T/proxy.err" &
	PROXY_PID=$!
	bg "$PROXY_PID"
	local i
	for i in $(seq 1 100); do [ -s "$T/proxy.port" ] && break; sleep 0.05; done
	PROXY_URL=http://127.0.0.1:$(cat "$T/proxy.port")
	# status URLs must name the origin pobox is configured with (the proxy)
	sim_faults "status_base=$PROXY_URL"
}

# check_ledger_clean NAME: no reservation left over.
check_ledger_clean() {
	check_eq "$1: no quota reservation left" 0 "$(ledger_reserved)"
}

# run_bg LOGFILE [run args]: start `pobox run` in the background; sets RUN_PID.
run_bg() {
	local lf=$1; shift
	"$POBOX" -c "$CONF" run "$@" >"$lf.out" 2>"$lf" &
	RUN_PID=$!
	bg "$RUN_PID"
}
# stop_run NAME: SIGTERM the run started by run_bg; it must exit 0 within 10 s.
stop_run() {
	local i rc
	kill -TERM "$RUN_PID" 2>/dev/null
	for i in $(seq 1 100); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$RUN_PID" 2>/dev/null; then
		fail "$1: pobox run stops within 10 s of SIGTERM"
		kill -KILL "$RUN_PID" 2>/dev/null
	fi
	wait "$RUN_PID"; rc=$?
	check_eq "$1: pobox run exits 0 on SIGTERM" 0 "$rc"
}
# nothing_left: no live update (pending or batched).
nothing_left() { [ "$(q "SELECT count(*) FROM v_updates WHERE state IN ('pending','batched')")" = 0 ]; }
