#!/usr/bin/env bash
# The README's main-job command.  Installs what is missing, builds pobox and
# the Target simulator, starts the simulator on a free loopback port,
# imports the sample CRM export into a fresh outbox, delivers it with
# `pobox flush --wait`, and shows the outbox's status, the batches and what
# the simulator now holds.  Everything it makes lives in demo/ (override
# with POBOX_DEMO_DIR); run it again to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash tools/install-deps.sh

build=${POBOX_DEMO_BUILD:-build}
echo "== building pobox in $build/"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target pobox_cli pobox-target-sim >/dev/null

demo=${POBOX_DEMO_DIR:-$root/demo}
rm -rf "$demo"
mkdir -p "$demo"
db=$demo/outbox.db

echo
echo "== starting the Target simulator (client code 'demo', loopback only)"
"$root/$build/tools/sim/pobox-target-sim" --port 0 >"$demo/sim.out" 2>"$demo/sim.log" &
sim=$!
trap 'kill $sim 2>/dev/null; wait $sim 2>/dev/null' EXIT
for _ in $(seq 100); do
	port=$(sed -n 's/^listening on 127.0.0.1://p' "$demo/sim.out")
	[ -n "$port" ] && break
	sleep 0.05
done
[ -n "$port" ] || { echo "the simulator did not start:"; cat "$demo/sim.log"; exit 1; }
echo "listening on 127.0.0.1:$port"
cat >"$demo/pobox.conf" <<CONF
# demo configuration: deliver to the local simulator
db = $db
client = demo
base_url = http://127.0.0.1:$port
poll_initial = 200ms
CONF
pobox() { "$root/$build/src/pobox" -c "$demo/pobox.conf" "$@"; }

echo
echo "== importing tools/sample/crm_export.csv (3 of its rows are bad on purpose)"
set +e
pobox import tools/sample/crm_export.csv --reject-file "$demo/rejects.csv"
rc=$?
set -e
echo "(exit status $rc: 65 means some rows were rejected and the rest imported)"
[ "$rc" -eq 0 ] || [ "$rc" -eq 65 ] || exit "$rc"

echo
echo "== rejected rows ($demo/rejects.csv)"
cut -c1-160 "$demo/rejects.csv"

echo
echo "== a producer adds an urgent update with the CLI, another with sqlite3"
pobox put thirdPartyId:crm-437173461-f2d2 loyaltyTier=platinum --urgent
sqlite3 "$db" "INSERT INTO enqueue(id_type, profile_id, attr, value) VALUES ('thirdPartyId', 'crm-437173461-f2d2', 'preferredStore', 'Berlin Mitte');"

echo
echo "== pobox status (before delivery)"
pobox status

echo
echo "== pobox flush --wait: cut batches, send them, follow their status to the end"
pobox flush --wait

echo
echo "== pobox status (after)"
pobox status

echo
echo "== pobox batches"
pobox batches

echo
echo "== what the simulator holds now"
curl -s "http://127.0.0.1:$port/_sim/profiles" | python3 -c '
import json, sys
profiles = json.load(sys.stdin)["profiles"]
n = sum(len(p["attributes"]) for p in profiles)
print(len(profiles), "profiles,", n, "attribute values")'
echo "one of them, through the profile fetch API (the two late updates won):"
curl -s "http://127.0.0.1:$port/rest/v1/profiles/thirdPartyId/crm-437173461-f2d2?client=demo" | python3 -m json.tool
