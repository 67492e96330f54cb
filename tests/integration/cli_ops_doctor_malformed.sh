#!/usr/bin/env bash
# doctor on an outbox whose damage makes SQLite's integrity check itself fail
# (an index's root page zeroed): doctor must still give its advice for SQLite
# damage (copy aside, `sqlite3 OUTBOX .recover`, or restore a backup), not
# "database disk image is malformed (run `pobox doctor`)" - which is what
# the operator just ran - and must not change the file.
. "$(cd "$(dirname "$0")" && pwd)/ops_lib.sh" "$@"
sim_start
write_conf
{ echo "thirdPartyId,a,b"; for i in $(seq 1 2000); do echo "c$i,v$i,w$i"; done; } >"$T/in.csv"
pbr 0 "import" import "$T/in.csv"
q "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
PG=$(q "SELECT rootpage FROM sqlite_master WHERE name = 'writes_by_profile'")
PS=$(q "PRAGMA page_size")
dd if=/dev/zero of="$DB" bs="$PS" seek=$((PG - 1)) count=1 conv=notrunc status=none
cp "$DB" "$T/orig"
"$POBOX" -c "$CONF" doctor >"$T/r.out" 2>"$T/r.err"; RC=$?
case $RC in 65|74) pass "doctor exits 65 or 74 ($RC)" ;; *) fail "doctor exits 65 or 74" "got $RC" ;; esac
out_has "doctor gives the recovery advice" ".recover"
if grep -q 'run `pobox doctor`' "$T/r.out" "$T/r.err"; then
	fail "doctor does not tell the operator to run doctor" "$(cat "$T/r.err")"
else pass "doctor does not tell the operator to run doctor"; fi
if cmp -s "$DB" "$T/orig"; then pass "file unchanged"; else fail "file unchanged"; fi
finish
