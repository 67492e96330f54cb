#!/usr/bin/env bash
# Auth required (Target's "Require Authentication"): the simulator demands
# Authorization: Bearer s3cret-T0ken.
#  - no token configured: `flush --wait` exits 69 promptly, loudly; nothing is
#    delivered, nothing is dead, the updates are still waiting;
#  - a token file readable by others: refused with exit 78, nothing sent;
#  - a wrong token (403): exit 69, nothing dead;
#  - the right token in a mode-600 file: exit 0, the store equals the newest
#    enqueued values; the token never appears in pobox's output.
. "$(dirname "$0")/bulk_lib.sh"
seed=${BULK_SEED:-7601}
echo "# seed $seed"
tok=s3cret-T0ken

new_scenario auth
std_data "$seed" --tp 100 --pc 20 --updates 600 --files 3
sim_start --seed "$seed" --preload "$PRELOAD" --token "$tok"
write_conf "max_batch_rows = 50"
enqueue_imports "$T/auth/gen"
total=$(q "SELECT count(*) FROM v_updates")

start=$(date +%s)
flush_wait "no token" 69 60
took=$(( $(date +%s) - start ))
check_le "no token: exits promptly (seconds)" 15 "$took"
if grep -qiE 'auth|401|token|unauthori' "$T/flush.err" "$T/flush.out"; then pass "no token: the message names the auth problem"
else fail "no token: the message names the auth problem" "$(cat "$T/flush.err")"; fi
check_ge "no token: the simulator refused with 401" 1 "$(sim_fault_total unauthorized)"
CHECK_LOG=/dev/null check_store "no token: nothing delivered" --preload "$PRELOAD"
check_eq "no token: nothing dead" 0 "$(state_count dead)"
check_eq "no token: nothing delivered in the outbox" 0 "$(state_count delivered)"
check_eq "no token: every update still waiting (pending, batched or superseded)" "$total" \
	"$(q "SELECT count(*) FROM v_updates WHERE state IN ('pending','batched','superseded')")"
check_eq "no token: no update charged an attempt" 0 "$(q "SELECT count(*) FROM v_updates WHERE attempts > 0")"
echo "# after 401: $(q "SELECT group_concat(state || '=' || n, ' ') FROM (SELECT state, count(*) n FROM v_updates GROUP BY state)")"
# (the contract says "updates stay pending"; pobox may already have cut them
# into ready batches, which show as 'batched': still waiting, so accepted)

# a token file others can read is refused before anything is sent
printf '%s\n' "$tok" >"$T/auth/token"
chmod 644 "$T/auth/token"
write_conf "max_batch_rows = 50" "token_file = $T/auth/token"
calls=$(sim_counter calls.batch_update_v2.total)
flush_wait "token file mode 644" 78 30
check_eq "mode 644: nothing sent" "$calls" "$(sim_counter calls.batch_update_v2.total)"

# a wrong token: 403, exit 69, nothing dead
printf 'wrong-token\n' >"$T/auth/token.bad"
chmod 600 "$T/auth/token.bad"
write_conf "max_batch_rows = 50" "token_file = $T/auth/token.bad"
flush_wait "wrong token" 69 60
check_ge "wrong token: the simulator refused with 403" 1 "$(sim_fault_total forbidden)"
check_eq "wrong token: nothing dead" 0 "$(state_count dead)"
CHECK_LOG=/dev/null check_store "wrong token: nothing delivered" --preload "$PRELOAD"

# the right token, mode 600: everything is delivered
chmod 600 "$T/auth/token"
write_conf "max_batch_rows = 50" "token_file = $T/auth/token"
start=$(date +%s)
flush_wait "token" 0 60
echo "# delivery with the right token took $(( $(date +%s) - start )) s (see cli_bulk_auth_retry)"
std_checks token
pb status >"$T/status.out" 2>&1
pb status --json >>"$T/status.out" 2>&1
if grep -qF "$tok" "$T/flush.out" "$T/flush.err" "$T/status.out"; then fail "the token never appears in pobox's output"
else pass "the token never appears in pobox's output"; fi
leaked=
for f in "$DB" "$DB-wal" "$DB-shm"; do [ -e "$f" ] && grep -aqF "$tok" "$f" && leaked="$leaked $f"; done
check_eq "the token is not stored in the outbox or its WAL" "" "$leaked"
finish
