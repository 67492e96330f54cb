#!/usr/bin/env bash
# e2e_bench.sh: a CRM export all the way into (simulated) Target:
# `pobox import` of the export, then `pobox flush --wait` against
# pobox-target-sim (no processing delay, no faults), with the time and CPU
# each side spends.  A report, not a target: nothing here says PASS or MISS
# except the checks that everything arrived.
#
# Not a test: ctest never runs it and nothing gates on its numbers; see
# tools/bench/README.md.
#
# Usage: [SETTING=VALUE...] tools/bench/e2e_bench.sh [--quick]
#   --quick     50,000 rows: well under a minute; a setting given in the environment wins
#
# Settings (environment):
#   BUILD_DIR   build tree to use/create (default: <repo>/build-bench, Release)
#   WORK_DIR    where the CSV, the outbox and the logs go (default: a new
#               temp dir); put it on the disk the outbox would live on
#   KEEP=1      keep WORK_DIR afterwards
#   ROWS        profiles (rows) in the export (default 1000000)
#   ATTRS       attribute columns (default 10)
#   SEED        generator seed (default 1)
#   SYNC        pobox's synchronous level, import and flush (default FULL,
#               pobox's default)
#   BULK_CALLS_PER_MINUTE  pobox's own bulk-call limit (default 10000, the
#               highest it accepts; the simulator's limit is off, so the
#               documented 45/min would only measure waiting)
#   FLUSH_TIMEOUT  flush --wait --timeout (default 30m)
#   VERIFY_STORE=0  skip reading the simulator's whole store afterwards
#               (default 1: the store is compared with the CSV cell by
#               cell, streamed by pobox-bench-check-store, after the timing)
#
# Exit status: 0 when the run completed and every check held (whatever the
# times), 1 otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
# --quick sets smaller defaults (environment settings still win)
QUICK=0
while (($#)); do
	case $1 in
	--quick) QUICK=1 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
	*) echo "e2e_bench: unknown option $1 (--quick, --help; the rest are environment settings)" >&2; exit 64 ;;
	esac
	shift
done
if ((QUICK)); then
	ROWS=${ROWS:-50000}
fi
ROWS=${ROWS:-1000000}
ATTRS=${ATTRS:-10}
SEED=${SEED:-1}
KEEP=${KEEP:-0}
SYNC=${SYNC:-FULL}
BULK_CALLS_PER_MINUTE=${BULK_CALLS_PER_MINUTE:-10000}
FLUSH_TIMEOUT=${FLUSH_TIMEOUT:-30m}
VERIFY_STORE=${VERIFY_STORE:-1}

die() { echo "e2e_bench: $*" >&2; exit 1; }

command -v curl >/dev/null || die "needs curl"
command -v python3 >/dev/null || die "needs python3"
command -v sqlite3 >/dev/null || die "needs the sqlite3 shell"

# --- build ------------------------------------------------------------------
. "$ROOT/tools/bench/lib.sh"
bench_build e2e_bench pobox-gen-crm pobox-peakrss pobox-bench-check-store pobox-target-sim
BENCH_BIN=$BUILD_DIR/tools/bench
GEN=$BENCH_BIN/pobox-gen-crm
PEAKRSS=$BENCH_BIN/pobox-peakrss
SIM=$BUILD_DIR/tools/sim/pobox-target-sim
src_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain -- src schema tools/sim 2>/dev/null) ]]; then
	src_rev+=" + uncommitted changes in src/, schema/ or tools/sim/"
fi

# --- work dir and simulator -----------------------------------------------------
sim_pid=""
cleanup() {
	if [[ -n $sim_pid ]]; then
		kill -TERM "$sim_pid" 2>/dev/null || true
		wait "$sim_pid" 2>/dev/null || true
	fi
	if [[ $KEEP != 1 && -n ${TMP_WORK:-} ]]; then
		rm -rf "$TMP_WORK"
	fi
}
trap cleanup EXIT
if [[ -z ${WORK_DIR:-} ]]; then
	WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pobox-e2e.XXXXXX")
	TMP_WORK=$WORK_DIR
else
	mkdir -p "$WORK_DIR"
fi
fstype=$(stat -f -c %T "$WORK_DIR" 2>/dev/null || echo unknown)
if [[ $fstype == tmpfs || $fstype == ramfs ]]; then
	echo "e2e_bench: warning: $WORK_DIR is on $fstype, fsync costs" \
	     "nothing there; set WORK_DIR to a real disk" >&2
fi

now() { date +%s.%N; }
field() { # field NAME FILE: value of NAME=... in FILE
	sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" "$2" | tail -n 1
}
add() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a + b }'; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
TICK=$(getconf CLK_TCK)
sim_cpu() { # CPU seconds (user + system) the simulator has used so far
	awk -v tick="$TICK" '{ sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / tick }' \
		"/proc/$sim_pid/stat"
}
sim_hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$sim_pid/status"; }

echo "starting the simulator (no delay, no bulk limit, no faults)..." >&2
"$SIM" --port 0 --bulk-per-minute 0 --process-delay-ms 0 \
	>"$WORK_DIR/sim.out" 2>"$WORK_DIR/sim.err" &
sim_pid=$!
port=""
for ((i = 0; i < 100; i++)); do
	port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$WORK_DIR/sim.out")
	[[ -n $port ]] && break
	kill -0 "$sim_pid" 2>/dev/null || { cat "$WORK_DIR/sim.err" >&2; die "the simulator exited"; }
	sleep 0.1
done
[[ -n $port ]] || die "the simulator did not say where it listens"
base=http://127.0.0.1:$port

# --- input (untimed) --------------------------------------------------------------
csv=$WORK_DIR/crm.csv
db=$WORK_DIR/outbox.db
conf=$WORK_DIR/pobox.conf
rm -f "$db" "$db"-wal "$db"-shm "$db"-deliver.lock
echo "generating $ROWS rows x $ATTRS attributes..." >&2
"$GEN" --rows "$ROWS" --attrs "$ATTRS" --seed "$SEED" -o "$csv"
csv_bytes=$(stat -c %s "$csv")
cat >"$conf" <<EOF
# e2e_bench: the simulator runs with --bulk-per-minute 0, so pobox's own
# bulk_calls_per_minute is raised from the documented 45 to $BULK_CALLS_PER_MINUTE.
db = $db
client = demo
base_url = $base
synchronous = $SYNC
poll_initial = 100ms
poll_cap = 1s
bulk_calls_per_minute = $BULK_CALLS_PER_MINUTE
max_batch_rows = 500000
max_batch_bytes = 49000000
EOF
sync # the generated file's writeback must not land on pobox's fsyncs

# --- import (timed) ------------------------------------------------------------------
sim_cpu0=$(sim_cpu)
echo "pobox import..." >&2
rc=0
"$PEAKRSS" -o "$WORK_DIR/import.rss" -- "$POBOX" -c "$conf" import "$csv" \
	>"$WORK_DIR/import.log" 2>&1 || rc=$?
case $rc in
0) ;;
65) echo "e2e_bench: warning: pobox rejected rows (generated rows are all valid):" >&2
    tail -n 5 "$WORK_DIR/import.log" >&2 ;;
*) cat "$WORK_DIR/import.log" >&2; die "pobox import failed (exit $rc)" ;;
esac
sim_cpu1=$(sim_cpu)
import_wall=$(field wall_s "$WORK_DIR/import.rss")
import_cpu=$(add "$(field user_s "$WORK_DIR/import.rss")" "$(field sys_s "$WORK_DIR/import.rss")")
import_rss=$(field peak_rss_kb "$WORK_DIR/import.rss")
import_summary=$(grep '^import' "$WORK_DIR/import.log" | tail -n 1 || true)
# a recount through the view (schema 6 packs a profile's cells into one row
# per write), independent of the tallies `pobox status` reads
updates=$(sqlite3 "$db" "SELECT count(*) FROM v_updates")
profiles=$(sqlite3 "$db" "SELECT count(*) FROM profiles")

# --- flush --wait (timed) -----------------------------------------------------------
echo "pobox flush --wait..." >&2
rc=0
flush_t0=$(now)
"$PEAKRSS" -o "$WORK_DIR/flush.rss" -- "$POBOX" -c "$conf" flush --wait \
	--timeout "$FLUSH_TIMEOUT" >"$WORK_DIR/flush.log" 2>&1 || rc=$?
flush_t1=$(now)
sim_cpu2=$(sim_cpu)
[[ $rc == 0 ]] || { tail -n 20 "$WORK_DIR/flush.log" >&2; die "pobox flush --wait failed (exit $rc)"; }
flush_wall=$(field wall_s "$WORK_DIR/flush.rss")
flush_cpu=$(add "$(field user_s "$WORK_DIR/flush.rss")" "$(field sys_s "$WORK_DIR/flush.rss")")
flush_rss=$(field peak_rss_kb "$WORK_DIR/flush.rss")
flush_summary=$(grep '^flush:' "$WORK_DIR/flush.log" | head -n 1 || true)
sim_import_cpu=$(sub "$sim_cpu1" "$sim_cpu0")
sim_flush_cpu=$(sub "$sim_cpu2" "$sim_cpu1")
sim_rss=$(sim_hwm_kb)

# Phases of the flush from pobox's own event lines (UTC ms timestamps):
# cutting ends at batches_cut; delivery ends at the last batch_completed.
phases=$(python3 - "$WORK_DIR/flush.log" "$flush_t0" "$flush_t1" <<'PY'
import sys, datetime
log, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
def ts(line):
    d = datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ")
    return d.replace(tzinfo=datetime.timezone.utc).timestamp()
cut = first_sent = last_done = None
sent = done = 0
for line in open(log, errors="replace"):
    f = line.split()
    if len(f) < 3 or not f[0].endswith("Z"):
        continue
    if f[2] == "batches_cut" and cut is None:
        cut = ts(line)
    elif f[2] == "batch_sent":
        sent += 1
        first_sent = first_sent or ts(line)
    elif f[2] == "batch_completed":
        done += 1
        last_done = ts(line)
def span(a, b):
    return "%.2f" % (b - a) if a is not None and b is not None else "n/a"
print(span(t0, cut), span(cut, last_done), span(last_done, t1), sent, done)
PY
)
read -r cut_s deliver_s tail_s sent_n done_n <<<"$phases"

# --- checks (untimed) ---------------------------------------------------------------
echo "checking the simulator's counters and pobox status..." >&2
curl -sf "$base/_sim/counters" >"$WORK_DIR/counters.json" || die "GET /_sim/counters failed"
read -r c_profiles c_applied c_received c_failed c_notfound c_lost c_batches c_refused <<<"$(
python3 - "$WORK_DIR/counters.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
calls = c["calls"]
refused = sum(calls[k]["total"] - calls[k]["ok"] for k in ("batch_update_v1", "batch_update_v2"))
print(c["profiles"], c["rows_applied"], c["rows_received"], c["rows_failed"],
      c["rows_not_found"], c["rows_lost_to_override"], c["batches_processed"], refused)
PY
)"
status_json=$("$POBOX" -c "$conf" status --json)
read -r st_pending st_batched st_delivered st_dead <<<"$(
python3 -c 'import json, sys; u = json.load(sys.stdin)["updates"]; print(u["pending"], u["batched"], u["delivered"], u["dead"])' <<<"$status_json"
)"
batches=$(sqlite3 "$db" "SELECT count(*) FROM batches")
batch_bytes=$(sqlite3 "$db" "SELECT coalesce(sum(bytes), 0) FROM batches")

failures=()
check() { # check DESCRIPTION CONDITION
	if awk "BEGIN { exit !($2) }"; then
		printf '  ok    %s\n' "$1"
	else
		printf '  FAIL  %s\n' "$1"
		failures+=("$1")
	fi
}
store_line=""
if [[ $VERIFY_STORE == 1 ]]; then
	echo "comparing the simulator's store with the CSV, cell by cell..." >&2
	{ head -n 1 "$csv"; tail -n +2 "$csv" | LC_ALL=C sort -t, -k1,1 -S 256M -T "$WORK_DIR"; } \
		>"$WORK_DIR/crm.sorted"
	store_line=$(curl -sf "$base/_sim/profiles" |
		"$BUILD_DIR/tools/bench/pobox-bench-check-store" "$WORK_DIR/crm.sorted" 2>&1) || true
fi

# --- report ----------------------------------------------------------------------------
total_wall=$(add "$import_wall" "$flush_wall")
pobox_cpu=$(add "$import_cpu" "$flush_cpu")
sim_total_cpu=$(add "$sim_import_cpu" "$sim_flush_cpu")
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", (b > 0 ? 100 * a / b : 0) }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }
mbytes() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
flush_both=$(add "$flush_cpu" "$sim_flush_cpu")
all_cpu=$(add "$pobox_cpu" "$sim_total_cpu")
flush_idle=$(awk -v w="$flush_wall" -v p="$flush_cpu" -v s="$sim_flush_cpu" \
	'BEGIN { x = w - p - s; printf "%.2f", (x > 0 ? x : 0) }')

cat <<EOF

pobox end-to-end benchmark (import + flush --wait against pobox-target-sim)
  host        $(uname -srm), $(nproc) CPUs, SQLite $(sqlite3 --version 2>/dev/null | cut -d' ' -f1)
  build       $BUILD_DIR ($build_type), source $src_rev
  work dir    $WORK_DIR ($fstype)
  input       $ROWS rows x $ATTRS attributes, seed $SEED ($(mbytes "$csv_bytes")): $profiles profiles, $updates updates
  simulator   $SIM --port 0 --bulk-per-minute 0 --process-delay-ms 0 (4 threads, no faults)
  pobox       synchronous=$SYNC, bulk_calls_per_minute=$BULK_CALLS_PER_MINUTE (raised: the simulator's limit is off),
              poll_initial=100ms, poll_cap=1s, max_batch_rows=500000, max_batch_bytes=49000000

step                       wall s   pobox CPU s   sim CPU s   pobox peak RSS
EOF
printf '%-24s %9.2f %13.2f %11.2f %16s\n' \
	"pobox import" "$import_wall" "$import_cpu" "$sim_import_cpu" "$(mb "$import_rss")" \
	"pobox flush --wait" "$flush_wall" "$flush_cpu" "$sim_flush_cpu" "$(mb "$flush_rss")" \
	"total" "$total_wall" "$pobox_cpu" "$sim_total_cpu" "-"
cat <<EOF

  flush --wait phases (from pobox's event lines): cutting $cut_s s, sending and
  polling until the last batch completed $deliver_s s, closing $tail_s s;
  $batches batches ($(mbytes "$batch_bytes") as sent), $sent_n submitted, $done_n completed.
  simulator peak RSS $(mb "$sim_rss") (its store of $c_profiles profiles and the batch bodies)

shares of CPU time                     pobox       simulator
EOF
printf '%-34s %9s %15s\n' \
	"flush --wait (both processes)" "$(pct "$flush_cpu" "$flush_both")" "$(pct "$sim_flush_cpu" "$flush_both")" \
	"import + flush (both processes)" "$(pct "$pobox_cpu" "$all_cpu")" "$(pct "$sim_total_cpu" "$all_cpu")"
cat <<EOF
  of the total wall time $total_wall s: pobox on CPU $(pct "$pobox_cpu" "$total_wall"),
  simulator on CPU $(pct "$sim_total_cpu" "$total_wall"); flush wall not covered by
  either's CPU: $flush_idle s (poll intervals, fsync waits)
  import: $import_summary
  flush:  $flush_summary

checks
EOF
check "simulator store holds $profiles profiles (has $c_profiles)" "$c_profiles == $profiles"
check "simulator applied $profiles rows, one per profile (applied $c_applied of $c_received received)" \
	"$c_applied == $profiles && $c_received == $profiles"
check "no failed, not-found or overridden rows ($c_failed, $c_notfound, $c_lost), no refused batch ($c_refused)" \
	"$c_failed == 0 && $c_notfound == 0 && $c_lost == 0 && $c_refused == 0"
check "simulator processed all $batches batches pobox cut ($c_batches)" "$c_batches == $batches"
check "pobox status: 0 pending, 0 batched, 0 dead ($st_pending, $st_batched, $st_dead)" \
	"$st_pending == 0 && $st_batched == 0 && $st_dead == 0"
check "pobox status: all $updates updates delivered ($st_delivered)" "$st_delivered == $updates"
if [[ -n $store_line ]]; then
	check "store = CSV, cell by cell ($(head -n 1 <<<"$store_line"))" \
		"$(grep -c 'result=same' <<<"$store_line") == 1"
else
	echo "  (store contents not compared: VERIFY_STORE=0)"
fi
(( ${#failures[@]} == 0 )) || exit 1
