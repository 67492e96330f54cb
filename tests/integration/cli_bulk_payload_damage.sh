#!/usr/bin/env bash
# A batch's stored payload is inflated while it is sent (never held whole),
# so a damaged one can only be caught on the way out: the piece that would
# end the body is held back until the length and CRC-32 stored at cut time
# check.  Three kinds of damage to a ready batch of ~200 KB (several pieces
# on the wire): a wrong CRC (the bytes decode, but are not what was cut), a
# truncated blob, a stored length one short.  Each time Target must accept
# nothing from the damaged batch, the batch must end dead with the reason,
# its updates must go back to pending and be delivered in a new batch, and
# the simulator's store must end equal to what was enqueued.
. "$(dirname "$0")/bulk_lib.sh"
seed=${BULK_SEED:-5150}
echo "# seed $seed"
# gen DIR SEED: 2,000 profiles with two 40-character values each, ~200 KB
gen() {
	mkdir -p "$1"
	python3 - "$1/import_1.csv" "$LOG" "$2" <<'PY'
import json, random, sys
rnd = random.Random(int(sys.argv[3]))
with open(sys.argv[1], "w") as f, open(sys.argv[2], "a") as log:
    f.write("thirdPartyId,a0,a1\n")
    for i in range(2000):
        vals = ["".join(rnd.choice("abcdefghij 0123456789") for _ in range(40)) for _ in "ab"]
        f.write("tp-%d,%s,%s\n" % (i, *vals))
        for a, v in zip(("a0", "a1"), vals):
            log.write(json.dumps({"t": "thirdPartyId", "id": "tp-%d" % i, "a": a, "v": v}) + "\n")
PY
}
sim_start
write_conf

# damage NAME SQL: cut, damage the biggest ready batch with SQL ($BID in
# it), deliver, check.
damage() {
	local name=$1 sql=$2 ok_before nready
	pb flush >"$T/cut.out" 2>"$T/cut.err" || fail "$name: cut" "$(cat "$T/cut.err")"
	nready=$(q "SELECT count(*) FROM batches WHERE state = 'ready' AND lane = 'bulk'")
	BID=$(q "SELECT id FROM batches WHERE state = 'ready' AND lane = 'bulk' ORDER BY bytes DESC LIMIT 1")
	check_ge "$name: the batch is several pieces on the wire" 100000 "$(q "SELECT bytes FROM batches WHERE id = $BID")"
	q "${sql//\$BID/$BID}" >/dev/null
	ok_before=$(sim_counter calls.batch_update_v2.ok)
	flush_wait "$name" 0 60
	check_eq "$name: the damaged batch is dead" dead "$(q "SELECT state FROM batches WHERE id = $BID")"
	check_eq "$name: with the reason" 1 \
		"$(q "SELECT last_error LIKE '%failed its checksum%' FROM batches WHERE id = $BID")"
	check_eq "$name: the log names it" 1 "$(grep -c "payload_corrupt.*batch=$BID\b" "$T/flush.err")"
	# the undamaged ones, and one new batch for the damaged one's rows
	check_eq "$name: Target accepted no damaged batch" $((ok_before + nready)) \
		"$(sim_counter calls.batch_update_v2.ok)"
	check_all_delivered "$name"
	check_store "$name"
}

gen "$T/gen" "$seed"
enqueue_imports "$T/gen"
damage crc "UPDATE batches SET payload_crc32 = (payload_crc32 + 1) % 4294967296 WHERE id = \$BID"

# the same profiles again with new values, for the next kind of damage
again() {
	gen "$T/gen$1" "$1"
	enqueue_imports "$T/gen$1"
}
again $((seed + 1))
damage truncated "UPDATE batch_payloads SET payload = substr(payload, 1, length(payload) / 2) WHERE batch = \$BID"
again $((seed + 2))
damage short "UPDATE batches SET bytes = bytes - 1 WHERE id = \$BID"
finish
