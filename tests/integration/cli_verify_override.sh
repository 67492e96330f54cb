#!/usr/bin/env bash
# pobox verify finds what Target's v2 override rule erased.  With
# carry-forward off (v2_carry_window = 0) and the simulator's override on,
# profiles get {a, b} in one v2 batch, then {c} (and ov-2 a new b) in the
# next, with no page visit between: Target drops what only the first batch
# set.  On profiles Target already had (preloaded with older a and b) the
# erased attributes fall back to those older values; on a profile it did
# not have they are gone.  verify must report
#  - within the grace: those attributes as not yet applied (Target may
#    still be applying), nothing different, exit 0;
#  - past the grace: exactly the erased attributes of the preloaded
#    profiles as different (an older value: a lost override), the fresh
#    profile's as missing, everything else matching, exit 65;
#  - with carry-forward on (the default) nothing is erased: all match.
. "$(cd "$(dirname "$0")" && pwd)/ops_lib.sh" "$@"
command -v jq >/dev/null || { fail "jq is needed"; finish; }

J() { jq -r "$1" "$T/r.out"; }
findings() { jq -r --arg c "$1" '.findings[] | select(.class == $c) | "\(.profile_id).\(.attr)"' "$T/r.out" | sort | paste -sd' ' -; }
classes() { J '.classes | "\(.matching.attributes) \(.not_yet_applied.attributes) \(.different.attributes) \(.missing.attributes)"'; }

two_rounds() {
	local i
	for i in 1 2 3 4 5 6; do pbr 0 "$1: round 1 put ov-$i" put "thirdPartyId:ov-$i" a="a$i" b="b$i"; done
	flush_wait "$1 round 1" 0 60
	for i in 1 2 3 4 5 6; do pbr 0 "$1: round 2 put ov-$i" put "thirdPartyId:ov-$i" c="c$i"; done
	pbr 0 "$1: round 2 put ov-2 b" put thirdPartyId:ov-2 b="b2 round 2"
	flush_wait "$1 round 2" 0 60
}

preload() {
	{
		echo "thirdPartyId,a,b"
		for i in 1 2 3 4 5; do echo "ov-$i,pre-a$i,pre-b$i"; done
	} >"$1"
}

new_scenario nocarry
preload "$T/nocarry/pre.csv"
sim_start --preload "$T/nocarry/pre.csv" --override
write_conf "v2_carry_window = 0"
two_rounds nocarry
check_eq "nocarry: the simulator's override erased 11 attributes" 11 "$(sim_counter attributes_lost_to_override)"
check_eq "nocarry: ov-1's a is back to Target's older value" pre-a1 "$(sim_get thirdPartyId ov-1 a)"

pbr 0 "nocarry: within the grace" verify --all --rate 1000 --json
check_eq "nocarry: within the grace the erased attributes are not yet applied, none different" \
	"7 11 0 0" "$(classes)"
sleep 1.2
pbr 65 "nocarry: past the grace" verify --all --rate 1000 --json --grace 1s
check_eq "nocarry: past the grace exactly the erased attributes of known profiles differ" \
	"ov-1.a ov-1.b ov-2.a ov-3.a ov-3.b ov-4.a ov-4.b ov-5.a ov-5.b" "$(findings different)"
check_eq "nocarry: they hold an older value" "older_value" \
	"$(jq -r '[.findings[] | select(.class == "different") | .why] | unique | join(" ")' "$T/r.out")"
check_eq "nocarry: the fresh profile's erased attributes are missing" "ov-6.a ov-6.b" "$(findings missing)"
check_eq "nocarry: everything else matches" "7 0 9 2" "$(classes)"
check_eq "nocarry: Target's older value is in the finding" "pre-a1 a1" \
	"$(J '.findings[] | select(.profile_id == "ov-1" and .attr == "a") | "\(.target) \(.sent)"')"
pbr 65 "nocarry: text" verify --all --rate 1000 --grace 1s
out_has "nocarry: text lists a lost override" "thirdPartyId:ov-3 b: sent \"b3\""
out_has "nocarry: text says what it may be" "(a lost v2 override, or never applied)"
out_has "nocarry: text lists the missing one" "thirdPartyId:ov-6 a: sent \"a6\""
out_has "nocarry: text: no such attribute" "Target has no such attribute"

new_scenario carry
preload "$T/carry/pre.csv"
sim_start --preload "$T/carry/pre.csv" --override
write_conf
two_rounds carry
check_eq "carry: nothing erased" 0 "$(sim_counter attributes_lost_to_override)"
sleep 1.2
pbr 0 "carry: past the grace everything matches" verify --all --rate 1000 --json --grace 1s
check_eq "carry: 18 attributes match" "18 0 0 0" "$(classes)"
finish
