#!/bin/bash
# `pobox run`, the service loop, with the single lane:
#  - an urgent put while run is idle reaches the simulator within 1 s
#    (measured from the put's return to the value being in the store);
#  - a non-urgent put (few pending, single lane on) goes out after ~1 s;
#  - idle CPU over 3 s is low (< 0.3 s of CPU);
#  - a second run on the same outbox exits 75 naming the lock;
#  - SIGHUP reloads the config (logs `reloaded`; the new value is used:
#    single_lane = no sends the next urgent update by bulk);
#  - SIGTERM exits 0 within a few seconds.
. "$(dirname "$0")/single_lib.sh" "$@"

preload_pc "$T/pre.csv" 20 pc a
sim_start --preload "$T/pre.csv"
write_conf "flush_max_delay = 5m"
tick=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
now() { date +%s.%N; }
# wait_value ID VALUE SECS: poll the simulator until pcId ID has a=VALUE; prints the seconds waited
wait_value() {
	python3 - "$B" "$1" "$2" "$3" <<'PY'
import json, sys, time, urllib.request, urllib.error
b, pid, want, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
t0 = time.time()
while time.time() - t0 < secs:
    try:
        with urllib.request.urlopen(f"{b}/rest/v1/profiles/{pid}?client=demo", timeout=2) as r:
            if json.load(r)["profileAttributes"].get("a", {}).get("value") == want:
                print(f"{time.time() - t0:.3f}"); sys.exit(0)
    except urllib.error.HTTPError:
        pass
    time.sleep(0.01)
print("timeout"); sys.exit(1)
PY
}

run_bg "$T/run.err"
wait_for "run starts" 10 grep -q started "$T/run.err"
sleep 1

# idle CPU
c0=$(cpu_ticks "$RUN_PID"); sleep 3; c1=$(cpu_ticks "$RUN_PID")
idle_ms=$(( (c1 - c0) * 1000 / tick ))
check_le "idle: CPU over 3 s in ms" 300 "$idle_ms"

# prompt wake-up for an urgent update
put_ok urgent pcId pc1 a=urgent-1 --urgent
lat=$(wait_value pc1 urgent-1 5)
echo "# urgent put -> in the simulator: ${lat}s"
check_eq "urgent put reaches the simulator within 1 s" yes \
	"$(python3 -c "import sys; print('yes' if sys.argv[1] != 'timeout' and float(sys.argv[1]) < 1.0 else 'no: ' + sys.argv[1])" "$lat")"
check_eq "urgent: went by a single call" 1 "$(single_calls ok)"

# a second urgent one right after (the loop is awake again)
put_ok urgent2 pcId pc2 a=urgent-2 --urgent
lat=$(wait_value pc2 urgent-2 5)
echo "# second urgent put: ${lat}s"
check_eq "second urgent put within 1 s" yes \
	"$(python3 -c "import sys; print('yes' if sys.argv[1] != 'timeout' and float(sys.argv[1]) < 1.0 else 'no: ' + sys.argv[1])" "$lat")"

# non-urgent, few pending: cut once it waited ~1 s (not flush_max_delay)
put_ok normal pcId pc3 a=normal-3
lat=$(wait_value pc3 normal-3 10)
echo "# non-urgent put: ${lat}s"
check_eq "non-urgent (few pending) delivered within 3 s, not after flush_max_delay" yes \
	"$(python3 -c "import sys; print('yes' if sys.argv[1] != 'timeout' and float(sys.argv[1]) < 3.0 else 'no: ' + sys.argv[1])" "$lat")"
check_eq "non-urgent: by a single call" 3 "$(single_calls ok)"

# single instance
t0=$(now)
timeout -s KILL 20 "$POBOX" -c "$CONF" run >"$T/run2.out" 2>"$T/run2.err"; rc=$?
check_eq "second run on the same outbox exits 75" 75 "$rc"
check_eq "second run's message names the lock" 1 "$(grep -ciE 'lock|already' "$T/run2.err" | head -1 | sed 's/^[1-9][0-9]*$/1/')"
echo "# second run said: $(head -2 "$T/run2.err")"
check_eq "second run gives up at once (< 3 s)" yes "$(python3 -c "import sys; print('yes' if float(sys.argv[2]) - float(sys.argv[1]) < 3 else 'no')" "$t0" "$(now)")"
check_eq "first run still alive" 0 "$(kill -0 "$RUN_PID"; echo $?)"

# SIGHUP reload
write_conf "flush_max_delay = 5m" "single_lane = no" "log_level = debug"
kill -HUP "$RUN_PID"
wait_for "SIGHUP logs reloaded" 5 grep -q reloaded "$T/run.err"
check_eq "reload logged once" 1 "$(grep -c reloaded "$T/run.err")"
v1=$(sim_counter calls.batch_update_v1.total)
put_ok reloaded pcId pc4 a=after-reload --urgent
lat=$(wait_value pc4 after-reload 10)
echo "# urgent put after reload (single_lane = no): ${lat}s"
check_eq "after reload: no single call (single_lane = no took effect)" 3 "$(single_calls total)"
check_ge "after reload: went by bulk v1" "$((v1 + 1))" "$(sim_counter calls.batch_update_v1.total)"

# a bad config on SIGHUP keeps the old one running
printf '[pobox]\nnot_a_key = 1\n' >>"$CONF"
kill -HUP "$RUN_PID"
wait_for "bad config on SIGHUP is reported" 5 grep -q reload_failed "$T/run.err"
check_eq "run survives a bad config on SIGHUP" 0 "$(kill -0 "$RUN_PID"; echo $?)"

# SIGTERM
t0=$(now)
stop_run sigterm
echo "# SIGTERM -> exit: $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$t0" "$(now)")s"
check_eq "stopping is logged" 1 "$(grep -c stopping "$T/run.err")"
check_store final --preload "$T/pre.csv"
check_all_delivered final
check_ledger_clean final
check_eq "ledger = single calls made" "$(single_calls total)" "$(ledger_used)"
finish
