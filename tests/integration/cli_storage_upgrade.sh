#!/usr/bin/env bash
# Upgrade in place (issue 11 item 5): an outbox made by the release before
# the storage redesign - the `updates` layout, schema 4 and schema 5 - with
# pending, superseded, batched (ready, sending, and submitted for real to
# the simulator), delivered (live rows and pruned profile_state), dead,
# requeued and purged rows, pcId and thirdPartyId profiles, values and ids
# that need percent-encoding, single-lane history, a paused lane, a quota
# ledger and call counts, is upgraded by the first pobox that opens it, and:
#   - every operator view (v_updates, v_pending, v_status, v_dead,
#     v_batches, v_profile_state, v_quota) has the same columns and the
#     same rows as before (order-insensitive; v_pending's age_s is the age
#     at the time of the query, so it is compared within the seconds that
#     passed between the two dumps);
#   - the raw tables, read with the sqlite3 shell, hold every old row:
#     profile watermarks, every update (expanded from the packed writes),
#     every fate (superseded_by, dead reason, attempts, HTTP status, time),
#     the members of unfinished batches and the seq they were cut at, each
#     batch's stored zlib payload (same bytes), the pruned last-delivered
#     values (now `sent`), the last seq handed out (purged ones included),
#     every batch column, and the tables it leaves alone (quota ledger,
#     bulk-call ledger, lanes, call counts, settings, names);
#   - `pobox status --json` gives the old v_status counts and oldest
#     pending time, `pobox show` of each batch the old fields, and `pobox
#     show --payload` of every bulk batch (finished or not) its exact old
#     batch file; `pobox doctor` is happy;
#   - `pobox flush --wait` delivers exactly what the outbox held: the
#     simulator then holds the newest pending/batched values (and what a v2
#     row carries forward), nothing delivered before is sent again, dead
#     ones stay dead (v_dead unchanged) and delivered ones stay delivered;
#     a new update's seq is above every seq the old outbox handed out.
# Outboxes at schemas 1, 2 and 3, with pending updates written by those
# versions' own enqueue trigger, go through every later migration with the
# same views and status and are delivered.
# The upgrade is one transaction: pobox is SIGKILLed during the upgrade of
# a 200,000-update outbox, several times; each time the file must be either
# untouched (schema 4, `.dump` equal to before; or schema 5 with exactly
# 0005 applied: that migration commits on its own before 0006) or fully
# upgraded (schema 6, everything above equal to before), and a rerun must
# complete the upgrade; the one delivered is an outbox whose upgrade was
# interrupted and rerun.
#
# The old outbox is built here without any old binary: the schema files
# 0001..0004 (0005) applied by the sqlite3 shell as the store applies
# migrations (one IMMEDIATE transaction each, user_version set inside it),
# then rows written as the old code wrote them (storage_old_outbox.py).
# Those migration files are the old release's, unchanged: a migration is
# never edited once released.
. "$(dirname "$0")/bulk_lib.sh"
SCHEMA=$(cd "$HERE/../../schema" && pwd)
# the schema this pobox knows: the newest migration file's number
LATEST=$(ls "$SCHEMA" | sed -n 's/^0*\([0-9][0-9]*\)_.*\.sql$/\1/p' | sort -n | tail -1)
OLDGEN=$HERE/storage_old_outbox.py
seed=${BULK_SEED:-1101}
echo "# seed $seed (rerun with BULK_SEED=$seed)"
RANDOM=$seed
VIEWS="v_updates v_pending v_status v_dead v_batches v_profile_state v_quota"

# apply_schema DB VERSION: migrations 0001..VERSION, as src/store/store.c
# applies them (WAL first; each in its own IMMEDIATE transaction that also
# sets user_version).
apply_schema() {
	local db=$1 upto=$2 v f
	sqlite3 "$db" 'PRAGMA journal_mode = WAL' >/dev/null
	for v in $(seq 1 "$upto"); do
		f=$(ls "$SCHEMA"/$(printf '%04d' "$v")_*.sql)
		{ echo "BEGIN IMMEDIATE;"; cat "$f"; echo "PRAGMA user_version = $v;"; echo "COMMIT;"; } |
			sqlite3 -bail "$db" || { fail "apply $(basename "$f") with sqlite3"; finish; }
	done
}

# old_outbox DIR VERSION [generator args]: DIR/old.db as the old release left it.
old_outbox() {
	local dir=$1 v=$2; shift 2
	mkdir -p "$dir"
	apply_schema "$dir/old.db" "$v"
	if ! python3 "$OLDGEN" --out "$dir/gen" --sim "$B" --seed "$seed" "$@" 2>"$dir/gen.err"; then
		fail "generate the old outbox" "$(cat "$dir/gen.err")"; finish
	fi
	{ echo "BEGIN IMMEDIATE;"; cat "$dir/gen/fill.sql"; echo "COMMIT;"; } | sqlite3 -bail "$dir/old.db" ||
		{ fail "fill the old outbox"; finish; }
	# shellcheck disable=SC1091
	. "$dir/gen/facts.txt"
}

# dump_views DB OUT: each view's columns, then its rows as JSON, sorted.
dump_views() {
	local v
	for v in ${DUMP_VIEWS:-$VIEWS}; do
		echo "## $v: $(sqlite3 "$1" "SELECT group_concat(name, ',') FROM pragma_table_info('$v')")"
		sqlite3 -cmd '.timeout 30000' -cmd '.mode json' "$1" "SELECT * FROM $v" |
			sed 's/^\[//; s/[],]$//; s/,"age_s":[-0-9]*//' | LC_ALL=C sort
	done >"$2"
}
# ages DB OUT: seq and age_s of every pending update.
ages() { sqlite3 -cmd '.timeout 30000' "$1" "SELECT seq || ' ' || age_s FROM v_pending ORDER BY seq" >"$2"; }
now_s() { date +%s; }

# check_views NAME BEFORE DB [AGES_BEFORE T_BEFORE]: the views of DB against BEFORE.
check_views() {
	local name=$1 before=$2 db=$3
	dump_views "$db" "$T/views.now"
	if cmp -s "$before" "$T/views.now"; then
		pass "$name: every view has the same columns and rows ($(grep -vc '^##' "$before") rows)"
	else
		fail "$name: every view has the same columns and rows" "$(diff "$before" "$T/views.now" | head -30)"
	fi
	if [ $# -ge 5 ]; then
		ages "$db" "$T/ages.now"
		local dt=$(( $(now_s) - $5 + 1 ))
		local bad
		bad=$(awk -v dt="$dt" 'NR == FNR { a[$1] = $2; next }
			{ d = $2 - a[$1]; if (!($1 in a) || d < 0 || d > dt) print }' "$4" "$T/ages.now" | head -5)
		check_eq "$name: v_pending's age_s grew by at most the ${dt}s between the dumps" "" "$bad"
	fi
}

# The raw tables, old layout and new, in one form: each table's rows as
# sorted JSON lines under a "## name" line.
# each as: name, then its query in the old layout, then in the new one
RAW_QUERIES=(
"profiles (watermarks)"
"SELECT id, id_type, profile_id, done_seq, done_at_ms, last_v2_at_ms, attempts,
        next_attempt_at_ms, last_error, route_bulk FROM profiles"
"SELECT id, CASE id_type WHEN 1 THEN 'pcId' WHEN 2 THEN 'thirdPartyId' END AS id_type, profile_id,
        done_seq, done_at_ms, last_v2_at_ms, attempts, next_attempt_at_ms, last_error, route_bulk
 FROM profiles"
"updates (every one enqueued and not pruned or purged)"
"SELECT seq, profile, attr, value, enqueued_at_ms, source, urgent FROM updates"
"SELECT w.seq + e.key AS seq, w.profile,
        CAST(json_extract(s.attrs, '\$[' || e.key || ']') AS INTEGER) AS attr, e.value AS value,
        w.enqueued_at_ms, w.source, w.urgent
 FROM writes w JOIN shapes s ON s.id = w.shape, json_each(w.cells) e WHERE e.type <> 'null'
 UNION ALL
 SELECT st.seq, p.id, st.attr, st.value, st.enqueued_at_ms, st.source, st.urgent
 FROM staged st LEFT JOIN profiles p ON p.id_type = st.id_type AND p.profile_id = st.profile_id"
"fates (updates not live)"
"SELECT seq, state, superseded_by, attempts, last_error, dead_at_ms, last_http_status
 FROM updates WHERE state <> 'live'"
"SELECT seq, state, superseded_by, attempts, last_error, dead_at_ms, last_http_status FROM fates"
"members of unfinished batches, with the seq they were cut at"
"SELECT batch, id AS profile, batch_seq FROM profiles WHERE batch IS NOT NULL"
"SELECT m.batch, CAST(e.value AS INTEGER) AS profile, b.batch_seq
 FROM batch_members m JOIN batches b ON b.id = m.batch, json_each(m.members) e
 WHERE b.state IN ('ready', 'sending', 'submitted')
   AND NOT EXISTS (SELECT 1 FROM batch_left l WHERE l.batch = m.batch AND l.profile = CAST(e.value AS INTEGER))"
"stored payloads (zlib, hex)"
"SELECT id AS batch, hex(payload) AS payload FROM batches WHERE lane = 'bulk'"
"SELECT batch, group_concat(hex(payload), '') AS payload
 FROM (SELECT batch, part, payload FROM batch_payloads ORDER BY batch, part) GROUP BY batch"
"last delivered values of pruned updates"
"SELECT profile, attr, value, sent_at_ms, seq FROM profile_state"
"SELECT x.profile, json_extract(e.value, '\$[0]') AS attr, json_extract(e.value, '\$[1]') AS value,
        json_extract(e.value, '\$[3]') AS sent_at_ms, json_extract(e.value, '\$[2]') AS seq
 FROM sent x, json_each(x.cells) e"
"the last seq handed out"
"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'updates'), 0),
            coalesce((SELECT max(seq) FROM updates), 0)) AS last_seq"
"SELECT next_seq - 1 AS last_seq FROM tallies"
)
# the tables the upgrade leaves alone
SAME_TABLES="attributes sources settings reserved_attributes quota_minutes quota_reservations bulk_calls lanes call_counts"

json_rows() { # DB SQL: the rows as sorted JSON lines
	sqlite3 -cmd '.timeout 30000' -json "$1" "$2" | sed 's/^\[//; s/[],]$//' | LC_ALL=C sort
}
# dump_raw DB OUT LAYOUT(1 old, 2 new) BATCH_COLS: the raw tables in one form.
dump_raw() {
	local db=$1 out=$2 k=$3 cols=$4 i t
	for ((i = 0; i < ${#RAW_QUERIES[@]}; i += 3)); do
		echo "## ${RAW_QUERIES[i]}"
		json_rows "$db" "${RAW_QUERIES[i + k]}"
	done >"$out"
	for t in $SAME_TABLES; do
		echo "## table $t"
		json_rows "$db" "SELECT * FROM $t"
	done >>"$out"
	echo "## table batches: $cols" >>"$out"
	json_rows "$db" "SELECT $cols FROM batches" >>"$out"
}

# check_raw NAME OLD_RAW_DUMP DB BATCH_COLS: the upgraded tables hold the old rows.
check_raw() {
	dump_raw "$3" "$T/raw.now" 2 "$4"
	if cmp -s "$2" "$T/raw.now"; then
		pass "$1: the tables hold every old row: watermarks, updates, fates, batch members, payloads, pruned values, seqs, ledgers ($(grep -vc '^##' "$2") rows)"
	else
		fail "$1: the tables hold every old row" "$(diff "$2" "$T/raw.now" | cut -c1-300 | head -30)"
	fi
}

# status_of_old DB: 'pending=N batched=N ... oldest=TIME' from the old v_status.
status_of_old() {
	sqlite3 "$1" "SELECT group_concat(state || '=' || updates, ' ') || ' oldest=' ||
		coalesce((SELECT oldest_enqueued_at FROM v_status WHERE state = 'pending'), 'null') FROM v_status"
}
# check_status NAME WANT DB: pobox status --json says the same.
check_status() {
	local got
	got=$("$POBOX" --db "$3" status --json 2>&1 | jq -r '(.updates | to_entries | map("\(.key)=\(.value)") | join(" "))
		+ " oldest=" + (.oldest_pending_enqueued_at // "null")')
	check_eq "$1: pobox status --json counts and oldest pending time as the old v_status" "$2" "$got"
}

# show_of_old DB BATCH: what pobox show prints of a batch, from the old
# v_batches (every non-null field, in its order).
show_of_old() {
	sqlite3 -json "$1" "SELECT * FROM v_batches WHERE id = $2" |
		jq -r '.[0] | to_entries[] | select(.value != null) | "\(.key) \(.value)"'
}
# check_show NAME OLD_DIR DB: pobox show of every batch against the old rows.
check_show() {
	local name=$1 dir=$2 db=$3 b bad=0 n=0
	for b in $(cat "$dir/batch_ids"); do
		n=$((n + 1))
		"$POBOX" --db "$db" show "$b" 2>&1 | sed -E 's/^([a-z_0-9]+) +/\1 /' >"$T/show.now"
		if ! cmp -s "$dir/show_$b" "$T/show.now"; then
			bad=$((bad + 1))
			[ "$bad" -le 2 ] && diff "$dir/show_$b" "$T/show.now" | head -8
		fi
	done >"$T/show.diff"
	check_eq "$name: pobox show of each of the $n batches prints the old fields and values" 0 "$bad"
	[ "$bad" -eq 0 ] || cat "$T/show.diff"
}

# before_upgrade DIR DB: what the old outbox says of itself (views, tables,
# status, batches).
before_upgrade() {
	local dir=$1 db=$2 b
	dump_views "$db" "$dir/views.before"
	# every column of the old batches but its payload (compared above)
	sqlite3 "$db" "SELECT group_concat(name, ', ') FROM pragma_table_info('batches')
		WHERE name <> 'payload'" >"$dir/batch_cols"
	dump_raw "$db" "$dir/raw.before" 1 "$(cat "$dir/batch_cols")"
	status_of_old "$db" >"$dir/status.before"
	sqlite3 "$db" "SELECT id FROM batches ORDER BY id" >"$dir/batch_ids"
	for b in $(cat "$dir/batch_ids"); do show_of_old "$db" "$b" >"$dir/show_$b"; done
}

# after_upgrade NAME DIR DB [AGES_BEFORE T_BEFORE]: all of it again, on
# the upgraded file.
after_upgrade() {
	local name=$1 dir=$2 db=$3
	check_views "$name" "$dir/views.before" "$db" "${@:4}"
	check_raw "$name" "$dir/raw.before" "$db" "$(cat "$dir/batch_cols")"
	check_status "$name" "$(cat "$dir/status.before")" "$db"
	check_show "$name" "$dir" "$db"
}

doctor_ok() { # NAME DB
	local out
	if out=$("$POBOX" --db "$2" doctor 2>&1); then pass "$1: pobox doctor says healthy"; else
		fail "$1: pobox doctor says healthy" "$out"; fi
}

# check_payloads NAME DB GEN: pobox show --payload of every bulk batch the
# old outbox held, finished or not: their exact old bytes, inflated.
check_payloads() {
	local name=$1 db=$2 gen=$3 f b n=0 bytes=0 bad=
	for f in "$gen"/batch_*.body; do
		b=${f##*/batch_}; b=${b%.body}
		n=$((n + 1)) bytes=$((bytes + $(wc -c <"$f")))
		if ! "$POBOX" --db "$db" show "$b" --payload >"$T/payload.out" 2>"$T/payload.err" ||
			! cmp -s "$f" "$T/payload.out"; then
			bad="$bad
batch $b: $(head -c 300 "$T/payload.err"; cmp "$f" "$T/payload.out" 2>&1)"
		fi
	done
	check_eq "$name: pobox show --payload of each of the $n bulk batches is its old batch file, byte for byte ($bytes bytes)" "" "$bad"
}

# deliver_and_check NAME DIR DB: flush --wait, then the simulator and the
# outbox against what the old outbox held.
deliver_and_check() {
	local name=$1 dir=$2
	DB=$3 CONF=$dir/pobox.conf
	write_conf
	q "SELECT seq FROM v_updates WHERE state = 'delivered' ORDER BY seq" >"$dir/delivered.before"
	q "SELECT seq FROM v_updates WHERE state IN ('pending', 'batched') ORDER BY seq" >"$dir/live.before"
	sqlite3 -cmd '.mode json' "$DB" "SELECT * FROM v_dead" | sed 's/^\[//; s/[],]$//' | LC_ALL=C sort >"$dir/dead.before"
	flush_wait "$name" 0 60
	CHECK_LOG=$dir/gen/expected.log check_store "$name: the simulator holds exactly what the outbox held"
	check_eq "$name: nothing pending or batched" 0 \
		"$(q "SELECT count(*) FROM v_updates WHERE state IN ('pending', 'batched')")"
	check_eq "$name: no unfinished batch" 0 \
		"$(q "SELECT count(*) FROM v_batches WHERE state IN ('ready', 'sending', 'submitted')")"
	sqlite3 -cmd '.mode json' "$DB" "SELECT * FROM v_dead" | sed 's/^\[//; s/[],]$//' | LC_ALL=C sort >"$dir/dead.after"
	if cmp -s "$dir/dead.before" "$dir/dead.after"; then
		pass "$name: v_dead unchanged ($(grep -c . "$dir/dead.before") dead updates)"
	else
		fail "$name: v_dead unchanged" "$(diff "$dir/dead.before" "$dir/dead.after" | head -10)"
	fi
	q "SELECT seq FROM v_updates WHERE state = 'delivered' ORDER BY seq" >"$dir/delivered.after"
	check_eq "$name: every update delivered before is still delivered" "" \
		"$(comm -23 "$dir/delivered.before" "$dir/delivered.after" | head -5)"
	q "SELECT seq FROM v_updates WHERE state IN ('delivered', 'superseded') ORDER BY seq" >"$dir/done.after"
	check_eq "$name: every pending or batched update is now delivered or superseded" "" \
		"$(comm -23 <(LC_ALL=C sort "$dir/live.before") <(LC_ALL=C sort "$dir/done.after") | head -5)"
	check_eq "$name: no failed rows at the simulator" 0 "$(sim_counter rows_failed)"
	doctor_ok "$name: after the flush" "$DB"
	# seqs are never reused: the purged newest ones stay taken
	pb put thirdPartyId:after-upgrade tier=new >/dev/null 2>"$T/put.err" || fail "$name: put after the upgrade" "$(cat "$T/put.err")"
	check_ge "$name: a new update's seq is above every seq the old outbox handed out ($MAX_SEQ_EVER)" \
		$((MAX_SEQ_EVER + 1)) "$(q "SELECT max(seq) FROM v_updates WHERE profile_id = 'after-upgrade'")"
}

# ---- schemas 1, 2, 3: updates from sqlite3 producers, pending -------------
# (no batches yet at schema 1; the content those versions' own enqueue
# trigger wrote, upgraded through every later migration)
for v in 1 2 3; do
	new_scenario "s$v"
	sim_start --seed "$seed"
	apply_schema "$DB" "$v"
	{
		echo "BEGIN;"
		for i in 1 2 3 4 5; do
			echo "INSERT INTO enqueue (id_type, profile_id, attr, value, urgent, source) VALUES
				('thirdPartyId', 's$v-$i', 'tier', 'gold $i', 0, 'crm'),
				('mbox3rdPartyId', 's$v-$i', 'profile.city', 'Zürich, \"$i\" & co', $((i % 2)), NULL),
				('thirdPartyId', 's$v-$i', 'empty', '', 0, 'crm');"
		done
		echo "INSERT INTO enqueue (id_type, profile_id, attr, value) VALUES
			('thirdPartyId', 's$v-1', 'tier', 'platinum'), ('thirdPartyId', 'id with space%', 'x', 'a=b&c');"
		echo "COMMIT;"
	} | sqlite3 -bail "$DB" || fail "s$v: enqueue at schema $v"
	sqlite3 -json "$DB" "SELECT id_type, profile_id, attr, value FROM v_updates ORDER BY seq" |
		jq -c '.[] | {t: .id_type, id: .profile_id, a: .attr, v: .value}' >"$LOG"
	DUMP_VIEWS="v_updates v_pending v_status" dump_views "$DB" "$T/s$v/views.before"
	status_of_old "$DB" >"$T/s$v/status.before"
	"$POBOX" --db "$DB" status >"$T/s$v/status.out" 2>&1 || fail "s$v: pobox status" "$(cat "$T/s$v/status.out")"
	check_eq "s$v: schema $v upgraded to $LATEST" "$LATEST" "$(sqlite3 "$DB" 'PRAGMA user_version')"
	DUMP_VIEWS="v_updates v_pending v_status" check_views "s$v" "$T/s$v/views.before" "$DB"
	check_status "s$v" "$(cat "$T/s$v/status.before")" "$DB"
	doctor_ok "s$v" "$DB"
	write_conf
	flush_wait "s$v" 0 60
	check_store "s$v"
	check_all_delivered "s$v"
done

# ---- schema 5: upgraded by `pobox status` ------------------------------------
new_scenario v5
sim_start --seed "$seed"
old_outbox "$T/v5" 5
check_eq "v5: the old outbox is schema 5" 5 "$(sqlite3 "$T/v5/old.db" 'PRAGMA user_version')"
echo "# v5: $(sqlite3 "$T/v5/old.db" "SELECT group_concat(state || '=' || n, ' ') FROM (SELECT state, count(*) n FROM v_updates GROUP BY state)")"
cp "$T/v5/old.db" "$T/v5/pristine.db"
before_upgrade "$T/v5" "$T/v5/old.db"; ages "$T/v5/old.db" "$T/v5/ages.before"; t0=$(now_s)
"$POBOX" --db "$T/v5/old.db" status >"$T/v5/status.out" 2>&1 || fail "v5: pobox status" "$(cat "$T/v5/status.out")"
check_eq "v5: upgraded to the schema this pobox knows" "$LATEST" "$(sqlite3 "$T/v5/old.db" 'PRAGMA user_version')"
after_upgrade v5 "$T/v5" "$T/v5/old.db" "$T/v5/ages.before" "$t0"
check_payloads v5 "$T/v5/old.db" "$T/v5/gen"
doctor_ok v5 "$T/v5/old.db"
deliver_and_check v5 "$T/v5" "$T/v5/old.db"

# ---- schema 4, 200,000 updates: SIGKILL during the upgrade -------------------
new_scenario v4
sim_start --seed "$seed"
old_outbox "$T/v4" 4 --bulk 20000
check_eq "v4: the old outbox is schema 4" 4 "$(sqlite3 "$T/v4/old.db" 'PRAGMA user_version')"
echo "# v4: $(sqlite3 "$T/v4/old.db" "SELECT group_concat(state || '=' || n, ' ') FROM (SELECT state, count(*) n FROM v_updates GROUP BY state)")"
sqlite3 "$T/v4/old.db" 'PRAGMA wal_checkpoint(TRUNCATE)' >/dev/null
cp "$T/v4/old.db" "$T/v4/pristine.db"
before_upgrade "$T/v4" "$T/v4/pristine.db"
sqlite3 "$T/v4/pristine.db" .dump | sha256sum >"$T/v4/dump4"
# the same file with 0005 applied as pobox applies it: where a kill between
# the two migrations (or during 0006, rolled back) leaves it
cp "$T/v4/pristine.db" "$T/v4/five.db"
{ echo "BEGIN IMMEDIATE;"; cat "$SCHEMA"/0005_*.sql; echo "PRAGMA user_version = 5;"; echo "COMMIT;"; } |
	sqlite3 -bail "$T/v4/five.db"
sqlite3 "$T/v4/five.db" .dump | sha256sum >"$T/v4/dump5"

# one uninterrupted upgrade, to know how long it takes here
cp "$T/v4/pristine.db" "$T/v4/timing.db"
ms0=$(date +%s%3N)
"$POBOX" --db "$T/v4/timing.db" status >"$T/v4/status.out" 2>&1 || fail "v4: pobox status" "$(cat "$T/v4/status.out")"
up_ms=$(( $(date +%s%3N) - ms0 ))
echo "# v4: an uninterrupted upgrade (pobox status) took ${up_ms} ms"
check_eq "v4: upgraded to the schema this pobox knows" "$LATEST" "$(sqlite3 "$T/v4/timing.db" 'PRAGMA user_version')"
after_upgrade "v4 uninterrupted" "$T/v4" "$T/v4/timing.db"

rounds=${UPGRADE_KILLS:-4} untouched=0 five=0 upgraded=0 rerun=
for r in $(seq 1 "$rounds"); do
	f=$T/v4/kill$r.db
	cp "$T/v4/pristine.db" "$f"
	# spread over the upgrade: from 5% to 95% of its length
	ms=$(( up_ms * (5 + (r - 1) * 90 / (rounds > 1 ? rounds - 1 : 1)) / 100 + RANDOM % 20 ))
	"$POBOX" --db "$f" status >/dev/null 2>&1 &
	kp=$!
	sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
	kill -KILL "$kp" 2>/dev/null
	wait "$kp" 2>/dev/null
	# what the killed transaction had written (before anything opens the file)
	echo "# kill $r at ${ms} ms: -wal $(stat -c %s "$f-wal" 2>/dev/null || echo 0) bytes"
	v=$(sqlite3 "$f" 'PRAGMA user_version')
	case $v in
	4)	untouched=$((untouched + 1))
		check_eq "kill $r (${ms} ms): schema 4, every table and row as before" "$(cat "$T/v4/dump4")" \
			"$(sqlite3 "$f" .dump | sha256sum)" ;;
	5)	five=$((five + 1))
		check_eq "kill $r (${ms} ms): schema 5, exactly 0005 applied, nothing of 0006" "$(cat "$T/v4/dump5")" \
			"$(sqlite3 "$f" .dump | sha256sum)" ;;
	*)	if [ "$v" -ge 6 ] 2>/dev/null && [ "$v" -le "$LATEST" ]; then
			# 0006 committed (and perhaps later migrations)
			upgraded=$((upgraded + 1))
			after_upgrade "kill $r (${ms} ms): upgraded to $v" "$T/v4" "$f"
		else
			fail "kill $r (${ms} ms): schema 4, 5 or 6 to $LATEST" "user_version $v"
		fi ;;
	esac
	check_eq "kill $r: integrity_check" ok "$(sqlite3 "$f" 'PRAGMA integrity_check')"
	if [ "$v" != "$LATEST" ]; then  # a rerun completes it
		"$POBOX" --db "$f" status >/dev/null 2>"$T/status.err" || fail "kill $r: pobox status afterwards" "$(cat "$T/status.err")"
		check_eq "kill $r: a rerun upgrades it" "$LATEST" "$(sqlite3 "$f" 'PRAGMA user_version')"
		after_upgrade "kill $r: upgraded by the rerun" "$T/v4" "$f"
		rerun=${rerun:-$f}
	fi
done
echo "# v4: $rounds kills: $untouched left schema 4, $five schema 5, $upgraded fully upgraded"
check_ge "v4: at least one kill interrupted the upgrade" 1 $((untouched + five))
# deliver from an outbox whose upgrade was interrupted and rerun
f=${rerun:-$T/v4/kill$rounds.db}
echo "# v4: delivering $(basename "$f")"
doctor_ok "v4 after the kills" "$f"
check_payloads v4 "$f" "$T/v4/gen"
deliver_and_check v4 "$T/v4" "$f"
finish
