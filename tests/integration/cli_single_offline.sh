#!/bin/bash
# The offline store: `pobox run` is the service, Target is unreachable (the
# simulator is not running: connection refused), and a producer keeps
# putting updates (repeated updates to the same 20 profiles, a quarter of
# them urgent) until max_outbox_size is reached:
#  - new updates that add a value (a new profile or attribute) are refused,
#    exit 75, with a message containing "full"; `pobox import` too;
#  - a put that only replaces a value still pending for the same profile and
#    attribute is still accepted;
#  - nothing accepted is dead-lettered or dropped while offline (rule 1;
#    transport errors back off, connection refused counts no attempt);
#  - the lane probes with jittered backoff capped by backoff_cap instead of
#    giving every update a retry time, and says so once.
# Then the simulator comes back on the same port:
#  - everything accepted is delivered with its newest value;
#  - no storm: single calls after recovery <= profiles waiting (+2), and the
#    calls per second are printed.
. "$(dirname "$0")/single_lib.sh" "$@"

preload_pc "$T/pre.csv" 40 pc a
port=$(free_port)
B=http://127.0.0.1:$port
write_conf "backoff_base = 500ms" "backoff_cap = 2s" "recovery_ramp = 3s" \
	"max_outbox_size = ${OFFLINE_MAX:-360K}" "min_free_disk = 0" "seed = 0"
put_ok first pcId pc1 a=first
run_bg "$T/run.err"

# produce until 3 refusals of new values (or 3000 puts)
pad=$(head -c 120 /dev/zero | tr '\0' x)
refused=0 accepted=0 i=0
: >"$T/refused.txt"
while [ $refused -lt 3 ] && [ $i -lt 3000 ]; do
	i=$((i + 1))
	id=pc$(( i % 20 + 1 )); at=a$(( i % 3 ))
	# every 10th put names a new attribute: once full, that is always
	# refused (a put replacing a still-pending value is accepted, by design)
	[ $(( i % 10 )) = 0 ] && at=n$i
	u=; [ $((i % 4)) = 0 ] && u=--urgent
	if put_u pcId "$id" "$at=v$i-$pad" $u; then
		accepted=$((accepted + 1))
	else
		refused=$((refused + 1))
		echo "put $id $at: exit $PUT_RC: $(cat "$T/put.err")" >>"$T/refused.txt"
	fi
done
echo "# $accepted puts accepted, then refused (i=$i); outbox $(pb status | sed -n 1p)"
check_ge "producer filled the outbox" 1 "$refused"
check_eq "refusals exit 75" "$refused" "$(grep -c 'exit 75' "$T/refused.txt")"
check_eq "refusal message says full" "$refused" "$(grep -c 'full' "$T/refused.txt")"
sed -n 1p "$T/refused.txt" | cut -c1-250 | sed 's/^/# /'

# a new profile and a new attribute: refused
put_u pcId pc30 a=new-profile; check_eq "full: a new profile is refused (75)" 75 "$PUT_RC"
put_u pcId pc1 zz=new-attr; check_eq "full: a new attribute is refused (75)" 75 "$PUT_RC"
printf 'pcId,a\npc31,imp\n' >"$T/imp.csv"
pb import "$T/imp.csv" >"$T/imp.out" 2>&1; rc=$?
check_eq "full: import is refused (75)" 75 "$rc"
check_eq "full: import's message says full" 1 "$(grep -c full "$T/imp.out" | sed 's/^[1-9][0-9]*$/1/')"
# superseding puts: replace values still pending (the last accepted
# profile+attribute pairs from the log)
sup_ok=0
while IFS=$'\t' read -r _ id at _; do
	put_u pcId "$id" "$at=super-$id-$at" --urgent && sup_ok=$((sup_ok + 1))
done < <(awk -F'\t' '!seen[$2 FS $3]++' <(tac "$LOG") | head -5)
check_eq "full: 5 superseding puts accepted" 5 "$sup_ok"

sleep 2
check_eq "offline: nothing dead-lettered" 0 "$(state_count dead)"
check_eq "offline: connection refused counted no attempt" 0 "$(q "SELECT coalesce(max(attempts), 0) FROM v_updates")"
# offline, the lane probes instead of retrying every update (outage.h)
check_eq "offline: no update got a retry time (the lane probes)" 0 \
	"$(q "SELECT count(*) FROM profiles WHERE next_attempt_at_ms > 0")"
check_eq "offline: the single lane said once that Target is unreachable" 1 \
	"$(grep -c 'network_down lane=single' "$T/run.err")"
probes=$(pb status --prometheus | sed -n 's/^pobox_calls_total{lane="single",status="0"} //p')
up=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%d", b - a }')
echo "# offline: ${probes:-0} probes in about ${up}s (backoff_base 500ms, backoff_cap 2s)"
check_le "offline: probes back off (at most one per backoff_base)" $(( up * 2 + 2 )) "${probes:-0}"
waiting=$(q "SELECT count(DISTINCT id_type || ':' || profile_id) FROM v_updates WHERE state IN ('pending','batched')")

# Target comes back
sim_start_on "$port" --preload "$T/pre.csv"
python3 - "$B" 8 >"$T/rate.txt" <<'PY' &
import json, sys, time, urllib.request
b, secs = sys.argv[1], float(sys.argv[2]); t0 = time.time(); last = None; out = []
while time.time() - t0 < secs:
    n = json.load(urllib.request.urlopen(b + "/_sim/counters"))["calls"]["single_update"]["total"]
    out.append((round(time.time() - t0, 2), n)); time.sleep(0.1)
# calls per whole second
per = {}
prev = 0
for t, n in out:
    per[int(t)] = per.get(int(t), 0) + (n - prev); prev = n
print(" ".join(f"{k}s:{v}" for k, v in sorted(per.items())))
print(max(per.values()) if per else 0)
PY
ratepid=$!
wait_for "back online: everything delivered" 60 nothing_left
wait $ratepid
echo "# single calls per second after recovery: $(sed -n 1p "$T/rate.txt")"
stop_run final
check_le "no storm: single calls after recovery <= profiles waiting + 2" $((waiting + 2)) "$(single_calls total)"
check_store final --preload "$T/pre.csv"
check_all_delivered final
check_ledger_clean final
check_ge "ledger charges every successful call" "$(single_calls ok)" "$(ledger_used)"
check_eq "network_back logged" 1 "$(grep -c network_back "$T/run.err" | sed 's/^[1-9][0-9]*$/1/')"
finish
