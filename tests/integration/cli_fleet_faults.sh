#!/bin/bash
# Eight hosts share 3,000 single calls per rolling 30 s while their links
# to the coordinator fail in every way a network does - refused, reset,
# delayed past the timeout, silently swallowed - on a schedule drawn from
# the seed, and the coordinator itself is stopped (SIGSTOP), then killed
# (SIGKILL) and restarted.  The oracle over every call the simulator
# received holds throughout; no host hangs: producers keep putting, a
# host cut off by a black hole stops promptly on SIGTERM, and when the
# faults are over everything is delivered.
. "$(dirname "$0")/fleet_lib.sh" "$@"

W=30000 BUDGET=3000 MARGIN=30 N=8 RUN_S=${FLEET_RUN_S:-42}
pg_start
sim_start --notfound-silent --single-budget 0 --status-keep 100000 --call-log "$T/calls.log"
FLEET_OWNER_EXTRA=("single_budget = $BUDGET" "fleet_window = 30s" "fleet_margin = 0.01"
                   "fleet_lease = 2s" "fleet_reserve_life = 20s" "fleet_reserve_share = 0.04"
                   "fleet_size = $N" "urgent_reserve = 0" "bulk_calls_per_minute = 6000")
fleet_init --grant pobox_host || { fail "fleet init" "$(cat "$T/init.err")"; finish; }
proxy_start "$N"
FLEET_CONF_EXTRA=("single_budget = $BUDGET" "bulk_calls_per_minute = 6000" "fleet_timeout = 1s"
                  "single_concurrency = 8" "single_threads = 2" "fleet_offline_bulk_per_minute = 20")
loads=()
for i in $(seq 0 $((N - 1))); do
	HOSTS+=("h$i")
	host_conf "h$i" "$i"
	host_start "h$i"
	loads+=("$T/h$i/o.db:$([ "$i" -lt 2 ] && echo 100 || echo 15)")
done
for h in "${HOSTS[@]}"; do wait_for "$h joins" 30 grep -q fleet_joined "$T/$h/run.log" || finish; done
"$LOADBIN" --seconds "$RUN_S" --urgent-every 7 "${loads[@]}" >"$T/load.out" 2>"$T/load.err" &
LOAD_PID=$!
bg "$LOAD_PID"

modes=("refuse" "reset" "delay 600" "blackhole" "delay 300" "delay 1500")
schedule() { # a few seconds of trouble on two random links, then pass again
	local a=$((RANDOM % N)) b=$((RANDOM % N)) m1=${modes[$((RANDOM % 6))]} m2=${modes[$((RANDOM % 6))]}
	echo "# +$(( ($(date +%s%3N) - T0MS) / 1000 ))s: link $a $m1, link $b $m2"
	proxy_mode "$a" "$m1"; proxy_mode "$b" "$m2"
	sleep $((RANDOM % 3 + 2))
	proxy_mode "$a" pass; proxy_mode "$b" pass
}
T0MS=$(date +%s%3N)
sleep 3
schedule; schedule
echo "# +$(( ($(date +%s%3N) - T0MS) / 1000 ))s: coordinator SIGSTOP for 4 s"
pg_signal STOP; sleep 4; pg_signal CONT
schedule
# a host cut off by a black hole still stops promptly and restarts
proxy_mode 5 blackhole
sleep 1.5
t=$(date +%s%3N); host_stop h5; t=$(( $(date +%s%3N) - t ))
check_le "a host behind a black hole stops within 10 s of SIGTERM (ms)" 10000 "$t"
host_start h5
sleep 2; proxy_mode 5 pass
echo "# +$(( ($(date +%s%3N) - T0MS) / 1000 ))s: coordinator SIGKILL, restart 2 s later"
pg_kill9; sleep 2; pg_launch || finish
schedule
wait "$LOAD_PID"; load_rc=$?
check_eq "producers kept putting through every fault (fleet_load exit 0)" 0 "$load_rc"
check_eq "... every update accepted" "$(awk '{ s += $3 } END { print s }' "$T/load.out")" \
	"$(for h in "${HOSTS[@]}"; do hq "$h" "SELECT count(*) FROM v_updates"; done | awk '{ s += $1 } END { print s }')"

all_delivered() {
	local h
	for h in "${HOSTS[@]}"; do
		[ "$(hq "$h" "SELECT count(*) FROM v_updates WHERE state IN ('pending', 'batched')")" = 0 ] || return 1
	done
}
wait_for "after the faults every host delivers everything" 90 all_delivered
for h in "${HOSTS[@]}"; do host_stop "$h"; done
check_eq "nothing dead" 0 "$(for h in "${HOSTS[@]}"; do hq "$h" "SELECT count(*) FROM v_updates WHERE state = 'dead'"; done | awk '{ s += $1 } END { print s }')"
sim_stop
read -r MAX AT <<<"$(oracle_max single $W)"
echo "# single calls: $(calls_between single 0 9999999999999); the most in any 30 s window: $MAX"
check_le "oracle: no rolling 30 s window over budget - margin, through every fault" $((BUDGET - MARGIN)) "$MAX"
check_ge "hosts saw the coordinator go and come back" 1 "$(cat "$T"/h*/run.log | grep -c fleet_online)"
check_eq "no host was refused" 0 "$(cat "$T"/h*/run.log | grep -c fleet_refused)"
finish
