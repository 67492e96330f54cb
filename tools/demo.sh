#!/usr/bin/env bash
# The README's main-job command.  Installs what is missing, builds pobox,
# imports the sample CRM export into a fresh outbox, and shows what the
# operator would see.  Everything it makes lives in demo/ (override with
# POBOX_DEMO_DIR); run it again to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash tools/install-deps.sh

build=${POBOX_DEMO_BUILD:-build}
echo "== building pobox in $build/"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target pobox_cli pobox-target-sim >/dev/null
pobox=$root/$build/src/pobox

demo=${POBOX_DEMO_DIR:-$root/demo}
rm -rf "$demo"
mkdir -p "$demo"
db=$demo/outbox.db

echo
echo "== importing tools/sample/crm_export.csv (3 of its rows are bad on purpose)"
set +e
"$pobox" --db "$db" import tools/sample/crm_export.csv --reject-file "$demo/rejects.csv"
rc=$?
set -e
echo "(exit status $rc: 65 means some rows were rejected and the rest imported)"
[ "$rc" -eq 0 ] || [ "$rc" -eq 65 ] || exit "$rc"

echo
echo "== rejected rows ($demo/rejects.csv)"
cut -c1-160 "$demo/rejects.csv"

echo
echo "== a producer adds an urgent update with the CLI, another with sqlite3"
"$pobox" --db "$db" put thirdPartyId:crm-000000001 loyaltyTier=platinum --urgent
sqlite3 "$db" "INSERT INTO enqueue(id_type, profile_id, attr, value) VALUES ('thirdPartyId', 'crm-000000002', 'preferredStore', 'Berlin Mitte');"

echo
echo "== pobox status"
"$pobox" --db "$db" status

echo
echo "== the oldest pending updates (sqlite3 view v_pending)"
sqlite3 -header -column "$db" "SELECT seq, id_type, profile_id, attr, value, source FROM v_pending LIMIT 5;"
