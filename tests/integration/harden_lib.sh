# Shared helpers for the hardening tests (tests/integration/cli_harden_*.sh:
# bad input, damaged outboxes, full disks), sourced with the build dir as $1.
#
# Builds on ops_lib.sh (pass/fail/check_eq, q, pbr, out_has, $T, $DB, $CONF)
# but needs no simulator: write_local_conf writes a config with only the
# outbox and the given extra lines.

# shellcheck source=ops_lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/ops_lib.sh" "$@"

# write_local_conf [KEY = VALUE lines...]
write_local_conf() {
	{
		echo "[pobox]"
		echo "db = $DB"
		echo "synchronous = NORMAL"
		for l in "$@"; do echo "$l"; done
	} >"$CONF"
}

# out_lacks NAME TEXT: the last pbr's stdout+stderr does not contain TEXT.
out_lacks() {
	if cat "$T/r.out" "$T/r.err" | grep -qF -- "$2"; then
		fail "$1" "unexpected '$2' in:
$(cat "$T/r.out" "$T/r.err" | head -30)"
	else pass "$1"; fi
}

# small_fs DIR SIZE: mounts a tmpfs of SIZE (e.g. 2m, 64m) on DIR (run the
# test in its own mount namespace first: harden_ns.sh); unmounted on exit.
SMALL_FS=
small_fs() {
	mkdir -p "$1"
	if ! mount -t tmpfs -o "size=$2" tmpfs "$1"; then
		fail "mount a $2 tmpfs on $1" "mount failed (needs root or user namespaces)"
		finish
	fi
	SMALL_FS="$SMALL_FS $1"
	trap 'for m in $SMALL_FS; do umount "$m"; done; bulk_cleanup' EXIT
}

# free_bytes DIR: bytes available to unprivileged users on DIR's file system.
free_bytes() { df -B1 --output=avail "$1" | tail -1 | tr -d ' '; }
