#!/usr/bin/env bash
# After Target refused the token (401, then 403 for a wrong one), the
# operator fixes token_file and runs `pobox flush --wait` again: delivery
# must start at once (nothing is charged for auth failures, and the pause
# ends when the token changes), not sit out a back-off left over from the
# refused calls.  The store equals the newest enqueued values.
. "$(dirname "$0")/bulk_lib.sh"
tok=s3cret-T0ken
new_scenario retry
sim_start --seed 1 --token "$tok"
write_conf "max_batch_rows = 50"
for i in $(seq 1 30); do put_logged thirdPartyId "r-$i" a="v$i" b="w$i"; done
flush_wait "no token" 69 30
printf 'wrong\n' >"$T/retry/token.bad"; chmod 600 "$T/retry/token.bad"
write_conf "max_batch_rows = 50" "token_file = $T/retry/token.bad"
flush_wait "wrong token" 69 30
printf '%s\n' "$tok" >"$T/retry/token"; chmod 600 "$T/retry/token"
write_conf "max_batch_rows = 50" "token_file = $T/retry/token"
start=$(date +%s.%N)
flush_wait "right token" 0 60
took=$(python3 -c "import sys,time; print(int(time.time() - float(sys.argv[1])))" "$start")
check_le "right token: delivered within 5 s of fixing the token (seconds)" 5 "$took"
check_store retry
check_all_delivered retry
finish
