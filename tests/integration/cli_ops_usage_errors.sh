#!/usr/bin/env bash
# Usage errors of requeue/purge must exit 64 and change nothing:
#  - requeue / purge --dead --yes without any selection (the message says
#    "no selection: give --id, --reason, --since or --all")
#  - purge --delivered with a dead-letter selection (--id/--reason/--since/
#    --all) or with --dead: the two forms do not combine (see purge --help);
#    today the selection is silently ignored and ALL delivered history is
#    deleted.
. "$(cd "$(dirname "$0")" && pwd)/ops_lib.sh" "$@"

sim_start
write_conf "max_attempts = 2" "backoff_base = 10ms" "backoff_cap = 50ms"
put_logged thirdPartyId d1 a=1
put_logged thirdPartyId d2 a=1
flush_wait "delivered" 0 30
sim_faults 'error_rate=1&error_codes=500'
put_logged thirdPartyId x1 a=dead1
flush_wait "dead" 65 30
sim_faults 'error_rate=0'
D1=$(seq_of thirdPartyId d1 a 1)
X1=$(seq_of thirdPartyId x1 a dead1)
H0=$(dump_hash)

pbr 64 "requeue (no selection)" requeue
pbr 64 "requeue --dry-run (no selection)" requeue --dry-run
pbr 64 "purge --dead --yes (no selection)" purge --dead --yes
pbr 64 "purge --delivered --id D1 --yes" purge --delivered --id "$D1" --yes
check_eq "purge --delivered --id: d1's delivered row still there" 1 "$(q "SELECT count(*) FROM v_updates WHERE seq = $D1")"
pbr 64 "purge --delivered --reason x --yes" purge --delivered --reason x --yes
pbr 64 "purge --dead --delivered --id X1 --yes" purge --dead --delivered --id "$X1" --yes
check_eq "usage errors change nothing" "$H0" "$(dump_hash)"
finish
