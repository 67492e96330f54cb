#!/usr/bin/env bash
# Crash test: `pobox flush --wait` is killed with SIGKILL at least 50 times
# at random moments (0-300 ms after it starts) while a producer keeps
# enqueueing increasing values to overlapping profiles (puts and small
# imports, thirdPartyIds and preloaded pcIds) on top of a few thousand
# initial updates.  Then the producer stops and one uninterrupted
# `flush --wait` runs.  The simulator's store must hold exactly the newest
# value of every attribute ever enqueued (nothing lost, nothing stale, nothing
# extra), the outbox must hold every update (delivered or superseded, none
# dead) and pass SQLite's integrity check.
. "$(dirname "$0")/bulk_lib.sh"
seed=${BULK_SEED:-9001}
echo "# seed $seed (rerun with BULK_SEED=$seed)"
RANDOM=$seed
kills_wanted=${BULK_KILLS:-50}

new_scenario crash
python3 "$EXPECT" gen --seed "$seed" --out "$T/crash/gen" --log "$LOG" --tp 300 --pc 30 \
	--attrs 6 --updates 3000 --files 6 --tricky >/dev/null
PRELOAD=$T/crash/gen/preload.csv
pcs=$(tail -n +2 "$PRELOAD" | head -5 | cut -d, -f1 | paste -sd,)
sim_start --seed "$seed" --preload "$PRELOAD" --process-delay-ms 40
BULK_POLL_INITIAL=50ms BULK_POLL_CAP=200ms write_conf "max_batch_rows = 50"
enqueue_imports "$T/crash/gen"

python3 "$EXPECT" produce --pobox "$POBOX" --conf "$CONF" --log "$LOG" --stop "$T/crash/stop" \
	--stats "$T/crash/stats" --seed "$seed" --tp 40 --pcids "$pcs" --attrs 4 --sleep-ms 20 \
	--max-seconds 240 2>"$T/crash/producer.err" &
ppid=$!; bg $ppid

landed=0 early=0 tries=0 other=0
while [ "$landed" -lt "$kills_wanted" ] && [ "$tries" -lt $((kills_wanted * 4)) ]; do
	tries=$((tries + 1))
	"$POBOX" -c "$CONF" flush --wait --timeout 60s >>"$T/flush.out" 2>>"$T/flush.err" &
	fpid=$!
	ms=$((RANDOM % 301))
	sleep "$(printf '0.%03d' "$ms")"
	if kill -KILL $fpid 2>/dev/null; then
		wait $fpid 2>/dev/null; rc=$?
		if [ "$rc" -eq 137 ]; then landed=$((landed + 1)); else early=$((early + 1)); fi
	else
		wait $fpid; rc=$?
		early=$((early + 1))
		[ "$rc" -eq 0 ] || other=$((other + 1))
	fi
done
echo "# kills landed: $landed, runs that finished first: $early (non-zero exits: $other), tries: $tries"
check_ge "SIGKILLs landed while flush --wait was running" "$kills_wanted" "$landed"
touch "$T/crash/stop"
wait $ppid
read -r ops pfail _ <"$T/crash/stats"
echo "# producer: $ops operations; $(grep -c . "$LOG") updates enqueued in all"
check_eq "producer: no put/import failed" 0 "$pfail"
[ "$pfail" -eq 0 ] || head -5 "$T/crash/producer.err"
echo "# before the final flush: $(q "SELECT group_concat(state || '=' || n, ' ') FROM (SELECT state, count(*) n FROM v_batches GROUP BY state)")"
check_eq "outbox passes integrity_check after the kills" ok "$(q 'PRAGMA integrity_check')"

flush_wait "final (uninterrupted)" 0 120
check_store crash --preload "$PRELOAD"
check_all_delivered crash
check_eq "outbox passes integrity_check at the end" ok "$(q 'PRAGMA integrity_check')"
check_eq "no failed rows at the simulator" 0 "$(sim_counter rows_failed)"
finish
