#!/usr/bin/env bash
# How `pobox import` stops, and what it says then:
#  - a stop part-way (a bad line, a full outbox) exits 79, not 65 (65: the
#    whole file was read and some rows were rejected), and the nightly job
#    treats it as a failure;
#  - the summary counts only what is in the outbox and names the line it
#    stopped at, and importing from that line on completes the file;
#  - max_outbox_size is not overshot by a whole 10,000-row transaction;
#  - a 10 MB field without quotes does not blame an unclosed quote;
#  - a UTF-16 file is named as such; NUL bytes are refused with their offset
#    (values, header, the sqlite3 enqueue view).
. "$(cd "$(dirname "$0")" && pwd)/harden_lib.sh" "$@"
write_local_conf "min_free_disk = 0"

# ---- a line that stops the import: a 10 MB field, no quotes ------------------------
awk 'BEGIN { print "thirdPartyId,a,b"; for (i = 1; i <= 15000; i++) print "c" i ",v" i ",w" i }' >"$T/head.csv"
awk 'BEGIN { print "thirdPartyId,a,b"; for (i = 15001; i <= 16000; i++) print "c" i ",v" i ",w" i }' >"$T/tail.csv"
{ cat "$T/head.csv"; printf 'big,'; head -c 10485760 /dev/zero | tr '\0' x; printf ',z\n'; tail -n +2 "$T/tail.csv"; } >"$T/long.csv"
pbr 79 "a 10 MB field stops the import with its own code" import "$T/long.csv"
out_has "the summary names the line" "stopped at line 15,002"
out_has "the summary counts the committed rows" "15,000 rows read, 30,000 updates enqueued"
out_has "the message names the line" "long.csv:15002: a field is longer than"
out_lacks "no unclosed quote is suggested" "quote opened"
out_has "the message says no quote is open" "no quote is open"
out_has "the resume hint names the line" "tail -n +15002"
check_eq "rows before the stop are in" 15000 "$(q "SELECT count(DISTINCT profile_id) FROM v_updates")"
check_eq "nothing from the stop on" 0 "$(q "SELECT count(*) FROM v_updates WHERE profile_id IN ('big', 'c15001')")"
# the operator fixes line 15,002 and resumes there, as the hint says
{ head -n 15001 "$T/long.csv"; echo "big,small,z"; tail -n +15003 "$T/long.csv"; } >"$T/fixed.csv"
(head -n 1 "$T/fixed.csv"; tail -n +15002 "$T/fixed.csv") | "$POBOX" -c "$CONF" import - >"$T/r.out" 2>"$T/r.err"
check_eq "resuming from the named line: exit 0" 0 "$?"
check_eq "resumed: every profile is in" 16001 "$(q "SELECT count(DISTINCT profile_id) FROM v_updates")"
check_eq "resumed: no update twice" 32002 "$(q "SELECT count(*) FROM v_updates")"

# a quoted field that never closes still says so
{ echo "thirdPartyId,a"; echo "q1,ok"; printf 'q2,"'; head -c 1100000 /dev/zero | tr '\0' y; echo; } >"$T/quote.csv"
pbr 79 "an unclosed quote stops the import" import "$T/quote.csv"
out_has "an unclosed quote: named" "quote opened on line 3"
out_has "an unclosed quote: stopped at its line" "stopped at line 3"

# rejects only: 65, and the whole file was read
printf 'thirdPartyId,a\nok1,1\nbad/1,2\nok2,3\n' >"$T/rej.csv"
pbr 65 "rejected rows: 65" import "$T/rej.csv"
out_lacks "rejected rows: not stopped" "stopped"
out_has "rejected rows: summary" "3 rows read, 2 updates enqueued, 0 empty cells skipped, 1 rows rejected"

# ---- the nightly job: a stop is a failure, nothing is flushed --------------------------
nightly() { # FILE: runs packaging/nightly on FILE; exit in NRC, output in $T/n.out
	POBOX_NIGHTLY_FILE=$1 POBOX_NIGHTLY_CONFIG=$CONF POBOX_NIGHTLY_POBOX=$POBOX \
		POBOX_NIGHTLY_REJECT_FILE=$T/nightly-rejects.csv POBOX_NIGHTLY_TIMEOUT=5s \
		sh "$HERE/../../packaging/nightly" >"$T/n.out" 2>&1 </dev/null
	NRC=$?
}
nightly "$T/long.csv"
check_eq "nightly: a stopped import fails the job with 79" 79 "$NRC"
grep -q "import stopped part-way" "$T/n.out" && pass "nightly: says the import stopped" || fail "nightly: says the import stopped" "$(cat "$T/n.out")"
grep -q "delivering" "$T/n.out" && fail "nightly: does not flush after a stop" "$(cat "$T/n.out")" || pass "nightly: does not flush after a stop"
nightly "$T/rej.csv"
grep -q "delivering" "$T/n.out" && pass "nightly: rejected rows still flush" || fail "nightly: rejected rows still flush" "$(cat "$T/n.out")"

# ---- max_outbox_size inside a transaction --------------------------------------------
DB=$T/size.db
write_local_conf "min_free_disk = 0" "max_outbox_size = 300k"
awk 'BEGIN { print "thirdPartyId,a,b"; for (i = 1; i <= 60000; i++) printf "s%d,value-%d-abcdefghij,other-%d\n", i, i, i }' >"$T/size.csv"
pbr 79 "max_outbox_size stops the import part-way" import "$T/size.csv"
out_has "max_outbox_size: says full" "max_outbox_size"
used=$(q "SELECT (page_count - freelist_count) * page_size FROM pragma_page_count, pragma_freelist_count, pragma_page_size")
check_le "max_outbox_size: used bytes within 300k + 1 MB" $((300 * 1024 + 1024 * 1024)) "$used"
check_ge "max_outbox_size: and it did fill up to the limit" $((300 * 1024)) "$used"
files=$(( $(stat -c %s "$DB") + $(stat -c %s "$DB-wal" 2>/dev/null || echo 0) ))
check_le "max_outbox_size: file + WAL within 300k + 1 MB" $((300 * 1024 + 1024 * 1024)) "$files"
rows=$(q "SELECT count(DISTINCT profile_id) FROM v_updates")
commas() { echo "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
out_has "max_outbox_size: summary counts what is in" "$(commas "$rows") rows read"
out_has "max_outbox_size: summary names the next line" "stopped at line $(commas $((rows + 2))):"
pbr 75 "max_outbox_size: a full outbox refuses the next import before reading" import "$T/size.csv"
out_has "full before reading: nothing imported" "nothing imported"

# ---- encodings and NUL bytes ---------------------------------------------------------
DB=$T/o.db
write_local_conf "min_free_disk = 0"
printf '\xff\xfet\0h\0i\0r\0d\0,\0a\0\n\0' >"$T/utf16.csv"
pbr 79 "a UTF-16 file is refused" import "$T/utf16.csv"
out_has "a UTF-16 file is named" "is UTF-16 (little-endian) text"
out_lacks "a UTF-16 file: not an attribute-name puzzle" "attribute name is empty"
printf '\xfe\xff\0t\0h' >"$T/utf16be.csv"
pbr 79 "a UTF-16BE file is refused" import "$T/utf16be.csv"
out_has "a UTF-16BE file is named" "UTF-16 (big-endian)"
printf 'thirdPartyId,a\nn1,v\0x\nn2,ok\n' >"$T/nulval.csv"
pbr 65 "a NUL in a value: the row is rejected" import "$T/nulval.csv"
out_has "a NUL in a value: offset named" "contains a NUL byte at byte offset 1"
check_eq "a NUL in a value: not stored" 0 "$(q "SELECT count(*) FROM v_updates WHERE profile_id = 'n1'")"
printf 'thirdPartyId,zq\0b\nh1,1\n' >"$T/nulhdr.csv"
pbr 79 "a NUL in the header stops the import" import "$T/nulhdr.csv"
out_has "a NUL in the header: column and offset named" "header column 2 contains a NUL byte at byte offset 2"
check_eq "a NUL in the header: no attribute 'zq'" 0 "$(q "SELECT count(*) FROM attributes WHERE name = 'zq'")"
printf 'thirdPartyId,a\nx\0y,1\n' >"$T/nulid.csv"
pbr 65 "a NUL in an id: the row is rejected" import "$T/nulid.csv"
out_has "a NUL in an id: offset named" "contains a NUL byte at byte offset 1"
printf 'batch=thirdPartyId,a%%00b\nb1,1\n' >"$T/nulbatch.csv"
pbr 79 "a %00 in a batch file's header stops the import" import "$T/nulbatch.csv"
out_has "a %00 in a batch header: named" "contains a NUL byte"
for col in id_type profile_id attr value source; do
	case $col in
	id_type) vals="'thirdPartyId' || char(0), 'n9', 'tier', 'x', 's'" ;;
	profile_id) vals="'thirdPartyId', 'n' || char(0) || '9', 'tier', 'x', 's'" ;;
	attr) vals="'thirdPartyId', 'n9', 'ti' || char(0) || 'er', 'x', 's'" ;;
	value) vals="'thirdPartyId', 'n9', 'tier', 'v' || char(0) || 'x', 's'" ;;
	source) vals="'thirdPartyId', 'n9', 'tier', 'x', 's' || char(0)" ;;
	esac
	err=$(sqlite3 "$DB" "INSERT INTO enqueue (id_type, profile_id, attr, value, source) VALUES ($vals)" 2>&1)
	case $err in *"enqueue: $col contains a NUL byte"*) pass "sqlite3: a NUL in $col is refused" ;;
	*) fail "sqlite3: a NUL in $col is refused" "$err" ;; esac
done
check_eq "sqlite3: nothing stored for n9" 0 "$(q "SELECT count(*) FROM v_updates WHERE profile_id LIKE 'n%9'")"
finish
