#!/bin/bash
# The v2 override rule: consecutive v2 batches for an id with no page visit
# between lose what only the earlier batch set.  Visits, single updates and
# v1 rows merge the earlier batch first.  --no-override disables the rule.
. "$(dirname "$0")/lib.sh"

V2=/m2/demo/v2/profile/batchUpdate
sim_start
batch $V2 $'batch=thirdPartyId,a,b\nu1,1,1\nu2,1,1\nu3,1,1\nu4,1,1\n'
batch $V2 $'batch=thirdPartyId,b,c\nu1,2,2\n'
check "u1: a (set only by the first batch) lost" \
  '{"idType":"thirdPartyId","id":"u1","attributes":{"b":"2","c":"2"}}' "$(jget "$(profiles)" profiles.0)"
check "rows lost to override" 1 "$(counter rows_lost_to_override)"
check "attributes lost to override" 1 "$(counter attributes_lost_to_override)"

curl -s -X POST "$B/_sim/visit?thirdPartyId=u2" >/dev/null
batch $V2 $'batch=thirdPartyId,b,c\nu2,2,2\n'
check "u2: a visit between batches keeps a" \
  '{"idType":"thirdPartyId","id":"u2","attributes":{"a":"1","b":"2","c":"2"}}' "$(jget "$(profiles)" profiles.1)"

curl -s "$B/m2/demo/profile/update?mbox3rdPartyId=u3&profile.d=1" >/dev/null
batch $V2 $'batch=thirdPartyId,c\nu3,2\n'
check "u3: a single update between batches keeps a" \
  '{"idType":"thirdPartyId","id":"u3","attributes":{"a":"1","b":"1","c":"2","d":"1"}}' "$(jget "$(profiles)" profiles.2)"

batch $V2 $'batch=thirdPartyId,c\nu4,2\n'
batch $V2 $'batch=thirdPartyId,d\nu4,3\n'
check "u4: three v2 batches: only the last one's values survive" \
  '{"idType":"thirdPartyId","id":"u4","attributes":{"d":"3"}}' "$(jget "$(profiles)" profiles.3)"

# earlier values from before the first batch survive (they were merged)
curl -s -X POST "$B/_sim/visit?thirdPartyId=u5" >/dev/null
curl -s "$B/m2/demo/profile/update?mbox3rdPartyId=u5&profile.a=0" >/dev/null
batch $V2 $'batch=thirdPartyId,a\nu5,1\n'
batch $V2 $'batch=thirdPartyId,b\nu5,1\n'
check "u5: value from before the lost batch comes back" \
  '{"idType":"thirdPartyId","id":"u5","attributes":{"a":"0","b":"1"}}' "$(jget "$(profiles)" profiles.4)"

# the same id twice in one batch is not an override
batch $V2 $'batch=thirdPartyId,a,b\nu6,1,\nu6,,2\n'
check "u6: one batch, two rows: both kept" \
  '{"idType":"thirdPartyId","id":"u6","attributes":{"a":"1","b":"2"}}' "$(jget "$(profiles)" profiles.5)"

# switch the rule off at run time
curl -s -X POST --data 'override=0' "$B/_sim/faults" >/dev/null
batch $V2 $'batch=thirdPartyId,a\nu7,1\n'
batch $V2 $'batch=thirdPartyId,b\nu7,1\n'
check "u7: override off at run time: both kept" \
  '{"idType":"thirdPartyId","id":"u7","attributes":{"a":"1","b":"1"}}' "$(jget "$(profiles)" profiles.6)"
sim_stop

sim_start --no-override
batch $V2 $'batch=thirdPartyId,a\nu1,1\n'
batch $V2 $'batch=thirdPartyId,b\nu1,1\n'
check "--no-override: both kept" \
  '{"profiles":[{"idType":"thirdPartyId","id":"u1","attributes":{"a":"1","b":"1"}}]}' "$(profiles)"
check "--no-override: nothing lost" 0 "$(counter rows_lost_to_override)"
sim_stop

# --- shuffle: batches submitted within the window are applied in a
# seeded random order (same seed, same order); without it, in order.
run_shuffle() {
	sim_start --seed "$1" --shuffle-window-ms "$2" --no-override --bulk-per-minute 0
	for i in 0 1 2 3 4 5 6 7; do
		batch $V2 "batch=thirdPartyId,v
x,$i"
	done
	curl -s -X POST "$B/_sim/process" >/dev/null
	jget "$(profiles)" profiles.0.attributes.v
	sim_stop >/dev/null
}
check "no shuffle window: last batch wins" 7 "$(run_shuffle 1 0)"
A=$(run_shuffle 42 60000)
check "same seed, same order" "$A" "$(run_shuffle 42 60000)"
LAST=
for s in 1 2 3 4 5 6; do LAST="$LAST$(run_shuffle $s 60000)"; done
check_match "shuffle window: some seed applies an earlier batch last" '[0-6]' "$LAST"

finish
