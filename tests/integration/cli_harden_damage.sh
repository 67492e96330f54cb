#!/usr/bin/env bash
# An outbox SQLite knows is damaged takes no more writes.  With 4 KB of
# random bytes in the middle of a few-MB outbox, `status` and `doctor` used
# to say "malformed" while `put` and `import` exited 0 and wrote into it.
# Now: writers check a small outbox when they open it, the first process to
# see damage records it in "<outbox>-corrupt", every writing command refuses
# (exit 74) until `pobox doctor` finds the file healthy, and `pobox run`
# pauses loudly (its incremental check finds damage its own work never
# touches) and resumes once the mark is gone.
. "$(cd "$(dirname "$0")" && pwd)/harden_lib.sh" "$@"
write_local_conf "min_free_disk = 0"
awk 'BEGIN { print "thirdPartyId,a,b"; for (i = 1; i <= 40000; i++) printf "c%d,value-%d,other-%d\n", i, i, i }' >"$T/in.csv"
pbr 0 "import 40,000 profiles" import "$T/in.csv"
q "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
cp "$DB" "$T/backup.db"
size=$(stat -c %s "$DB")
check_ge "the outbox is a few MB" $((2 * 1024 * 1024)) "$size"
dd if=/dev/urandom of="$DB" bs=4096 seek=$((size / 4096 / 2)) count=1 conv=notrunc status=none
cp "$DB" "$T/damaged.db"
unchanged() { if cmp -s "$DB" "$T/damaged.db"; then pass "$1: the file is unchanged"; else fail "$1: the file is unchanged"; fi; }

pbr 74 "put into the damaged outbox is refused" put thirdPartyId:new a=1
out_has "put: says damaged" "damaged"
unchanged "put"
[ -s "$DB-corrupt" ] && pass "the damage is recorded beside the outbox" || fail "the damage is recorded beside the outbox"
grep -q "quick_check" "$DB-corrupt" && pass "the mark says what found it" || fail "the mark says what found it" "$(cat "$DB-corrupt")"
printf 'thirdPartyId,a\nn1,1\n' >"$T/one.csv"
pbr 74 "import into the damaged outbox is refused" import "$T/one.csv"
out_has "import: says damaged" "damaged"
out_lacks "import: nothing was read" "rows read"
unchanged "import"
write_local_conf "min_free_disk = 0" "client = demo" "base_url = http://127.0.0.1:9"
for cmd in "flush" "flush --wait --timeout 5s" "requeue --all" "purge --dead --all --yes" "purge --delivered --yes"; do
	# shellcheck disable=SC2086
	pbr 74 "$cmd on the damaged outbox is refused" $cmd
	out_has "$cmd: says damaged" "damaged"
	unchanged "$cmd"
done
# the mark holds even where the damage is not read: a check that is off,
# a different attribute
pbr 74 "another configuration: the mark still refuses put" -c /dev/null --db "$DB" put thirdPartyId:c1 zz=1
POBOX_CHECK_ON_OPEN=0 "$POBOX" --db "$DB" put thirdPartyId:c1 zz=1 >"$T/r.out" 2>"$T/r.err"
check_eq "POBOX_CHECK_ON_OPEN=0: refused by the mark" 74 "$?"
unchanged "check_on_open = 0"
# readers keep working where they can, and change nothing
"$POBOX" -c "$CONF" status >"$T/r.out" 2>"$T/r.err"; rc=$?
case $rc in 0 | 74) pass "status answers or says malformed ($rc)" ;; *) fail "status answers or says malformed" "exit $rc" ;; esac
unchanged "status"
for cmd in doctor "doctor --repair"; do
	# shellcheck disable=SC2086
	"$POBOX" -c "$CONF" $cmd >"$T/r.out" 2>"$T/r.err"; rc=$?
	case $rc in 65 | 74) pass "$cmd reports the damage ($rc)" ;; *) fail "$cmd reports the damage" "exit $rc" ;; esac
	out_has "$cmd: gives the recovery advice" ".recover"
	unchanged "$cmd"
done
[ -e "$DB-corrupt" ] && pass "doctor keeps the mark" || fail "doctor keeps the mark"

# the operator restores the backup: still refused until doctor says healthy
rm -f "$DB-wal" "$DB-shm"
cp "$T/backup.db" "$DB"
pbr 74 "after the restore, put is still refused" put thirdPartyId:new a=1
pbr 0 "doctor finds the restored outbox healthy" doctor
out_has "doctor: says the mark is removed" "the mark is removed"
[ -e "$DB-corrupt" ] && fail "doctor removes the mark" || pass "doctor removes the mark"
pbr 0 "put works again" put thirdPartyId:new a=1
check_eq "the put is stored" 1 "$(q "SELECT count(*) FROM v_updates WHERE profile_id = 'new'")"

# (the C API meeting a mark set by another process: tests/unit/test_outbox.c)
rm -f "$DB-corrupt"

# ---- pobox run: the incremental check, the pause, the resume ----------------------
# damage in a table pobox's own work never reads (an operator's scratch
# table): only the incremental check can find it
q "CREATE TABLE scratch (x); INSERT INTO scratch SELECT randomblob(300) FROM generate_series(1, 3000);" 2>/dev/null ||
	q "CREATE TABLE scratch (x); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) INSERT INTO scratch SELECT randomblob(300) FROM n;"
q "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
PG=$(q "SELECT pageno FROM dbstat WHERE name = 'scratch' AND pagetype = 'leaf' LIMIT 1 OFFSET 100")
cp "$DB" "$T/before-run.db"
dd if=/dev/urandom of="$DB" bs=4096 seek=$((PG - 1)) count=1 conv=notrunc status=none
write_local_conf "min_free_disk = 0" "client = demo" "base_url = http://127.0.0.1:9" \
	"check_on_open = 0" "check_interval = 100ms" "flush_max_delay = 1h" "single_lane = no"
"$POBOX" -c "$CONF" run >"$T/run.out" 2>"$T/run.err" &
RUN=$!
bg "$RUN"
wait_for "run: its check finds the damage" 60 grep -q "outbox_damaged" "$T/run.err" && pass "run: its check finds the damage"
grep -q "quick_check of scratch" "$DB-corrupt" 2>/dev/null && pass "run: the mark names the table" || fail "run: the mark names the table" "$(cat "$DB-corrupt" 2>&1)"
sleep 1.5
kill -0 "$RUN" 2>/dev/null && pass "run: pauses instead of exiting" || fail "run: pauses instead of exiting"
check_eq "run: one error line, not one a second" 1 "$(grep -c outbox_damaged "$T/run.err")"
kill -TERM "$RUN"
wait "$RUN"
check_eq "run: a paused run stops on SIGTERM with 0" 0 "$?"

# a mark on a healthy outbox (say, left by a disk that came back): run
# pauses, doctor removes the mark, run resumes by itself
rm -f "$DB-wal" "$DB-shm" "$DB-corrupt"
cp "$T/before-run.db" "$DB"
echo "$(date -u +%FT%TZ) pid 1: marked by the test" >"$DB-corrupt"
"$POBOX" -c "$CONF" run >"$T/run.out" 2>"$T/run2.err" &
RUN=$!
bg "$RUN"
wait_for "run: a marked outbox pauses it" 60 grep -q "outbox_damaged" "$T/run2.err" && pass "run: a marked outbox pauses it"
pbr 0 "doctor on the healthy outbox" doctor
wait_for "run: resumes once doctor removed the mark" 60 grep -q "outbox_healthy" "$T/run2.err" && pass "run: resumes once doctor removed the mark"
kill -TERM "$RUN"
wait "$RUN"
check_eq "run: stops with 0" 0 "$?"
finish
