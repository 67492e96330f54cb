#!/usr/bin/env bash
# The v2 override rule: a v2 batch for an id, followed by another v2 batch
# for the same id with no page visit in between, loses what only the first
# batch set (the simulator applies this by default, as Target documents).
# Profiles get {a, b} in one `flush --wait`, then {c} in a second one.
#  - with pobox's carry-forward (default v2_carry_window): the store has a, b, c;
#  - with v2_carry_window = 0 the store has lost a and b: proves the
#    simulator's override is real, that the store check detects it, and that
#    carry-forward is what saves the data.
. "$(dirname "$0")/bulk_lib.sh"

two_rounds() {
	local i
	for i in 1 2 3 4 5; do put_logged thirdPartyId "ov-$i" a="a$i, & =" b="b$i ✓"; done
	put_logged thirdPartyId ov-1 a="a1 newer"
	flush_wait "$1 round 1" 0 60
	for i in 1 2 3 4 5; do put_logged thirdPartyId "ov-$i" c="c$i+%"; done
	put_logged thirdPartyId ov-2 b="b2 round 2"
	flush_wait "$1 round 2" 0 60
}

new_scenario carry
sim_start --seed 1
write_conf "max_batch_rows = 50"
two_rounds carry
check_store "carry-forward on: a, b and c all survive"
check_all_delivered carry
check_eq "carry-forward on: the simulator lost no attribute to override" 0 "$(sim_counter attributes_lost_to_override)"
check_ge "carry-forward on: two v2 batches were sent" 2 "$(sim_counter calls.batch_update_v2.ok)"

new_scenario nocarry
sim_start --seed 1
write_conf "max_batch_rows = 50" "v2_carry_window = 0"
two_rounds nocarry
lost=$(sim_counter attributes_lost_to_override)
check_ge "carry-forward off: the simulator's override dropped attributes" 1 "$lost"
# the full expectation must now FAIL (the checker sees the loss) ...
if python3 "$EXPECT" compare --url "$B" --log "$LOG" >"$T/nocarry/cmp.out" 2>&1; then
	fail "carry-forward off: the store check detects the lost a/b" "$(cat "$T/nocarry/cmp.out")"
else
	pass "carry-forward off: the store check detects the loss: $(sed -n 2p "$T/nocarry/cmp.out" | sed 's/^ *//')"
fi
# ... and what is left is exactly round 2: c everywhere, b only on ov-2
python3 - "$T/nocarry/round2.log" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(1, 6):
        f.write(json.dumps({"t": "thirdPartyId", "id": f"ov-{i}", "a": "c", "v": f"c{i}+%"}) + "\n")
    f.write(json.dumps({"t": "thirdPartyId", "id": "ov-2", "a": "b", "v": "b2 round 2"}) + "\n")
PY
CHECK_LOG=$T/nocarry/round2.log check_store "carry-forward off: only round 2's attributes are left"
finish
