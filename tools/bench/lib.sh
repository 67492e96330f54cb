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
