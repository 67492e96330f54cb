#!/bin/bash
# The coordinator's ledger (schema/fleet/0001_ledger.sql), called directly
# with psql the way hosts call it: a retried grant is answered from the
# ledger and nothing is charged twice; reports only move charges earlier
# and give back what was not used; no grant takes the account past budget
# - margin; reserves stay within their share and an unused one gets a new
# life without capacity; bulk permits stay within the bulk limit; small
# wants are met in full and big ones share the rest; a ledger that went
# back in time changes its epoch and grants nothing to a host until it has
# re-reported, holding back what unheard hosts held.
. "$(dirname "$0")/fleet_lib.sh" "$@"

pg_start
FLEET_OWNER_EXTRA=("single_budget = 1000" "fleet_window = 60s" "fleet_margin = 0.1" "fleet_lease = 10s"
                   "fleet_reserve_life = 60s" "fleet_reserve_share = 0.1" "fleet_size = 4"
                   "urgent_reserve = 0" "bulk_calls_per_minute = 5" "fleet_permit_life = 10s")
fleet_init || { fail "fleet init" "$(cat "$T/init.err")"; finish; }
EPOCH=$(pgq "SELECT epoch FROM pobox_fleet.accounts")
POOL=900   # budget 1000 - margin 100

# grant HOST SEQ WANT [RESERVE] [PERMITS] [CLOSE] [USE_LEASE USE_K USE_N] [EPOCH] [SERIAL] [EXTEND] [HIST]
# -> "status|lease|lease_n|lease_k|reserve|reserve_n|permit|permit_n|free|epoch|now_ms"
grant() {
	local h=$1 seq=$2 want=$3 res=${4:-false} per=${5:-0} close=${6:-'{}'} ul=${7:-'{}'} uk=${8:-'{}'} un=${9:-'{}'}
	local ep=${10:-$EPOCH} ser=${11:-0} ext=${12:-NULL} hist=${13:-NULL}
	local h_lane=NULL h_k=NULL h_n=NULL
	[ "$hist" != NULL ] && { h_lane="'{}'"; h_k="'{}'"; h_n="'{}'"; }
	pgq "SELECT status, coalesce(lease, 0), lease_n, coalesce(lease_k, 0), coalesce(reserve, 0), reserve_n,
	            coalesce(permit, 0), permit_n, free, epoch, now_ms
	     FROM pobox_fleet.grant('chain', '$h', 'inc-$h', $seq, '$ep', $ser, $want, false, $res, $ext, $per,
	                            1000, 1000, '$close', '$ul', '$uk', '$un', $h_lane, $h_k, $h_n)"
}
field() { echo "$1" | cut -d'|' -f"$2"; }
spent() { pgq "SELECT coalesce(sum(n), 0) FROM pobox_fleet.charges WHERE lane = '${1:-single}'
               AND k > (SELECT pobox_fleet.now_ms()) - 60000"; }

# --- first contact: an empty history makes the host heard, then grants
R=$(grant a 1 100 false 0 '{}' '{}' '{}' '{}' "$EPOCH" 0 NULL yes)
check_eq "first grant (with history): ok, 100 granted" "ok 100" "$(field "$R" 1) $(field "$R" 3)"
L1=$(field "$R" 2)
check_eq "the charge is the lease" 100 "$(spent)"
R2=$(grant a 1 300)
check_eq "a retried grant (same seq): replay, the same lease" "replay $L1 100" \
	"$(field "$R2" 1) $(field "$R2" 2) $(field "$R2" 3)"
check_eq "... nothing charged twice" 100 "$(spent)"
R3=$(grant a 0 5)
check_eq "an older seq: stale, nothing granted" "stale 0" "$(field "$R3" 1) $(field "$R3" 3)"
check_eq "... the ledger says which seq comes next" 2 \
	"$(pgq "SELECT next_seq FROM pobox_fleet.grant('chain', 'a', 'inc-a', 0, '$EPOCH', 0, 0, false, false, NULL, 0, 0, 0, '{}', '{}', '{}', '{}', NULL, NULL, NULL)")"

# --- reports: used calls where they were seen (clamped into [grant, k]),
# the rest given back; twice is once
NOW=$(field "$R" 11) K1=$(field "$R" 4)
R=$(grant a 3 0 false 0 "{$L1}" "{$L1,$L1,$L1}" "{$((NOW + 200)),$((K1 + 99999)),$((NOW - 99999))}" '{10,5,3}')
check_eq "report: 18 used stay charged, 82 given back" 18 "$(spent)"
check_eq "... a use after the lease's charge is clamped to it" 5 \
	"$(pgq "SELECT n FROM pobox_fleet.charges WHERE k = $K1")"
check_eq "... a use before the grant is clamped to the grant" 3 \
	"$(pgq "SELECT sum(n) FROM pobox_fleet.charges WHERE k >= $NOW - 60 AND k < $NOW + 100")"
check_eq "... acknowledged" "{$L1}" "$(pgq "SELECT closed FROM pobox_fleet.grant('chain', 'a', 'inc-a', 4, '$EPOCH', 0, 0, false, false, NULL, 0, 0, 0, '{$L1}', '{$L1}', '{$NOW}', '{50}', NULL, NULL, NULL)")"
check_eq "a second report of the same lease changes nothing" 18 "$(spent)"

# --- the budget: grants stop at budget - margin (a and b ask for all)
grant b 1 0 false 0 '{}' '{}' '{}' '{}' "$EPOCH" 0 NULL yes >/dev/null
seq=5
for i in $(seq 1 12); do
	grant a $seq 200 >/dev/null; seq=$((seq + 1))
	grant b "$((i + 1))" 200 >/dev/null
done
check_eq "many grants later: exactly budget - margin charged" $POOL "$(spent)"
R=$(grant a $seq 10); seq=$((seq + 1))
check_eq "the budget spent: nothing more" "ok 0" "$(field "$R" 1) $(field "$R" 3)"

# --- reserves: an equal part of 10% of the pool per host (fleet_size 4),
# and an unused one gets a new life even with the budget spent
pgq "DELETE FROM pobox_fleet.charges; DELETE FROM pobox_fleet.leases" >/dev/null
R=$(grant a $seq 0 true); seq=$((seq + 1))
RES=$(field "$R" 5)
check_eq "a reserve: 90 / 4 hosts = 22" 22 "$(field "$R" 6)"
for i in $(seq 1 8); do grant b "$((20 + i))" 500 >/dev/null; done
check_eq "leases then take the rest" $POOL "$(spent)"
K_OLD=$(pgq "SELECT k FROM pobox_fleet.leases WHERE id = $RES")
sleep 1.1
R=$(grant a $seq 0 false 0 '{}' '{}' '{}' '{}' "$EPOCH" 0 "$RES"); seq=$((seq + 1))
check_eq "an unused reserve renewed with the budget spent: same id and size" "$RES 22" \
	"$(field "$R" 5) $(field "$R" 6)"
check_eq "... its charge moved later" 1 "$(pgq "SELECT (k > $K_OLD)::int FROM pobox_fleet.leases WHERE id = $RES")"
check_eq "... and nothing else changed" $POOL "$(spent)"

# --- bulk permits: 5 per window at most
pgq "DELETE FROM pobox_fleet.charges; DELETE FROM pobox_fleet.leases" >/dev/null
got=0
for i in $(seq 1 8); do
	R=$(grant a $seq 0 false 1); seq=$((seq + 1))
	got=$((got + $(field "$R" 8)))
done
check_eq "8 permit requests, 5 permits (bulk limit 5 per minute)" 5 "$got"
check_eq "... charged on the bulk lane" 5 "$(spent bulk)"

# --- fair shares, over what hosts asked for and did not get: b got
# nothing; c wants little and gets it; a and b split the rest
reset_ledger() { pgq "DELETE FROM pobox_fleet.charges; DELETE FROM pobox_fleet.leases; UPDATE pobox_fleet.hosts SET want = 0, outstanding = 0" >/dev/null; }
reset_ledger
grant c 1 0 false 0 '{}' '{}' '{}' '{}' "$EPOCH" 0 NULL yes >/dev/null
grant d 1 0 false 0 '{}' '{}' '{}' '{}' "$EPOCH" 0 NULL yes >/dev/null
grant d 2 900 >/dev/null
R=$(grant b 40 800)
check_eq "the budget spent: b gets nothing" 0 "$(field "$R" 3)"
pgq "DELETE FROM pobox_fleet.charges; DELETE FROM pobox_fleet.leases; UPDATE pobox_fleet.hosts SET want = 0, outstanding = 0 WHERE host = 'd'" >/dev/null
R=$(grant c 2 10)
check_eq "a small want is met in full" 10 "$(field "$R" 3)"
R=$(grant a $seq 800); seq=$((seq + 1))
check_eq "a big want gets its fair part, sharing with b: (900 - 10) / 2" 445 "$(field "$R" 3)"

# --- data loss: a host that saw a newer serial proves the ledger went back
reset_ledger
grant a $seq 100 >/dev/null; seq=$((seq + 1))
grant c 3 50 >/dev/null
SER=$(pgq "SELECT serial FROM pobox_fleet.accounts")
R=$(grant a $seq 50 false 0 '{}' '{}' '{}' '{}' "$EPOCH" $((SER + 100))); seq=$((seq + 1))
E2=$(field "$R" 10)
check_eq "a serial from the future: a new epoch, nothing granted" "epoch 0 1" \
	"$(field "$R" 1) $(field "$R" 3) $([ "$E2" != "$EPOCH" ] && echo 1 || echo 0)"
R=$(grant b 50 50 false 0 '{}' '{}' '{}' '{}' "$EPOCH")
check_eq "another host still in the old epoch: nothing granted" "epoch 0" "$(field "$R" 1) $(field "$R" 3)"
R=$(grant b 51 50 false 0 '{}' '{}' '{}' '{}' "$E2")
check_eq "... not before it has re-reported its history" "epoch 0" "$(field "$R" 1) $(field "$R" 3)"
check_eq "the ledger is learning" t "$(pgq "SELECT learning FROM pobox_fleet.account_status('chain')")"
pgq "UPDATE pobox_fleet.hosts SET want = 0" >/dev/null # fair shares aside
R=$(pgq "SELECT status, lease_n FROM pobox_fleet.grant('chain', 'b', 'inc-b', 52, '$E2', 0, 2000, false, false, NULL, 0, 1000, 1000, '{}', '{}', '{}', '{}', '{single}', '{$(( $(date +%s%3N) - 1000 ))}', '{7}')")
check_eq "history re-reported: now it is heard and granted" ok "$(field "$R" 1)"
check_eq "... its re-reported calls are charged" 1 "$(pgq "SELECT count(*) FROM pobox_fleet.host_use WHERE host = 'b' AND n = 7")"
check_eq "... and what the unheard hosts a (100) and c (50) held is kept back: 900 - 150 - 7 - 150" \
	593 "$(field "$R" 2)"

# --- a new outbox under an old name starts a new life
R=$(pgq "SELECT status, next_seq FROM pobox_fleet.grant('chain', 'a', 'other-outbox', 1, '$E2', 0, 0, false, false, NULL, 0, 0, 0, '{}', '{}', '{}', '{}', '{}', '{}', '{}')")
check_eq "another incarnation of host a: its sequence restarts at 1" "ok 2" "$(field "$R" 1) $(field "$R" 2)"
finish
