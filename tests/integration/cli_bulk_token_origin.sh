#!/usr/bin/env bash
# The bearer token goes only to the configured Target origin family
# (issue 10, item 2).  The simulator requires a token and, told to
# (--status-base), answers every batchUpdate with a batchStatus URL on a
# second listener: another port on the same loopback address.  That
# listener records every request and whether it carried an Authorization
# header, and answers "incomplete" as an impostor would, to be asked again.
#  - pobox never asks it: no request, so no token, reaches it;
#  - the refusal is loud (log line, the batch's last_error) and the batch
#    stays submitted, nothing dead;
#  - once Target names its own host again the refused status ends like a
#    lost one (resubmitted) and everything is delivered.
# Then the configuration side: a client code that would change the URL's
# host or path, a base_url that is not a URL, and a token over plain http
# to a host that is not loopback are refused at load (exit 78, file:line).
. "$(dirname "$0")/bulk_lib.sh"

# a second listener that records whether requests carry a token
cat >"$T/recorder.py" <<'EOF'
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
log = open(sys.argv[1], "a", buffering=1)
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        auth = "auth=yes" if self.headers.get("Authorization") else "auth=no"
        log.write(f"{self.command} {self.path} {auth}\n")
        body = b"<response><batchId>x</batchId><status>incomplete</status></response>"
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_POST = do_GET
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
EOF
: >"$T/recorder.log"
python3 "$T/recorder.py" "$T/recorder.log" >"$T/recorder.port" 2>"$T/recorder.err" &
bg $!
for _ in $(seq 1 100); do [ -s "$T/recorder.port" ] && break; sleep 0.05; done
RPORT=$(cat "$T/recorder.port")
[ -n "$RPORT" ] || { fail "recorder starts" "$(cat "$T/recorder.err")"; finish; }
# the recorder answers (so a request to it would be seen)
curl -s -o /dev/null "http://127.0.0.1:$RPORT/probe"
check_eq "recorder: records requests" "GET /probe auth=no" "$(cat "$T/recorder.log")"
: >"$T/recorder.log"

new_scenario origin
printf 's3cret-token\n' >"$T/token"; chmod 600 "$T/token"
sim_start --token s3cret-token --status-base "http://127.0.0.1:$RPORT"
write_conf "token_file = $T/token" "max_attempts = 4" "stuck_resubmits = 50"
for i in 1 2 3; do put_logged thirdPartyId "crm-$i" tier=gold "n=$i"; done
timeout -s KILL 80 "$POBOX" -c "$CONF" flush --wait --timeout 60s >"$T/flush.out" 2>"$T/flush.err" &
fpid=$!; bg $fpid
refused() { grep -q 'status_url_refused' "$T/flush.err"; }
wait_for "pobox refuses the foreign status URL" 20 refused
check_eq "origin: the foreign listener got no request (so no token)" "" "$(cat "$T/recorder.log")"
check_eq "origin: nothing dead while refused" 0 "$(state_count dead)"
check_ge "origin: a submitted batch names the refusal in last_error" 1 \
	"$(q "SELECT count(*) FROM v_batches WHERE state = 'submitted' AND last_error LIKE '%status URL refused%127.0.0.1:$RPORT%outside the configured Target origin%'")"
grep -m1 status_url_refused "$T/flush.err" | cut -c1-300 | sed 's/^/# /'
# Target names its own hosts again: the refused status ends as lost (resubmitted)
wait_for "a refused status ends like a lost one" 30 grep -q 'batch_resubmitted.*why=lost' "$T/flush.err"
sim_faults 'status_base='
wait $fpid; rc=$?
check_eq "origin: flush --wait exits 0" 0 "$rc"
[ "$rc" -eq 0 ] || tail -5 "$T/flush.err"
check_store origin
check_all_delivered origin
check_eq "origin: still no request at the foreign listener" "" "$(cat "$T/recorder.log")"
check_ge "origin: the simulator (the configured origin) saw authorized calls" 1 \
	"$(sim_counter calls.batch_status.ok)"
check_eq "origin: the simulator never saw a call without the token" 0 "$(sim_counter calls.batch_status.unauthorized)"

# ---- configuration: client codes, base_url, plain http with a token
new_scenario config
B=http://127.0.0.1:1
cfg_refused() { # NAME WANT_PATTERN CONFIG_LINES...
	local name=$1 want=$2 out rc; shift 2
	write_conf "$@"
	out=$("$POBOX" -c "$CONF" flush 2>&1); rc=$?
	check_eq "$name: exit 78" 78 "$rc"
	if printf '%s' "$out" | grep -qE -- "$want"; then pass "$name: message"; else
		fail "$name: message" "want /$want/, got: $out"; fi
}
# write_conf puts client on line 3, base_url on line 4, extra lines from 15 (the later wins)
cfg_refused "client with a slash" "pobox.conf:15: client = 'demo/../x': a Target client code is at most 64 letters, digits, '-' and '_'" "client = demo/../x"
cfg_refused "client with a host part" "pobox.conf:15: client = 'evil.example#': a Target client code" "client = evil.example#"
cfg_refused "client with a query" "client = 'a\\?b=c'" "client = a?b=c"
cfg_refused "base_url not a URL" "pobox.conf:15: base_url = 'ftp://x': not an http:// or https:// URL" "base_url = ftp://x"
cfg_refused "base_url with a user" "base_url = 'https://u:p@x.example': the URL names a user or password" "base_url = https://u:p@x.example"
cfg_refused "token over plain http to a remote host" \
	"base_url http://target.example.com is plain http: the bearer token would cross the network unencrypted" \
	"token_file = $T/token" "base_url = http://target.example.com"
cfg_refused "token_command's token over plain http to a remote host" \
	"base_url http://target.example.com is plain http: the bearer token would cross the network unencrypted" \
	"token_command = echo tok" "base_url = http://target.example.com"
out=$(POBOX_CLIENT='x/y' "$POBOX" -c "$CONF" status 2>&1); rc=$?
check_eq "POBOX_CLIENT with a slash: exit 78" 78 "$rc"
check_eq "POBOX_CLIENT with a slash: message" 1 "$(printf '%s' "$out" | grep -c "environment POBOX_CLIENT: client = 'x/y'")"
# plain http is fine without a token, and with one to loopback
write_conf "base_url = http://target.example.com"
"$POBOX" -c "$CONF" flush >/dev/null 2>"$T/ok.err"
check_eq "plain http without a token: accepted" 0 $?
write_conf "token_file = $T/token" "base_url = http://localhost:1"
"$POBOX" -c "$CONF" flush >/dev/null 2>"$T/ok.err"
check_eq "plain http with a token to localhost: accepted" 0 $?
finish
