#!/usr/bin/env bash
# pobox purge: --dead deletes exactly the selection, dry runs and refusals
# change nothing, no --yes without a terminal is refused (64); --delivered
# deletes delivered/superseded history but keeps the last value sent per
# attribute (v_profile_state) and every pending and dead update.
. "$(cd "$(dirname "$0")" && pwd)/ops_lib.sh" "$@"

sim_start
write_conf "max_attempts = 2" "backoff_base = 10ms" "backoff_cap = 50ms"

# delivered history: two generations of values (older ones superseded or
# delivered, newer delivered)
put_logged thirdPartyId d1 a=1 b=1
put_logged thirdPartyId d2 a=1
flush_wait "gen 1" 0 30
put_logged thirdPartyId d1 a=2
put_logged thirdPartyId d1 a=3          # supersedes a=2 at cut
put_logged thirdPartyId d2 c=1
flush_wait "gen 2" 0 30
# dead letters: HTTP 500 (x1..x4) and HTTP 502 (y1, y2)
sim_faults 'error_rate=1&error_codes=500'
for i in 1 2 3 4; do put_logged thirdPartyId "x$i" a="dead$i"; done
flush_wait "dead 500" 65 30
sim_faults 'error_codes=502'
put_logged thirdPartyId y1 a=deady1
put_logged thirdPartyId y2 a=deady2
flush_wait "dead 502" 65 30
sim_faults 'error_rate=0'
# pending (not flushed): one new profile, one with delivered history
put_logged thirdPartyId d1 b=pending-b
put_logged thirdPartyId n1 a=pending-n

check_eq "setup: 6 dead" 6 "$(state_count dead)"
check_eq "setup: 2 pending" 2 "$(state_count pending)"
DEAD=$(list "SELECT seq FROM v_updates WHERE state = 'dead' ORDER BY seq")
X1=$(seq_of thirdPartyId x1 a dead1)
X2=$(seq_of thirdPartyId x2 a dead2)

# ---- refusals and dry runs ---------------------------------------------------------
H0=$(dump_hash)
pbr 0 "purge --dead --id X1 --dry-run" purge --dead --id "$X1" --dry-run
out_has "purge --dry-run counts the selection" "dry run: 1 dead updates would be deleted"
pbr 0 "purge --dead --all --dry-run" purge --dead --all --dry-run
out_has "purge --all --dry-run counts all dead" "dry run: 6 dead updates would be deleted"
pbr 64 "purge --dead --id X1 without --yes, stdin not a terminal" purge --dead --id "$X1"
out_has "purge without --yes says how" "--yes"
pbr 64 "purge --dead --all without --yes, stdin not a terminal" purge --dead --all
pbr 64 "purge --delivered without --yes, stdin not a terminal" purge --delivered
pbr 0 "purge --delivered --dry-run" purge --delivered --dry-run
pbr 64 "purge --dead --id abc --yes" purge --dead --id abc --yes
check_eq "purge dry runs and refusals change nothing" "$H0" "$(dump_hash)"
check_eq "nothing deleted: still 6 dead" "$DEAD" "$(list "SELECT seq FROM v_updates WHERE state = 'dead' ORDER BY seq")"

# on a terminal, answering no deletes nothing (python's pty as the terminal)
python3 - "$POBOX" "$CONF" "$X1" >"$T/pty.out" 2>&1 <<'EOF'
import os, pty, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "-c", sys.argv[2], "purge", "--dead", "--id", sys.argv[3]])
out = b""
deadline = time.time() + 20
while b"[y/N]" not in out and time.time() < deadline:
    try:
        out += os.read(fd, 1024)
    except OSError:
        break
os.write(fd, b"n\n")
while time.time() < deadline:
    try:
        d = os.read(fd, 1024)
    except OSError:
        break
    if not d:
        break
    out += d
_, st = os.waitpid(pid, 0)
print(out.decode(errors="replace"))
print("exit", os.waitstatus_to_exitcode(st))
EOF
if grep -q "for good? \[y/N\]" "$T/pty.out" && grep -q "nothing deleted" "$T/pty.out"; then
	pass "purge on a terminal asks, and 'n' deletes nothing"
else fail "purge on a terminal asks, and 'n' deletes nothing" "$(cat "$T/pty.out")"; fi
check_eq "after answering no: outbox unchanged" "$H0" "$(dump_hash)"

# ---- purge --dead --id: exactly those ------------------------------------------------
q "SELECT seq, state, value FROM v_updates WHERE seq NOT IN ($X1, $X2) ORDER BY seq" >"$T/others.before"
pbr 0 "purge --dead --id X1,X2 --yes" purge --dead --id "$X1,$X2" --yes
out_has "purge --id: reports 2 deleted" "2 dead updates deleted"
check_eq "purge --id: X1, X2 are gone" 0 "$(q "SELECT count(*) FROM v_updates WHERE seq IN ($X1, $X2)")"
q "SELECT seq, state, value FROM v_updates WHERE seq NOT IN ($X1, $X2) ORDER BY seq" >"$T/others.after"
if cmp -s "$T/others.before" "$T/others.after"; then pass "purge --id: every other update untouched"; else
	fail "purge --id: every other update untouched" "$(diff "$T/others.before" "$T/others.after" | head)"; fi

# ---- purge --dead --reason -----------------------------------------------------------
pbr 0 "purge --dead --reason 'HTTP 502' --yes" purge --dead --reason "HTTP 502" --yes
out_has "purge --reason: 2 deleted" "2 dead updates deleted"
check_eq "purge --reason: the HTTP 500 dead letters remain" "dead3,dead4" \
	"$(q "SELECT group_concat(value) FROM (SELECT value FROM v_updates WHERE state = 'dead' ORDER BY seq)")"

# ---- purge --delivered ----------------------------------------------------------------------
q "SELECT id_type, profile_id, attr, value FROM v_profile_state ORDER BY 1, 2, 3" >"$T/ps.before"
q "SELECT seq, value FROM v_updates WHERE state IN ('pending', 'dead') ORDER BY seq" >"$T/live.before"
check_eq "setup: v_profile_state has the last values" "thirdPartyId|d1|a|3
thirdPartyId|d1|b|1
thirdPartyId|d2|a|1
thirdPartyId|d2|c|1" "$(cat "$T/ps.before")"
HIST=$(q "SELECT count(*) FROM v_updates WHERE state IN ('delivered', 'superseded')")
H1=$(dump_hash)
pbr 0 "purge --delivered --dry-run" purge --delivered --dry-run
out_has "purge --delivered --dry-run counts the history" "dry run: $HIST delivered or superseded updates would be deleted"
check_eq "purge --delivered --dry-run changes nothing" "$H1" "$(dump_hash)"
pbr 0 "purge --delivered --yes" purge --delivered --yes
out_has "purge --delivered: count" "$HIST delivered or superseded updates deleted"
check_eq "purge --delivered: no delivered or superseded update left" 0 \
	"$(q "SELECT count(*) FROM v_updates WHERE state IN ('delivered', 'superseded')")"
q "SELECT id_type, profile_id, attr, value FROM v_profile_state ORDER BY 1, 2, 3" >"$T/ps.after"
if cmp -s "$T/ps.before" "$T/ps.after"; then pass "purge --delivered keeps v_profile_state"; else
	fail "purge --delivered keeps v_profile_state" "$(diff "$T/ps.before" "$T/ps.after")"; fi
q "SELECT seq, value FROM v_updates WHERE state IN ('pending', 'dead') ORDER BY seq" >"$T/live.after"
if cmp -s "$T/live.before" "$T/live.after"; then pass "purge --delivered keeps pending and dead updates"; else
	fail "purge --delivered keeps pending and dead updates" "$(diff "$T/live.before" "$T/live.after")"; fi
check_eq "still 2 pending" 2 "$(state_count pending)"

# ---- purge --dead --all ------------------------------------------------------------------
pbr 0 "purge --dead --all --yes" purge --dead --all --yes
check_eq "purge --all: no dead left" 0 "$(state_count dead)"
check_eq "purge --all: pending untouched" 2 "$(state_count pending)"

# ---- delivery still right after the purges ----------------------------------------------
flush_wait "after purges" 0 30
check_eq "d1.b = pending-b delivered" pending-b "$(sim_get thirdPartyId d1 b)"
check_eq "d1.a still 3" 3 "$(sim_get thirdPartyId d1 a)"
check_eq "n1.a delivered" pending-n "$(sim_get thirdPartyId n1 a)"
for i in 1 2 3 4; do
	check_eq "dead x$i never reached Target" 0 "$(sim_has_profile thirdPartyId "x$i")"
done
# the dead ones were never delivered: compare the rest only
grep -v -e '"id": "x[1-4]"' -e '"id": "y[12]"' "$LOG" >"$T/log.delivered"
CHECK_LOG=$T/log.delivered check_store "store equals the newest delivered values" \
	--exclude thirdPartyId:x1 --exclude thirdPartyId:x2 --exclude thirdPartyId:x3 --exclude thirdPartyId:x4 \
	--exclude thirdPartyId:y1 --exclude thirdPartyId:y2
finish
