#!/usr/bin/env bash
# The counts pobox keeps as they change (issue 11 item 2: the tallies row,
# batch_counts) against a recount from the raw tables, after every step of
# a seeded random sequence of operations:
#   put (now and then urgent, with empty values), import and import
#   --changed-only of random CSVs (empty cells, repeated values), INSERT INTO
#   enqueue from the sqlite3 shell (staged rows), flush (cut only), flush
#   --wait against the simulator (bulk only or with the single lane, batch
#   sizes that make the simulator refuse and pobox split), flush --wait
#   through HTTP errors, 429s, stuck batches and dropped connections, dead
#   letters (every call failing with max_attempts = 1; a profile over
#   Target's 64 KB cap), pcIds Target does not know (a single call that
#   finds no profile sends it to the bulk lane), requeue of some or all
#   dead, purge of dead updates, purge of delivered history, a short
#   retention, and SIGKILL of an import, a flush --wait, a requeue or a
#   purge at a random moment.
# After each step:
#   - `pobox status --json`: the updates by state and the oldest pending
#     time equal a recount (the states derived from writes, fates,
#     profiles' watermarks, batch members and batch_left, and staged, by
#     this test's own SQL), and v_updates agrees with that recount;
#   - `pobox status --prometheus`: the same counts, and the batches by lane
#     and state equal a count of the batches table;
#   - the tallies row: profiles and key counts equal a count of their
#     tables, the last seq handed out (next_seq - 1) is the highest seq this
#     test has seen in the outbox (it never goes back, purged seqs stay
#     taken), the cut watermark is not past it, the last delivery time is
#     the newest done_at_ms;
#   - `pobox doctor` says the outbox is healthy.
# Seeded: the seed is printed; TALLY_SEED reruns one sequence, TALLY_STEPS
# sets its length.
. "$(dirname "$0")/bulk_lib.sh"
seed=${TALLY_SEED:-${BULK_SEED:-4242}}
steps=${TALLY_STEPS:-60}
echo "# seed $seed (rerun with TALLY_SEED=$seed), $steps steps"
RANDOM=$seed

new_scenario tallies
PRELOAD=$T/tallies/preload.csv
{
	echo "pcId,keep"
	for i in 0 1 2 3 4 5 6 7; do echo "1700000000$i-00$i$i.01_00,kept$i"; done
} >"$PRELOAD"
# refuses files of more than 40 rows: pobox splits them
sim_start --seed "$seed" --preload "$PRELOAD" --max-batch-rows 40
CONF_EXTRA=()
conf() { # KEY = VALUE lines for this step, on top of the usual ones
	BULK_POLL_INITIAL=50ms BULK_POLL_CAP=200ms BULK_BACKOFF_BASE=20ms BULK_BACKOFF_CAP=200ms \
		write_conf "max_attempts = 3" "stuck_wait = 1s" "${CONF_EXTRA[@]}" "$@"
}
conf
r() { echo $((RANDOM % $1)); }

# ---- the operations ------------------------------------------------------------
VALS=("gold" "silver" "" "Zürich, \"Nord\"" "a=b&c%d" "1200" "日本語 ✓" "x y")
pick_val() { echo "${VALS[$(r ${#VALS[@]})]}"; }
pick_id() { # TYPE:ID; pcIds 8 and 9 are unknown to Target
	local i
	if [ "$(r 7)" -eq 0 ]; then i=$(r 10); echo "pcId:1700000000$i-00$i$i.01_00"
	else echo "thirdPartyId:t-$(r 50)"; fi
}

op_put() {
	local kv=() n i args=()
	n=$((1 + $(r 4)))
	for i in $(seq 1 "$n"); do kv+=("a$(r 8)=$(pick_val)"); done
	[ "$(r 5)" -eq 0 ] && args+=(--urgent)
	pb put "$(pick_id)" "${kv[@]}" "${args[@]}" >"$T/op.out" 2>&1
	OP_RC=$?; OP_OK="0"
}

# csv ROWS FILE: header thirdPartyId,a0..aK, random ids, values, empty cells
csv() {
	local rows=$1 cols=$((2 + $(r 6)))
	awk -v rows="$rows" -v cols="$cols" -v seed="$RANDOM" 'BEGIN {
		srand(seed); n = split("gold|silver||Zürich, \"Nord\"|a=b&c%d|1200|日本語 ✓|x y", v, "|")
		h = "thirdPartyId"; for (c = 0; c < cols; c++) h = h ",a" c; print h
		for (i = 0; i < rows; i++) {
			line = "t-" int(rand() * 60)
			for (c = 0; c < cols; c++) {
				x = v[1 + int(rand() * n)]
				if (x ~ /[,"]/) { gsub(/"/, "\"\"", x); x = "\"" x "\"" }
				line = line "," x
			}
			print line
		}
	}' >"$2"
}
op_import() {
	csv $((1 + $(r 150))) "$T/in.csv"
	pb import "$T/in.csv" "$@" >"$T/op.out" 2>&1
	OP_RC=$?; OP_OK="0"
}
op_sql() {
	local i sql="BEGIN;"
	for i in $(seq 1 $((1 + $(r 6)))); do
		sql="$sql INSERT INTO enqueue (id_type, profile_id, attr, value, urgent, source) VALUES
			('thirdPartyId', 't-$(r 50)', 'a$(r 8)', 'sql $(r 4)', $(r 2), 'crm-sql');"
	done
	sqlite3 -cmd '.timeout 30000' "$DB" "$sql COMMIT;" >"$T/op.out" 2>&1
	OP_RC=$?; OP_OK="0"
}
op_cut() { pb flush >"$T/op.out" 2>&1; OP_RC=$?; OP_OK="0"; }
# deliver [KEY = VALUE...]: flush --wait; 65 when something ended dead
deliver() {
	conf "$@"
	timeout -s KILL 120 "$POBOX" -c "$CONF" flush --wait --timeout 60s >"$T/op.out" 2>&1
	OP_RC=$?; OP_OK="0 65"
	conf
}
op_deliver() {
	local lane=0
	[ "$(r 3)" -eq 0 ] && lane=1
	BULK_SINGLE_LANE=$lane deliver "max_batch_rows = $((5 + $(r 60)))"
}
op_faulty() {
	sim_faults "error_rate=0.3&rate_429=0.1&stuck_rate=0.2&drop_rate=0.05&retry_after_s=0"
	# it may give up waiting with work left: 75
	conf "max_batch_rows = $((5 + $(r 30)))"
	timeout -s KILL 60 "$POBOX" -c "$CONF" flush --wait --timeout 8s >"$T/op.out" 2>&1
	OP_RC=$?; OP_OK="0 65 75"
	conf
	sim_faults "error_rate=0&rate_429=0&stuck_rate=0&drop_rate=0"
}
op_die() {
	sim_faults "error_rate=1&error_codes=500"
	deliver "max_attempts = 1"
	sim_faults "error_rate=0&error_codes=500,502,503,504"
}
op_cap() { # a profile over Target's 64 KB per-profile cap: dead at its cut
	local kv=() i
	for i in $(seq 1 280); do kv+=("big$i=$(printf '%0250d' "$i")"); done
	pb put "thirdPartyId:big-$(r 3)" "${kv[@]}" >"$T/op.out" 2>&1 && pb flush >>"$T/op.out" 2>&1
	OP_RC=$?; OP_OK="0"
}
dead_subset() { # some seqs of dead updates, comma-separated
	q "SELECT group_concat(seq) FROM (SELECT seq FROM v_dead ORDER BY random() LIMIT $((1 + $(r 20))))"
}
op_requeue() {
	local ids
	if [ "$(r 2)" -eq 0 ]; then pb requeue --all >"$T/op.out" 2>&1; OP_RC=$?
	else
		ids=$(dead_subset)
		if [ -n "$ids" ]; then pb requeue --id "$ids" >"$T/op.out" 2>&1; OP_RC=$?
		else pb requeue --all >"$T/op.out" 2>&1; OP_RC=$?; fi
	fi
	OP_OK="0 65"  # 65: nothing matched
}
op_purge_dead() {
	local ids
	ids=$(dead_subset)
	if [ -n "$ids" ]; then pb purge --dead --id "$ids" --yes >"$T/op.out" 2>&1; OP_RC=$?
	else pb purge --dead --all --yes >"$T/op.out" 2>&1; OP_RC=$?; fi
	OP_OK="0 65"
}
op_prune() {
	local before=("--before" "0s")
	[ "$(r 2)" -eq 0 ] && before=()
	pb purge --delivered "${before[@]}" --yes >"$T/op.out" 2>&1
	OP_RC=$?; OP_OK="0 65"
}
op_retention() { # housekeeping: delivered history older than a second goes
	sleep 1.1
	deliver "retention = 1s"
}
# op_kill: one of them in the background, SIGKILLed 0-700 ms after it starts
op_kill() {
	local ms what pid
	ms=$(r 701)
	case $(r 4) in
	0)	what=import; csv $((300 + $(r 1700))) "$T/big.csv"
		"$POBOX" -c "$CONF" import "$T/big.csv" "$([ "$(r 2)" -eq 0 ] && echo --changed-only || echo --source=big)" >"$T/op.out" 2>&1 & pid=$! ;;
	1)	what="flush --wait"; "$POBOX" -c "$CONF" flush --wait --timeout 30s >"$T/op.out" 2>&1 & pid=$! ;;
	2)	what=requeue; "$POBOX" -c "$CONF" requeue --all >"$T/op.out" 2>&1 & pid=$! ;;
	*)	what="purge --delivered"; "$POBOX" -c "$CONF" purge --delivered --yes >"$T/op.out" 2>&1 & pid=$! ;;
	esac
	bg "$pid"
	sleep "$(printf '0.%03d' "$ms")"
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	OP_RC=$?; OP_OK=any
	OP_NAME="SIGKILL $what after ${ms} ms (exit $OP_RC)"
}

# ---- the recount ---------------------------------------------------------------------
# every update's state from the raw tables (the rules of schema/0006's
# header), and the oldest pending enqueue time
RECOUNT_SQL="
WITH ib AS MATERIALIZED (
	SELECT CAST(e.value AS INTEGER) AS profile, b.batch_seq
	FROM batches b JOIN batch_members m ON m.batch = b.id, json_each(m.members) e
	WHERE b.state IN ('ready', 'sending', 'submitted')
	  AND NOT EXISTS (SELECT 1 FROM batch_left l WHERE l.batch = b.id AND l.profile = CAST(e.value AS INTEGER))),
u AS MATERIALIZED (
	SELECT w.enqueued_at_ms AS at,
	       CASE WHEN f.state IS NOT NULL THEN f.state
	            WHEN w.seq + e.key <= p.done_seq THEN 'delivered'
	            WHEN ib.batch_seq IS NOT NULL AND w.seq + e.key <= ib.batch_seq THEN 'batched'
	            ELSE 'pending' END AS state
	FROM writes w JOIN profiles p ON p.id = w.profile, json_each(w.cells) e
	LEFT JOIN fates f ON f.seq = w.seq + e.key
	LEFT JOIN ib ON ib.profile = w.profile
	WHERE e.type <> 'null'
	UNION ALL SELECT enqueued_at_ms, 'pending' FROM staged)
SELECT 'pending=' || (SELECT count(*) FROM u WHERE state = 'pending')
    || ' batched=' || (SELECT count(*) FROM u WHERE state = 'batched')
    || ' delivered=' || (SELECT count(*) FROM u WHERE state = 'delivered')
    || ' superseded=' || (SELECT count(*) FROM u WHERE state = 'superseded')
    || ' dead=' || (SELECT count(*) FROM u WHERE state = 'dead')
    || ' oldest=' || coalesce((SELECT strftime('%Y-%m-%dT%H:%M:%fZ', min(at) / 1000.0, 'unixepoch')
                               FROM u WHERE state = 'pending'), 'null')"
VIEW_SQL="
SELECT 'pending=' || (SELECT count(*) FROM v_updates WHERE state = 'pending')
    || ' batched=' || (SELECT count(*) FROM v_updates WHERE state = 'batched')
    || ' delivered=' || (SELECT count(*) FROM v_updates WHERE state = 'delivered')
    || ' superseded=' || (SELECT count(*) FROM v_updates WHERE state = 'superseded')
    || ' dead=' || (SELECT count(*) FROM v_updates WHERE state = 'dead')
    || ' oldest=' || coalesce((SELECT min(enqueued_at) FROM v_updates WHERE state = 'pending'), 'null')"
# the tallies row beside a count of what it counts
KEPT_SQL="SELECT 'profiles=' || profiles || ' keys=' || keys_main || '+' || keys_new
    || ' last_delivery=' || last_delivery_ms FROM tallies"
COUNTED_SQL="SELECT 'profiles=' || (SELECT count(*) FROM profiles)
    || ' keys=' || (SELECT count(*) FROM profile_keys) || '+' || (SELECT count(*) FROM profile_keys_new)
    || ' last_delivery=' || coalesce((SELECT max(done_at_ms) FROM profiles), 0) FROM tallies"
SEQ_SQL="SELECT (SELECT next_seq - 1 FROM tallies), (SELECT cut_seq FROM tallies),
    max(coalesce((SELECT max(seq + json_array_length(cells) - 1) FROM writes), 0),
        coalesce((SELECT max(seq) FROM staged), 0))"
BATCHES_SQL="SELECT lane || ',' || state || ' ' || count(*) FROM batches GROUP BY lane, state ORDER BY 1"

HW=0 checks_bad=0
# check_tallies NAME: all of it; one pass line per step, the details on a failure.
check_tallies() {
	local name=$1 bad="" st recount view prom_u prom_b kept counted last cut seen
	st=$(pb status --json 2>&1 | jq -r '(.updates | to_entries | map("\(.key)=\(.value)") | join(" "))
		+ " oldest=" + (.oldest_pending_enqueued_at // "null")' 2>&1)
	recount=$(q "$RECOUNT_SQL")
	view=$(q "$VIEW_SQL")
	[ "$st" = "$recount" ] || bad="$bad
status --json: $st
recount:       $recount"
	[ "$view" = "$recount" ] || bad="$bad
v_updates:     $view
recount:       $recount"
	pb status --prometheus >"$T/prom.txt" 2>&1
	prom_u=$(sed -n 's/^pobox_updates{state="\([a-z]*\)"} \([0-9]*\)$/\1=\2/p' "$T/prom.txt" | paste -sd' ')
	[ "$prom_u" = "${recount% oldest=*}" ] || bad="$bad
prometheus:    $prom_u
recount:       ${recount% oldest=*}"
	prom_b=$(sed -n 's/^pobox_batches{lane="\([a-z]*\)",state="\([a-z]*\)"} \([0-9]*\)$/\1,\2 \3/p' "$T/prom.txt" |
		grep -v ' 0$' | LC_ALL=C sort)
	[ "$prom_b" = "$(q "$BATCHES_SQL" | LC_ALL=C sort)" ] || bad="$bad
prometheus batches: $(echo $prom_b)
batches table:      $(q "$BATCHES_SQL" | paste -sd' ')"
	kept=$(q "$KEPT_SQL") counted=$(q "$COUNTED_SQL")
	[ "$kept" = "$counted" ] || bad="$bad
tallies: $kept
counted: $counted"
	IFS='|' read -r last cut seen <<<"$(q "$SEQ_SQL")"
	[ "$seen" -gt "$HW" ] && HW=$seen
	[ "$last" = "$HW" ] || bad="$bad
next_seq - 1 = $last, the highest seq seen in the outbox so far = $HW"
	[ "$cut" -le "$last" ] || bad="$bad
cut_seq $cut is past next_seq - 1 = $last"
	if ! pb doctor >"$T/doctor.out" 2>&1 || ! grep -q '^the outbox is healthy' "$T/doctor.out"; then
		bad="$bad
doctor: $(grep -v '^ok' "$T/doctor.out" | head -8)"
	fi
	if [ -z "$bad" ]; then
		pass "$name: status, metrics and tallies equal the recount ($recount; seq $last)"
	else
		checks_bad=$((checks_bad + 1))
		fail "$name: status, metrics and tallies equal the recount" "$bad"
	fi
}

# ---- the run --------------------------------------------------------------------------
# the outbox is made by a first import
csv 100 "$T/in.csv"
pb import "$T/in.csv" >"$T/op.out" 2>&1 || fail "first import" "$(cat "$T/op.out")"
check_tallies "first import"
# weights: what an outbox sees most
OPS=(put put put put import import import changed changed sql sql cut cut deliver deliver deliver
     faulty die cap requeue requeue purge_dead prune retention kill kill kill kill)
for step in $(seq 1 "$steps"); do
	op=${OPS[$(r ${#OPS[@]})]}
	OP_NAME=$op
	case $op in
	put) op_put ;;
	import) op_import ;;
	changed) op_import --changed-only; OP_NAME="import --changed-only" ;;
	sql) op_sql ;;
	cut) op_cut ;;
	deliver) op_deliver ;;
	faulty) op_faulty; OP_NAME="flush --wait through faults" ;;
	die) op_die; OP_NAME="flush --wait, every call failing" ;;
	cap) op_cap; OP_NAME="put over the per-profile cap, cut" ;;
	requeue) op_requeue ;;
	purge_dead) op_purge_dead; OP_NAME="purge --dead" ;;
	prune) op_prune; OP_NAME="purge --delivered" ;;
	retention) op_retention; OP_NAME="flush --wait, retention 1s" ;;
	kill) op_kill ;;
	esac
	if [ "$OP_OK" != any ] && ! [[ " $OP_OK " == *" $OP_RC "* ]]; then
		fail "step $step ($OP_NAME): exits ${OP_OK// / or }" "exit $OP_RC: $(tail -5 "$T/op.out")"
	fi
	check_tallies "step $step ($OP_NAME)"
	[ "$checks_bad" -ge 3 ] && { echo "# stopping after 3 failed checks"; break; }
done

# everything delivered in the end, and the counts still right
sim_faults "error_rate=0&rate_429=0&stuck_rate=0&drop_rate=0"
deliver
if [ "$OP_RC" -ne 0 ] && [ "$OP_RC" -ne 65 ]; then fail "final flush --wait: exits 0 or 65" "exit $OP_RC: $(tail -5 "$T/op.out")"; fi
check_tallies "final flush --wait"
check_eq "final: nothing pending or batched" "0 0" "$(q "SELECT (SELECT count(*) FROM v_updates WHERE state = 'pending') || ' ' ||
	(SELECT count(*) FROM v_updates WHERE state = 'batched')")"
finish
