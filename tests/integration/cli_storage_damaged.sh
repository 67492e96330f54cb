#!/usr/bin/env bash
# Damaged packed rows (schema/0006_storage.sql keeps a write's values, a
# shape, a batch's members and a profile's last delivered values as JSON
# text that anyone with the sqlite3 shell can edit): each kind is damaged
# once, in its own outbox, by hand as an operator might.  Then:
#   - the pobox command that reads the row stops with exit 74 and a message
#     that names the row and says to run `pobox doctor`, and changes nothing;
#   - `pobox doctor` answers (exit 65, not an SQL error): it names the
#     problem, and says why the checks it cannot run were not run;
#   - once the operator puts the row back, doctor is healthy and flush
#     --wait delivers exactly what was enqueued.
. "$(cd "$(dirname "$0")" && pwd)/ops_lib.sh" "$@"

# base NAME: delivered history (d1 twice: its last delivered values are
# folded into `sent` by the second cut), a ready batch (p1, p2), and
# pending updates (d1 again: its next v2 row carries what was delivered;
# p1 behind its batch; n1).
base() {
	new_scenario "$1"
	sim_start
	write_conf "max_attempts = 3" "backoff_base = 10ms" "backoff_cap = 50ms"
	put_logged thirdPartyId d1 a=1 b=1
	flush_wait "$1: history" 0 30
	put_logged thirdPartyId d1 a=2
	flush_wait "$1: history again" 0 30
	put_logged thirdPartyId p1 a=1 b=x
	put_logged thirdPartyId p2 a=2
	pbr 0 "$1: cut p1, p2 (flush without --wait)" flush
	put_logged thirdPartyId d1 c=3 a=4
	put_logged thirdPartyId p1 a=5
	put_logged thirdPartyId n1 a=6 b=7
	check_eq "$1: d1's last delivered values are folded" 1 "$(q "SELECT count(*) FROM sent")"
	check_eq "$1: one ready batch" 1 "$(q "SELECT count(*) FROM batches WHERE state = 'ready'")"
	pbr 0 "$1: healthy before the damage" doctor
}

# damage NAME TABLE COLUMN KEYCOL KEY NEWVALUE: saves the old value, writes the new.
damage() {
	SAVED_SQL="UPDATE $2 SET $3 = $(q "SELECT quote($3) FROM $2 WHERE $4 = $5") WHERE $4 = $5"
	q "UPDATE $2 SET $3 = '$6' WHERE $4 = $5" >/dev/null || fail "$1: damage $2.$3"
	H=$(dump_hash)
}
# reader_stops NAME MESSAGE ARGS...: pobox ARGS exits 74 naming the row, changes nothing.
reader_stops() {
	local name=$1 msg=$2; shift 2
	pbr 74 "$name: pobox $*" "$@"
	out_has "$name: pobox $1 names the damaged row" "$msg"
	out_has "$name: pobox $1 points to doctor" 'run `pobox doctor`'
	check_eq "$name: pobox $1 changed nothing" "$H" "$(dump_hash)"
}
# doctor_reports NAME PROBLEM [NOT_JSON]: doctor exits 65 naming the
# problem; with NOT_JSON (that many rows are not JSON) it says which checks
# it could not run and why, in one line; --repair repairs nothing of it.
doctor_reports() {
	local name=$1 p=$2 c
	pbr 65 "$name: doctor" doctor
	out_has "$name: doctor names the problem" "PROBLEM $p"
	if grep -q 'malformed JSON' "$T/r.out" "$T/r.err"; then
		fail "$name: doctor is not stopped by the damage" "$(cat "$T/r.out" "$T/r.err" | head -20)"
	else
		pass "$name: doctor is not stopped by the damage"
	fi
	if [ $# -gt 2 ]; then
		out_has "$name: doctor says what it could not check" "PROBLEM checks that read every packed row: $3"
		out_has "$name: ... and why" "$3 writes, shapes or batch member lists are not JSON"
		for c in "counts kept by state against a recount" "batches whose count of held updates is wrong"; do
			out_has "$name: ... naming: $c" "$c"
		done
	else
		out_has "$name: doctor recounts" "counts kept by state against a recount"
	fi
	check_eq "$name: doctor changed nothing" "$H" "$(dump_hash)"
	pbr 65 "$name: doctor --repair" doctor --repair
	out_has "$name: doctor --repair does not call it fixed" "PROBLEM $p"
}
# restored NAME: the row put back: healthy, and everything delivered.
restored() {
	q "$SAVED_SQL" >/dev/null
	pbr 0 "$1: doctor after the row is put back" doctor
	flush_wait "$1: delivery" 0 30
	check_eq "$1: nothing pending/batched/dead" 0 \
		"$(q "SELECT count(*) FROM v_updates WHERE state IN ('pending','batched','dead')")"
	check_store "$1"
}
NOT_RECOUNTED="counts kept by state against a recount"

# ---- a write's cells: not JSON (bytes after the array) ------------------------------
base cells_json
W=$(q "SELECT w.seq FROM writes w JOIN profiles p ON p.id = w.profile WHERE p.profile_id = 'n1'")
damage cells_json writes cells seq "$W" '["6","7"],"8"]'
reader_stops cells_json "write $W has malformed cells" flush
doctor_reports cells_json "writes whose cells are not a JSON array of the shape's length: 1" 1
restored cells_json

# ---- a write's cells: JSON, but one value short of its shape -------------------------
base cells_short
W=$(q "SELECT w.seq FROM writes w JOIN profiles p ON p.id = w.profile WHERE p.profile_id = 'n1'")
damage cells_short writes cells seq "$W" '["6"]'
reader_stops cells_short "write $W has malformed cells" flush
doctor_reports cells_short "writes whose cells are not a JSON array of the shape's length: 1"
out_has "cells_short: doctor recounts, one update short" "PROBLEM $NOT_RECOUNTED: 1"
restored cells_short

# ---- a shape: not JSON ----------------------------------------------------------------------
base shape_json
S=$(q "SELECT w.shape FROM writes w JOIN profiles p ON p.id = w.profile WHERE p.profile_id = 'n1'")
damage shape_json shapes attrs id "$S" '[1,'
reader_stops shape_json "shape $S is missing or malformed" flush
doctor_reports shape_json "shapes naming an attribute that does not exist: 1" 1
restored shape_json

# ---- an unfinished batch's member list: not JSON ----------------------------------------
base members_json
BID=$(q "SELECT id FROM batches WHERE state = 'ready'")
damage members_json batch_members members batch "$BID" '[1,2'
reader_stops members_json "batch $BID lists malformed members" flush
doctor_reports members_json "unfinished batches listing members that are not profiles: 1" 1
restored members_json

# ---- a profile's last delivered values: not JSON, and JSON of the wrong form -----------
for form in 'sent_json|[[3,"x",1,' 'sent_form|[[3,"x"]]'; do
	name=${form%%|*}
	base "$name"
	D=$(q "SELECT id FROM profiles WHERE profile_id = 'd1'")
	damage "$name" sent cells profile "$D" "${form#*|}"
	reader_stops "$name" "delivered values are malformed" flush
	doctor_reports "$name" "profiles whose last delivered values cannot be read: 1"
	restored "$name"
done
finish
