# Shared helpers for the fleet tests (tests/integration/cli_fleet_*.sh),
# sourced with the build dir as $1.
#
# Builds on single_lib.sh (simulator, config, checks) and adds:
#   - a real PostgreSQL server on loopback, made for the test (initdb +
#     pg_ctl in a temporary directory, as the `postgres` user when the test
#     runs as root: initdb refuses root), with an owner role that runs
#     `pobox fleet init` over the Unix socket and a login role for the
#     hosts that connects over TCP with a password from a passfile;
#   - fleet_proxy, a loopback proxy per host in front of it that can pass,
#     delay, swallow, reset or refuse the host's traffic;
#   - many hosts, each `pobox run` with its own outbox and config, against
#     one simulator whose call log (--call-log) records every call;
#   - the oracle: the most calls any rolling window of the budget's length
#     holds in that log, against the budget minus the margin.
#
# Environment: as bulk_lib.sh; FLEET_SEED overrides a test's seed (every
# test prints its seed, and prints it again when it fails).
SINGLE_LANE=yes
# shellcheck source=single_lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/single_lib.sh" "$@"

PROXYBIN=$build/tests/integration/fleet_proxy
LOADBIN=$build/tests/integration/fleet_load
for f in "$PROXYBIN" "$LOADBIN"; do
	[ -x "$f" ] || { fail "$f is built"; finish; }
done
PGROOT= PGPORT= PGBIN= PG_AS=
PROXY_PID= PROXY_PORTS=()
HOSTS=()          # host names, in order
declare -A HOST_PID=()

SEED=${FLEET_SEED:-$(( $(date +%s) % 100000 ))}
RANDOM=$SEED
echo "# seed $SEED (FLEET_SEED=$SEED to repeat)"

fleet_cleanup() {
	local h
	for h in "${HOSTS[@]}"; do
		[ -n "${HOST_PID[$h]:-}" ] && kill -KILL "${HOST_PID[$h]}" 2>/dev/null
	done
	[ -n "$PROXY_PID" ] && kill -TERM "$PROXY_PID" 2>/dev/null
	if [ -n "$PGROOT" ]; then
		pg_signal CONT
		pg_as "$PGBIN/pg_ctl" -D "$PGROOT/data" -m immediate -w stop >/dev/null 2>&1
		if [ "$fails" -ne 0 ] || [ "${BULK_KEEP:-0}" = 1 ]; then
			cp "$PGROOT/log" "$T/postgres.log" 2>/dev/null
		fi
		rm -rf "$PGROOT"
	fi
	[ "$fails" -ne 0 ] && echo "# FAILED with seed $SEED (FLEET_SEED=$SEED to repeat)"
	bulk_cleanup
}
trap fleet_cleanup EXIT

# pg_as CMD...: run a PostgreSQL server program as its owner.
pg_as() {
	if [ -n "$PG_AS" ]; then runuser -u "$PG_AS" -- "$@"; else "$@"; fi
}

# pg_start: a fresh cluster; sets PGROOT, PGPORT; database pobox, roles
# pobox_owner (owns the fleet schema, trusted on the socket) and pobox_host
# (the hosts' login: password over TCP, from $T/pgpass).
pg_start() {
	PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	[ -x "$PGBIN/initdb" ] || { fail "PostgreSQL server binaries (initdb) are installed"; finish; }
	if [ "$(id -u)" = 0 ]; then
		PG_AS=postgres
		id "$PG_AS" >/dev/null 2>&1 || { fail "user postgres exists (the postgresql package makes it)"; finish; }
		PGROOT=$(runuser -u "$PG_AS" -- mktemp -d /tmp/pobox-fleet-pg.XXXXXX)
	else
		PGROOT=$(mktemp -d /tmp/pobox-fleet-pg.XXXXXX)
	fi
	PGPORT=$(free_port)
	HOSTPW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
	(cd /tmp && pg_as "$PGBIN/initdb" -D "$PGROOT/data" -U pobox_owner --auth-local=trust \
		--auth-host=scram-sha-256 >"$T/initdb.log" 2>&1) || { fail "initdb" "$(tail -5 "$T/initdb.log")"; finish; }
	pg_launch || finish
	psql_owner -d postgres -c "CREATE DATABASE pobox" >/dev/null || { fail "create database"; finish; }
	psql_owner -d pobox -c "CREATE ROLE pobox_host LOGIN PASSWORD '$HOSTPW'" >/dev/null
	printf '127.0.0.1:*:pobox:pobox_host:%s\n' "$HOSTPW" >"$T/pgpass"
	chmod 600 "$T/pgpass"
}

# pg_launch: start the cluster (again) on PGPORT.
pg_launch() {
	(cd /tmp && pg_as "$PGBIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/log" -w -t 60 \
		-o "-p $PGPORT -c listen_addresses=127.0.0.1 -k $PGROOT -c fsync=off -c track_functions=pl -c max_connections=300" \
		start >/dev/null 2>&1) || { fail "PostgreSQL starts" "$(tail -5 "$PGROOT/log")"; return 1; }
}
pg_stop() { (cd /tmp && pg_as "$PGBIN/pg_ctl" -D "$PGROOT/data" -m "${1:-fast}" -w stop >/dev/null 2>&1); }
pg_pid() { head -1 "$PGROOT/data/postmaster.pid" 2>/dev/null; }
# pg_signal SIG: the postmaster and every process it started (by pid).
pg_signal() {
	local pm kids
	pm=$(pg_pid) || return 0
	[ -n "$pm" ] || return 0
	kids=$(ps -o pid= --ppid "$pm" 2>/dev/null)
	# shellcheck disable=SC2086
	kill -"$1" "$pm" $kids 2>/dev/null
}
# pg_kill9: SIGKILL the server and its backends (as a crash would).
pg_kill9() {
	local pm kids
	pm=$(pg_pid)
	kids=$(ps -o pid= --ppid "$pm" 2>/dev/null)
	# shellcheck disable=SC2086
	kill -KILL "$pm" $kids 2>/dev/null
	local i
	for i in $(seq 1 50); do kill -0 "$pm" 2>/dev/null || break; sleep 0.1; done
	pg_as rm -f "$PGROOT/data/postmaster.pid"
}
psql_owner() { psql -X -q -v ON_ERROR_STOP=1 -h "$PGROOT" -p "$PGPORT" -U pobox_owner "$@"; }
# pgq SQL: one value from the fleet database, as the owner.
pgq() { psql_owner -d pobox -At -c "$1"; }

# owner_conf FILE [lines]: a config for `pobox fleet init` as the owner.
owner_conf() {
	local f=$1 l; shift
	{
		echo "db = $T/owner.db"
		echo "client = demo"
		echo "fleet_url = host=$PGROOT port=$PGPORT dbname=pobox user=pobox_owner"
		echo "fleet_account = ${FLEET_ACCOUNT:-chain}"
		for l in "$@"; do echo "$l"; done
	} >"$f"
}

# proxy_start N: fleet_proxy with N ports in front of PostgreSQL; sets
# PROXY_PORTS; proxy_mode I MODE... changes port I's behaviour.
proxy_start() {
	mkdir -p "$T/proxyctl"
	"$PROXYBIN" --target "$PGPORT" --ports "$1" --ctl "$T/proxyctl" >"$T/proxy.ports" 2>"$T/proxy.err" &
	PROXY_PID=$!
	local i
	for i in $(seq 1 100); do [ "$(grep -c . "$T/proxy.ports")" = "$1" ] && break; sleep 0.05; done
	mapfile -t PROXY_PORTS <"$T/proxy.ports"
	[ "${#PROXY_PORTS[@]}" = "$1" ] || { fail "fleet_proxy starts" "$(cat "$T/proxy.err")"; finish; }
}
proxy_mode() { local i=$1; shift; echo "$*" >"$T/proxyctl/$i.tmp" && mv "$T/proxyctl/$i.tmp" "$T/proxyctl/$i"; }

# host_conf NAME INDEX [lines]: $T/NAME/pobox.conf for host NAME, talking to
# the coordinator through proxy port INDEX (or directly when there is no
# proxy), with its own outbox.  FLEET_CONF_EXTRA lines are added to every host.
host_conf() {
	local name=$1 idx=$2 l; shift 2
	local port=$PGPORT
	[ "${#PROXY_PORTS[@]}" -gt 0 ] && port=${PROXY_PORTS[$idx]}
	mkdir -p "$T/$name"
	{
		echo "db = $T/$name/o.db"
		echo "client = demo"
		echo "base_url = $B"
		echo "fleet_url = host=127.0.0.1 port=$port dbname=pobox user=pobox_host passfile=$T/pgpass"
		echo "fleet_account = ${FLEET_ACCOUNT:-chain}"
		echo "fleet_host = $name"
		echo "assume_profiles_exist = yes"
		echo "single_max_pending = 1000000"
		echo "single_min_budget_share = 0"
		echo "single_group = 200"
		echo "urgent_reserve = 0"
		echo "poll_initial = 100ms"
		echo "poll_cap = 500ms"
		echo "backoff_base = 100ms"
		echo "backoff_cap = 1s"
		echo "connect_timeout = 2s"
		echo "request_timeout = 3s"
		echo "flush_max_delay = 1s"
		echo "log_level = ${FLEET_LOG_LEVEL:-info}"
		for l in ${FLEET_CONF_EXTRA[@]+"${FLEET_CONF_EXTRA[@]}"}; do echo "$l"; done
		for l in "$@"; do echo "$l"; done
	} >"$T/$name/pobox.conf"
}

# host_start NAME: `pobox run` for host NAME in the background (stderr to
# $T/NAME/run.log, appended across restarts).
host_start() {
	local name=$1
	"$POBOX" -c "$T/$name/pobox.conf" run >>"$T/$name/run.out" 2>>"$T/$name/run.log" &
	HOST_PID[$name]=$!
}
host_kill() { kill -KILL "${HOST_PID[$1]}" 2>/dev/null; wait "${HOST_PID[$1]}" 2>/dev/null; HOST_PID[$1]=; }
# host_stop NAME: SIGTERM; the run must end (exit 0) within 20 s.
host_stop() {
	local pid=${HOST_PID[$1]} i rc
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		fail "host $1 stops within 20 s of SIGTERM"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid"; rc=$?
	HOST_PID[$1]=
	[ "$rc" = 0 ] || fail "host $1: pobox run exits 0 on SIGTERM" "exit $rc: $(tail -5 "$T/$1/run.log")"
}
hq() { sqlite3 -cmd '.timeout 30000' "$T/$1/o.db" "$2"; }
fleet_init() { # [--grant ROLE] ...: pobox fleet init as the owner
	owner_conf "$T/owner.conf" ${FLEET_OWNER_EXTRA[@]+"${FLEET_OWNER_EXTRA[@]}"}
	"$POBOX" -c "$T/owner.conf" fleet init "$@" >"$T/init.out" 2>"$T/init.err"
}

# oracle_max LANE WINDOW_MS [LOG]: the most calls of LANE (single, bulk) in
# any rolling window of WINDOW_MS, as the simulator counted them, and when
# that window ended: "MAX END_MS".
oracle_max() {
	awk -F'\t' -v lane="$1" -v w="$2" '$2 == lane { print $1 }' "${3:-$T/calls.log}" | sort -n |
		awk -v w="$2" '{ t[NR] = $1; while (t[NR] - t[j + 1] >= w) j++; c = NR - j
		                 if (c > max) { max = c; at = $1 } }
		               END { printf "%d %.0f\n", max, at }'
}
# oracle_mean LANE WINDOW_MS FROM_MS TO_MS: the mean, over window ends tau
# from FROM to TO every 100 ms, of the calls of LANE in (tau - WINDOW, tau]:
# how full the rolling window was kept, on average.
oracle_mean() {
	awk -F'\t' -v lane="$1" '$2 == lane { print $1 }' "$T/calls.log" | sort -n |
		awk -v w="$2" -v a="$3" -v b="$4" '{ t[NR] = $1 }
		     END { n = NR; i = 0; j = 0; s = 0; k = 0
		           for (tau = a; tau <= b; tau += 100) {
		               while (i < n && t[i + 1] <= tau) i++
		               while (j < i && t[j + 1] <= tau - w) j++
		               s += i - j; k++ }
		           printf "%d\n", k ? s / k : 0 }'
}
# calls_between LANE FROM_MS TO_MS: calls of LANE with FROM <= t < TO.
calls_between() {
	awk -F'\t' -v lane="$1" -v a="$2" -v b="$3" '$2 == lane && $1 >= a && $1 < b { n++ } END { print n + 0 }' \
		"$T/calls.log"
}
sim_now_ms() { curl -s "$B/_sim/clock" | sed -n 's/.*"now_ms":\([0-9]*\).*/\1/p'; }
