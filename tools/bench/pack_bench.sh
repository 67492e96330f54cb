#!/usr/bin/env bash
# pack_bench.sh: how fast `pobox flush` (no --wait) cuts bulk batches from a
# big pending backlog (coalescing per profile, writing the percent-encoded
# batch files, compressing them into the outbox), compared with the plainest
# export of the same rows: `sqlite3 -csv` reading them ordered by profile from
# a plain table; and how much memory pobox needs for it.
#
# Not a test: ctest never runs it and nothing gates on its numbers.  It prints
# figures and the targets beside them; see tools/bench/README.md.
#
# Usage: [SETTING=VALUE...] tools/bench/pack_bench.sh [--quick]
#   --quick     50,000 rows, 3 runs: about a minute; a setting given in the environment wins
#
# Settings (environment):
#   BUILD_DIR   build tree to use/create (default: <repo>/build-bench, Release)
#   WORK_DIR    where the CSV and databases go (default: a new temp dir);
#               put it on the disk the outbox would live on, not on tmpfs
#   KEEP=1      keep WORK_DIR afterwards
#   ROWS        profiles (rows) in the export (default 500000)
#   ATTRS       attribute columns (default 10)
#   SEED        generator seed (default 1)
#   RUNS        repetitions; wall times are the median (default 1)
#   SYNC        synchronous level of the timed flush: FULL (default, pobox's
#               default) or NORMAL.  The baseline only reads, so it pays no
#               fsync either way; FULL is the harder case for pobox.
#   SETUP_SYNC  synchronous level of the untimed setup import (default OFF)
#   BASELINE_OUT  file (default): the baseline writes its CSV to a file in
#               WORK_DIR; null: to /dev/null
#   PERF=1      after the timed runs, run the flush once more under
#               `perf record -g` (untimed) and print the top of the report
#
# Exit status: 0 when every run completed (whatever the figures), 1 when a
# run failed, a check failed or pobox is not built yet.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
# --quick sets smaller defaults (environment settings still win)
QUICK=0
while (($#)); do
	case $1 in
	--quick) QUICK=1 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
	*) echo "pack_bench: unknown option $1 (--quick, --help; the rest are environment settings)" >&2; exit 64 ;;
	esac
	shift
done
if ((QUICK)); then
	ROWS=${ROWS:-50000} RUNS=${RUNS:-3}
fi
ROWS=${ROWS:-500000}
ATTRS=${ATTRS:-10}
SEED=${SEED:-1}
RUNS=${RUNS:-1}
KEEP=${KEEP:-0}
SYNC=${SYNC:-FULL}
SETUP_SYNC=${SETUP_SYNC:-OFF}
BASELINE_OUT=${BASELINE_OUT:-file}
PERF=${PERF:-0}
RATIO_TARGET=1.5
RSS_TARGET_KB=$((64 * 1024))

die() { echo "pack_bench: $*" >&2; exit 1; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer"
[[ $SYNC == FULL || $SYNC == NORMAL ]] || die "SYNC must be FULL or NORMAL"
[[ $BASELINE_OUT == file || $BASELINE_OUT == null ]] ||
	die "BASELINE_OUT must be file or null"
command -v sqlite3 >/dev/null || die "needs the sqlite3 shell"

# --- build ------------------------------------------------------------------
. "$ROOT/tools/bench/lib.sh"
bench_build pack_bench pobox-gen-crm pobox-peakrss
BENCH_BIN=$BUILD_DIR/tools/bench
GEN=$BENCH_BIN/pobox-gen-crm
PEAKRSS=$BENCH_BIN/pobox-peakrss
# What was built: the commit, and whether src/ had uncommitted changes then.
src_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain -- src schema 2>/dev/null) ]]; then
	src_rev+=" + uncommitted changes in src/ or schema/"
fi

# --- work dir -------------------------------------------------------------------
if [[ -z ${WORK_DIR:-} ]]; then
	WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pobox-pack.XXXXXX")
	[[ $KEEP == 1 ]] || trap 'rm -rf "$WORK_DIR"' EXIT
else
	mkdir -p "$WORK_DIR"
fi
fstype=$(stat -f -c %T "$WORK_DIR" 2>/dev/null || echo unknown)
if [[ $fstype == tmpfs || $fstype == ramfs ]]; then
	echo "pack_bench: warning: $WORK_DIR is on $fstype, fsync costs" \
	     "nothing there; set WORK_DIR to a real disk" >&2
fi

field() { # field NAME FILE: value of NAME=... in FILE
	sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" "$2" | tail -n 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# --- setup (untimed) --------------------------------------------------------------
# One export, imported once into a pristine outbox (outbox0.db, checkpointed
# so the file alone is the whole database); each run flushes a copy of it.
csv=$WORK_DIR/crm.csv
outbox0=$WORK_DIR/outbox0.db
plain=$WORK_DIR/plain.db
rm -f "$outbox0" "$outbox0"-wal "$outbox0"-shm "$plain" "$plain"-wal "$plain"-shm
t=$(now)
echo "setup: generating $ROWS rows x $ATTRS attributes..." >&2
"$GEN" --rows "$ROWS" --attrs "$ATTRS" --seed "$SEED" -o "$csv"
echo "setup: pobox import (synchronous=$SETUP_SYNC)..." >&2
rc=0
# pobox reads its synchronous level from a config file only
printf 'db = %s\nsynchronous = %s\n' "$outbox0" "$SETUP_SYNC" >"$WORK_DIR/setup.conf"
"$POBOX" -c "$WORK_DIR/setup.conf" import "$csv" >"$WORK_DIR/import.log" 2>&1 || rc=$?
case $rc in
0) ;;
65) echo "pack_bench: warning: pobox rejected rows of $csv" \
	 "(generated rows are all valid):" >&2
    tail -n 5 "$WORK_DIR/import.log" >&2 ;;
*) cat "$WORK_DIR/import.log" >&2
   die "pobox import failed (exit $rc)" ;;
esac
import_summary=$(grep '^import' "$WORK_DIR/import.log" | tail -n 1 || true)
sqlite3 "$outbox0" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
# v_updates expands every stored write (schema 6 keeps one row per profile
# per write, its cells packed): a full recount, independent of pobox's tallies
read -r updates pending <<<"$(sqlite3 -separator ' ' "$outbox0" \
	"SELECT count(*), coalesce(sum(state = 'pending'), 0) FROM v_updates")"
profiles=$(sqlite3 "$outbox0" "SELECT count(*) FROM profiles")
[[ $pending == "$updates" ]] ||
	die "after import $pending updates are pending, expected $updates"
outbox_bytes=$(stat -c %s "$outbox0")

# The baseline table: the same rows, as plain text columns, with one index on
# the id (as pobox-bench-baseline builds it).  Inserted in enqueue order; the
# index is built after the insert (setup speed; the ids arrive in order
# anyway, so the index is equally compact either way).
echo "setup: baseline table from the outbox's rows..." >&2
sqlite3 "$plain" >/dev/null <<EOF
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
CREATE TABLE t (id TEXT, attr TEXT, value TEXT);
ATTACH '$outbox0' AS ob;
INSERT INTO t SELECT profile_id, attr, value FROM ob.v_updates ORDER BY seq;
DETACH ob;
CREATE INDEX t_id ON t (id);
PRAGMA wal_checkpoint(TRUNCATE);
EOF
plain_rows=$(sqlite3 "$plain" "SELECT count(*) FROM t")
[[ $plain_rows == "$updates" ]] ||
	die "baseline table has $plain_rows rows, expected $updates"
plain_bytes=$(stat -c %s "$plain")
setup_s=$(since "$t")

# --- runs ----------------------------------------------------------------------
declare -A WALLS RSS
baseline_fsync=""
record() { # record KIND RSSFILE
	local wall rss
	wall=$(field wall_s "$2")
	rss=$(field peak_rss_kb "$2")
	WALLS[$1]+="$wall "
	(( rss > ${RSS[$1]:-0} )) && RSS[$1]=$rss
	return 0
}

baseline_query="SELECT id, attr, value FROM t ORDER BY id"
run_baseline() {
	local out=/dev/null t0 lines
	[[ $BASELINE_OUT == file ]] && out=$WORK_DIR/baseline.csv
	rm -f "$WORK_DIR/baseline.csv"
	sync # nothing of the setup left for this run to write back
	"$PEAKRSS" -o "$WORK_DIR/baseline.rss" -- \
		sqlite3 -csv "$plain" "$baseline_query" >"$out" \
		2>"$WORK_DIR/baseline.err" ||
		{ cat "$WORK_DIR/baseline.err" >&2; die "baseline export failed"; }
	record baseline "$WORK_DIR/baseline.rss"
	if [[ $BASELINE_OUT == file ]]; then
		# For reference only: what making that file durable would add.
		t0=$(now)
		sync "$out"
		baseline_fsync+="$(since "$t0") "
		baseline_bytes=$(stat -c %s "$out")
		lines=$(wc -l <"$out")
		[[ $lines == "$updates" ]] ||
			echo "pack_bench: warning: the baseline wrote $lines lines," \
			     "expected $updates" >&2
		rm -f "$out"
	fi
}

conf=$WORK_DIR/pobox.conf
run_db=$WORK_DIR/outbox.db
cat >"$conf" <<EOF
# pack_bench: flush without --wait never connects; base_url is a placeholder.
db = $run_db
client = demo
base_url = http://127.0.0.1:9
synchronous = $SYNC
max_batch_rows = 500000
max_batch_bytes = 49000000
EOF

fresh_outbox() {
	rm -f "$run_db" "$run_db"-wal "$run_db"-shm "$run_db"-deliver.lock
	cp "$outbox0" "$run_db"
	sync # the copy's dirty pages must not land on the flush's fsyncs
}

run_pobox() {
	local rc=0 got
	fresh_outbox
	"$PEAKRSS" -o "$WORK_DIR/pobox.rss" -- "$POBOX" -c "$conf" flush \
		>"$WORK_DIR/flush.log" 2>&1 || rc=$?
	[[ $rc == 0 ]] || { cat "$WORK_DIR/flush.log" >&2; die "pobox flush failed (exit $rc)"; }
	record pobox "$WORK_DIR/pobox.rss"
	flush_summary=$(grep '^flush:' "$WORK_DIR/flush.log" | tail -n 1 || true)
	# Every update must be in a batch, none left pending.
	got=$(sqlite3 -separator ' ' "$run_db" \
		"SELECT count(*), coalesce(sum(updates), 0), coalesce(sum(profiles), 0),
		        coalesce(sum(bytes), 0),
		        (SELECT coalesce(sum(length(payload)), 0) FROM batch_payloads)
		 FROM batches")
	read -r batches batch_updates batch_profiles batch_bytes batch_zbytes <<<"$got"
	still_pending=$(sqlite3 "$run_db" "SELECT count(*) FROM v_updates WHERE state = 'pending'")
	[[ $batch_updates == "$updates" ]] ||
		die "batches carry $batch_updates updates, expected $updates (flush: $flush_summary)"
	[[ $still_pending == 0 ]] || die "$still_pending updates still pending after flush"
	flushed_db_bytes=$(stat -c %s "$run_db")
}

# Baseline and pobox alternate, so a slow patch of the machine (other load,
# writeback of earlier files) hits both sides rather than one.
for ((run = 1; run <= RUNS; run++)); do
	if ((run % 2 == 0)); then
		echo "run $run/$RUNS: pobox flush..." >&2
		run_pobox
	fi
	echo "run $run/$RUNS: baseline (sqlite3 -csv ... ORDER BY id)..." >&2
	run_baseline
	if ((run % 2)); then
		echo "run $run/$RUNS: pobox flush..." >&2
		run_pobox
	fi
done

median() { # median "X Y Z ...": the median of the numbers
	printf '%s\n' $1 | sort -g |
		awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
b_wall=$(median "${WALLS[baseline]}")
p_wall=$(median "${WALLS[pobox]}")
b_rss=${RSS[baseline]}
p_rss=${RSS[pobox]}

# --- report -------------------------------------------------------------------
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }
mbytes() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
rate() { awk -v c="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? c / s : 0) }'; }
ratio=$(awk -v p="$p_wall" -v b="$b_wall" 'BEGIN { printf "%.2f", (b > 0 ? p / b : 0) }')
verdict() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo MISS; fi; }
if [[ $BASELINE_OUT == file ]]; then
	b_out="CSV file in the work dir ($(mbytes "$baseline_bytes"), not fsynced;"
	b_out+=" fsync of it afterwards: median $(median "$baseline_fsync") s, not counted)"
else
	b_out="/dev/null"
fi

cat <<EOF

pobox pack (flush) benchmark
  host        $(uname -srm), $(nproc) CPUs, SQLite $(sqlite3 --version 2>/dev/null | cut -d' ' -f1)
  build       $BUILD_DIR ($build_type), source $src_rev
  work dir    $WORK_DIR ($fstype)
  input       $ROWS rows x $ATTRS attributes, seed $SEED: $profiles profiles, $updates pending updates
              outbox $(mbytes "$outbox_bytes") after import (setup import: synchronous=$SETUP_SYNC, untimed)
              $import_summary
  baseline    sqlite3 -csv plain.db "$baseline_query"
              t(id TEXT, attr TEXT, value TEXT) + index on id, $plain_rows rows, $(mbytes "$plain_bytes")
              output: $b_out
  pobox       pobox -c CONF flush (no --wait), synchronous=$SYNC, on a fresh copy of the outbox each run
              (the baseline only reads; synchronous does not apply to it)
  runs        $RUNS (wall s: median of the runs; peak RSS: highest); setup took $setup_s s

run                      updates   wall s    updates/s   peak RSS
EOF
printf '%-20s %12s %8.2f %12s %10s\n' \
	"baseline export" "$updates" "$b_wall" "$(rate "$updates" "$b_wall")" "$(mb "$b_rss")" \
	"pobox flush" "$updates" "$p_wall" "$(rate "$updates" "$p_wall")" "$(mb "$p_rss")"
echo "  walls: baseline ${WALLS[baseline]}/ pobox ${WALLS[pobox]}"
cat <<EOF

pobox cut $batches batches: $batch_profiles profile rows, $batch_updates updates (all $updates: ok),
  $(mbytes "$batch_bytes") of batch files as sent, $(mbytes "$batch_zbytes") compressed in the outbox;
  outbox $(mbytes "$flushed_db_bytes") after the flush; 0 updates left pending
  pobox said: $flush_summary

target                                         measured     result
EOF
printf '%-46s %-12s %s\n' \
	"pobox flush / baseline export wall <= $RATIO_TARGET" "$ratio" \
	"$(verdict "$ratio <= $RATIO_TARGET")" \
	"pobox flush peak RSS < 64 MB" "$(mb "$p_rss")" \
	"$(verdict "$p_rss < $RSS_TARGET_KB")"

# --- optional profile ---------------------------------------------------------------
if [[ $PERF == 1 ]]; then
	command -v perf >/dev/null || die "PERF=1 needs perf"
	echo
	echo "perf profile of one more (untimed) flush, synchronous=$SYNC:"
	fresh_outbox
	# DWARF call graphs: the Release build has no frame pointers, and
	# neither has the system libsqlite3.
	perf record -q -F 499 --call-graph dwarf,16384 -o "$WORK_DIR/perf.data" \
		-- "$POBOX" -c "$conf" flush >"$WORK_DIR/perf-flush.log" 2>&1 ||
		{ cat "$WORK_DIR/perf-flush.log" >&2; die "pobox flush under perf failed"; }
	echo "-- self time by function (top 25):"
	perf report -i "$WORK_DIR/perf.data" --stdio --no-children -g none \
		--sort dso,sym 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 25 || true
	echo "-- time inside each of pobox's own functions, callees included (top 25):"
	perf report -i "$WORK_DIR/perf.data" --stdio --children -g none \
		--sort dso,sym 2>/dev/null | awk '$3 == "pobox"' | head -n 25 || true
	echo "(the profile is $WORK_DIR/perf.data: set KEEP=1 or WORK_DIR to keep it)"
fi
