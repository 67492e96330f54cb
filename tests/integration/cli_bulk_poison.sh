#!/usr/bin/env bash
# One poison row: the simulator refuses a whole batch only for file-level
# problems, so we make one row big enough that any batch holding it is
# refused as too large (sim --max-batch-bytes 6000; pobox's own byte limit
# stays at its default, so pobox cannot know in advance), while every batch
# of ordinary rows fits.  pobox must bisect the refused batch, deliver every
# other row, and dead-letter only the poison profile's updates (state 'dead'
# with a last_error in v_updates).  The store equals the newest enqueued
# values of every other profile.
. "$(dirname "$0")/bulk_lib.sh"
seed=${BULK_SEED:-7801}
echo "# seed $seed"

new_scenario poison
python3 "$EXPECT" gen --seed "$seed" --out "$T/poison/gen" --log "$LOG" --tp 200 --pc 20 \
	--attrs 4 --updates 1000 --files 3 >/dev/null
PRELOAD=$T/poison/gen/preload.csv
sim_start --seed "$seed" --preload "$PRELOAD" --max-batch-bytes 6000
BULK_MAX_VALUE_CHARS=20000 write_conf "max_batch_rows = 20"
enqueue_imports "$T/poison/gen"
big=$(head -c 8000 /dev/zero | tr '\0' 'x')
put_logged thirdPartyId poison-1 a0="$big" a1="small value of the poison profile"
# more ordinary updates after it, some to profiles that may share its batch
put_logged thirdPartyId tp-1 a0="after the poison"
put_logged thirdPartyId tp-2 a3="after, too"

flush_wait poison 65 120   # the poison rows end dead: 65
check_store "poison: every other profile delivered" --preload "$PRELOAD" --exclude thirdPartyId:poison-1
check_eq "poison: only the poison profile's updates are dead" "poison-1" \
	"$(q "SELECT group_concat(DISTINCT profile_id) FROM v_updates WHERE state = 'dead'")"
check_eq "poison: both of its updates are dead" 2 \
	"$(q "SELECT count(*) FROM v_updates WHERE state = 'dead' AND profile_id = 'poison-1'")"
check_eq "poison: dead updates say why" 0 \
	"$(q "SELECT count(*) FROM v_updates WHERE state = 'dead' AND coalesce(last_error, '') = ''")"
echo "# dead reason: $(q "SELECT last_error FROM v_updates WHERE state = 'dead' LIMIT 1" | head -c 200)"
check_eq "poison: nothing pending or batched" 0 "$(q "SELECT count(*) FROM v_updates WHERE state IN ('pending','batched')")"
check_eq "poison: every other update delivered or superseded" \
	"$(( $(grep -c . "$LOG") - 2 ))" "$(q "SELECT count(*) FROM v_updates WHERE state IN ('delivered','superseded')")"
check_ge "poison: the simulator refused the big batch (HTTP 400)" 1 "$(sim_fault_total refused)"
check_ge "poison: pobox bisected (split batches)" 1 "$(q "SELECT count(*) FROM v_batches WHERE state = 'split'")"
check_eq "poison: no unfinished batch" 0 \
	"$(q "SELECT count(*) FROM v_batches WHERE state NOT IN ('done','dead','split','replaced')")"
finish
