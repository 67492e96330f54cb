#!/usr/bin/env bash
# NaN and infinities are no number pobox can use: every duration, size and
# share key refuses them (file:line, exit 78) instead of silently turning a
# limit off (and, for durations and sizes, converting NaN to an integer,
# which UBSan flags); so do the duration options of the commands.  A bad
# log_level names its file and line like every other key.
. "$(cd "$(dirname "$0")" && pwd)/harden_lib.sh" "$@"
write_local_conf
pbr 0 "an outbox to look at" put thirdPartyId:c1 a=1

# every key of these types, read from the table itself so new keys are covered
keys=$(grep -oE '^\s*\{"[a-z0-9_]+", K_(DURATION|SIZE|SHARE)' "$HERE/../../src/config.c" |
	sed -E 's/.*"([a-z0-9_]+)".*/\1/')
check_ge "found the duration, size and share keys" 19 "$(echo "$keys" | wc -l)"
for k in $keys; do
	for v in nan NaN -nan inf -inf infinity 1e999; do
		{ echo "[pobox]"; echo "db = $DB"; echo "$k = $v"; } >"$T/bad.conf"
		"$POBOX" -c "$T/bad.conf" status >"$T/r.out" 2>"$T/r.err"
		rc=$?
		if [ "$rc" = 78 ] && grep -qF "bad.conf:3: $k = '$v'" "$T/r.err"; then
			pass "$k = $v: refused at bad.conf:3"
		else
			fail "$k = $v: refused at bad.conf:3" "exit $rc: $(cat "$T/r.err")"
		fi
	done
	env "POBOX_$(echo "$k" | tr a-z A-Z)=nan" "$POBOX" --db "$DB" status >"$T/r.out" 2>"$T/r.err"
	check_eq "$k from the environment: nan refused" 78 "$?"
done
# the limits still take real numbers
{ echo "[pobox]"; echo "db = $DB"; echo "max_outbox_size = 1.5G"; echo "fleet_share = 0.25"; echo "busy_timeout = 2.5s"; } >"$T/ok.conf"
pbr 0 "real numbers are still fine" -c "$T/ok.conf" status

# command-line durations
pbr 64 "flush --timeout nan" flush --wait --timeout nan
pbr 64 "flush --timeout inf" flush --wait --timeout inf
pbr 64 "dead --since nan" dead --since nan
pbr 64 "purge --before nan" purge --delivered --before nan --dry-run

# log_level: file and line
{ echo "[pobox]"; echo "db = $DB"; echo "log_level = loud"; } >"$T/bad.conf"
"$POBOX" -c "$T/bad.conf" status >"$T/r.out" 2>"$T/r.err"
check_eq "log_level = loud: exit 78" 78 "$?"
out_has "log_level = loud: file and line" "bad.conf:3: log_level = 'loud': expected error, warn, info or debug"
finish
