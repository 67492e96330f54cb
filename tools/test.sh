#!/usr/bin/env bash
# The README's test command: installs what is missing, then builds and runs
# the whole suite twice - once with warnings as errors, once under
# AddressSanitizer + UndefinedBehaviorSanitizer.  Exits non-zero on any
# failure.  Build trees: build-test/ and build-asan/ (override with
# POBOX_TEST_BUILD / POBOX_ASAN_BUILD).  POBOX_TEST_ASAN=0 skips the second
# pass (for quick local runs only; CI runs both).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
plain=${POBOX_TEST_BUILD:-build-test}
asan=${POBOX_ASAN_BUILD:-build-asan}

run_suite() {
	local dir=$1; shift
	echo "== configure $dir ($*)"
	cmake -S . -B "$dir" -DPOBOX_WERROR=ON -DPOBOX_BUILD_TESTS=ON "$@" >/dev/null
	echo "== build $dir"
	cmake --build "$dir" -j"$jobs" 2>&1 | grep -E 'error|warning|Error' || true
	cmake --build "$dir" -j"$jobs" >/dev/null   # fail here if the build failed
	echo "== test $dir"
	(cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 900)
}

run_suite "$plain" -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ "${POBOX_TEST_ASAN:-1}" != 0 ]; then
	# detect_leaks: every test must free what it allocates.
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
		run_suite "$asan" -DCMAKE_BUILD_TYPE=Debug -DPOBOX_SANITIZE=ON
fi
echo "== all test passes succeeded"
