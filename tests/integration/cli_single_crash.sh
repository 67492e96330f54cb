#!/bin/bash
# Crash test for the single lane: while producers keep putting updates
# (mostly urgent) to preloaded pcIds, `pobox run` or `pobox flush --wait` is
# started and SIGKILLed at random moments, KILLS times (default 60), with
# the simulator answering after a random latency so kills land mid-call.
# Each kill's leftover reservations (quota_reservations rows of the dead
# process) are recorded.  At the end a clean `flush --wait` delivers the
# rest, and:
#  - no update is lost: the simulator holds the newest value of every
#    attribute the producers got exit 0 for;
#  - quota_reservations is empty after the final clean run;
#  - sum(used) >= single calls the simulator answered ok (every successful
#    call is charged), and sum(used) <= single calls the simulator received
#    + units the killed processes left reserved (a reservation of a dead
#    process is charged as used - it may have reached Target - but no unit
#    is ever charged twice for one call);
#  - producers never failed (no "database is locked").
# Seed with SINGLE_SEED; KILLS=N changes the number of kills.
. "$(dirname "$0")/single_lib.sh" "$@"

seed=${SINGLE_SEED:-$$}
RANDOM=$seed
kills=${KILLS:-60}
echo "# seed $seed, $kills kills"
npc=40
preload_pc "$T/pre.csv" $npc pc a
sim_start --preload "$T/pre.csv" --latency-ms 2 --latency-jitter-ms 25 --seed "$seed"
write_conf "single_concurrency = 4" "single_group = 6" "flush_max_delay = 2s" "synchronous = NORMAL"

# producer N: urgent (80%) and non-urgent puts of increasing values, logged
# after exit 0; failures to $T/prod.N.fail.  The two producers own disjoint
# halves of the profiles, so each profile's log is in enqueue order.
producer() {
	local n=$1 c=0 id at u
	: >"$T/prod.$n.fail"
	local end=$((SECONDS + 300))
	while [ ! -e "$T/stop" ] && [ -d "$T" ] && [ $SECONDS -lt $end ]; do
		c=$((c + 1))
		id=pc$(( (RANDOM % (npc / 2)) + 1 + (n - 1) * (npc / 2) ))
		at=$(( RANDOM % 3 ))
		u=--urgent; [ $((RANDOM % 5)) -eq 0 ] && u=
		if "$POBOX" -c "$CONF" put "pcId:$id" "a$at=p$n-$c" "a=p$n-$c" $u >/dev/null 2>"$T/prod.$n.err"; then
			printf 'pcId\t%s\ta%s\tp%s-%s\npcId\t%s\ta\tp%s-%s\n' "$id" "$at" "$n" "$c" "$id" "$n" "$c" >>"$T/prod.$n.log"
		else
			echo "exit $?: $(cat "$T/prod.$n.err")" >>"$T/prod.$n.fail"
		fi
		sleep 0.0$((RANDOM % 3))
	done
}
RANDOM=$seed; producer 1 & bg $!; p1=$!
RANDOM=$((seed + 1)); producer 2 & bg $!; p2=$!
RANDOM=$((seed + 2))

: >"$T/leaked"
for k in $(seq 1 "$kills"); do
	if [ $((k % 3)) -eq 0 ]; then
		"$POBOX" -c "$CONF" flush --wait --timeout 30s >/dev/null 2>>"$T/runs.err" &
	else
		"$POBOX" -c "$CONF" run >/dev/null 2>>"$T/runs.err" &
	fi
	pid=$!
	sleep "0.$(printf '%02d' $((RANDOM % 60 + 5)))"
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	# what the dead process left reserved (rows keyed by owner and minute)
	q "SELECT owner || '|' || minute || '|' || units FROM quota_reservations" >>"$T/leaked"
done
touch "$T/stop"
wait "$p1" "$p2"
cat "$T"/prod.*.log >"$LOG"
echo "# $(grep -c . "$LOG") updates logged, $(single_calls total) single calls received so far, $(sort -u "$T/leaked" | grep -c .) leftover reservation rows seen"
check_eq "producers never failed" "" "$(cat "$T"/prod.*.fail)"

# one more urgent update, so the final run reserves (and reaps dead owners' rows)
put_ok final pcId pc1 a=final --urgent
flush_wait final 0 90
check_store final --preload "$T/pre.csv"
check_all_delivered final
check_ledger_clean "final clean run"

used=$(ledger_used)
ok=$(single_calls ok)
total=$(single_calls total)
leaked=$(sort -u "$T/leaked" | awk -F'|' '{ s += $3 } END { print s + 0 }')
echo "# ledger used $used; simulator: $ok single calls ok, $total received; killed processes left $leaked units reserved"
check_ge "every successful single call is charged (used >= sim ok)" "$ok" "$used"
check_le "no unit charged twice (used <= sim received + leftover reservations)" "$((total + leaked))" "$used"
check_eq "every single call answered ok (no 429, no not-found)" "$total" "$ok"
check_ge "kills happened mid-delivery (single calls made)" 50 "$total"
finish
