#!/usr/bin/env bash
# Full disks, on small tmpfs file systems mounted in the test's own mount
# namespace:
#  - min_free_disk holds inside a transaction: an import on a 64 MB disk
#    with min_free_disk = 32M used to fill the disk; now it stops with at
#    most 1 MB below the floor, and the WAL is given back;
#  - an import the disk stops midway (min_free_disk = 0) counts only the
#    rows it committed (it used to say "30,000 updates enqueued" with none
#    stored), names the line to resume from, and resuming completes it;
#  - a disk full at open says "disk full" and exits 75 (not "disk I/O
#    error", 74), and status still reads the outbox.
. "$(cd "$(dirname "$0")" && pwd)/harden_ns.sh" "$0" "$@"
. "$(cd "$(dirname "$0")" && pwd)/harden_lib.sh" "$@"
MB=$((1024 * 1024))
commas() { echo "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }

# ---- min_free_disk = 32M on a 64 MB disk -----------------------------------------------
small_fs "$T/d64" 64m
DB=$T/d64/o.db
write_local_conf "min_free_disk = 32M"
# wide rows, as a CRM export has them: one 10,000-row transaction is about
# 20 MB, more than half the room above the floor
awk 'BEGIN { printf "thirdPartyId"; for (c = 1; c <= 24; c++) printf ",attr%d", c; print "";
	for (i = 1; i <= 60000; i++) { printf "c%d", i; for (c = 1; c <= 24; c++) printf ",value-%d-%d-abcdefghijklmnopqrstuvwxyz", i, c; print "" } }' >"$T/big.csv"
pbr 0 "min_free_disk: an outbox" put thirdPartyId:c0 attr1=x
# another connection stays open meanwhile (as `pobox run` or a sqlite3 shell
# would): the WAL then outlives the import unless pobox gives it back
mkfifo "$T/reader.in"
sqlite3 "$DB" <"$T/reader.in" >/dev/null 2>&1 &
bg $!
exec 8>"$T/reader.in"
echo "SELECT count(*) FROM v_updates;" >&8
pbr 79 "min_free_disk: the import stops part-way" import "$T/big.csv"
out_has "min_free_disk: says why" "under min_free_disk"
free=$(free_bytes "$T/d64")
check_ge "min_free_disk: at most 1 MB below the 32 MB floor ($((free / 1024)) KiB free)" $((31 * MB)) "$free"
# (the floor holds at the peak, while the WAL still holds the last
# transaction and the file has grown by it; truncating the WAL then gives
# that back, so the end is well above the floor)
check_le "min_free_disk: and the import did fill the disk" $((56 * MB)) "$free"
wal=$(stat -c %s "$DB-wal" 2>/dev/null || echo 0)
check_le "min_free_disk: the WAL is given back" $MB "$wal"
exec 8>&-
rows=$(q "SELECT count(DISTINCT profile_id) - 1 FROM v_updates")
out_has "min_free_disk: the summary counts what is in" "$(commas "$rows") rows read, $(commas $((rows * 24))) updates enqueued"
out_has "min_free_disk: the summary names the next line" "stopped at line $(commas $((rows + 2))):"

# ---- a 2 MB disk and no floor: SQLite itself runs out of space ----------------------
small_fs "$T/d2" 2m
DB=$T/d2/o.db
write_local_conf "min_free_disk = 0"
pbr 0 "2 MB disk: an outbox" put thirdPartyId:first a=1
awk 'BEGIN { print "thirdPartyId,a,b"; for (i = 1; i <= 30000; i++) printf "g%d,value-%d-abcdefghij,other-%d\n", i, i, i }' >"$T/f.csv"
"$POBOX" -c "$CONF" import "$T/f.csv" >"$T/r.out" 2>"$T/r.err" </dev/null
check_eq "2 MB disk: the import stops (79)" 79 "$?"
grep -q "full" "$T/r.err" && pass "2 MB disk: says the disk is full" || fail "2 MB disk: says the disk is full" "$(cat "$T/r.err")"
mount -o remount,size=64m "$T/d2" # room to look, and to resume
rows=$(q "SELECT count(DISTINCT profile_id) FROM v_updates WHERE profile_id LIKE 'g%'")
out_has "2 MB disk: the summary counts only committed rows" "$(commas "$rows") rows read, $(commas $((rows * 2))) updates enqueued"
out_has "2 MB disk: the summary names the line to resume at" "stopped at line $(commas $((rows + 2))):"
(head -n 1 "$T/f.csv"; tail -n +$((rows + 2)) "$T/f.csv") | "$POBOX" -c "$CONF" import - >"$T/r.out" 2>"$T/r.err"
check_eq "2 MB disk: resuming at that line succeeds" 0 "$?"
check_eq "2 MB disk: every row in once" "30000|60000" "$(q "SELECT count(DISTINCT profile_id), count(*) FROM v_updates WHERE profile_id LIKE 'g%'")"

# ---- a disk that is full when the outbox is opened -------------------------------------
small_fs "$T/d1" 1m
DB=$T/d1/o.db
write_local_conf "min_free_disk = 0"
pbr 0 "full at open: an outbox" put thirdPartyId:x a=1
dd if=/dev/zero of="$T/d1/fill" bs=4k status=none 2>/dev/null
pbr 75 "full at open: put exits 75" put thirdPartyId:y a=1
out_has "full at open: says the disk is full" "the disk is full"
out_lacks "full at open: not 'disk I/O error' alone" "reading the outbox's header: disk I/O error"
pbr 0 "full at open: status still reads the outbox" status
out_has "full at open: status counts" "pending     1"
pbr 75 "full at open: a new outbox on the full disk" --db "$T/d1/new.db" put thirdPartyId:y a=1
out_has "full at open, new outbox: says the disk is full" "the disk is full"
finish
