#!/usr/bin/env bash
# Issue 10 item 7: a full outbox must not stay full once everything is
# delivered.  A kiosk fills its outbox (max_outbox_size) while offline, the
# network comes back and `flush --wait` delivers everything; the next update
# must be accepted at once, not after `retention` (7 days), because
# delivered history is pruned first when the limit is reached.  What
# changed-only and carry-forward need (the last value sent per attribute)
# survives the pruning.  While full of pending updates, the refusal says
# what fills the outbox.
. "$(dirname "$0")/bulk_lib.sh"

new_scenario full
LIMIT=400k
# a kiosk's day: 300 customers, each updated again and again
awk 'BEGIN { print "thirdPartyId,a,b"; for (i = 1; i <= 40000; i++) printf "k%d,value-%d-abcdefghij,other-%d\n", i % 300, i, i }' >"$T/full/in.csv"

# offline: a base_url nobody listens on (the simulator starts later)
B=http://127.0.0.1:9
write_conf "max_outbox_size = $LIMIT" "min_free_disk = 0"
pb import "$T/full/in.csv" >"$T/i1.out" 2>"$T/i1.err"
check_eq "offline: the import stops when the outbox is full (exit 79)" 79 "$?"
grep -q "max_outbox_size" "$T/i1.err" && pass "offline: says max_outbox_size" ||
	fail "offline: says max_outbox_size" "$(cat "$T/i1.err")"
stored=$(q "SELECT count(*) FROM writes")
check_ge "offline: some rows went in" 1000 "$stored"
pb put thirdPartyId:late a=1 >"$T/p1.out" 2>"$T/p1.err"
check_eq "offline and full: a new update is refused (exit 75)" 75 "$?"
grep -q "$((stored * 2)) pending" "$T/p1.err" &&
	pass "the refusal counts what is pending" ||
	fail "the refusal counts what is pending ($((stored * 2)))" "$(cat "$T/p1.err")"
grep -q "0 delivered or superseded" "$T/p1.err" && pass "and that there is no history to prune" ||
	fail "and that there is no history to prune" "$(cat "$T/p1.err")"

# back online: deliver everything
sim_start --seed 1
write_conf "max_outbox_size = $LIMIT" "min_free_disk = 0"
head -n $((stored + 1)) "$T/full/in.csv" | tail -n +2 >"$T/full/stored.csv"
# the last values of each customer that went in: what changed-only must skip
{ echo "thirdPartyId,a,b"; tac "$T/full/stored.csv" | awk -F, '!seen[$1]++'; } >"$T/full/last.csv"
profiles=$(($(wc -l <"$T/full/last.csv") - 1))
awk -F, '{ printf "{\"t\":\"thirdPartyId\",\"id\":\"%s\",\"a\":\"a\",\"v\":\"%s\"}\n{\"t\":\"thirdPartyId\",\"id\":\"%s\",\"a\":\"b\",\"v\":\"%s\"}\n", $1, $2, $1, $3 }' "$T/full/stored.csv" >"$LOG"
flush_wait full 0 120
check_store "full: delivered"
check_eq "full: nothing pending" 0 "$(state_count pending)"

# the next update is accepted now, not in a week
pb put thirdPartyId:late a=1 >"$T/p2.out" 2>"$T/p2.err"
check_eq "delivered: a new update is accepted at once" 0 "$?"
used=$(q "SELECT (page_count - freelist_count) * page_size FROM pragma_page_count, pragma_freelist_count, pragma_page_size")
check_le "delivered: history was pruned below the limit" $((400 * 1024)) "$used"
check_eq "pruned: the superseded and delivered writes are gone" 1 "$(q "SELECT count(*) FROM writes")"
check_eq "pruned: what was sent per attribute is kept (sent)" "$((profiles * 2))" \
	"$(q "SELECT count(*) FROM v_profile_state")"
pb import --changed-only "$T/full/last.csv" >"$T/c.out" 2>"$T/c.err"
grep -q "0 updates enqueued, 0 empty cells skipped, 0 rows rejected, $((profiles * 2)) unchanged" "$T/c.out" &&
	pass "pruned: changed-only still knows what was sent" ||
	fail "pruned: changed-only still knows what was sent" "$(cat "$T/c.out" "$T/c.err")"
grep -q "pruned_for_room" "$T/p2.err" && pass "the pruning is logged" ||
	fail "the pruning is logged" "$(cat "$T/p2.err")"

# pruning inside an import's transaction: the late update is delivered
# history when the next day's import fills the outbox part-way
flush_wait late 0 60
pb import "$T/full/in.csv" >"$T/i2.out" 2>"$T/i2.err"
check_eq "next day: the import fills the outbox and stops (exit 79)" 79 "$?"
check_eq "next day: the late update's delivered write was pruned on the way" 0 \
	"$(q "SELECT count(*) FROM writes w JOIN profiles p ON p.id = w.profile WHERE p.profile_id = 'late'")"
check_eq "next day: its value sent is kept" 1 "$(q "SELECT count(*) FROM v_profile_state WHERE profile_id = 'late'")"
pb doctor >"$T/d.out" 2>&1
check_eq "next day: doctor finds the counts right" 0 "$?"
finish
