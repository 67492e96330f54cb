#!/usr/bin/env bash
# A batch's body and member list are kept beside its row (batch_payloads,
# batch_members) while it may be sent, and for the retention after it
# finished, so `show --payload` can print what went; housekeeping then
# drops them and keeps the row (v_batches is history).  An unfinished
# batch's parts are never dropped, whatever their age.
. "$(cd "$(dirname "$0")" && pwd)/ops_lib.sh" "$@"

sim_start
write_conf "max_batch_rows = 2"
for i in 1 2 3 4 5; do put_logged thirdPartyId "p$i" a="v$i"; done
flush_wait "five profiles in three batches" 0 30
check_eq "three batches done" 3 "$(q "SELECT count(*) FROM batches WHERE state = 'done'")"
check_eq "each keeps its payload while within the retention" 3 \
	"$(q "SELECT count(DISTINCT batch) FROM batch_payloads")"
BID=$(q "SELECT min(id) FROM batches")
pbr 0 "show --payload of a done batch" show "$BID" --payload
check_eq "it prints the batch file" "batch=thirdPartyId,a" "$(head -1 "$T/r.out")"

# one more, cut but not sent: its parts must survive the purge
put_logged thirdPartyId p6 a=v6
pb flush >/dev/null 2>&1
READY=$(q "SELECT id FROM batches WHERE state = 'ready'")
check_eq "a ready batch" 1 "$(q "SELECT count(*) FROM batches WHERE state = 'ready'")"
pbr 0 "purge --delivered --yes" purge --delivered --yes
check_eq "done batches lost their payloads" 0 \
	"$(q "SELECT count(*) FROM batch_payloads p JOIN batches b ON b.id = p.batch WHERE b.state = 'done'")"
check_eq "and their member lists" 0 \
	"$(q "SELECT count(*) FROM batch_members m JOIN batches b ON b.id = m.batch WHERE b.state = 'done'")"
check_eq "their rows stay" 3 "$(q "SELECT count(*) FROM v_batches WHERE state = 'done'")"
check_eq "the ready batch keeps its payload" 1 \
	"$(q "SELECT count(*) > 0 FROM batch_payloads WHERE batch = $READY")"
check_eq "and its members" 1 "$(q "SELECT count(*) FROM batch_members WHERE batch = $READY")"
pbr 66 "show --payload of a pruned batch" show "$BID" --payload
out_has "it says why" "its payload was pruned"
flush_wait "the ready batch is still delivered" 0 30
check_eq "Target has p6" v6 "$(sim_get thirdPartyId p6 a)"
finish
