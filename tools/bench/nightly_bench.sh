#!/usr/bin/env bash
# nightly_bench.sh: the nightly CRM job, pobox against the cron script a CRM
# team would write instead (peer_cron.py), on the same simulator settings.
#
#   night 1  a fresh simulator; pobox: `import FILE` + `flush --wait`
#            into a new outbox; the peer: peer_cron.py FILE.
#   night 2  the next export, where --changed percent of the customers
#            changed one attribute; pobox: `import --changed-only FILE2` +
#            `flush --wait` on the same outbox and simulator; the peer
#            resends the whole FILE2.
#
# After every step the simulator's whole store is compared with the CSV,
# cell by cell (pobox-bench-check-store, streamed: no GBs of RAM), and its
# counters must show nothing failed, refused or lost.  Runs alternate which
# side goes first; figures are medians, peak RSS the highest.
#
# Usage: nightly_bench.sh [--quick] [--rows N] [--attrs K] [--runs N]
#            [--changed PCT] [--seed S] [--sim-args "ARGS"]
#            [--bulk-calls-per-minute N] [--sync FULL|NORMAL|OFF]
#            [--timeout DUR] [--work-dir DIR] [--csv-cache DIR] [--keep]
#            [--build-dir DIR]
#   --quick        20,000 profiles, 3 runs (CI: well under a minute)
#   --rows N       profiles in the export (default 1,000,000)
#   --runs N       rounds, each with both sides (default 3)
#   --changed PCT  percent of customers changed on night 2 (default 2)
#   --sim-args     simulator flags for both sides (default
#                  "--bulk-per-minute 0 --process-delay-ms 0"; for a realistic
#                  run e.g. "--bulk-per-minute 50 --process-delay-ms 5000"
#                  with --bulk-calls-per-minute 45)
#   --bulk-calls-per-minute N  pobox's own bulk limit (default 10000: the
#                  simulator's limit is off by default, and waiting out the
#                  documented 45 a minute would measure only the wait)
#   --sync         pobox's synchronous level (default FULL, its default)
#   --csv-cache DIR  keep the generated exports (and sorted copies) in DIR
#                  and reuse them (also CSV_CACHE=DIR)
#
# Not a test: nothing gates on the figures.  Exit 0 when every run
# completed and every check held, whatever the figures; 1 otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
ROWS=1000000 ATTRS=10 RUNS=3 CHANGED=2 SEED=1
SIM_ARGS="--bulk-per-minute 0 --process-delay-ms 0"
BULK_CPM=10000 SYNC=FULL TIMEOUT=30m KEEP=${KEEP:-0}
QUICK=0

die() { echo "nightly_bench: $*" >&2; exit 1; }
usage() { sed -n '/^# Usage:/,/^# Not a test/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64; }
while (($#)); do
	case $1 in
	--quick) QUICK=1 ROWS=20000 RUNS=3 ;;
	--rows) ROWS=$2; shift ;;
	--attrs) ATTRS=$2; shift ;;
	--runs) RUNS=$2; shift ;;
	--changed) CHANGED=$2; shift ;;
	--seed) SEED=$2; shift ;;
	--sim-args) SIM_ARGS=$2; shift ;;
	--bulk-calls-per-minute) BULK_CPM=$2; shift ;;
	--sync) SYNC=$2; shift ;;
	--timeout) TIMEOUT=$2; shift ;;
	--work-dir) WORK_DIR=$2; shift ;;
	--csv-cache) CSV_CACHE=$2; shift ;;
	--keep) KEEP=1 ;;
	--build-dir) BUILD_DIR=$2; shift ;;
	-h | --help) usage ;;
	*) echo "nightly_bench: unknown option $1" >&2; usage ;;
	esac
	shift
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
[[ $ROWS =~ ^[1-9][0-9]*$ ]] || die "--rows must be a positive integer"
for t in curl jq sqlite3 python3; do command -v $t >/dev/null || die "needs $t"; done

. "$ROOT/tools/bench/lib.sh"
bench_build nightly_bench pobox-gen-crm pobox-peakrss pobox-bench-check-store pobox-target-sim
BENCH_BIN=$BUILD_DIR/tools/bench
PY=$(real_python)
PEER=$ROOT/tools/bench/peer_cron.py
read -r -a sim_args <<<"$SIM_ARGS"
trap bench_cleanup EXIT
work_dir_setup nightly_bench
W=$WORK_DIR
src_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$ROOT" status --porcelain -- src schema tools 2>/dev/null) ]] ||
	src_rev+=" + uncommitted changes"

# --- inputs (untimed) -----------------------------------------------------------
n1=$W/night1.csv n2=$W/night2.csv
echo "generating $ROWS x $ATTRS (seed $SEED) and the next night ($CHANGED% changed), sorted copies..." >&2
crm_csv "$n1" "$W/night1.sorted" "$ROWS" "$ATTRS" "$SEED"
crm_csv "$n2" "$W/night2.sorted" "$ROWS" "$ATTRS" "$SEED" "$CHANGED"
changed_rows=$(sed -n 's/.*changed=\([0-9]*\).*/\1/p' "$n2.err")
n1_bytes=$(stat -c %s "$n1")
n2_bytes=$(stat -c %s "$n2")

conf=$W/pobox.conf db=$W/outbox.db
write_conf() {
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
}

# --- figures and checks --------------------------------------------------------
declare -A F   # F[key]="value per run ..."
declare -A P_LANES # night -> "N bulk, N single" (of the last run)
add_fig() { F[$1]+="$2 "; }
CHECKS=() FAILED=0 n_checks=0
check() { # check DESCRIPTION COMMAND...
	if "${@:2}" >/dev/null 2>&1; then
		CHECKS+=("  ok    $1")
	else
		CHECKS+=("  FAIL  $1")
		FAILED=1
	fi
}
is_same() { grep -q 'result=same' "$1"; }
status_clean() { # status_clean: nothing pending, batched or dead
	"$POBOX" -c "$conf" status --json |
		jq -e '.updates.pending == 0 and .updates.batched == 0 and .updates.dead == 0'
}
store_checks() { # store_checks LABEL SORTED_CSV
	local out=$W/check-$((++n_checks))
	check_store "$2" "$out" >/dev/null || true
	check "$1: store = CSV cell by cell ($(sed 's/ missing/\n/' "$out" | head -n 1))" is_same "$out"
	check "$1: simulator counters (nothing failed, not found, lost or refused)" sim_counters_ok
}
sim_step() { # sim_step KEY T0: the simulator's CPU since T0
	add_fig "$1" "$(calc "$(sim_cpu) - $2")"
}
phases() { # phases LOG T0 T1: "cut deliver close" seconds from pobox's event lines
	"$PY" - "$@" <<'PY'
import sys, datetime
log, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
def ts(f):
    d = datetime.datetime.strptime(f, "%Y-%m-%dT%H:%M:%S.%fZ")
    return d.replace(tzinfo=datetime.timezone.utc).timestamp()
cut = done = None
for line in open(log, errors="replace"):
    f = line.split()
    if len(f) > 2 and f[0].endswith("Z") and f[2] == "batches_cut" and cut is None:
        cut = ts(f[0])
    if len(f) > 2 and f[0].endswith("Z") and f[2] in ("batch_completed", "single_calls"):
        done = ts(f[0])
if cut is None or done is None:
    print("nan nan nan")
else:
    print("%.3f %.3f %.3f" % (cut - t0, done - cut, t1 - done))
PY
}

run_pobox() { # run_pobox RUN
	local r=$1 p=$W/r$1-pobox c0 t0 t1 rc night last_batch
	sim_start "$W/sim-pobox-$r" "${sim_args[@]}"
	write_conf
	rm -f "$db" "$db"-wal "$db"-shm "$db"-deliver.lock
	for night in 1 2; do
		local csv=$n1 imp=(import "$n1")
		[[ $night == 2 ]] && csv=$n2 imp=(import --changed-only "$n2")
		last_batch=0
		[[ $night == 1 ]] || last_batch=$(sqlite3 "$db" "SELECT coalesce(max(id), 0) FROM batches")
		sync
		echo "run $r/$RUNS: pobox night $night: ${imp[*]##*/}, flush --wait..." >&2
		c0=$(sim_cpu)
		rc=0
		timed "$p-import$night" "$POBOX" -c "$conf" "${imp[@]}" || rc=$?
		[[ $rc == 0 ]] || { tail -n 5 "$p-import$night.log" >&2; die "pobox import exited $rc"; }
		sim_step "sim_pimport$night" "$c0"
		c0=$(sim_cpu)
		t0=$(date +%s.%N)
		rc=0
		timed "$p-flush$night" "$POBOX" -c "$conf" flush --wait --timeout "$TIMEOUT" || rc=$?
		t1=$(date +%s.%N)
		[[ $rc == 0 ]] || { tail -n 5 "$p-flush$night.log" >&2; die "pobox flush --wait exited $rc"; }
		sim_step "sim_pflush$night" "$c0"
		add_fig "p_import$night" "$(wall_of "$p-import$night")"
		add_fig "p_flush$night" "$(wall_of "$p-flush$night")"
		add_fig "p_total$night" "$(calc "$(wall_of "$p-import$night") + $(wall_of "$p-flush$night")")"
		add_fig "p_import_cpu$night" "$(cpu_of "$p-import$night")"
		add_fig "p_flush_cpu$night" "$(cpu_of "$p-flush$night")"
		add_fig "p_total_cpu$night" "$(calc "$(cpu_of "$p-import$night") + $(cpu_of "$p-flush$night")")"
		add_fig "p_import_rss$night" "$(rss_of "$p-import$night")"
		add_fig "p_flush_rss$night" "$(rss_of "$p-flush$night")"
		read -r a b c <<<"$(phases "$p-flush$night.log" "$t0" "$t1")"
		add_fig "p_cut$night" "$a"; add_fig "p_deliver$night" "$b"; add_fig "p_close$night" "$c"
		add_fig "p_bytes$night" "$(sqlite3 "$db" "SELECT coalesce(sum(bytes), 0) FROM batches WHERE id > $last_batch")"
		add_fig "p_batches$night" "$(sqlite3 "$db" "SELECT count(*) FROM batches WHERE id > $last_batch")"
		P_LANES[$night]=$(sqlite3 "$db" "SELECT group_concat(n || ' ' || lane, ', ') FROM
			(SELECT lane, count(*) AS n FROM batches WHERE id > $last_batch GROUP BY lane)")
		add_fig "p_carried$night" "$(sqlite3 "$db" "SELECT coalesce(sum(carried), 0) FROM batches WHERE id > $last_batch")"
		enq=$(sed -n 's/.* \([0-9,]*\) updates enqueued.*/\1/p' "$p-import$night.log" | tr -d ,)
		add_fig "p_enqueued$night" "$enq"
		store_checks "run $r pobox night $night" "$W/night$night.sorted"
		check "run $r pobox night $night: status: 0 pending, 0 batched, 0 dead" status_clean
		if [[ $night == 2 ]]; then
			check "run $r pobox night 2: --changed-only enqueued exactly the $changed_rows changed cells ($enq)" \
				test "$enq" = "$changed_rows"
		fi
	done
	sim_stop
}

run_peer() { # run_peer RUN
	local r=$1 p=$W/r$1-peer c0 night rc
	sim_start "$W/sim-peer-$r" "${sim_args[@]}"
	for night in 1 2; do
		local csv=$n1
		[[ $night == 2 ]] && csv=$n2
		sync
		echo "run $r/$RUNS: peer night $night: peer_cron.py ${csv##*/}..." >&2
		c0=$(sim_cpu)
		rc=0
		timed "$p-$night" "$PY" "$PEER" "$csv" "$sim_base" demo --max-rows 500000 \
			--max-bytes 49000000 || rc=$?
		[[ $rc == 0 ]] || { tail -n 5 "$p-$night.log" >&2; die "peer_cron.py exited $rc"; }
		sim_step "sim_peer$night" "$c0"
		add_fig "peer$night" "$(wall_of "$p-$night")"
		add_fig "peer_cpu$night" "$(cpu_of "$p-$night")"
		add_fig "peer_rss$night" "$(rss_of "$p-$night")"
		add_fig "peer_bytes$night" "$(field bytes "$p-$night.log")"
		add_fig "peer_batches$night" "$(field batches "$p-$night.log")"
		store_checks "run $r peer night $night" "$W/night$night.sorted"
	done
	sim_stop
}

cmd_lines_setup=$(wc -l <"$CMDLOG")
for ((run = 1; run <= RUNS; run++)); do
	if ((run % 2)); then run_pobox $run; run_peer $run; else run_peer $run; run_pobox $run; fi
	((run == 1)) && cmd_lines_run1=$(wc -l <"$CMDLOG")
done

# --- report ----------------------------------------------------------------------
M() { median "${F[$1]}"; }
X() { maxof "${F[$1]}"; }
runs() { echo "${F[$1]% }" | tr ' ' '/'; }
row() { # row LABEL WALLKEY CPUKEY RSSKEY SIMKEY
	printf '  %-34s %8s %8s %10s %9s   %s\n' "$1" "$(M "$2")" "${3:+$(M "$3")}" \
		"${4:+$(mb "$(X "$4")")}" "${5:+$(M "$5")}" "$(runs "$2")"
}
per_run_ratio() { # per_run_ratio A B: ratio of the i-th values
	paste -d' ' <(printf '%s\n' ${F[$1]}) <(printf '%s\n' ${F[$2]}) |
		awk '{ printf "%s%.2f", (NR > 1 ? "/" : ""), ($2 > 0 ? $1 / $2 : 0) }'
}
cells1=$(median "${F[p_enqueued1]}")
r1=$(ratio "$(M p_total1)" "$(M peer1)")
r1cpu=$(ratio "$(M p_total_cpu1)" "$(M peer_cpu1)")
r2=$(ratio "$(M p_total2)" "$(M peer2)")
r2cpu=$(ratio "$(M p_total_cpu2)" "$(M peer_cpu2)")

cat <<EOF

pobox nightly benchmark: pobox import + flush --wait against peer_cron.py
  host        $(host_line)
  build       $BUILD_DIR ($build_type), source $src_rev
  work dir    $W ($fstype)
  night 1     $ROWS profiles x $ATTRS attributes, seed $SEED: $(calc "$n1_bytes / 1e6" 1) MB, $cells1 cells
  night 2     $CHANGED% changed (--change-seed 2): $changed_rows profiles with one attribute changed, $(calc "$n2_bytes / 1e6" 1) MB
  simulator   pobox-target-sim $SIM_ARGS (a fresh one per side and run; both sides the same)
  pobox       synchronous=$SYNC, bulk_calls_per_minute=$BULK_CPM, poll_initial=100ms, poll_cap=1s,
              max_batch_rows=500000, max_batch_bytes=49000000
  peer        $PY tools/bench/peer_cron.py (--max-rows 500000 --max-bytes 49000000; polls 0.1 s doubling to 1 s)
  runs        $RUNS, alternating which side goes first; medians (wall, CPU), highest peak RSS

                                       wall s    CPU s    peak RSS  sim CPU s   wall s of each run
night 1
EOF
row "pobox import" p_import1 p_import_cpu1 p_import_rss1 sim_pimport1
row "pobox flush --wait" p_flush1 p_flush_cpu1 p_flush_rss1 sim_pflush1
row "pobox import + flush" p_total1 p_total_cpu1 "" ""
row "peer_cron.py" peer1 peer_cpu1 peer_rss1 sim_peer1
echo "night 2"
row "pobox import --changed-only" p_import2 p_import_cpu2 p_import_rss2 sim_pimport2
row "pobox flush --wait" p_flush2 p_flush_cpu2 p_flush_rss2 sim_pflush2
row "pobox import + flush" p_total2 p_total_cpu2 "" ""
row "peer_cron.py (whole file again)" peer2 peer_cpu2 peer_rss2 sim_peer2
cat <<EOF
  (CPU s = user + system of that process alone; sim CPU s = the simulator's during the step)

  pobox flush --wait phases (medians, from its event lines): night 1: cut $(M p_cut1) s,
    send and poll to the last batch_completed (or single_calls) $(M p_deliver1) s, close $(M p_close1) s;
    night 2: cut $(M p_cut2) s, send and poll $(M p_deliver2) s, close $(M p_close2) s
  sent: night 1 pobox ${P_LANES[1]} batches $(calc "$(M p_bytes1) / 1e6" 1) MB, peer $(M peer_batches1) batches $(calc "$(M peer_bytes1) / 1e6" 1) MB;
        night 2 pobox ${P_LANES[2]} batch(es) $(calc "$(M p_bytes2) / 1e6" 2) MB ($(M p_enqueued2) updates enqueued,
        $(M p_carried2) cells carried forward), peer $(M peer_batches2) batches $(calc "$(M peer_bytes2) / 1e6" 1) MB

target                                              measured             result
EOF
printf '  %-50s %-20s %s\n' \
	"night 1: pobox/peer wall <= 2.0 (aim 1.5)" "$r1 (runs $(per_run_ratio p_total1 peer1))" "$(verdict "$r1 <= 2.0")" \
	"night 2: pobox/peer wall <= 1.0" "$r2 (runs $(per_run_ratio p_total2 peer2))" "$(verdict "$r2 <= 1.0")" \
	"night 2: flush --wait alone <= 2 s" "$(M p_flush2) s" "$(verdict "$(M p_flush2) <= 2.0")"
printf '  %-50s %-20s %s\n' \
	"(night 1: pobox/peer CPU, for reference)" "$r1cpu" "" \
	"(night 2: pobox/peer CPU, for reference)" "$r2cpu" ""
echo
echo "checks"
printf '%s\n' "${CHECKS[@]}"
echo
echo "commands (setup and run 1; later runs repeat run 1's with a fresh simulator port"
echo "and, in even runs, the peer first)"
head -n "$cmd_lines_run1" "$CMDLOG" | sed 's/^/  /'
((FAILED == 0)) || exit 1
