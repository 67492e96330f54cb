# Shared by the benchmark scripts (sourced, not run).  The script defines
# ROOT, BUILD_DIR and die() first.

# bench_build NAME TARGET...: configures BUILD_DIR as a Release build if it
# has no cache yet (and warns when it is not Release: figures are only
# comparable for Release), builds the tool TARGETs (dies on failure), then
# builds the pobox CLI, benchmarking an existing binary with a warning when
# the rebuild fails.  Sets build_type and POBOX.
bench_build() {
	local name=$1 build_log
	shift
	if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
		echo "configuring $BUILD_DIR (Release)" >&2
		cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null ||
			die "cmake configure failed for $BUILD_DIR"
	fi
	build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt")
	if [[ $build_type != Release ]]; then
		echo "$name: warning: $BUILD_DIR is a '$build_type' build," \
		     "figures are only comparable for Release" >&2
	fi
	build_log=$(mktemp)
	if ! cmake --build "$BUILD_DIR" --target "$@" >"$build_log" 2>&1; then
		tail -n 20 "$build_log" >&2
		rm -f "$build_log"
		die "could not build $*"
	fi
	POBOX=$BUILD_DIR/src/pobox
	# The CLI's target is pobox_cli (OUTPUT_NAME pobox; the target `pobox`
	# is the shared library).
	if ! cmake --build "$BUILD_DIR" --target pobox_cli >"$build_log" 2>&1; then
		if [[ -x $POBOX ]]; then
			echo "$name: warning: rebuilding pobox failed;" \
			     "benchmarking the existing $POBOX" >&2
		fi
	fi
	if [[ ! -x $POBOX ]]; then
		tail -n 20 "$build_log" >&2
		rm -f "$build_log"
		die "the pobox CLI is not built yet (no $POBOX); build it with" \
		    "'cmake --build $BUILD_DIR --target pobox_cli' and run again"
	fi
	rm -f "$build_log"
}

# ---- shared by nightly_bench.sh, import_bench.sh and flat_bench.sh ----------
# (after bench_build; they set WORK_DIR and use BENCH_BIN, CMDLOG)

median() { # median "X Y Z ...": the median of the numbers
	printf '%s\n' $1 | sort -g |
		awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
maxof() { printf '%s\n' $1 | sort -g | tail -n 1; }
minof() { printf '%s\n' $1 | sort -g | head -n 1; }
calc() { awk "BEGIN { printf \"%.${2:-3}f\", $1 }"; } # calc EXPR [DECIMALS]
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }
verdict() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo MISS; fi; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; } # KB -> "N.N MB"
field() { # field NAME FILE: value of NAME=... in FILE (its last occurrence)
	sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" "$2" | tail -n 1
}

# log_cmd CMD...: appends the command line, shell-quoted, to CMDLOG.
log_cmd() {
	local q
	q=$(printf '%q ' "$@")
	printf '%s\n' "${q% }" >>"$CMDLOG"
}

log_sh() { printf '%s\n' "$1" >>"$CMDLOG"; } # log_sh 'SHELL TEXT': logged as is

# timed OUT CMD...: runs CMD under pobox-peakrss (stdout and stderr in
# OUT.log, the figures in OUT.rss), logging the command; returns CMD's
# status.  Read the figures with wall_of/cpu_of/rss_of OUT.
timed() {
	local out=$1
	shift
	log_cmd "$BENCH_BIN/pobox-peakrss" -o "$out.rss" -- "$@"
	"$BENCH_BIN/pobox-peakrss" -o "$out.rss" -- "$@" >"$out.log" 2>&1
}
wall_of() { field wall_s "$1.rss"; }
cpu_of() { calc "$(field user_s "$1.rss") + $(field sys_s "$1.rss")" 3; }
rss_of() { field peak_rss_kb "$1.rss"; }

# real_python: the interpreter python3 resolves to (this machine's python3
# is a pyenv shim that costs 0.3 s a start; a cron job runs the real one).
real_python() {
	python3 -c 'import sys; print(sys.executable)'
}

# sort_csv IN OUT: header first, then the rows sorted by id (bytes), as the
# simulator lists its store (for pobox-bench-check-store).
sort_csv() {
	log_sh "{ head -n 1 $1; tail -n +2 $1 | LC_ALL=C sort -t, -k1,1 -S 256M -T $WORK_DIR; } > $2"
	{ head -n 1 "$1"; tail -n +2 "$1" | LC_ALL=C sort -t, -k1,1 -S 256M -T "$WORK_DIR"; } >"$2"
}

# crm_csv OUT SORTED ROWS ATTRS SEED [CHANGED]: the export pobox-gen-crm
# writes for these options at OUT (its stderr at OUT.err), and when SORTED
# is not empty the same sorted by id there.  With CSV_CACHE set (a
# directory), each is made once there, under a name that spells the
# options, and linked (or copied) into place: the generator always writes
# the same bytes for the same options, so a cached file is the file.
crm_csv() {
	local out=$1 sorted=$2 args=(--rows "$3" --attrs "$4" --seed "$5") key
	key=crm-r$3-k$4-s$5
	[[ -n ${6:-} ]] && { args+=(--changed "$6"); key+=-c$6; }
	if [[ -z ${CSV_CACHE:-} ]]; then
		log_cmd "$BENCH_BIN/pobox-gen-crm" "${args[@]}" -o "$out"
		"$BENCH_BIN/pobox-gen-crm" "${args[@]}" -o "$out" 2>"$out.err"
		[[ -z $sorted ]] || sort_csv "$out" "$sorted"
		return 0
	fi
	mkdir -p "$CSV_CACHE"
	local c=$CSV_CACHE/$key.csv
	if [[ ! -s $c || ! -e $c.err ]]; then
		"$BENCH_BIN/pobox-gen-crm" "${args[@]}" -o "$c.tmp" 2>"$c.err.tmp"
		mv "$c.err.tmp" "$c.err"
		mv "$c.tmp" "$c"
	fi
	log_sh "# $out: a link to $c, made by:"
	log_cmd "$BENCH_BIN/pobox-gen-crm" "${args[@]}" -o "$c"
	ln -f "$c" "$out" 2>/dev/null || cp "$c" "$out"
	cp "$c.err" "$out.err"
	[[ -n $sorted ]] || return 0
	if [[ ! -s $CSV_CACHE/$key.sorted ]]; then
		sort_csv "$c" "$CSV_CACHE/$key.sorted.tmp"
		mv "$CSV_CACHE/$key.sorted.tmp" "$CSV_CACHE/$key.sorted"
	else
		log_sh "# $sorted: a link to $CSV_CACHE/$key.sorted, made by:"
		log_sh "{ head -n 1 $c; tail -n +2 $c | LC_ALL=C sort -t, -k1,1; } > $CSV_CACHE/$key.sorted"
	fi
	ln -f "$CSV_CACHE/$key.sorted" "$sorted" 2>/dev/null || cp "$CSV_CACHE/$key.sorted" "$sorted"
}

# sim_start LOGPREFIX ARGS...: starts a fresh simulator on a free port with
# ARGS; sets sim_pid and sim_base.  sim_stop stops it (by its pid).
sim_pid=""
sim_base=""
sim_start() {
	local pre=$1 port="" i
	shift
	log_cmd "$BUILD_DIR/tools/sim/pobox-target-sim" --port 0 "$@"
	: >"$pre.out" # before the child opens it: the loop below reads it at once
	"$BUILD_DIR/tools/sim/pobox-target-sim" --port 0 "$@" >"$pre.out" 2>"$pre.err" &
	sim_pid=$!
	for ((i = 0; i < 200; i++)); do
		port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$pre.out")
		[[ -n $port ]] && break
		kill -0 "$sim_pid" 2>/dev/null || { cat "$pre.err" >&2; die "the simulator exited"; }
		sleep 0.05
	done
	[[ -n $port ]] || die "the simulator did not say where it listens"
	sim_base=http://127.0.0.1:$port
}
sim_stop() {
	if [[ -n $sim_pid ]]; then
		kill -TERM "$sim_pid" 2>/dev/null || true
		wait "$sim_pid" 2>/dev/null || true
		sim_pid=""
	fi
}
sim_cpu() { # CPU seconds (user + system) the simulator has used so far
	awk -v tick="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / tick }' \
		"/proc/$sim_pid/stat"
}
sim_hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$sim_pid/status"; }

# check_store SORTED_CSV OUT: the simulator's whole store against the CSV,
# cell by cell (pobox-bench-check-store), streamed; prints its summary
# line and returns 0 when they are the same.
check_store() {
	log_sh "curl -sf $sim_base/_sim/profiles | $BENCH_BIN/pobox-bench-check-store $1"
	local rc=0
	curl -sf "$sim_base/_sim/profiles" |
		"$BENCH_BIN/pobox-bench-check-store" "$1" >"$2" 2>"$2.err" || rc=$?
	cat "$2"
	[[ $rc == 0 ]] || head -n 12 "$2.err" >&2
	return $rc
}

# sim_counters_ok: nothing failed, was lost to the override or refused.
sim_counters_ok() {
	curl -sf "$sim_base/_sim/counters" | jq -e '
		.rows_failed == 0 and .rows_not_found == 0 and .rows_lost_to_override == 0
		and .rows_lost_stuck == 0 and .calls.batch_update_v2.refused == 0' >/dev/null
}

# work_dir_setup NAME: WORK_DIR (made when unset; removed on exit unless
# KEEP=1) on a real disk; warns on tmpfs.  Sets fstype.
work_dir_setup() {
	if [[ -z ${WORK_DIR:-} ]]; then
		WORK_DIR=$(mktemp -d "${TMPDIR:-/var/tmp}/pobox-$1.XXXXXX")
		TMP_WORK=$WORK_DIR
	else
		mkdir -p "$WORK_DIR"
	fi
	fstype=$(stat -f -c %T "$WORK_DIR" 2>/dev/null || echo unknown)
	if [[ $fstype == tmpfs || $fstype == ramfs ]]; then
		echo "$1: warning: $WORK_DIR is on $fstype, fsync costs nothing there;" \
		     "set --work-dir to a real disk" >&2
	fi
	CMDLOG=$WORK_DIR/commands.txt
	: >"$CMDLOG"
}
bench_cleanup() { # the EXIT trap: the simulator, and the work dir unless KEEP=1
	sim_stop
	if [[ ${KEEP:-0} != 1 && -n ${TMP_WORK:-} ]]; then
		rm -rf "$TMP_WORK"
	fi
}
host_line() {
	echo "$(uname -srm), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), SQLite $(sqlite3 --version 2>/dev/null | cut -d' ' -f1)"
}
