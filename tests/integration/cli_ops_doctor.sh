#!/usr/bin/env bash
# pobox doctor on deliberately damaged outboxes.  Each invariant is broken
# once, in its own outbox (sqlite3 does the damage): doctor reports it (exit
# 65, names the problem) and changes nothing; doctor --repair fixes the safe
# ones (a second doctor exits 0) and reports, without touching, the unsafe
# ones; delivery afterwards (flush --wait) delivers everything pending and
# the simulator's store is right.  Then all breaks at once, a file that is
# not a database, a foreign SQLite file, and SQLite-level damage: refused,
# pointing to doctor, never modified.
. "$(cd "$(dirname "$0")" && pwd)/ops_lib.sh" "$@"

HOST=$(python3 -c 'import socket; print(socket.gethostname()[:63])')

# base NAME: a fresh outbox with delivered history (d1, d2; batch 1 done)
# and a cut but unsent batch (p1, p2, p3: state ready).
base() {
	new_scenario "$1"
	sim_start
	write_conf "max_attempts = 3" "backoff_base = 10ms" "backoff_cap = 50ms"
	put_logged thirdPartyId d1 a=1 b=1
	put_logged thirdPartyId d2 a=1
	flush_wait "$1: history" 0 30
	put_logged thirdPartyId d1 a=2
	put_logged thirdPartyId p1 a=1 b=x
	put_logged thirdPartyId p2 a=2
	put_logged thirdPartyId p3 a=3
	pbr 0 "$1: cut (flush without --wait)" flush
	check_eq "$1: one ready batch" 1 "$(q "SELECT count(*) FROM batches WHERE state = 'ready'")"
	pbr 0 "$1: healthy before the damage" doctor
	out_has "$1: healthy" "the outbox is healthy"
}

# doctor_finds NAME PROBLEM COUNT: doctor exits 65, names PROBLEM with COUNT,
# and changes nothing.
doctor_finds() {
	local h
	h=$(dump_hash)
	pbr 65 "$1: doctor" doctor
	out_has "$1: doctor names the problem" "PROBLEM $2: $3"
	out_has "$1: doctor suggests --repair" "pobox doctor --repair"
	check_eq "$1: doctor without --repair changes nothing" "$h" "$(dump_hash)"
}
# repair_fixes NAME PROBLEM: --repair fixes it (exit 0), a second doctor is clean.
repair_fixes() {
	pbr 0 "$1: doctor --repair" doctor --repair
	out_has "$1: --repair says FIXED" "FIXED   $2"
	pbr 0 "$1: second doctor" doctor
	out_has "$1: healthy after repair" "the outbox is healthy"
}
# repair_leaves NAME PROBLEM: --repair does not touch an unsafe problem.
repair_leaves() {
	local h
	h=$(dump_hash)
	pbr 65 "$1: doctor --repair (unsafe: not repaired)" doctor --repair
	out_has "$1: still reported after --repair" "PROBLEM $2"
	check_eq "$1: --repair changed nothing" "$h" "$(dump_hash)"
	pbr 65 "$1: second doctor still reports it" doctor
}
# delivers NAME: flush --wait delivers everything, the store is right.
delivers() {
	flush_wait "$1: delivery after repair" 0 30
	check_eq "$1: nothing pending/batched/dead" 0 \
		"$(q "SELECT count(*) FROM v_updates WHERE state IN ('pending','batched','dead')")"
	check_eq "$1: no unfinished batch" 0 "$(q "SELECT count(*) FROM batches WHERE state IN ('ready','sending','submitted')")"
	check_store "$1"
}

# ---- an unfinished batch listing a profile that does not exist -------------------
# (a batch's members are a list in a row of batch_members: schema/0006_storage.sql)
P1="unfinished batches listing members that are not profiles"
base batch_missing
q "UPDATE batch_members SET members = json_insert(members, '\$[#]', 999999)
   WHERE batch IN (SELECT id FROM batches WHERE state = 'ready')" >/dev/null
doctor_finds batch_missing "$P1" 1
repair_fixes batch_missing "$P1"
check_eq "batch_missing: p1, p2 still batched" "batched,batched" \
	"$(q "SELECT group_concat(state) FROM v_updates WHERE profile_id IN ('p1', 'p2') AND attr = 'a'")"
delivers batch_missing

# ---- a profile in two unfinished batches (unsafe) ---------------------------------------
P11="profiles that are members of more than one unfinished batch"
base two_batches
q "INSERT INTO batches (id, lane, api, id_type, state, profiles, updates, bytes, payload_crc32, created_at_ms, batch_seq, held)
   SELECT 60, lane, api, id_type, 'ready', profiles, updates, bytes, payload_crc32, created_at_ms, batch_seq, held
   FROM batches WHERE state = 'ready';
   INSERT INTO batch_payloads SELECT 60, part, payload FROM batch_payloads
   WHERE batch IN (SELECT id FROM batches WHERE state = 'ready' AND id <> 60);
   INSERT INTO batch_members SELECT 60, part, members FROM batch_members
   WHERE batch IN (SELECT id FROM batches WHERE state = 'ready' AND id <> 60)" >/dev/null
# its members: p1, p2, p3 and d1 (a=2)
doctor_finds two_batches "$P11" 4
repair_leaves two_batches "$P11"

# ---- an unfinished batch holding no profile -------------------------------------------
P2="unfinished batches that hold no profile"
base empty_batch
q "INSERT INTO batches (id, lane, api, id_type, state, profiles, updates, bytes, payload_crc32, created_at_ms)
   SELECT 50, lane, api, id_type, 'ready', profiles, updates, bytes, payload_crc32, created_at_ms FROM batches WHERE state = 'ready';
   INSERT INTO batch_payloads SELECT 50, part, payload FROM batch_payloads
   WHERE batch IN (SELECT id FROM batches WHERE state = 'ready' AND id <> 50)" >/dev/null
doctor_finds empty_batch "$P2" 1
repair_fixes empty_batch "$P2"
check_eq "empty_batch: the empty batch is closed (dead)" dead "$(q "SELECT state FROM batches WHERE id = 50")"
delivers empty_batch

# ---- a watermark past the newest update (unsafe) --------------------------------------------
P3="profiles whose delivery watermark is past the newest update"
base watermark
SAVED=$(q "SELECT done_seq FROM profiles WHERE profile_id = 'd2'")
q "UPDATE profiles SET done_seq = 999999 WHERE profile_id = 'd2'" >/dev/null
doctor_finds watermark "$P3" 1
out_has "watermark: advice (restore)" "restore it from a backup"
repair_leaves watermark "$P3"
# the operator restores the watermark
q "UPDATE profiles SET done_seq = $SAVED WHERE profile_id = 'd2'" >/dev/null
pbr 0 "watermark: doctor after the fix" doctor
delivers watermark

# ---- an update naming a missing attribute (unsafe) ---------------------------------------
# (a write whose shape - its attributes - does not exist)
P4="writes naming a profile or shape that does not exist"
base no_attr
pb put thirdPartyId:p9 a=orphan >/dev/null || fail "no_attr: put p9"
ORPH=$(seq_of thirdPartyId p9 a orphan)
q "UPDATE writes SET shape = 999 WHERE seq = $ORPH" >/dev/null
doctor_finds no_attr "$P4" 1
out_has "no_attr: advice (the DELETE)" "DELETE FROM writes WHERE profile NOT IN"
repair_leaves no_attr "$P4"
# the operator follows the advice (and doctor --repair then sets the counts)
q "DELETE FROM writes WHERE profile NOT IN (SELECT id FROM profiles) OR shape NOT IN (SELECT id FROM shapes)" >/dev/null
pbr 65 "no_attr: doctor after the fix: the counts kept are off by the deleted update" doctor
out_has "no_attr: counts recounted" "PROBLEM counts kept by state against a recount: 1"
pbr 0 "no_attr: doctor --repair sets them" doctor --repair
pbr 0 "no_attr: doctor after the fix" doctor
delivers no_attr

# ---- impossible quota ledger counts ------------------------------------------------------
P5="quota ledger minutes with impossible counts"
P6="quota reservations with impossible counts"
base quota_counts
NOW_MIN=$(( $(date +%s) / 60 ))
q "INSERT INTO quota_minutes VALUES ($((NOW_MIN - 5)), -5, 0), ($((NOW_MIN - 4)), 3, 7), ($((NOW_MIN - 3)), 2, -1);
   INSERT INTO quota_reservations VALUES ('$HOST:1:1', $NOW_MIN, 2, 5)" >/dev/null
# (pid 1 with start time 1 is not this host's pid 1: a reservation by a gone
#  process too; it is counted as used by the repair)
h=$(dump_hash)
pbr 65 "quota_counts: doctor" doctor
out_has "quota_counts: minutes reported" "PROBLEM $P5: 3"
out_has "quota_counts: reservations reported" "PROBLEM $P6: 1"
check_eq "quota_counts: doctor changes nothing" "$h" "$(dump_hash)"
pbr 0 "quota_counts: doctor --repair" doctor --repair
check_eq "quota_counts: ledger clamped (never less used)" "$((NOW_MIN - 5))|0|0,$((NOW_MIN - 4))|3|3,$((NOW_MIN - 3))|2|0,$NOW_MIN|2|2" \
	"$(list "SELECT minute || '|' || used || '|' || urgent FROM quota_minutes ORDER BY minute")"
check_eq "quota_counts: no reservation left" 0 "$(q "SELECT count(*) FROM quota_reservations")"
pbr 0 "quota_counts: pobox quota --json" quota --json
check_eq "quota_counts: quota used = 3 + 2 + 2" 7 "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["used"])' "$T/r.out")"
pbr 0 "quota_counts: second doctor" doctor
delivers quota_counts

# ---- a reservation left by a process that is gone ----------------------------------------
P7="quota reservations left by processes that are gone"
base quota_orphan
NOW_MIN=$(( $(date +%s) / 60 ))
GONE=999999
while kill -0 "$GONE" 2>/dev/null; do GONE=$((GONE - 1)); done
# a live one: this shell, with its real start time: must not be reaped
START=$(awk '{ sub(/.*\) /, ""); print $20 }' /proc/$$/stat)
q "INSERT INTO quota_reservations VALUES ('$HOST:$GONE:1', $NOW_MIN, 3, 0), ('$HOST:$$:$START', $NOW_MIN, 4, 0)" >/dev/null
doctor_finds quota_orphan "$P7" 3
pbr 0 "quota_orphan: doctor --repair" doctor --repair
out_has "quota_orphan: FIXED" "FIXED   $P7: 3"
check_eq "quota_orphan: the gone process's 3 units counted as used" 3 "$(q "SELECT coalesce(sum(used), 0) FROM quota_minutes WHERE minute = $NOW_MIN")"
check_eq "quota_orphan: the live process's reservation kept" "$HOST:$$:$START|4" "$(q "SELECT owner || '|' || units FROM quota_reservations")"
pbr 0 "quota_orphan: quota --json" quota --json
check_eq "quota_orphan: used 3, reserved 4" "3 4" "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["used"], d["reserved"])' "$T/r.out")"
pbr 0 "quota_orphan: second doctor" doctor
q "DELETE FROM quota_reservations" >/dev/null
delivers quota_orphan

# ---- a ready batch whose payload fails its checksum -------------------------------------
P8="unfinished batches whose stored payload fails its checksum"
base payload
BID=$(q "SELECT id FROM batches WHERE state = 'ready'")
q "UPDATE batch_payloads SET payload = x'00' WHERE batch = $BID" >/dev/null
doctor_finds payload "$P8" 1
repair_fixes payload "$P8"
check_eq "payload: the damaged batch is closed" dead "$(q "SELECT state FROM batches WHERE id = $BID")"
check_eq "payload: its updates are pending again" 5 "$(state_count pending)"
delivers payload

# ---- everything at once: repair fixes the safe ones, only the unsafe remain ---------------
base all
NOW_MIN=$(( $(date +%s) / 60 ))
GONE=999999
while kill -0 "$GONE" 2>/dev/null; do GONE=$((GONE - 1)); done
pb put thirdPartyId:p9 a=orphan >/dev/null
ORPH=$(seq_of thirdPartyId p9 a orphan)
BID=$(q "SELECT id FROM batches WHERE state = 'ready'")
SAVED=$(q "SELECT done_seq FROM profiles WHERE profile_id = 'd2'")
q "UPDATE batch_members SET members = json_insert(members, '\$[#]', 999999) WHERE batch = $BID;
   INSERT INTO batches (id, lane, api, id_type, state, profiles, updates, bytes, payload_crc32, created_at_ms)
     SELECT 50, lane, api, id_type, 'submitted', profiles, updates, bytes, payload_crc32, created_at_ms FROM batches WHERE id = $BID;
   INSERT INTO batch_payloads SELECT 50, part, payload FROM batch_payloads WHERE batch = $BID;
   UPDATE batch_payloads SET payload = x'00' WHERE batch = $BID;
   UPDATE profiles SET done_seq = 999999 WHERE profile_id = 'd2';
   UPDATE writes SET shape = 999 WHERE seq = $ORPH;
   INSERT INTO quota_minutes VALUES ($((NOW_MIN - 5)), -5, 0);
   INSERT INTO quota_reservations VALUES ('$HOST:$GONE:1', $NOW_MIN, 3, 0)" >/dev/null
h=$(dump_hash)
pbr 65 "all: doctor" doctor
# d2's moved watermark and the orphaned write change what the counts should be;
# while a write cannot be read, a recount cannot be trusted: reported, not repaired
P10="counts kept by state against a recount"
for p in "$P1: 1" "$P2: 1" "$P3: 1" "$P4: 1" "$P5: 1" "$P7: 3" "$P8: 1" "$P10: 1"; do
	out_has "all: reports $p" "PROBLEM $p"
done
check_eq "all: doctor changes nothing" "$h" "$(dump_hash)"
pbr 65 "all: doctor --repair (unsafe ones remain)" doctor --repair
for p in "$P1" "$P2" "$P5" "$P7" "$P8"; do out_has "all: FIXED $p" "FIXED   $p"; done
out_has "all: summary" "8 problems found, 5 fixed"
pbr 65 "all: second doctor" doctor
grep '^PROBLEM' "$T/r.out" | sed 's/: [0-9]*$//' | sort >"$T/left"
check_eq "all: only the unsafe problems are left" "PROBLEM $P10
PROBLEM $P3
PROBLEM $P4" "$(cat "$T/left")"
q "UPDATE profiles SET done_seq = $SAVED WHERE profile_id = 'd2';
   DELETE FROM writes WHERE profile NOT IN (SELECT id FROM profiles) OR shape NOT IN (SELECT id FROM shapes)" >/dev/null
pbr 0 "all: doctor --repair after the manual fixes (the counts follow them)" doctor --repair
pbr 0 "all: doctor after the manual fixes" doctor
delivers all

# ---- files pobox must refuse and never touch ------------------------------------------------
new_scenario refuse
sim_start
write_conf
head -c 8192 /dev/urandom >"$DB"
printf 'SQLite format 3 is what I am not' | dd of="$DB" conv=notrunc status=none
cp "$DB" "$T/orig"
for cmd in doctor "doctor --repair" status "put thirdPartyId:a x=1" "flush" "dead" "requeue --all" "purge --dead --all --yes" "quota"; do
	# shellcheck disable=SC2086
	"$POBOX" -c "$CONF" $cmd >"$T/r.out" 2>"$T/r.err" </dev/null
	rc=$?
	if [ "$rc" -ne 0 ]; then pass "not a database: '$cmd' refuses (exit $rc)"; else fail "not a database: '$cmd' refuses" "exit 0: $(cat "$T/r.out")"; fi
	case $cmd in
	doctor*) out_has "not a database: '$cmd' says it was not changed" "was not changed" ;;
	*) out_has "not a database: '$cmd' points to doctor" "pobox doctor" ;;
	esac
done
check_eq "not a database: doctor exits 74 (cannot be read)" 74 "$("$POBOX" -c "$CONF" doctor >/dev/null 2>&1; echo $?)"
if cmp -s "$DB" "$T/orig"; then pass "not a database: the file is byte for byte unchanged"; else fail "not a database: the file is byte for byte unchanged"; fi
check_eq "not a database: no -wal/-shm/journal created" "" "$(ls "$DB"-* 2>/dev/null)"

# a foreign SQLite database
rm -f "$DB"
sqlite3 "$DB" "CREATE TABLE mine (x); INSERT INTO mine VALUES (42)"
cp "$DB" "$T/orig"
for cmd in doctor "doctor --repair" status "put thirdPartyId:a x=1"; do
	# shellcheck disable=SC2086
	"$POBOX" -c "$CONF" $cmd >"$T/r.out" 2>"$T/r.err" </dev/null
	rc=$?
	if [ "$rc" -ne 0 ]; then pass "foreign SQLite: '$cmd' refuses (exit $rc)"; else fail "foreign SQLite: '$cmd' refuses" "exit 0"; fi
done
out_has "foreign SQLite: says it is not a pobox outbox" "not a pobox outbox"
if cmp -s "$DB" "$T/orig"; then pass "foreign SQLite: unchanged"; else fail "foreign SQLite: unchanged"; fi

# SQLite-level damage inside a real outbox: bytes of an index leaf flipped
new_scenario sqlite_damage
sim_start
write_conf
{ echo "thirdPartyId,a,b"; for i in $(seq 1 2000); do echo "c$i,v$i,w$i"; done; } >"$T/in.csv"
pbr 0 "sqlite_damage: import 2000 profiles" import "$T/in.csv"
q "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
PG=$(q "SELECT pageno FROM dbstat WHERE name = 'writes_by_profile' AND pagetype = 'leaf' LIMIT 1 OFFSET 1")
PS=$(q "PRAGMA page_size")
if [ -n "$PG" ] && [ "$PG" -gt 1 ]; then
	python3 -c '
import sys
f = open(sys.argv[1], "r+b"); off = int(sys.argv[2]) * int(sys.argv[3]) - 40
f.seek(off); b = bytes(x ^ 1 for x in f.read(8)); f.seek(off); f.write(b)' "$DB" "$PG" "$PS"
	check_eq "sqlite_damage: sqlite3 sees the damage" 1 "$(q "PRAGMA integrity_check" | grep -c -m1 'missing from index')"
	cp "$DB" "$T/orig"
	pbr 65 "sqlite_damage: doctor" doctor
	out_has "sqlite_damage: integrity check reported" "PROBLEM SQLite integrity check"
	out_has "sqlite_damage: advice to recover" ".recover"
	pbr 65 "sqlite_damage: doctor --repair does not claim to fix SQLite damage" doctor --repair
	out_has "sqlite_damage: still reported after --repair" "PROBLEM SQLite integrity check"
	if cmp -s "$DB" "$T/orig"; then pass "sqlite_damage: file unchanged by doctor"; else fail "sqlite_damage: file unchanged by doctor"; fi
else
	fail "sqlite_damage: find a leaf page of the index" "got '$PG'"
fi
finish
