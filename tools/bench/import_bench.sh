#!/usr/bin/env bash
# import_bench.sh: how fast `pobox import` gets a CRM export into the
# outbox, against SQLite's own bulk path on the same file: the sqlite3
# shell's `.import --csv` into one wide table (a column per CSV column),
# with the same journal mode (WAL) and the same synchronous level; and how
# much memory pobox needs for it.
#
# The unit is a cell: one non-empty attribute cell of the file (what pobox
# stores as an update; the wide table stores the empty ones too, as '').
# Both rates divide the same cell count by each process's wall time
# (process start, schema, parsing every byte, inserting, the last commit).
# Runs alternate which side goes first; figures are medians, peak RSS the
# highest.
#
# Usage: import_bench.sh [--quick] [--rows "N ..."] [--attrs K] [--runs N]
#            [--seed S] [--sync FULL|NORMAL|OFF] [--work-dir DIR]
#            [--csv-cache DIR] [--keep] [--build-dir DIR]
#   --quick       100,000 rows, 3 runs (about 15 s)
#   --rows LIST   export sizes, each measured (default "1000000 100000")
#   --runs N      rounds (default 3)
#   --sync LEVEL  both sides' synchronous level (default FULL, pobox's
#                 default; pobox gets it from a config file's `synchronous`)
#   --csv-cache DIR  keep the generated exports in DIR and reuse them
#                 (also CSV_CACHE=DIR)
#
# Not a test: nothing gates on the figures.  Exit 0 when every run
# completed and the cross-checks held, whatever the figures; 1 otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
SIZES="1000000 100000" ATTRS=10 RUNS=3 SEED=1 SYNC=FULL KEEP=${KEEP:-0}
RATIO_TARGET=0.333 RSS_TARGET_KB=$((32 * 1024))

die() { echo "import_bench: $*" >&2; exit 1; }
usage() { sed -n '/^# Usage:/,/^# Not a test/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64; }
while (($#)); do
	case $1 in
	--quick) SIZES=100000 RUNS=3 ;;
	--rows) SIZES=$2; shift ;;
	--attrs) ATTRS=$2; shift ;;
	--runs) RUNS=$2; shift ;;
	--seed) SEED=$2; shift ;;
	--sync) SYNC=$2; shift ;;
	--work-dir) WORK_DIR=$2; shift ;;
	--csv-cache) CSV_CACHE=$2; shift ;;
	--keep) KEEP=1 ;;
	--build-dir) BUILD_DIR=$2; shift ;;
	-h | --help) usage ;;
	*) echo "import_bench: unknown option $1" >&2; usage ;;
	esac
	shift
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
[[ $SYNC =~ ^(FULL|NORMAL|OFF)$ ]] || die "--sync must be FULL, NORMAL or OFF"
command -v sqlite3 >/dev/null || die "needs the sqlite3 shell"

. "$ROOT/tools/bench/lib.sh"
bench_build import_bench pobox-gen-crm pobox-peakrss
BENCH_BIN=$BUILD_DIR/tools/bench
trap bench_cleanup EXIT
work_dir_setup import_bench
W=$WORK_DIR

for n in $SIZES; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "--rows: '$n' is not a positive integer"
	crm_csv "$W/crm-$n.csv" "" "$n" "$ATTRS" "$SEED"
done

declare -A F
add_fig() { F[$1]+="$2 "; }
CHECKS=() FAILED=0
check() { # check DESCRIPTION COND
	if awk "BEGIN { exit !($2) }"; then CHECKS+=("  ok    $1"); else CHECKS+=("  FAIL  $1"); FAILED=1; fi
}
rmdb() { rm -f "$1" "$1"-wal "$1"-shm "$1"-deliver.lock; }

run_sqlite() { # run_sqlite N RUN
	local n=$1 r=$2 db=$W/wide.db out=$W/r$2-sqlite-$1 csv=$W/crm-$1.csv cols rows cells
	rmdb "$db"
	sync
	echo "run $r/$RUNS, $n rows: sqlite3 .import --csv..." >&2
	timed "$out" sqlite3 "$db" "PRAGMA journal_mode = WAL" "PRAGMA synchronous = $SYNC" \
		".import --csv $csv t" || { cat "$out.log" >&2; die "sqlite3 .import failed"; }
	add_fig "s_wall$n" "$(wall_of "$out")"
	add_fig "s_cpu$n" "$(cpu_of "$out")"
	add_fig "s_rss$n" "$(rss_of "$out")"
	# cross-check (untimed): every row, and as many non-empty cells as pobox stores
	cols=$(sqlite3 "$db" "SELECT group_concat('(\"' || name || '\" <> '''')', ' + ')
		FROM pragma_table_info('t') WHERE cid > 0")
	read -r rows cells <<<"$(sqlite3 -separator ' ' "$db" "SELECT count(*), sum($cols) FROM t")"
	S_ROWS[$n]=$rows S_CELLS[$n]=$cells
	rmdb "$db"
}

run_pobox() { # run_pobox N RUN
	local n=$1 r=$2 db=$W/outbox.db out=$W/r$2-pobox-$1 csv=$W/crm-$1.csv rc=0
	rmdb "$db"
	sync
	echo "run $r/$RUNS, $n rows: pobox import..." >&2
	printf 'db = %s\nsynchronous = %s\n' "$db" "$SYNC" >"$W/pobox.conf"
	timed "$out" "$BUILD_DIR/src/pobox" -c "$W/pobox.conf" import "$csv" || rc=$?
	[[ $rc == 0 ]] || { tail -n 5 "$out.log" >&2; die "pobox import exited $rc"; }
	add_fig "p_wall$n" "$(wall_of "$out")"
	add_fig "p_cpu$n" "$(cpu_of "$out")"
	add_fig "p_rss$n" "$(rss_of "$out")"
	P_CELLS[$n]=$(sed -n 's/.* \([0-9,]*\) updates enqueued.*/\1/p' "$out.log" | tr -d ,)
	P_PENDING[$n]=$("$BUILD_DIR/src/pobox" -c "$W/pobox.conf" status --json | jq .updates.pending)
	P_SUMMARY[$n]=$(grep '^import' "$out.log" | tail -n 1)
	rmdb "$db"
}

declare -A S_ROWS S_CELLS P_CELLS P_PENDING P_SUMMARY
for ((run = 1; run <= RUNS; run++)); do
	for n in $SIZES; do
		if ((run % 2)); then run_sqlite "$n" $run; run_pobox "$n" $run
		else run_pobox "$n" $run; run_sqlite "$n" $run; fi
	done
	((run == 1)) && cmd_lines_run1=$(wc -l <"$CMDLOG")
done

# --- report ---------------------------------------------------------------------
M() { median "${F[$1]}"; }
runs() { echo "${F[$1]% }" | tr ' ' '/'; }
rate() { awk -v c="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? c / s : 0) }'; }
cat <<EOF

pobox import benchmark: pobox import against sqlite3 .import --csv (one wide table)
  host        $(host_line)
  build       $BUILD_DIR ($build_type), $(sqlite3 --version | cut -d' ' -f1) shell and library
  work dir    $W ($fstype)
  inputs      $SIZES rows x $ATTRS attributes, seed $SEED
  durability  journal_mode=WAL, synchronous=$SYNC on both sides; SQLite's default page
              cache on both (pobox sets none)
  runs        $RUNS, alternating which side goes first; medians, highest peak RSS

                       rows        cells   wall s    CPU s     cells/s    peak RSS   wall s of each run
EOF
for n in $SIZES; do
	c=${P_CELLS[$n]}
	printf '  %-16s %9s %12s %8s %8s %11s %11s   %s\n' \
		"sqlite3 .import" "$n" "$c" "$(M "s_wall$n")" "$(M "s_cpu$n")" "$(rate "$c" "$(M "s_wall$n")")" \
		"$(mb "$(maxof "${F[s_rss$n]}")")" "$(runs "s_wall$n")" \
		"pobox import" "$n" "$c" "$(M "p_wall$n")" "$(M "p_cpu$n")" "$(rate "$c" "$(M "p_wall$n")")" \
		"$(mb "$(maxof "${F[p_rss$n]}")")" "$(runs "p_wall$n")"
done
echo
echo "target                                                measured        result"
for n in $SIZES; do
	r=$(ratio "$(M "s_wall$n")" "$(M "p_wall$n")")
	rc=$(ratio "$(M "s_cpu$n")" "$(M "p_cpu$n")")
	rss=$(maxof "${F[p_rss$n]}")
	printf '  %-52s %-15s %s\n' \
		"$n rows: pobox/sqlite3 cells/s >= 1/3" "$r" "$(verdict "$r >= $RATIO_TARGET")" \
		"$n rows: pobox import peak RSS < 32 MB" "$(mb "$rss")" "$(verdict "$rss < $RSS_TARGET_KB")" \
		"($n rows: the same ratio in CPU time, for reference)" "$rc" ""
done
for n in $SIZES; do
	check "$n rows: the wide table has every row (${S_ROWS[$n]})" "${S_ROWS[$n]} == $n"
	check "$n rows: pobox stored as many cells as the file has non-empty ones (${P_CELLS[$n]}, ${S_CELLS[$n]})" \
		"${P_CELLS[$n]} == ${S_CELLS[$n]}"
	check "$n rows: pobox status shows them all pending (${P_PENDING[$n]})" "${P_PENDING[$n]} == ${P_CELLS[$n]}"
done
echo
echo "checks"
printf '%s\n' "${CHECKS[@]}"
echo
for n in $SIZES; do echo "pobox's summary ($n rows): ${P_SUMMARY[$n]}"; done
echo
echo "commands (run 1; later runs repeat them, in even runs pobox first)"
head -n "$cmd_lines_run1" "$CMDLOG" | sed 's/^/  /'
((FAILED == 0)) || exit 1
