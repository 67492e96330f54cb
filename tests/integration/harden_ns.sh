# Sourced first by the hardening tests that mount small file systems, as
#   . "$(dirname "$0")/harden_ns.sh" "$0" "$@"
# Re-runs the test in its own mount namespace (as root, or as an
# unprivileged user mapped to root), so what it mounts vanishes with it
# whatever happens; inside, IN_NS=1.
if [ "${IN_NS:-0}" != 1 ]; then
	_ns_script=$1; shift
	if [ "$(id -u)" = 0 ]; then
		IN_NS=1 exec unshare --mount --propagation private bash "$_ns_script" "$@"
	else
		IN_NS=1 exec unshare --user --map-root-user --mount --propagation private bash "$_ns_script" "$@"
	fi
fi
