#!/bin/bash
# URL length limits pick GET, POST or bulk.  pobox sends a single call as a
# GET when the whole URL (base_url + /m2/demo/profile/update? + query) is at
# most max_get_bytes (8192), else as a POST with the query as a form body
# while that same length is at most max_post_bytes (61440); a bigger
# profile goes bulk.  A logging proxy between pobox and the simulator
# records each request's method and sizes (the simulator counts calls but
# not methods).  Profiles sized to land exactly on and one past each limit:
#   g0: 8192 -> GET       g1: 8193 -> POST
#   p0: 61440 -> POST     p1: 61441 -> bulk
#   big: ~63 KB of commas (21,000 raw characters, 3 bytes each encoded) -> bulk
#   small: a short value -> GET
# Each ends up in the simulator's store.
. "$(dirname "$0")/single_lib.sh" "$@"

preload_pc "$T/pre.csv" 0 x a
printf 'small,old\ng0,old\ng1,old\np0,old\np1,old\nbig,old\n' >>"$T/pre.csv"
sim_start --preload "$T/pre.csv"
proxy_start
BULK_MAX_VALUE_CHARS=65536 write_conf
sed -i "s|^base_url = .*|base_url = $PROXY_URL|" "$CONF"
# query for ID with a=VALUE(letters): mboxPC=ID&profile.a=V ; full URL length:
fixed=$(( ${#PROXY_URL} + 24 ))   # + len("/m2/demo/profile/update?")
len_for() { # ID TOTAL: the value length giving a full URL of TOTAL bytes
	echo $(( $2 - fixed - 7 - ${#1} - 11 ))   # "mboxPC=" ID "&profile.a="
}
val() { head -c "$1" /dev/zero | tr '\0' "${2:-v}"; }
put_ok size pcId small a=short --urgent
put_ok size pcId g0 "a=$(val "$(len_for g0 8192)")" --urgent
put_ok size pcId g1 "a=$(val "$(len_for g1 8193)")" --urgent
put_ok size pcId p0 "a=$(val "$(len_for p0 61440)")" --urgent
put_ok size pcId p1 "a=$(val "$(len_for p1 61441)")" --urgent
put_ok size pcId big "a=$(val 21000 ,)" --urgent

pb plan >"$T/plan.out" 2>&1
sed 's/^/# /' "$T/plan.out" | head -8
flush_wait size 0 30
# the proxy log: METHOD len(target) len(body) path
awk -F'\t' '$4 == "/m2/demo/profile/update" { print $1, $2 + $3 }' "$T/proxy.log" | sort >"$T/single.txt"
sed 's/^/# single call: /' "$T/single.txt"
check_eq "two GETs (small, g0)" 2 "$(grep -c '^GET' "$T/single.txt")"
check_eq "two POSTs (g1, p0)" 2 "$(grep -c '^POST' "$T/single.txt")"
get_max=$(awk '$1 == "GET" { if ($2 > m) m = $2 } END { print m + 0 }' "$T/single.txt")
check_le "every GET's request target within the simulator's 8192" 8192 "$get_max"
post_max=$(awk '$1 == "POST" { if ($2 > m) m = $2 } END { print m + 0 }' "$T/single.txt")
check_le "every POST (target + body) within the simulator's 61440" 61440 "$post_max"
check_eq "simulator: 4 single calls, all ok" "4 4" "$(single_calls ok) $(single_calls total)"
check_eq "simulator: no 413/414 refusal" 0 "$(single_calls refused)"
check_eq "p1 and big went bulk: 2 rows in bulk batches" 2 \
	"$(q "SELECT coalesce(sum(profiles), 0) FROM batches WHERE lane = 'bulk'")"
check_eq "ledger: 4 units" 4 "$(ledger_used)"
check_ledger_clean size
check_store size --preload "$T/pre.csv"
check_all_delivered size

# a smaller max_get_bytes moves the line: g0 (8192) becomes a POST, small stays GET
BULK_MAX_VALUE_CHARS=65536 write_conf "max_get_bytes = 4096"
sed -i "s|^base_url = .*|base_url = $PROXY_URL|" "$CONF"
: >"$T/proxy.log"
put_ok get4k pcId small a=short2 --urgent
put_ok get4k pcId g0 "a=$(val "$(len_for g0 8192)" w)" --urgent
flush_wait get4k 0 30
awk -F'\t' '$4 == "/m2/demo/profile/update" { print $1 }' "$T/proxy.log" | sort | tr '\n' ' ' >"$T/m.txt"
check_eq "max_get_bytes = 4096: one GET, one POST" "GET POST " "$(cat "$T/m.txt")"
check_store get4k --preload "$T/pre.csv"
finish
