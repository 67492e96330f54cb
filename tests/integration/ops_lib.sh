# Shared helpers for the operator-command integration tests
# (tests/integration/cli_ops_*.sh: dead, requeue, purge, doctor, status
# --prometheus, quota), sourced with the build dir as $1.
#
# Builds on bulk_lib.sh (or single_lib.sh when OPS_SINGLE=1 is set before
# sourcing): simulator start/stop, config, pass/fail, finish.  Adds a
# fingerprint of the whole outbox (to prove dry runs and refusals change
# nothing), a runner that records exit code and output of one pobox command,
# and direct reads of the simulator's store.
_ops_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ "${OPS_SINGLE:-0}" = 1 ]; then
	# shellcheck source=single_lib.sh
	. "$_ops_here/single_lib.sh" "$@"
else
	# shellcheck source=bulk_lib.sh
	. "$_ops_here/bulk_lib.sh" "$@"
fi

# dump_hash: sha256 of `sqlite3 DB .dump` (every table, every row).
dump_hash() { sqlite3 -cmd '.timeout 30000' "$DB" .dump | sha256sum | cut -c1-64; }

# list SQL: the rows of a query joined with ',' (one column expected).
list() { q "$1" | paste -sd, -; }

# pbr WANT NAME ARGS...: run pobox with $CONF, output in $T/r.out / $T/r.err,
# exit code in RC; checks the exit code.
pbr() {
	local want=$1 name=$2; shift 2
	"$POBOX" -c "$CONF" "$@" >"$T/r.out" 2>"$T/r.err" </dev/null
	RC=$?
	if [ "$RC" -eq "$want" ]; then pass "$name: exits $want"; else
		fail "$name: exits $want" "got exit $RC for: pobox $*
stdout: $(head -c 1500 "$T/r.out")
stderr: $(head -c 1500 "$T/r.err")"
	fi
}

# out_has NAME TEXT: the last pbr's stdout+stderr contains TEXT (fixed string).
out_has() {
	if cat "$T/r.out" "$T/r.err" | grep -qF -- "$2"; then pass "$1"; else
		fail "$1" "missing '$2' in:
$(cat "$T/r.out" "$T/r.err" | head -30)"
	fi
}

# sim_get TYPE ID ATTR: the simulator's value, or <none>.
sim_get() {
	curl -s "$B/_sim/profiles" | python3 -c '
import json, sys
t, i, a = sys.argv[1:4]
for p in json.load(sys.stdin)["profiles"]:
    if p["idType"] == t and p["id"] == i:
        print(p["attributes"].get(a, "<none>")); break
else:
    print("<none>")' "$1" "$2" "$3"
}
# sim_has_profile TYPE ID: 1 if the simulator knows the profile, else 0.
sim_has_profile() {
	curl -s "$B/_sim/profiles" | python3 -c '
import json, sys
t, i = sys.argv[1:3]
print(int(any(p["idType"] == t and p["id"] == i for p in json.load(sys.stdin)["profiles"])))' "$1" "$2"
}

# seq_of TYPE ID ATTR VALUE: the newest seq of that update.
seq_of() {
	q "SELECT max(seq) FROM v_updates WHERE id_type = '$1' AND profile_id = '$2' AND attr = '$3' AND value = '$4'"
}
vstate() { q "SELECT state FROM v_updates WHERE seq = $1"; }
