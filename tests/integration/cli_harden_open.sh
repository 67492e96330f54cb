#!/usr/bin/env bash
# What pobox says when the outbox's path is wrong: a missing directory, a
# directory given as --db, a directory the user cannot write.  The message
# names the path and what is wrong (SQLite's own "unable to open database
# file" / "attempt to write a readonly database" did not), and readers
# (status, dead, batches, quota) keep working in a read-only directory.
. "$(cd "$(dirname "$0")" && pwd)/harden_lib.sh" "$@"
write_local_conf "min_free_disk = 0" "client = demo" "base_url = http://127.0.0.1:9"

pbr 78 "put into a missing directory" --db "$T/nodir/o.db" put thirdPartyId:a x=1
out_has "missing directory: named" "the directory $T/nodir of outbox $T/nodir/o.db does not exist"
pbr 78 "status in a missing directory" --db "$T/nodir/o.db" status
out_has "status, missing directory: named" "does not exist"
mkdir "$T/adir"
pbr 78 "a directory as --db (put)" --db "$T/adir" put thirdPartyId:a x=1
out_has "a directory as --db: says so" "$T/adir is a directory, not an outbox file"
pbr 78 "a directory as --db (status)" --db "$T/adir" status
out_has "a directory as --db (status): says so" "is a directory"
check_eq "a directory as --db: nothing created in it" "" "$(ls "$T/adir")"
touch "$T/afile"
pbr 78 "a file as the outbox's directory" --db "$T/afile/o.db" put thirdPartyId:a x=1
out_has "a file as directory: says so" "is not a directory"

# a read-only directory: readers work, writers say it is the directory
mkdir "$T/ro"
pbr 0 "an outbox to read" --db "$T/ro/o.db" put thirdPartyId:c1 a=1 b=2
pbr 0 "and a batch in it" --db "$T/ro/o.db" flush
chmod 755 "$T"
chmod 555 "$T/ro"
as_user() { # runs pobox as an unprivileged user (nobody when we are root)
	if [ "$(id -u)" = 0 ]; then
		setpriv --reuid=nobody --regid=nogroup --clear-groups "$POBOX" "$@"
	else
		"$POBOX" "$@"
	fi
}
for cmd in status "status --json" "status --prometheus" dead batches quota "show 1"; do
	# shellcheck disable=SC2086
	as_user --db "$T/ro/o.db" -c /dev/null $cmd >"$T/r.out" 2>"$T/r.err" </dev/null
	check_eq "read-only directory: '$cmd' works" "0" "$?"
done
as_user --db "$T/ro/o.db" -c /dev/null status >"$T/r.out" 2>"$T/r.err"
out_has "read-only directory: status counts" "batched     2"
as_user --db "$T/ro/o.db" -c /dev/null put thirdPartyId:c2 a=1 >"$T/r.out" 2>"$T/r.err"
check_eq "read-only directory: put fails with 74" 74 "$?"
out_has "read-only directory: put says it is the directory" "the directory $T/ro is not writable by this user"
out_lacks "read-only directory: not SQLite's riddle" "attempt to write a readonly database"
check_eq "read-only directory: nothing left beside the outbox" "o.db" "$(ls "$T/ro")"
chmod 755 "$T/ro"
chmod 700 "$T"
finish
