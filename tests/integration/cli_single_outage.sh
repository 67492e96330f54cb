#!/bin/bash
# An outage must not flood the log or the outbox (issue 10, item 6).
# `pobox run` with 300 urgent updates (single lane) and 500 new profiles
# (bulk v2) pending, Target refusing connections (nobody listens on the
# port) for OUTAGE_S seconds.  The old code wrote about 110 log lines and
# 70 batch rows a second and used a quarter of a core.  Required:
#  - a bounded number of log lines: one network_down per lane, nothing per
#    retry;
#  - no new batch rows while offline (the single lane keeps its one batch,
#    the bulk lane its one batch; nothing is re-cut);
#  - near-zero CPU (utime + stime of the process over the outage, from
#    /proc; a generous bound);
#  - the probes back off (refused connections count no attempt, yet the
#    probe interval grows to backoff_cap);
#  - after Target comes back, it is found within backoff_cap, delivery
#    resumes at once (network_back on both lanes) and everything is
#    delivered exactly, one single call per urgent profile.
. "$(dirname "$0")/single_lib.sh" "$@"
OUTAGE_S=${OUTAGE_S:-20}

preload_pc "$T/pre.csv" 300 u a
port=$(free_port)
B=http://127.0.0.1:$port
write_conf "backoff_base = 200ms" "backoff_cap = 2s" "recovery_ramp = 2s" "min_free_disk = 0"
put_ok start pcId u1 a=first --urgent
# 300 urgent pcId updates and 500 new thirdPartyId profiles, in one transaction
{
	echo "BEGIN;"
	for i in $(seq 1 300); do
		echo "INSERT INTO enqueue (id_type, profile_id, attr, value, urgent) VALUES ('pcId', 'u$i', 'a', 'v$i', 1);"
		printf 'pcId\tu%d\ta\tv%d\n' "$i" "$i" >>"$LOG"
	done
	for i in $(seq 1 500); do
		echo "INSERT INTO enqueue (id_type, profile_id, attr, value) VALUES ('thirdPartyId', 'n$i', 'b', 'w$i');"
		printf 'thirdPartyId\tn%d\tb\tw%d\n' "$i" "$i" >>"$LOG"
	done
	echo "COMMIT;"
} | sqlite3 -cmd '.timeout 30000' "$DB" || fail "enqueue through sqlite3"

cpu() { awk '{ print $14 + $15 }' "/proc/$RUN_PID/stat"; }
lines() { grep -c . "$T/run.err"; }
nbatches() { q "SELECT count(*) FROM v_batches"; }
probes() { pb status --prometheus | sed -n "s/^pobox_calls_total{lane=\"$1\",status=\"0\"} //p"; }
down_both() { [ "$(grep -c 'network_down lane=' "$T/run.err")" -ge 2 ]; }

run_bg "$T/run.err"
wait_for "both lanes find Target unreachable" 20 down_both
sleep 1
b0=$(nbatches) l0=$(lines) c0=$(cpu)
echo "# outage: $b0 batch rows and $l0 log lines when it began; waiting ${OUTAGE_S}s"
sleep "$OUTAGE_S"
b1=$(nbatches) l1=$(lines) c1=$(cpu)
hz=$(getconf CLK_TCK)
echo "# outage: +$((b1 - b0)) batch rows, +$((l1 - l0)) log lines, $((c1 - c0)) CPU ticks (of $((OUTAGE_S * hz)))"
check_eq "outage: no new batch rows" "$b0" "$b1"
check_le "outage: the log does not grow with retries" 1 $((l1 - l0))
check_le "outage: a handful of log lines in all" 8 "$l1"
check_eq "outage: one network_down per lane" "1 1" \
	"$(grep -c 'network_down lane=bulk' "$T/run.err") $(grep -c 'network_down lane=single' "$T/run.err")"
check_eq "outage: no retry_scheduled lines" 0 "$(grep -c retry_scheduled "$T/run.err")"
check_le "outage: near-zero CPU (under 10% of one core)" $((OUTAGE_S * hz / 10)) $((c1 - c0))
pb_bulk=$(probes bulk) pb_single=$(probes single)
echo "# outage: probes bulk=$pb_bulk single=$pb_single in about $((OUTAGE_S + 2))s (backoff 200ms..2s)"
check_le "outage: bulk probes back off" $((OUTAGE_S * 2 + 10)) "${pb_bulk:-999}"
check_le "outage: single probes back off" $((OUTAGE_S * 2 + 10)) "${pb_single:-999}"
check_eq "outage: nothing dead" 0 "$(state_count dead)"
check_eq "outage: no attempt counted" 0 "$(q "SELECT coalesce(max(attempts), 0) FROM v_updates")"
check_eq "outage: no unit of the single-call budget used" 0 "$(ledger_used)"
check_eq "outage: every update waits (pending or in its batch)" 800 \
	"$(q "SELECT count(*) FROM v_updates WHERE state IN ('pending','batched')")"

# Target comes back on the same port
t0=$(date +%s.%N)
sim_start_on "$port" --preload "$T/pre.csv"
back_both() { [ "$(grep -c 'network_back lane=' "$T/run.err")" -ge 2 ]; }
wait_for "recovery: both lanes find Target again" 30 back_both
found=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "# recovery: both lanes back after ${found}s"
check_le "recovery: found within backoff_cap (2 s) + 6 s" 8 "${found%.*}"
wait_for "recovery: everything delivered" 60 nothing_left
done_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "# recovery: all 801 delivered ${done_s}s after Target came back"
stop_run final
check_store final --preload "$T/pre.csv"
check_all_delivered final
check_ledger_clean final
check_eq "recovery: one single call per urgent profile" 300 "$(single_calls total)"
check_le "recovery: the whole run logged a bounded number of lines" 40 "$(lines)"
grep -E 'network_(down|back)' "$T/run.err" | cut -c1-160 | sed 's/^/# /'
finish
