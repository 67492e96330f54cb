#!/bin/bash
# Connection refused (Target unreachable, e.g. a store server offline) must
# neither count an attempt (DESIGN rule 6 / pobox.conf: transport errors back
# off; "connection refused doesn't count attempts") nor charge the
# single-call ledger (a unit is "used" only if the call may have reached
# Target; a refused connection certainly did not).  `pobox run` against a
# port nobody listens on, with 10 urgent updates, for 3 s.
. "$(dirname "$0")/single_lib.sh" "$@"

port=$(free_port)
B=http://127.0.0.1:$port
write_conf "backoff_base = 200ms" "backoff_cap = 1s"
for i in $(seq 1 10); do put_ok refused pcId "pc$i" "a=R$i" --urgent; done
run_bg "$T/run.err"
sleep 3
stop_run refused
check_eq "the single lane says once that Target is unreachable" 1 "$(grep -c 'network_down lane=single' "$T/run.err")"
check_eq "3 s of connection refused dead-letters nothing" 0 "$(state_count dead)"
check_eq "connection refused counts no attempt" 0 "$(q "SELECT max(attempts) FROM v_updates")"
check_eq "connection refused charges no unit (ledger used)" 0 "$(ledger_used)"
check_eq "status: used_24h 0" 0 "$(quota_json used_24h)"
check_ledger_clean refused
check_eq "and does not log every retry (no retry_scheduled)" 0 "$(grep -c retry_scheduled "$T/run.err")"
check_eq "the urgent updates wait in their single-lane batch" "10 single ready" \
	"$(q "SELECT profiles || ' ' || lane || ' ' || state FROM v_batches")"
finish
