#!/usr/bin/env bash
# fleet_bench.sh: 200 simulated hosts sharing one account through a real
# PostgreSQL coordinator (see README.md here, "fleet_bench.sh").
#
#   tools/bench/fleet_bench.sh          # builds build-bench/ (Release) if needed
#   HOSTS=200 BUSY=10 SECONDS_RUN=150 tools/bench/fleet_bench.sh
#
# Prints: the share of the budget the fleet kept in use under skewed demand
# and what the static fleet_share split gets from the same demand, the
# round trips to the coordinator per Target call, the grants per second it
# made meanwhile, and (pgbench, one client per host) the grants per second
# it sustains flat out.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench}
die() { echo "fleet_bench: $*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$ROOT/tools/bench/lib.sh"

HOSTS=${HOSTS:-200} BUSY=${BUSY:-10} BUSY_RATE=${BUSY_RATE:-40} IDLE_RATE=${IDLE_RATE:-0.05}
BUDGET=${BUDGET:-24000} WINDOW_S=${WINDOW_S:-120} LEASE_S=${LEASE_S:-4} SECONDS_RUN=${SECONDS_RUN:-300}
MARGIN=${MARGIN:-0.01} RESERVE_SHARE=${RESERVE_SHARE:-0.01} PGBENCH_S=${PGBENCH_S:-15}

bench_build fleet_bench pobox-fleet-bench
BENCH=$BUILD_DIR/tools/bench/pobox-fleet-bench
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x $PGBIN/initdb ]] || die "no PostgreSQL server binaries (apt-get install postgresql)"
WORK=$(mktemp -d "${WORK_DIR:-/tmp}/fleet-bench.XXXXXX")
AS=()
if [[ $(id -u) = 0 ]]; then AS=(runuser -u postgres --); PGD=$(runuser -u postgres -- mktemp -d /tmp/fleet-bench-pg.XXXXXX)
else PGD=$(mktemp -d /tmp/fleet-bench-pg.XXXXXX); fi
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
	(cd /tmp && "${AS[@]}" "$PGBIN/pg_ctl" -D "$PGD/data" -m immediate -w stop >/dev/null 2>&1) || true
	rm -rf "$PGD"
	[[ ${KEEP:-0} = 1 ]] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
(cd /tmp && "${AS[@]}" "$PGBIN/initdb" -D "$PGD/data" -U pobox_owner --auth=trust >/dev/null) || die "initdb failed"
(cd /tmp && "${AS[@]}" "$PGBIN/pg_ctl" -D "$PGD/data" -l "$PGD/log" -w \
	-o "-p $PORT -c listen_addresses=127.0.0.1 -k $PGD -c max_connections=$((HOSTS * 2 + 50)) -c track_functions=pl" \
	start >/dev/null) || die "PostgreSQL did not start: $(tail -3 "$PGD/log")"
PSQL=(psql -X -q -h "$PGD" -p "$PORT" -U pobox_owner)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE pobox"
URL="host=$PGD port=$PORT dbname=pobox user=pobox_owner"
cat >"$WORK/owner.conf" <<CONF
db = $WORK/owner.db
client = bench
fleet_url = $URL
fleet_account = bench
single_budget = $BUDGET
fleet_window = ${WINDOW_S}s
fleet_lease = ${LEASE_S}s
fleet_reserve_life = ${WINDOW_S}s
fleet_margin = $MARGIN
fleet_reserve_share = $RESERVE_SHARE
fleet_size = $HOSTS
urgent_reserve = 0
CONF
"$POBOX" -c "$WORK/owner.conf" fleet init >/dev/null || die "fleet init failed"

echo "fleet_bench: $HOSTS hosts ($BUSY busy at $BUSY_RATE calls/s, the rest at $IDLE_RATE), budget" \
     "$BUDGET per ${WINDOW_S}s, leases of ${LEASE_S}s, ${SECONDS_RUN}s" >&2
T0=$(date +%s%3N)
"$BENCH" --url "$URL" --account bench --dir "$WORK" --hosts "$HOSTS" --busy "$BUSY" \
	--busy-rate "$BUSY_RATE" --idle-rate "$IDLE_RATE" --budget "$BUDGET" --window-ms $((WINDOW_S * 1000)) \
	--lease-ms $((LEASE_S * 1000)) --seconds "$SECONDS_RUN" --margin "$MARGIN" \
	--reserve-share "$RESERVE_SHARE" >"$WORK/bench.out"
T1=$(date +%s%3N)
val() { sed -n "s/^$1 //p" "$WORK/bench.out"; }
TRIPS=$("${PSQL[@]}" -d pobox -At -c "SELECT sum(requests) FROM pobox_fleet.hosts")
BUSY_TRIPS=$("${PSQL[@]}" -d pobox -At -c "SELECT coalesce(sum(requests), 0) FROM pobox_fleet.hosts
                                           WHERE substr(host, 2)::int < $BUSY")
POOL=$(awk -v b="$BUDGET" -v m="$MARGIN" 'BEGIN { printf "%d", b - int(b * m + 0.999999) }')
# occupancy of the rolling window, averaged from one window after the start
occupancy() {
	sort -n "$1" | awk -v w=$((WINDOW_S * 1000)) -v a=$((T0 + 2000 + WINDOW_S * 1000)) -v b="$T1" \
		'{ t[NR] = $1 } END { n = NR; i = 0; j = 0; s = 0; k = 0; max = 0
		   for (tau = a; tau <= b; tau += 100) {
		       while (i < n && t[i + 1] <= tau) i++
		       while (j < i && t[j + 1] <= tau - w) j++
		       s += i - j; k++; if (i - j > max) max = i - j }
		   printf "%d %d\n", k ? s / k : 0, max }'
}
read -r F_OCC F_MAX <<<"$(occupancy "$WORK/fleet.calls")"
read -r S_OCC S_MAX <<<"$(occupancy "$WORK/static.calls")"

# flat out: one pgbench client per host, each a grant that reports its
# previous lease (the round trip hosts make)
cat >"$WORK/grant.sql" <<'SQL'
SELECT coalesce(lease, 0) AS prev FROM pobox_fleet.grant('bench', 'pg' || :client_id, 'pgbench',
  (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, ':ep', 0, 5, false, false, NULL, 0,
  1000, 1000, ARRAY[:prev]::bigint[], ARRAY[:prev]::bigint[],
  ARRAY[(extract(epoch FROM clock_timestamp()) * 1000)::bigint], '{3}', '{}', '{}', '{}') \gset
SQL
"${PSQL[@]}" -d pobox -c "UPDATE pobox_fleet.accounts SET budget = 1000000000 WHERE account = 'bench'"
EPOCH=$("${PSQL[@]}" -d pobox -At -c "SELECT epoch FROM pobox_fleet.accounts WHERE account = 'bench'")
pgbench_tps() { # CLIENTS
	"$PGBIN/pgbench" -h "$PGD" -p "$PORT" -U pobox_owner -n -c "$1" -j 2 -T "$PGBENCH_S" \
		-D prev=0 -D ep="$EPOCH" -f "$WORK/grant.sql" pobox >"$WORK/pgbench.out" 2>&1 || true
	local t
	t=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/pgbench.out" | head -1)
	[[ -n $t ]] || { echo "fleet_bench: pgbench failed:" >&2; tail -5 "$WORK/pgbench.out" >&2; }
	echo "${t:-?}"
}
PGB=$(pgbench_tps "$HOSTS")
PGB20=$(pgbench_tps 20)

CALLS=$(val calls)
printf '\n%-58s %s\n' "figure" "value"
printf '%-58s %s\n' "single calls made by the fleet (${SECONDS_RUN}s)" "$CALLS"
printf '%-58s %s / %s = %.1f%%\n' "budget - margin in use, fleet (mean rolling window)" "$F_OCC" "$POOL" \
	"$(awk -v a="$F_OCC" -v b="$POOL" 'BEGIN { print 100 * a / b }')"
printf '%-58s %s / %s = %.1f%%\n' "budget - margin in use, static split (same demand)" "$S_OCC" "$POOL" \
	"$(awk -v a="$S_OCC" -v b="$POOL" 'BEGIN { print 100 * a / b }')"
printf '%-58s %s (limit %s)\n' "most calls in any window, fleet" "$F_MAX" "$POOL"
printf '%-58s %s of %s\n' "calls of the $BUSY busy hosts" "$(val busy_calls)" "$CALLS"
printf '%-58s %s\n' "coordinator round trips" "$TRIPS"
printf '%-58s %.4f\n' "round trips per Target call" "$(awk -v a="$TRIPS" -v b="$CALLS" 'BEGIN { print b ? a / b : 0 }')"
printf '%-58s %.4f\n' "... of the busy hosts" \
	"$(awk -v a="$BUSY_TRIPS" -v b="$(val busy_calls)" 'BEGIN { print b ? a / b : 0 }')"
printf '%-58s %.4f\n' "... of the idle hosts" \
	"$(awk -v a="$((TRIPS - BUSY_TRIPS))" -v b="$((CALLS - $(val busy_calls)))" 'BEGIN { print b ? a / b : 0 }')"
printf '%-58s %.1f\n' "grants per second during the run" "$(awk -v a="$TRIPS" -v t=$((T1 - T0)) 'BEGIN { print a * 1000 / t }')"
printf '%-58s %s\n' "grants per second sustained ($HOSTS pgbench clients)" "${PGB:-?}"
printf '%-58s %s\n' "grants per second sustained (20 pgbench clients)" "${PGB20:-?}"
