#!/usr/bin/env bash
# import_bench.sh: how fast `pobox import` gets a CRM export into the outbox,
# compared with the plainest durable SQLite load of the same cells
# (pobox-bench-baseline), and how much memory pobox needs for it.
#
# Not a test: ctest never runs it and nothing gates on its numbers.  It prints
# figures and the targets beside them; see tools/bench/README.md.
#
# Settings (environment):
#   BUILD_DIR   build tree to use/create (default: <repo>/build-bench, Release)
#   WORK_DIR    where the CSVs and databases go (default: a new temp dir);
#               put it on the disk the outbox would live on, not on tmpfs
#   KEEP=1      keep WORK_DIR afterwards
#   ROWS_LARGE  rows in the large export (default 500000)
#   ROWS_SMALL  rows in the small export (default 50000)
#   ATTRS       attribute columns (default 10)
#   SEED        generator seed (default 1)
#   RUNS        repetitions; wall times are the median (default 1)
#   BASELINE_CACHE_KB  give the baseline this page cache (PRAGMA cache_size);
#               default SQLite's own 2 MB.  Set it to pobox's cache size if
#               pobox sets a bigger one, so neither side gets more memory.
#
# Exit status: 0 when every run completed (whatever the figures), 1 when a
# run failed or pobox is not built yet.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
ROWS_LARGE=${ROWS_LARGE:-500000}
ROWS_SMALL=${ROWS_SMALL:-50000}
ATTRS=${ATTRS:-10}
SEED=${SEED:-1}
RUNS=${RUNS:-1}
KEEP=${KEEP:-0}
BASELINE_CACHE_KB=${BASELINE_CACHE_KB:-}
# pobox's default is FULL; the baseline is told the same, so both sides pay
# the same fsyncs.
SYNC=FULL
RATIO_TARGET=0.7
RSS_TARGET_KB=$((32 * 1024))

die() { echo "import_bench: $*" >&2; exit 1; }

# --- build ------------------------------------------------------------------
. "$ROOT/tools/bench/lib.sh"
bench_build import_bench pobox-gen-crm pobox-bench-baseline pobox-peakrss
BENCH_BIN=$BUILD_DIR/tools/bench
GEN=$BENCH_BIN/pobox-gen-crm
BASELINE=$BENCH_BIN/pobox-bench-baseline
PEAKRSS=$BENCH_BIN/pobox-peakrss

# --- inputs -------------------------------------------------------------------
if [[ -z ${WORK_DIR:-} ]]; then
	WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pobox-bench.XXXXXX")
	[[ $KEEP == 1 ]] || trap 'rm -rf "$WORK_DIR"' EXIT
else
	mkdir -p "$WORK_DIR"
fi
fstype=$(stat -f -c %T "$WORK_DIR" 2>/dev/null || echo unknown)
if [[ $fstype == tmpfs || $fstype == ramfs ]]; then
	echo "import_bench: warning: $WORK_DIR is on $fstype, fsync costs" \
	     "nothing there; set WORK_DIR to a real disk" >&2
fi

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
large=$WORK_DIR/crm-large.csv
small=$WORK_DIR/crm-small.csv
"$GEN" --rows "$ROWS_LARGE" --attrs "$ATTRS" --seed "$SEED" -o "$large"
"$GEN" --rows "$ROWS_SMALL" --attrs "$ATTRS" --seed "$SEED" -o "$small"

# --- runs -----------------------------------------------------------------------
# Each run gets a fresh database; wall time and peak RSS come from the same
# wrapper on both sides, so both include process start, schema creation,
# reading the CSV and the final commit.
baseline_args=(--synchronous "$SYNC")
[[ -n $BASELINE_CACHE_KB ]] && baseline_args+=(--cache-kb "$BASELINE_CACHE_KB")

field() { # field NAME FILE: value of NAME=... in FILE
	sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" "$2" | tail -n 1
}

# Figures per run kind ("baseline-large", "pobox-small", ...): wall times of
# every repetition, the highest peak RSS, and for pobox its exit status, the
# outbox row count and its last summary lines.
declare -A WALLS RSS CELLS STORED RC SUMMARY

record() { # record KIND RSSFILE
	local wall rss
	wall=$(field wall_s "$2")
	rss=$(field peak_rss_kb "$2")
	WALLS[$1]+="$wall "
	(( rss > ${RSS[$1]:-0} )) && RSS[$1]=$rss
	return 0
}

run_baseline() { # run_baseline SIZE CSV
	local kind=baseline-$1 csv=$2 out=$WORK_DIR/baseline-$1
	rm -f "$out".db "$out".db-wal "$out".db-shm
	"$PEAKRSS" -o "$out.rss" -- "$BASELINE" "${baseline_args[@]}" \
		"$out.db" "$csv" >"$out.log" 2>&1 ||
		{ cat "$out.log" >&2; die "baseline failed on $csv"; }
	CELLS[$1]=$(field rows "$out.log")
	record "$kind" "$out.rss"
	rm -f "$out".db "$out".db-wal "$out".db-shm
}

run_pobox() { # run_pobox SIZE CSV
	local kind=pobox-$1 csv=$2 out=$WORK_DIR/pobox-$1 rc=0
	rm -f "$out".db "$out".db-wal "$out".db-shm
	"$PEAKRSS" -o "$out.rss" -- "$POBOX" --db "$out.db" import "$csv" \
		>"$out.log" 2>&1 || rc=$?
	case $rc in
	0) ;;
	65) echo "import_bench: warning: pobox rejected rows of $csv" \
		 "(generated rows are all valid):" >&2
	    tail -n 5 "$out.log" >&2 ;;
	*) cat "$out.log" >&2
	   die "pobox import failed on $csv (exit $rc)" ;;
	esac
	record "$kind" "$out.rss"
	RC[$1]=$rc
	# Cross-check that pobox stored as many updates as the baseline did.
	STORED[$1]=$(sqlite3 "$out.db" "SELECT count(*) FROM updates" 2>/dev/null) ||
		STORED[$1]="n/a"
	SUMMARY[$1]=$(grep -v '^peak_rss_kb=' "$out.log" | tail -n 3)
	rm -f "$out".db "$out".db-wal "$out".db-shm
}

# Baseline and pobox alternate, so a slow patch of the machine (other load,
# a flush of the page cache) hits both sides rather than one.
for ((run = 1; run <= RUNS; run++)); do
	for size in large small; do
		[[ $size == large ]] && rows=$ROWS_LARGE csv=$large ||
			rows=$ROWS_SMALL csv=$small
		echo "run $run/$RUNS: baseline on $rows rows..." >&2
		run_baseline "$size" "$csv"
		echo "run $run/$RUNS: pobox import on $rows rows..." >&2
		run_pobox "$size" "$csv"
	done
done

median() { # median "X Y Z ...": the median of the numbers
	printf '%s\n' $1 | sort -g |
		awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
baseline_large_wall=$(median "${WALLS[baseline-large]}")
pobox_large_wall=$(median "${WALLS[pobox-large]}")
baseline_small_wall=$(median "${WALLS[baseline-small]}")
pobox_small_wall=$(median "${WALLS[pobox-small]}")
baseline_large_cells=${CELLS[large]}
baseline_small_cells=${CELLS[small]}
baseline_large_rss=${RSS[baseline-large]}
baseline_small_rss=${RSS[baseline-small]}
pobox_large_rss=${RSS[pobox-large]}
pobox_small_rss=${RSS[pobox-small]}
pobox_large_stored=${STORED[large]}
pobox_small_stored=${STORED[small]}
pobox_large_rc=${RC[large]}
pobox_small_rc=${RC[small]}
pobox_large_summary=${SUMMARY[large]}

# --- report -------------------------------------------------------------------
# The cell count is the baseline's: both sides load every non-empty attribute
# cell of the same file, and the outbox count is printed beside it to check.
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }
rate() { awk -v c="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? c / s : 0) }'; }

b_rate=$(rate "$baseline_large_cells" "$baseline_large_wall")
p_rate=$(rate "$baseline_large_cells" "$pobox_large_wall")
bs_rate=$(rate "$baseline_small_cells" "$baseline_small_wall")
ps_rate=$(rate "$baseline_small_cells" "$pobox_small_wall")
ratio() { awk -v p="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? p / b : 0) }'; }
ratio=$(ratio "$p_rate" "$b_rate")
ratio_small=$(ratio "$ps_rate" "$bs_rate")
verdict() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo MISS; fi; }

cat <<EOF

pobox import benchmark
  host        $(uname -srm), $(nproc) CPUs, SQLite $(sqlite3 --version 2>/dev/null | cut -d' ' -f1)
  build       $BUILD_DIR ($build_type)
  work dir    $WORK_DIR ($fstype)
  inputs      $ROWS_LARGE and $ROWS_SMALL rows x $ATTRS attributes, seed $SEED
  runs        $RUNS (wall s: median of the runs; peak RSS: highest)
  durability  journal_mode=WAL, synchronous=$SYNC on both sides${BASELINE_CACHE_KB:+, baseline cache ${BASELINE_CACHE_KB} KB}

run                 rows     cell updates   wall s     cells/s   peak RSS   outbox rows
EOF
printf '%-14s %9s %16s %8.2f %11s %10s %13s\n' \
	baseline "$ROWS_LARGE" "$baseline_large_cells" "$baseline_large_wall" "$b_rate" \
	"$(mb "$baseline_large_rss")" - \
	"pobox import" "$ROWS_LARGE" "$baseline_large_cells" "$pobox_large_wall" "$p_rate" \
	"$(mb "$pobox_large_rss")" "$pobox_large_stored" \
	baseline "$ROWS_SMALL" "$baseline_small_cells" "$baseline_small_wall" "$bs_rate" \
	"$(mb "$baseline_small_rss")" - \
	"pobox import" "$ROWS_SMALL" "$baseline_small_cells" "$pobox_small_wall" "$ps_rate" \
	"$(mb "$pobox_small_rss")" "$pobox_small_stored"

cat <<EOF

target                                      measured     result
EOF
printf '%-43s %-12s %s\n' \
	"pobox/baseline cells/s, $ROWS_LARGE rows >= $RATIO_TARGET" "$ratio" \
	"$(verdict "$ratio >= $RATIO_TARGET")" \
	"pobox peak RSS, $ROWS_LARGE rows < 32 MB" "$(mb "$pobox_large_rss")" \
	"$(verdict "$pobox_large_rss < $RSS_TARGET_KB")" \
	"pobox peak RSS, $ROWS_SMALL rows < 32 MB" "$(mb "$pobox_small_rss")" \
	"$(verdict "$pobox_small_rss < $RSS_TARGET_KB")"
echo "(for reference: pobox/baseline on $ROWS_SMALL rows = $ratio_small)"
if [[ $pobox_large_rc != 0 || $pobox_small_rc != 0 ]]; then
	echo "note: pobox exited $pobox_large_rc / $pobox_small_rc (65 = rows rejected)"
fi
echo
echo "pobox's own summary ($ROWS_LARGE rows):"
printf '%s\n' "$pobox_large_summary" | sed 's/^/  /'
