#!/usr/bin/env bash
# run.sh - build the libFuzzer harnesses with clang and run each in turn.
#
#   tools/fuzz/run.sh [SECONDS] [NAME...]
#
# SECONDS per harness (default 60); NAMEs from import response config urlenc
# (default all).  Installs clang and its libFuzzer runtime from Debian when
# missing (idempotent).  Builds in build-fuzz/ (POBOX_FUZZ_BUILD overrides)
# with -DPOBOX_FUZZ=ON: the whole library instrumented, ASan + UBSan, leaks
# checked.  The committed seeds in tools/fuzz/corpus/NAME are read, never
# written; what the run learns goes to $POBOX_FUZZ_OUT/corpus/NAME (default
# /tmp/pobox-fuzz), kept between runs.  A crash, leak, sanitizer report or
# broken property stops that harness; the script goes on with the others,
# prints the path of every crashing input and exits 1.  A reproducer is
# replayed with the harness binary:  build-fuzz/tools/fuzz/fuzz_NAME FILE
# and belongs, once fixed, in tools/fuzz/corpus/NAME/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${1:-60}
shift || true
NAMES=("$@")
[ ${#NAMES[@]} -gt 0 ] || NAMES=(import response config urlenc)
BUILD=${POBOX_FUZZ_BUILD:-$ROOT/build-fuzz}
OUT=${POBOX_FUZZ_OUT:-/tmp/pobox-fuzz}

# the project's own build dependencies, then clang and libclang_rt.fuzzer
# (Debian 12: clang 14 and libclang-rt-14-dev, by their default-version names)
bash "$ROOT/tools/install-deps.sh"
need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
if ! dpkg-query -W -f='${Status}' libclang-rt-dev 2>/dev/null | grep -q 'install ok installed' &&
   ! compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null; then
	need+=(libclang-rt-dev)
fi
if [ ${#need[@]} -gt 0 ]; then
	SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
	echo "fuzz: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

echo "== fuzz: build $BUILD"
CC=clang cmake -S "$ROOT" -B "$BUILD" -DPOBOX_FUZZ=ON -DPOBOX_BUILD_TESTS=OFF \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=()
for n in "${NAMES[@]}"; do targets+=(--target "fuzz_$n"); done
cmake --build "$BUILD" -j"$(nproc 2>/dev/null || echo 2)" "${targets[@]}" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# scratch for fuzz_import's outboxes: tmpfs when there is one, removed at
# the end even when a crash skipped the harness's own clean-up
scratch=$([ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo "$OUT")/pobox-fuzz-tmp.$$
mkdir -p "$scratch"
trap 'rm -rf "$scratch"' EXIT
export TMPDIR=$scratch
failed=0
for n in "${NAMES[@]}"; do
	corpus=$OUT/corpus/$n art=$OUT/artifacts/$n/$(date +%Y%m%d-%H%M%S)/ log=$OUT/$n.log
	mkdir -p "$corpus" "$art"
	dict=()
	[ -f "$ROOT/tools/fuzz/$n.dict" ] && dict=(-dict="$ROOT/tools/fuzz/$n.dict")
	echo "== fuzz: $n for ${SECS}s (log $log)"
	set +e
	(cd "$OUT" && "$BUILD/tools/fuzz/fuzz_$n" -max_total_time="$SECS" -timeout=10 \
		-rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 -artifact_prefix="$art" \
		"${dict[@]}" "$corpus" "$ROOT/tools/fuzz/corpus/$n") >"$log" 2>&1
	rc=$?
	set -e
	grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::number_of_executed_units|^stat::peak_rss" "$log" | sed 's/^/   /'
	if [ "$rc" -ne 0 ]; then
		failed=1
		echo "FAIL fuzz_$n (exit $rc):"
		grep -E 'ERROR|SUMMARY|property broken|runtime error' "$log" | head -5 | sed 's/^/   /'
		for f in "$art"*; do [ -f "$f" ] && echo "   crashing input kept: $f"; done
		echo "   replay: $BUILD/tools/fuzz/fuzz_$n FILE; full log: $log"
	fi
done
if [ "$failed" -ne 0 ]; then
	echo "== fuzz: FAILED (inputs above; nothing was added to tools/fuzz/corpus)"
	exit 1
fi
echo "== fuzz: ${#NAMES[@]} harnesses ran ${SECS}s each, no finding"
