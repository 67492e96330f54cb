#!/usr/bin/env bash
# The fence, against out-of-order application: the simulator applies batches
# submitted within 400 ms of each other together, in a seeded random order
# (--shuffle-window-ms), and takes a while to process them.  A producer keeps
# `pobox put`-ing / importing newer values to the same 25 profiles while
# `pobox flush --wait` runs in the background (restarted whenever it
# finishes).  Then the producer stops and a final `flush --wait` runs.  If
# pobox ever sent a profile again while an earlier batch with it was still
# unfinished, the shuffle could apply the older value last: the store must
# hold the newest value of every attribute.
. "$(dirname "$0")/bulk_lib.sh"
seed=${BULK_SEED:-7701}
echo "# seed $seed"

new_scenario fence
pcs="1800000000001-000001.01_00,1800000000002-000002.01_00,1800000000003-000003.01_00"
{ echo "pcId,h0,keep"; for p in ${pcs//,/ }; do echo "$p,pre,keep-$p"; done; } >"$T/fence/preload.csv"
sim_start --seed "$seed" --preload "$T/fence/preload.csv" --shuffle-window-ms 400 --process-delay-ms 150
# stuck_resubmits is raised so that batch statuses evicted by the simulator
# (it keeps the last 10, like Target) cannot dead-letter updates here: that
# is cli_bulk_many's subject; this test is about order.
write_conf "max_batch_rows = 50" "stuck_resubmits = 1000"

python3 "$EXPECT" produce --pobox "$POBOX" --conf "$CONF" --log "$LOG" --stop "$T/fence/stop" \
	--stats "$T/fence/stats" --seed "$seed" --tp 22 --pcids "$pcs" --attrs 4 --sleep-ms 30 \
	--max-seconds 60 2>"$T/fence/producer.err" &
ppid=$!; bg $ppid
end=$(( $(date +%s) + 8 ))
runs=0 bad=0
while [ "$(date +%s)" -lt "$end" ]; do
	timeout -s KILL 60 "$POBOX" -c "$CONF" flush --wait --timeout 40s >>"$T/flush.out" 2>>"$T/flush.err" &
	fpid=$!
	while kill -0 $fpid 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 0.1; done
	kill -0 $fpid 2>/dev/null && break    # still running at the end: stop the producer first
	wait $fpid; rc=$?
	runs=$((runs + 1))
	[ "$rc" -eq 0 ] || { bad=$((bad + 1)); echo "# background flush exit $rc"; }
	fpid=
done
touch "$T/fence/stop"
wait $ppid
if [ -n "$fpid" ]; then
	wait $fpid; rc=$?
	runs=$((runs + 1))
	[ "$rc" -eq 0 ] || { bad=$((bad + 1)); echo "# background flush exit $rc"; }
fi
read -r ops pfail _ <"$T/fence/stats"
echo "# producer: $ops operations, $(grep -c . "$LOG") updates; background flush runs: $runs"
check_eq "producer: no put/import failed (never 'database is locked')" 0 "$pfail"
[ "$pfail" -eq 0 ] || head -5 "$T/fence/producer.err"
check_eq "background flush --wait runs exit 0" 0 "$bad"
flush_wait final 0 60
check_store fence --preload "$T/fence/preload.csv"
check_all_delivered fence
check_ge "fence: batches were shuffled together (several batches sent)" 5 "$(sim_counter batches_processed)"
finish
