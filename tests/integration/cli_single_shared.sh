#!/bin/bash
# Several pobox processes on one outbox never exceed the single-call budget
# together (budget 30 on both sides, so a pass would show as a 429 at the
# simulator):
#  A. two `flush --wait` at once (only one may deliver at a time: the other
#     waits for the deliver lock or says so), plus a `pobox flush` (cut
#     only) in between, over 60 urgent updates;
#  B. one `pobox run` while three producers put urgent updates, and two
#     `flush --wait` started meanwhile.
# Asserts: sum(used) in the ledger <= 30, the simulator's single calls
# <= 30 and no 429 from it, ledger = calls made, no reservation left, and
# every update delivered with its newest value.
. "$(dirname "$0")/single_lib.sh" "$@"

preload_pc "$T/pre.csv" 90 pc a

new_scenario A
sim_start --preload "$T/pre.csv" --single-budget 30 --latency-ms 5
write_conf "single_budget = 30" "urgent_reserve = 0" "single_group = 7" "single_concurrency = 3"
for i in $(seq 1 60); do put_ok A pcId "pc$i" "a=A$i" --urgent; done
"$POBOX" -c "$CONF" flush --wait --timeout 60s >"$T/A/f1.out" 2>"$T/A/f1.err" & f1=$!; bg $f1
"$POBOX" -c "$CONF" flush >/dev/null 2>&1
"$POBOX" -c "$CONF" flush --wait --timeout 60s >"$T/A/f2.out" 2>"$T/A/f2.err" & f2=$!; bg $f2
wait $f1; r1=$?; wait $f2; r2=$?
echo "# flush --wait exits: $r1 $r2; second said: $(grep -ih lock "$T/A/f1.err" "$T/A/f2.err" "$T/A/f1.out" "$T/A/f2.out" | head -1)"
check_eq "A: one flush --wait delivered everything (exit 0)" 1 "$( { [ $r1 = 0 ] || [ $r2 = 0 ]; } && echo 1 || echo 0)"
flush_wait A-final 0 60
check_le "A: simulator's single calls <= 30" 30 "$(single_calls total)"
check_eq "A: no 429 from the simulator" 0 "$(single_calls budget_exhausted)"
check_le "A: ledger used <= 30" 30 "$(ledger_used)"
check_eq "A: ledger = calls made" "$(single_calls total)" "$(ledger_used)"
check_ledger_clean A
check_store A --preload "$T/pre.csv"
check_all_delivered A

new_scenario B
sim_start --preload "$T/pre.csv" --single-budget 30 --latency-ms 5
write_conf "single_budget = 30" "urgent_reserve = 0" "single_group = 5" "single_concurrency = 4"
run_bg "$T/B/run.err"
producer() { # N FIRST LAST: urgent puts over pcFIRST..pcLAST, 3 rounds
	local n=$1 r i
	for r in 1 2 3; do
		for i in $(seq "$2" "$3"); do
			if "$POBOX" -c "$CONF" put "pcId:pc$i" "a=B$n-$r-$i" --urgent >/dev/null 2>>"$T/B/prod.err"; then
				printf 'pcId\tpc%s\ta\tB%s-%s-%s\n' "$i" "$n" "$r" "$i" >>"$T/B/prod.$n.log"
			else
				echo "put exit $?" >>"$T/B/prod.fail"
			fi
		done
	done
}
: >"$T/B/prod.fail"
producer 1 1 30 & p1=$!; bg $p1
producer 2 31 60 & p2=$!; bg $p2
producer 3 61 90 & p3=$!; bg $p3
sleep 1
"$POBOX" -c "$CONF" flush --wait --timeout 5s >"$T/B/f1.out" 2>"$T/B/f1.err" & f1=$!; bg $f1
"$POBOX" -c "$CONF" flush --wait --timeout 5s >"$T/B/f2.out" 2>"$T/B/f2.err" & f2=$!; bg $f2
wait $p1 $p2 $p3; wait $f1; r1=$?; wait $f2; r2=$?
echo "# flush --wait beside run: exits $r1 $r2: $(head -c 200 "$T/B/f1.err")"
cat "$T"/B/prod.*.log >"$LOG"
check_eq "B: producers never failed" "" "$(cat "$T/B/prod.fail" "$T/B/prod.err")"
wait_for "B: run delivers everything" 60 nothing_left
stop_run B
check_le "B: simulator's single calls <= 30" 30 "$(single_calls total)"
check_eq "B: no 429 from the simulator" 0 "$(single_calls budget_exhausted)"
check_le "B: ledger used <= 30" 30 "$(ledger_used)"
check_eq "B: ledger = calls made" "$(single_calls total)" "$(ledger_used)"
check_ledger_clean B
check_store B --preload "$T/pre.csv"
check_all_delivered B
finish
