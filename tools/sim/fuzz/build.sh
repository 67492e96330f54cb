#!/bin/bash
# build.sh -- build and run the libFuzzer harness for the simulator's parsers.
#
# Needs clang with libFuzzer (Debian: apt-get install clang).  The project
# build does not depend on clang; this script compiles the parser sources
# directly.  Usage:
#   tools/sim/fuzz/build.sh [SECONDS]      build, then fuzz for SECONDS (default 60)
# The corpus grows in $OUT/corpus (default /tmp/pobox-sim-fuzz); the checked-in
# seeds in tools/sim/fuzz/corpus are read, never written.  Crashes are left
# as crash-* files in $OUT.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
SIM=$HERE/..
OUT=${OUT:-/tmp/pobox-sim-fuzz}
SECS=${1:-60}
mkdir -p "$OUT/corpus"
clang -std=c11 -g -O1 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$SIM" "$HERE/fuzz_parsers.c" "$SIM/sim_buf.c" "$SIM/sim_url.c" \
  "$SIM/sim_batch_parse.c" "$SIM/sim_config.c" "$SIM/sim_clock.c" -lm \
  -o "$OUT/fuzz_parsers"
cd "$OUT"
./fuzz_parsers -max_total_time="$SECS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 corpus "$HERE/corpus"
