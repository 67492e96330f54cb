#!/usr/bin/env bash
# flat_bench.sh: does pobox's cost follow the size of the change, not of the
# outbox?  At each size (default 100,000, 1,000,000 and 3,000,000 profiles x
# 10 attributes), into a new outbox against a fresh simulator:
#
#   import   `pobox import FILE`: wall and CPU (user + system) per cell
#   size     outbox bytes per stored cell right after the import (the files
#            on disk, WAL included, and `pobox status --json`'s
#            bytes_per_update), beside the CSV's bytes per cell
#   status   `pobox status` wall time, the median of --status-runs calls,
#            on the imported outbox and again once everything is delivered
#   flush    `pobox flush --wait`: wall and CPU per cell, peak RSS
#   check    the simulator's store against the CSV, cell by cell
#
# The baseline is the smallest size measured in the same run: every cost
# per cell is printed as a ratio to it.  Rounds interleave the sizes (the
# order turns each round); figures are medians, peak RSS the highest.
#
# Usage: flat_bench.sh [--quick] [--sizes "N ..."] [--attrs K] [--runs N]
#            [--status-runs N] [--seed S] [--sim-args "ARGS"]
#            [--bulk-calls-per-minute N] [--sync FULL|NORMAL|OFF]
#            [--no-check] [--timeout DUR] [--work-dir DIR] [--csv-cache DIR]
#            [--keep] [--build-dir DIR]
#   --quick          sizes 20,000 60,000 180,000, 3 runs, 11 status calls
#                    (about a minute; at these sizes fixed costs, such as
#                    process start and the first poll, still weigh on the
#                    smallest: it shows the bench works, not flatness)
#   --sizes LIST     profile counts (default "100000 1000000 3000000")
#   --runs N         rounds (default 3)
#   --status-runs N  `pobox status` calls per measurement (default 31)
#   --sim-args       simulator flags (default "--bulk-per-minute 0
#                    --process-delay-ms 0")
#   --no-check       skip the store checks (they are untimed either way)
#   --csv-cache DIR  keep the generated exports (and sorted copies) in DIR
#                    and reuse them (also CSV_CACHE=DIR)
#
# Needs, at 3,000,000 profiles: ~300 MB CSV and its sorted copy, ~1 GB of
# outbox and WAL, ~2.5 GB of memory for the simulator (its store and the
# JSON of it).  Not a test: nothing gates on the figures.  Exit 0 when every
# run completed and every check held, whatever the figures; 1 otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
SIZES="100000 1000000 3000000" ATTRS=10 RUNS=3 STATUS_RUNS=31 SEED=1
SIM_ARGS="--bulk-per-minute 0 --process-delay-ms 0"
BULK_CPM=10000 SYNC=FULL TIMEOUT=60m CHECK=1 KEEP=${KEEP:-0}
FLAT_TARGET=0.15 BPC_TARGET=25 STATUS_TARGET_MS=50 FLUSH_RSS_TARGET_KB=$((48 * 1024))

die() { echo "flat_bench: $*" >&2; exit 1; }
usage() { sed -n '/^# Usage:/,/^# Needs/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64; }
while (($#)); do
	case $1 in
	--quick) SIZES="20000 60000 180000" RUNS=3 STATUS_RUNS=11 ;;
	--sizes) SIZES=$2; shift ;;
	--attrs) ATTRS=$2; shift ;;
	--runs) RUNS=$2; shift ;;
	--status-runs) STATUS_RUNS=$2; shift ;;
	--seed) SEED=$2; shift ;;
	--sim-args) SIM_ARGS=$2; shift ;;
	--bulk-calls-per-minute) BULK_CPM=$2; shift ;;
	--sync) SYNC=$2; shift ;;
	--no-check) CHECK=0 ;;
	--timeout) TIMEOUT=$2; shift ;;
	--work-dir) WORK_DIR=$2; shift ;;
	--csv-cache) CSV_CACHE=$2; shift ;;
	--keep) KEEP=1 ;;
	--build-dir) BUILD_DIR=$2; shift ;;
	-h | --help) usage ;;
	*) echo "flat_bench: unknown option $1" >&2; usage ;;
	esac
	shift
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
[[ $STATUS_RUNS =~ ^[1-9][0-9]*$ ]] || die "--status-runs must be a positive integer"
for n in $SIZES; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "--sizes: '$n' is not a positive integer"; done
for t in curl jq sqlite3; do command -v $t >/dev/null || die "needs $t"; done
read -r -a sizes <<<"$SIZES"
read -r -a sim_args <<<"$SIM_ARGS"

. "$ROOT/tools/bench/lib.sh"
bench_build flat_bench pobox-gen-crm pobox-peakrss pobox-bench-check-store pobox-target-sim
BENCH_BIN=$BUILD_DIR/tools/bench
trap bench_cleanup EXIT
work_dir_setup flat_bench
W=$WORK_DIR
echo "disk: $(df -h "$W" | tail -n 1)" >&2

for n in "${sizes[@]}"; do
	echo "generating $n x $ATTRS..." >&2
	sorted=""
	((CHECK)) && sorted=$W/crm-$n.sorted
	crm_csv "$W/crm-$n.csv" "$sorted" "$n" "$ATTRS" "$SEED"
done

conf=$W/pobox.conf db=$W/outbox.db
declare -A F CELLS
add_fig() { F[$1]+="$2 "; }
CHECKS=() FAILED=0
check() { # check DESCRIPTION COMMAND...
	if "${@:2}" >/dev/null 2>&1; then CHECKS+=("  ok    $1"); else CHECKS+=("  FAIL  $1"); FAILED=1; fi
}
status_times() { # status_times OUT [ARGS]: STATUS_RUNS calls of `pobox ARGS` (default
	# `-c CONF status`); their median ms
	local i ts="" out=$1
	shift
	(($#)) || set -- -c "$conf" status
	for ((i = 0; i < STATUS_RUNS; i++)); do
		"$BENCH_BIN/pobox-peakrss" -o "$out.rss" -- "$POBOX" "$@" >"$out.log" 2>&1 ||
			{ cat "$out.log" >&2; die "pobox $* failed"; }
		ts+="$(calc "$(field wall_s "$out.rss") * 1000" 1) "
	done
	echo "$ts" >"$out.all"
	median "$ts"
}

run_size() { # run_size N RUN
	local n=$1 r=$2 p=$W/r$2-$1 csv=$W/crm-$1.csv rc cells files
	sim_start "$W/sim-$n-$r" "${sim_args[@]}"
	cat >"$conf" <<EOF
db = $db
client = demo
base_url = $sim_base
synchronous = $SYNC
poll_initial = 100ms
poll_cap = 1s
bulk_calls_per_minute = $BULK_CPM
max_batch_rows = 500000
max_batch_bytes = 49000000
EOF
	rm -f "$db" "$db"-wal "$db"-shm "$db"-deliver.lock
	sync
	echo "run $r/$RUNS, $n profiles: import, status, flush --wait..." >&2
	rc=0
	timed "$p-import" "$POBOX" -c "$conf" import "$csv" || rc=$?
	[[ $rc == 0 ]] || { tail -n 5 "$p-import.log" >&2; die "pobox import exited $rc"; }
	cells=$(sed -n 's/.* \([0-9,]*\) updates enqueued.*/\1/p' "$p-import.log" | tr -d ,)
	CELLS[$n]=$cells
	files=$(stat -c %s "$db")
	[[ ! -e $db-wal ]] || files=$((files + $(stat -c %s "$db-wal")))
	add_fig "bpc_files$n" "$(calc "$files / $cells" 2)"
	add_fig "bpc_status$n" "$("$POBOX" -c "$conf" status --json | jq .bytes_per_update)"
	add_fig "bpc_csv$n" "$(calc "$(stat -c %s "$csv") / $cells" 2)"
	log_cmd "$BENCH_BIN/pobox-peakrss" -o "$p-status.rss" -- "$POBOX" -c "$conf" status
	add_fig "status_imp$n" "$(status_times "$p-status-imp")"
	# the floor under any pobox command here: exec, dynamic linking (curl
	# brings some 30 libraries), nothing else
	add_fig "floor$n" "$(status_times "$p-version" --version)"
	sync
	rc=0
	timed "$p-flush" "$POBOX" -c "$conf" flush --wait --timeout "$TIMEOUT" || rc=$?
	[[ $rc == 0 ]] || { tail -n 5 "$p-flush.log" >&2; die "pobox flush --wait exited $rc"; }
	log_cmd "$BENCH_BIN/pobox-peakrss" -o "$p-status.rss" -- "$POBOX" -c "$conf" status
	add_fig "status_done$n" "$(status_times "$p-status-done")"
	add_fig "imp_us$n" "$(calc "$(wall_of "$p-import") * 1e6 / $cells" 4)"
	add_fig "imp_cpu_us$n" "$(calc "$(cpu_of "$p-import") * 1e6 / $cells" 4)"
	add_fig "fl_us$n" "$(calc "$(wall_of "$p-flush") * 1e6 / $cells" 4)"
	add_fig "fl_cpu_us$n" "$(calc "$(cpu_of "$p-flush") * 1e6 / $cells" 4)"
	add_fig "imp_rss$n" "$(rss_of "$p-import")"
	add_fig "fl_rss$n" "$(rss_of "$p-flush")"
	add_fig "imp_wall$n" "$(wall_of "$p-import")"
	add_fig "fl_wall$n" "$(wall_of "$p-flush")"
	check "run $r, $n profiles: status after flush: all $cells delivered, nothing else" \
		jq -e ".updates.delivered == $cells and .updates.pending == 0 and .updates.batched == 0 and .updates.dead == 0" \
		<<<"$("$POBOX" -c "$conf" status --json)"
	if ((CHECK)); then
		local out=$p-check
		check_store "$W/crm-$n.sorted" "$out" >/dev/null || true
		check "run $r, $n profiles: store = CSV cell by cell ($(sed 's/ empty_rows.*//' "$out"))" \
			grep -q result=same "$out"
		check "run $r, $n profiles: simulator counters (nothing failed, not found, lost or refused)" \
			sim_counters_ok
	fi
	sim_stop
	rm -f "$db" "$db"-wal "$db"-shm "$db"-deliver.lock
}

for ((run = 1; run <= RUNS; run++)); do
	# turn the order each round: 1 2 3, 2 3 1, 3 1 2, ...
	k=${#sizes[@]}
	for ((i = 0; i < k; i++)); do run_size "${sizes[$(((i + run - 1) % k))]}" $run; done
	((run == 1)) && cmd_lines_run1=$(wc -l <"$CMDLOG")
done

# --- report ----------------------------------------------------------------------
M() { median "${F[$1]}"; }
X() { maxof "${F[$1]}"; }
base=${sizes[0]}
spread() { # spread KEY: (max - min) / min of the per-size medians
	local v="" n
	for n in "${sizes[@]}"; do v+="$(M "$1$n") "; done
	awk -v lo="$(minof "$v")" -v hi="$(maxof "$v")" 'BEGIN { printf "%.3f", (lo > 0 ? (hi - lo) / lo : 0) }'
}
cat <<EOF

pobox flat-cost benchmark: cost per cell at ${sizes[*]} profiles
  host        $(host_line)
  build       $BUILD_DIR ($build_type)
  work dir    $W ($fstype)
  inputs      $ATTRS attributes, seed $SEED; simulator $SIM_ARGS (fresh per size and run)
  pobox       synchronous=$SYNC, bulk_calls_per_minute=$BULK_CPM, max_batch_rows=500000,
              max_batch_bytes=49000000, poll_initial=100ms, poll_cap=1s
  runs        $RUNS (sizes interleaved, order turned each round); medians, highest peak RSS;
              ratios are to the $base-profile figure of the same runs

                 cells      import wall  (x)    import CPU  (x)    flush wall  (x)    flush CPU  (x)
                            us/cell             us/cell            us/cell            us/cell
EOF
for n in "${sizes[@]}"; do
	printf '  %-9s %10s %10s %6s %10s %6s %10s %6s %10s %6s\n' "$n" "${CELLS[$n]}" \
		"$(M "imp_us$n")" "$(ratio "$(M "imp_us$n")" "$(M "imp_us$base")")" \
		"$(M "imp_cpu_us$n")" "$(ratio "$(M "imp_cpu_us$n")" "$(M "imp_cpu_us$base")")" \
		"$(M "fl_us$n")" "$(ratio "$(M "fl_us$n")" "$(M "fl_us$base")")" \
		"$(M "fl_cpu_us$n")" "$(ratio "$(M "fl_cpu_us$n")" "$(M "fl_cpu_us$base")")"
done
cat <<EOF

                 import s   flush s   import RSS   flush RSS   bytes/cell: files  status  CSV   status ms: imported  delivered  (--version)
EOF
for n in "${sizes[@]}"; do
	printf '  %-9s %9s %9s %12s %11s %13s %7s %5s %17s %10s %12s\n' "$n" \
		"$(M "imp_wall$n")" "$(M "fl_wall$n")" "$(mb "$(X "imp_rss$n")")" "$(mb "$(X "fl_rss$n")")" \
		"$(M "bpc_files$n")" "$(M "bpc_status$n")" "$(M "bpc_csv$n")" \
		"$(M "status_imp$n")" "$(M "status_done$n")" "$(M "floor$n")"
done
echo "  (per-run walls: import $(for n in "${sizes[@]}"; do printf '%s: %s  ' "$n" "${F[imp_wall$n]% }"; done | tr ' ' ' ')"
echo "                  flush  $(for n in "${sizes[@]}"; do printf '%s: %s  ' "$n" "${F[fl_wall$n]% }"; done))"

last=${sizes[${#sizes[@]} - 1]}
status_worst=$(maxof "$(M "status_imp$last") $(M "status_done$last")")
bpc_worst=$(maxof "$(for n in "${sizes[@]}"; do M "bpc_files$n"; echo; done)")
rss_worst=$(maxof "$(for n in "${sizes[@]}"; do X "fl_rss$n"; echo; done)")
echo
echo "target                                                       measured     result"
printf '  %-58s %-12s %s\n' \
	"import wall per cell, all sizes within 15%" "$(spread imp_us)" "$(verdict "$(spread imp_us) <= $FLAT_TARGET")" \
	"flush --wait wall per cell, all sizes within 15%" "$(spread fl_us)" "$(verdict "$(spread fl_us) <= $FLAT_TARGET")" \
	"(import CPU per cell: spread, for reference)" "$(spread imp_cpu_us)" "" \
	"(flush CPU per cell: spread, for reference)" "$(spread fl_cpu_us)" "" \
	"outbox bytes per cell after import <= 25 (files, worst size)" "$bpc_worst" "$(verdict "$bpc_worst <= $BPC_TARGET")" \
	"pobox status on the $last outbox < 50 ms (worse of the two)" "$status_worst ms" "$(verdict "$status_worst < $STATUS_TARGET_MS")" \
	"flush peak RSS < 48 MB at every size (highest)" "$(mb "$rss_worst")" "$(verdict "$rss_worst < $FLUSH_RSS_TARGET_KB")"
echo "  (spread = (highest - lowest) / lowest of the per-size medians; status ms include"
echo "  starting the process: \`pobox --version\` took $(M "floor$last") ms here)"
echo
echo "checks"
printf '%s\n' "${CHECKS[@]}"
echo
echo "commands (run 1; later runs repeat them, sizes in another order; each"
echo "pobox status measurement is $STATUS_RUNS calls of the logged command)"
head -n "$cmd_lines_run1" "$CMDLOG" | sed 's/^/  /'
((FAILED == 0)) || exit 1
