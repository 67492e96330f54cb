#!/usr/bin/env bash
# Requeue must respect coalescing even after delivered history was pruned:
# a dead value of (P, A), then a NEWER value of (P, A) delivered, then
# `purge --delivered --yes` (or run's retention housekeeping) folds that
# newer value into profile_state.  `requeue --all` must mark the old dead
# value superseded (v_profile_state shows a newer value was sent) - not send
# it, which would overwrite the newer value at Target with the older one.
. "$(cd "$(dirname "$0")" && pwd)/ops_lib.sh" "$@"

sim_start --error-rate 1 --error-codes 500
write_conf "max_attempts = 2" "backoff_base = 10ms" "backoff_cap = 50ms"
put_logged thirdPartyId p1 a=old
flush_wait "old value dies" 65 30
OLD=$(seq_of thirdPartyId p1 a old)
check_eq "old is dead" dead "$(vstate "$OLD")"
sim_faults 'error_rate=0'
put_logged thirdPartyId p1 a=new
flush_wait "newer value delivered" 0 30
check_eq "Target holds new" new "$(sim_get thirdPartyId p1 a)"
pbr 0 "purge --delivered --yes" purge --delivered --yes
check_eq "v_profile_state keeps new" new "$(q "SELECT value FROM v_profile_state WHERE profile_id = 'p1' AND attr = 'a'")"
pbr 0 "requeue --all" requeue --all
check_eq "requeue: old is superseded, not pending" "0" \
	"$(q "SELECT count(*) FROM v_updates WHERE value = 'old' AND state = 'pending'")"
flush_wait "after requeue" 0 30
check_eq "Target still holds the newer value" new "$(sim_get thirdPartyId p1 a)"
finish
