#!/usr/bin/env bash
# Files pobox writes (import's --reject-file, run's metrics_file) may never
# be the outbox, a file of its family, or an input: naming one is refused
# with exit 64 before anything is opened for writing, and nothing changes.
# (`--reject-file o.db` used to truncate the outbox and recreate it empty;
# `--reject-file t.csv` emptied the input; metrics_file = the outbox's path
# replaced the outbox with metrics text.)  Also: an existing non-empty file
# that is not an outbox is never turned into one.
. "$(cd "$(dirname "$0")" && pwd)/harden_lib.sh" "$@"
write_local_conf
pbr 0 "put the profile to keep" put thirdPartyId:keep a=1
printf 'thirdPartyId,a\nr3,3\nbad/id,4\n' >"$T/t.csv"
cp "$T/t.csv" "$T/t.orig"
H0=$(dump_hash)

refused() { # NAME: exit 64 (checked by pbr), outbox and input unchanged
	out_has "$1: says why" "$2"
	check_eq "$1: outbox unchanged" "$H0" "$(dump_hash)"
	check_eq "$1: the kept profile is there" 1 "$(q "SELECT count(*) FROM v_updates WHERE profile_id = 'keep'")"
	if cmp -s "$T/t.csv" "$T/t.orig"; then pass "$1: input unchanged"; else fail "$1: input unchanged"; fi
}

pbr 64 "reject file = the outbox" import "$T/t.csv" --reject-file "$DB"
refused "reject file = the outbox" "is the file of outbox"
check_eq "reject file = the outbox: nothing imported" 0 "$(q "SELECT count(*) FROM v_updates WHERE profile_id = 'r3'")"
pbr 64 "reject file = the input" import "$T/t.csv" --reject-file "$T/t.csv"
refused "reject file = the input" "is the input"
"$POBOX" -c "$CONF" import - --reject-file "$T/t.csv" <"$T/t.csv" >"$T/r.out" 2>"$T/r.err"
check_eq "stdin redirected from the reject file: exit 64" 64 "$?"
refused "reject file = stdin's file" "the file being read"
for s in -wal -shm -journal -deliver.lock -corrupt; do
	pbr 64 "reject file = outbox$s" import "$T/t.csv" --reject-file "$DB$s"
	refused "reject file = outbox$s" "is a file of outbox"
	[ -e "$DB$s" ] && fail "reject file = outbox$s: not created" || pass "reject file = outbox$s: not created"
done
ln -s "$DB" "$T/link.csv"
pbr 64 "reject file = a symbolic link to the outbox" import "$T/t.csv" --reject-file "$T/link.csv"
refused "symlink" "is the file of outbox"
ln "$DB" "$T/hard.csv"
pbr 64 "reject file = a hard link to the outbox" import "$T/t.csv" --reject-file "$T/hard.csv"
refused "hard link" "is the file of outbox"
mkdir "$T/sub"
pbr 64 "reject file = the outbox by another path" import "$T/t.csv" --reject-file "$T/sub/../o.db"
refused "dir/../o.db" "is the file of outbox"
ln -s "$DB-wal" "$T/dangling.csv"
pbr 64 "reject file = a dangling link to outbox-wal" import "$T/t.csv" --reject-file "$T/dangling.csv"
refused "dangling link" "is a file of outbox"
pbr 64 "reject file = the config file" import "$T/t.csv" --reject-file "$CONF"
out_has "config file: says why" "is the input"
grep -q "^db = " "$CONF" && pass "config file unchanged" || fail "config file unchanged"

# an outbox that does not exist yet is protected by its path
pbr 64 "reject file = a new outbox's path" --db "$T/new.db" import "$T/t.csv" --reject-file "$T/new.db"
[ -e "$T/new.db" ] && fail "no new outbox created" || pass "no new outbox created"
pbr 64 "reject file = a new outbox's -wal" --db "$T/new.db" import "$T/t.csv" --reject-file "$T/new.db-wal"

# the sane case still works
pbr 65 "reject file elsewhere" import "$T/t.csv" --reject-file "$T/rejects.csv"
check_eq "reject file elsewhere: the reject is written" 1 "$(grep -c '^"3",.*"bad/id","4"$' "$T/rejects.csv")"
check_eq "reject file elsewhere: r3 imported" 1 "$(q "SELECT count(*) FROM v_updates WHERE profile_id = 'r3'")"

# run's metrics file: the outbox, its WAL, the delivery lock
H1=$(dump_hash)
for m in "$DB" "$DB-wal" "$DB-deliver.lock" "$T/sub/../o.db"; do
	write_local_conf "client = demo" "base_url = http://127.0.0.1:9" "metrics_file = $m" "metrics_interval = 1s"
	pbr 64 "metrics_file = $m" run --once
	out_has "metrics_file = $m: says why" "metrics_file"
	check_eq "metrics_file = $m: outbox unchanged" "$H1" "$(dump_hash)"
done
write_local_conf

# existing files that are not outboxes are never made into one
printf 'not an outbox, just text that is long enough to have an SQLite header size......\n' >"$T/text.db"
cp "$T/text.db" "$T/text.orig"
pbr 74 "a text file as the outbox" --db "$T/text.db" put thirdPartyId:x a=1
out_has "a text file: says it is not an outbox" "not an SQLite database"
if cmp -s "$T/text.db" "$T/text.orig"; then pass "a text file: unchanged"; else fail "a text file: unchanged"; fi
check_eq "a text file: no -wal/-shm beside it" "" "$(ls "$T/text.db"-* 2>/dev/null)"
: >"$T/empty.db"
pbr 66 "an empty file: status does not make it an outbox" --db "$T/empty.db" status
out_has "an empty file: status says it is empty" "is an empty file"
check_eq "an empty file: still empty" 0 "$(stat -c %s "$T/empty.db")"
: >"$T/trunc.db"
head -c 8192 /dev/urandom >"$T/trunc.db-wal"
pbr 74 "an empty file beside a WAL: put refuses" --db "$T/trunc.db" put thirdPartyId:x a=1
out_has "an empty file beside a WAL: says so" "truncated"
check_eq "an empty file beside a WAL: still empty" 0 "$(stat -c %s "$T/trunc.db")"
pbr 0 "an empty file made for the outbox: put makes it one" --db "$T/empty.db" put thirdPartyId:x a=1
finish
