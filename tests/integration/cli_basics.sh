#!/usr/bin/env bash
# The pobox CLI's contract: exit codes (sysexits), --help for every command,
# clear errors that name the problem, configuration from file and
# environment, and no progress output when stderr is not a terminal.
set -u
build=$1
pobox=$build/src/pobox
tmp=$(mktemp -d "${POBOX_TEST_TMP:-/tmp}/cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0

check() { # check NAME WANT_EXIT CMD... ; output in $tmp/out, $tmp/err
	local name=$1 want=$2; shift 2
	"$@" >"$tmp/out" 2>"$tmp/err"
	local got=$?
	if [ "$got" -ne "$want" ]; then
		echo "FAIL $name: exit $got, wanted $want"; sed 's/^/  err: /' "$tmp/err" | head -5
		fails=$((fails + 1))
	else
		passes=$((passes + 1))
	fi
}
contains() { # contains NAME FILE TEXT
	if grep -qF -- "$3" "$2"; then passes=$((passes + 1)); else
		echo "FAIL $1: '$3' not in $2:"; sed 's/^/  /' "$2" | head -5; fails=$((fails + 1)); fi
}

db=$tmp/o.db
# --help everywhere, without a config or an outbox
check help 0 "$pobox" --help
contains help-lists-put "$tmp/out" "put "
for c in put import status; do
	check "help-$c" 0 "$pobox" "$c" --help
	contains "help-$c-usage" "$tmp/out" "usage: pobox $c"
	check "help-word-$c" 0 "$pobox" help "$c"
done
check version 0 "$pobox" --version
contains version-text "$tmp/out" "pobox 0."
check no-command 64 "$pobox"
check unknown-command 64 "$pobox" --db "$db" frobnicate
contains unknown-command-msg "$tmp/err" "unknown command 'frobnicate'"
check unknown-global-option 64 "$pobox" --frob status

# put
check put-ok 0 "$pobox" --db "$db" put thirdPartyId:c1 tier=gold profile.points=10
check put-empty-value 0 "$pobox" --db "$db" put thirdPartyId:c1 tier=
contains put-empty-msg "$tmp/err" "empty value skipped"
check put-plus 65 "$pobox" --db "$db" put thirdPartyId:a+b tier=gold
contains put-plus-msg "$tmp/err" "contains '+'"
check put-ecid 65 "$pobox" --db "$db" put ECID:123 tier=gold
contains put-ecid-msg "$tmp/err" "not supported by Target's profile update APIs"
check put-no-colon 64 "$pobox" --db "$db" put c1 tier=gold
contains put-no-colon-msg "$tmp/err" "is not ID_TYPE:ID"
check put-no-pairs 64 "$pobox" --db "$db" put thirdPartyId:c1
check put-not-pair 64 "$pobox" --db "$db" put thirdPartyId:c1 tier
check put-atomic 65 "$pobox" --db "$db" put thirdPartyId:c2 ok=1 "bad name=2"
[ "$(sqlite3 "$db" "SELECT count(*) FROM v_updates WHERE profile_id='c2'")" = 0 ] &&
	passes=$((passes + 1)) || { echo "FAIL put-atomic: c2 stored"; fails=$((fails + 1)); }
check put-urgent 0 "$pobox" --db "$db" put mboxPC:77 tier=gold --urgent --source till-3
[ "$(sqlite3 "$db" "SELECT urgent||source||id_type FROM v_updates WHERE profile_id='77'")" = "1till-3pcId" ] &&
	passes=$((passes + 1)) || { echo "FAIL put-urgent: flags not stored"; fails=$((fails + 1)); }

# import exit codes and summary; no progress without a terminal
printf 'thirdPartyId,tier\nc3,gold\nc+4,x\n' > "$tmp/in.csv"
check import-rejects 65 "$pobox" --db "$db" import "$tmp/in.csv"
contains import-summary "$tmp/out" "2 rows read, 1 updates enqueued, 0 empty cells skipped, 1 rows rejected"
contains import-hint "$tmp/out" "--reject-file"
if grep -q $'\r' "$tmp/err"; then echo "FAIL import-no-progress: progress drawn without a terminal"; fails=$((fails + 1)); else passes=$((passes + 1)); fi
printf 'thirdPartyId,tier\nc5,gold\n' | check import-stdin 0 "$pobox" --db "$db" import -
contains import-stdin-summary "$tmp/out" "import stdin: 1 rows read, 1 updates enqueued"
check import-missing 66 "$pobox" --db "$db" import "$tmp/nope.csv"
contains import-missing-msg "$tmp/err" "cannot open"
check import-bad-idtype 64 "$pobox" --db "$db" import "$tmp/in.csv" --id-type ecid
check import-reject-dir 73 "$pobox" --db "$db" import "$tmp/in.csv" --reject-file "$tmp/no/such/dir.csv"
printf 'customer,tier\n1,a\n' > "$tmp/noid.csv"
# a bad header stops the import before any row: 79 (stopped), not 65
check import-bad-header 79 "$pobox" --db "$db" import "$tmp/noid.csv"
contains import-bad-header-msg "$tmp/err" "does not name an id type"

# status
check status 0 "$pobox" --db "$db" status
contains status-pending "$tmp/out" "pending     5"
# the file's pages in use over the updates it holds (an exact figure)
per=$(awk '/^outbox/ { for (i = 1; i <= NF; i++) if ($i == "B") print $(i - 1) }' "$tmp/out")
want=$(sqlite3 "$db" "SELECT printf('%.1f', (SELECT page_count - freelist_count FROM pragma_page_count, pragma_freelist_count) * (SELECT page_size FROM pragma_page_size) / 5.0)")
[ -n "$per" ] && [ "$per" = "$want" ] && passes=$((passes + 1)) ||
	{ echo "FAIL status-bytes-per-update: '$per', want '$want'"; fails=$((fails + 1)); }
check status-json 0 "$pobox" --db "$db" status --json
[ "$(sqlite3 :memory: "SELECT json_extract('$(cat "$tmp/out")', '\$.updates.pending')")" = 5 ] &&
	passes=$((passes + 1)) || { echo "FAIL status-json: pending is not 5"; fails=$((fails + 1)); }
check status-missing-db 66 "$pobox" --db "$tmp/missing.db" status
contains status-missing-msg "$tmp/err" "does not exist"
[ ! -e "$tmp/missing.db" ] && passes=$((passes + 1)) || { echo "FAIL status created a db"; fails=$((fails + 1)); }
check status-extra-arg 64 "$pobox" --db "$db" status now

# a newer outbox is refused with 78 and left alone
cp "$db" "$tmp/future.db"
sqlite3 "$tmp/future.db" "PRAGMA user_version = 999"
check newer-schema 78 "$pobox" --db "$tmp/future.db" status
contains newer-schema-msg "$tmp/err" "newer than this pobox"
# a text file is never taken for an outbox
echo "not a database at all, just some text that is long enough........................................" > "$tmp/notes.txt"
check not-a-db 74 "$pobox" --db "$tmp/notes.txt" put thirdPartyId:x a=b
contains not-a-db-msg "$tmp/err" "pobox doctor"

# configuration: file with line numbers, environment overrides, -c required to exist
printf '[pobox]\ndb = %s\nmax_value_chars = 3\n' "$db" > "$tmp/ok.conf"
check conf-limit 65 "$pobox" -c "$tmp/ok.conf" put thirdPartyId:c6 tier=gold
contains conf-limit-msg "$tmp/err" "the limit is 3"
POBOX_MAX_VALUE_CHARS=10 check env-override 0 "$pobox" -c "$tmp/ok.conf" put thirdPartyId:c6 tier=gold
printf '[pobox]\ndb = x\nmax_value_chars = lots\n' > "$tmp/bad.conf"
check conf-bad-value 78 "$pobox" -c "$tmp/bad.conf" status
contains conf-bad-value-msg "$tmp/err" "bad.conf:3: max_value_chars = 'lots'"
printf 'db = x\n[other]\nkey = 1\n' > "$tmp/bad2.conf"
check conf-bad-section 78 "$pobox" -c "$tmp/bad2.conf" status
contains conf-bad-section-msg "$tmp/err" "bad2.conf:3: unknown section [other]"
printf 'db = x\nfrobs = 1\n' > "$tmp/bad3.conf"
check conf-unknown-key 78 "$pobox" -c "$tmp/bad3.conf" status
contains conf-unknown-key-msg "$tmp/err" "unknown key 'frobs'"
check conf-missing 78 "$pobox" -c "$tmp/none.conf" status
POBOX_SYNCHRONOUS=sometimes check env-bad 78 "$pobox" --db "$db" status
contains env-bad-msg "$tmp/err" "environment POBOX_SYNCHRONOUS"
POBOX_DB=$db check env-db 0 "$pobox" status
# a line too long for inih's buffer is refused, not cut (here the cut-off
# tail "#x" would have been read as a comment line: a silently short value)
printf 'db = %s\nclient = %0190d#x\n' "$db" 0 > "$tmp/long.conf"
check conf-long-line 78 "$pobox" -c "$tmp/long.conf" status
contains conf-long-line-msg "$tmp/err" "long.conf:2: line longer than 199 bytes"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
