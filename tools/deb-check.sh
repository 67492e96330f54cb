#!/usr/bin/env bash
# shellcheck disable=SC2016 # the sh -c '...' snippets expand their own $1
# tools/deb-check.sh - builds the pobox Debian package, installs it, checks
# what it installed, and removes it again.  Run as root on Debian (CI does);
# re-runnable.  It leaves the machine as it found it, except for the Debian
# packages it installs (tools/install-deps.sh, dpkg-dev, man-db, groff-base,
# and whatever `apt-get -f install` pulls in for the package).
#
#   tools/deb-check.sh            # build dir: build-deb (POBOX_DEB_BUILD=...)
#
# Checks, in order: the package's metadata and contents; dpkg -i; files,
# the pobox user and /var/lib/pobox (owner pobox, mode 0750);
# systemd-analyze verify of the three units (skipped without systemd);
# man pobox and man 5 pobox.conf; pkg-config and a C program linked against
# the installed libpobox; bash completion; the installed pobox delivering a
# CSV to the installed simulator, and /usr/lib/pobox/nightly doing the same
# as the pobox user in /var/lib/pobox; then dpkg -r (binary gone, conffile
# kept) and dpkg -P (config, state, user gone).  Prints "N passed, N failed"
# and exits 1 on any failure.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
root=$(pwd)
build=${POBOX_DEB_BUILD:-build-deb}
case $build in /*) ;; *) build=$root/$build ;; esac

if [ "$(id -u)" -ne 0 ]; then
	echo "deb-check: must run as root (it installs and removes a package)" >&2
	exit 2
fi

passed=0
failed=0
tmp=$(mktemp -d /tmp/pobox-deb-check.XXXXXX)
chmod 755 "$tmp" # the pobox user reads the nightly test's files here
log=$tmp/log
sim_pid=
installed_by_us=0

ok() {
	passed=$((passed + 1))
	echo "ok   - $*"
}
not_ok() {
	failed=$((failed + 1))
	echo "FAIL - $*"
}
# check DESCRIPTION COMMAND...: runs COMMAND, output to the log (shown on
# failure).
check() {
	local desc=$1
	shift
	if "$@" >"$log" 2>&1; then
		ok "$desc"
	else
		not_ok "$desc"
		sed 's/^/       | /' "$log" | head -40
	fi
}
skip() { echo "skip - $*"; }

summary() {
	echo
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}

cleanup() {
	if [ -n "$sim_pid" ]; then
		kill "$sim_pid" 2>/dev/null
		wait "$sim_pid" 2>/dev/null
	fi
	# A run that stopped half-way still leaves no package behind.
	if [ "$installed_by_us" -eq 1 ] && dpkg-query -W -f='${Status}' pobox 2>/dev/null | grep -qv 'not-installed'; then
		echo "deb-check: purging the package left installed" >&2
		dpkg -P pobox >/dev/null 2>&1
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# ---------------------------------------------------------------------
echo "== prerequisites"
bash tools/install-deps.sh || {
	not_ok "tools/install-deps.sh"
	summary
	exit 1
}
extra=()
for p in dpkg-dev man-db groff-base; do
	pkg_installed "$p" || extra+=("$p")
done
if [ ${#extra[@]} -gt 0 ]; then
	echo "deb-check: installing ${extra[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq --no-install-recommends "${extra[@]}" >/dev/null
fi
check "dpkg-shlibdeps is available (dpkg-dev)" command -v dpkg-shlibdeps

# A package left by an interrupted earlier run.
if dpkg-query -W -f='${Status}' pobox 2>/dev/null | grep -qv 'not-installed'; then
	echo "deb-check: purging pobox left installed by an earlier run"
	dpkg -P pobox >/dev/null
fi

# ---------------------------------------------------------------------
echo "== building the package in ${build#"$root"/}"
rm -f "$build"/pobox_*.deb
if ! cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
	-DPOBOX_BUILD_TESTS=OFF >"$tmp/build.log" 2>&1 ||
	! cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target package >>"$tmp/build.log" 2>&1; then
	not_ok "cmake --build $build --target package"
	tail -40 "$tmp/build.log"
	summary
	exit 1
fi
deb=
for f in "$build"/pobox_*.deb; do [ -f "$f" ] && deb=$f; done
if [ -z "$deb" ]; then
	not_ok "the package was built"
	summary
	exit 1
fi
ok "built ${deb#"$root"/}"

version=$(sed -n 's/^project(pobox VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
field() { dpkg-deb -f "$deb" "$1"; }
check "Package: pobox, Version: $version" test "$(field Package) $(field Version)" = "pobox $version"
check "Section: net" test "$(field Section)" = net
check "Maintainer: pobox developers <pobox@localhost>" \
	test "$(field Maintainer)" = "pobox developers <pobox@localhost>"
check "Depends come from dpkg-shlibdeps (libsqlite3-0, libcurl4, libpq5, libc6)" \
	sh -c 'd=$(dpkg-deb -f "$1" Depends); echo "$d"; for l in libsqlite3-0 libcurl4 libpq5 libc6 adduser; do echo "$d" | grep -q "$l" || exit 1; done' _ "$deb"
check "conffiles: /etc/pobox/pobox.conf, /etc/default/pobox-nightly" \
	sh -c 'dpkg-deb --ctrl-tarfile "$1" | tar -xO ./conffiles | sort | tr "\n" " " | grep -qx "/etc/default/pobox-nightly /etc/pobox/pobox.conf "' _ "$deb"
check "maintainer scripts postinst, prerm, postrm" \
	sh -c 'dpkg-deb --ctrl-tarfile "$1" | tar -t | grep -c -e "^./postinst$" -e "^./prerm$" -e "^./postrm$" | grep -qx 3' _ "$deb"

# ---------------------------------------------------------------------
echo "== installing"
# --path-include: images that exclude /usr/share/man still get these pages.
if dpkg -i --path-include='/usr/share/man/man1/pobox.1.gz' \
	--path-include='/usr/share/man/man5/pobox.conf.5.gz' "$deb" >"$log" 2>&1; then
	installed_by_us=1
	ok "dpkg -i ${deb##*/}"
else
	installed_by_us=1
	echo "deb-check: dpkg -i failed, trying apt-get -f install" >&2
	sed 's/^/       | /' "$log" | tail -10
	DEBIAN_FRONTEND=noninteractive apt-get -f install -y -qq >/dev/null 2>&1
	check "dpkg -i, then apt-get -f install" pkg_installed pobox
fi
if ! pkg_installed pobox; then
	not_ok "pobox is installed"
	summary
	exit 1
fi

multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
libdir=/usr/lib/$multiarch
for f in /usr/bin/pobox /usr/bin/pobox-target-sim /usr/lib/pobox/nightly; do
	check "$f is executable" test -x "$f"
done
for f in /usr/include/pobox.h "$libdir/libpobox.so.0" "$libdir/libpobox.so" \
	"$libdir/pkgconfig/pobox.pc" /usr/share/man/man1/pobox.1.gz /usr/share/man/man5/pobox.conf.5.gz \
	/usr/share/bash-completion/completions/pobox /etc/pobox/pobox.conf /etc/default/pobox-nightly \
	/lib/systemd/system/pobox.service /lib/systemd/system/pobox-nightly.service \
	/lib/systemd/system/pobox-nightly.timer; do
	check "$f is installed" test -e "$f"
done
check "ldconfig knows libpobox.so.0" sh -c 'ldconfig -p | grep -q "libpobox.so.0 "'
check "pobox --version says $version" sh -c 'pobox --version | grep -qx "pobox $1"' _ "$version"
check "pobox --help works" pobox --help
check "pobox-target-sim --help works" pobox-target-sim --help
check "/etc/pobox/pobox.conf: db = /var/lib/pobox/outbox.db" grep -qx 'db = /var/lib/pobox/outbox.db' /etc/pobox/pobox.conf
check "/etc/pobox/pobox.conf loads (pobox -c ... status on a scratch outbox)" \
	sh -c 'pobox -c /etc/pobox/pobox.conf --db "$1/conf.db" put thirdPartyId:c x=1 &&
	       pobox -c /etc/pobox/pobox.conf --db "$1/conf.db" status' _ "$tmp"

# ---------------------------------------------------------------------
echo "== the pobox user and /var/lib/pobox"
check "user pobox exists, home /var/lib/pobox" \
	sh -c 'getent passwd pobox | cut -d: -f6 | grep -qx /var/lib/pobox'
check "user pobox is a system user without a login shell" \
	sh -c 'uid=$(id -u pobox); [ "$uid" -lt 1000 ] && getent passwd pobox | cut -d: -f7 | grep -Eq "(nologin|false)$"'
check "group pobox exists" getent group pobox
check "/var/lib/pobox is pobox:pobox, mode 750" \
	sh -c 'test "$(stat -c "%U:%G %a" /var/lib/pobox)" = "pobox:pobox 750"'

# ---------------------------------------------------------------------
echo "== systemd units"
units=(/lib/systemd/system/pobox.service /lib/systemd/system/pobox-nightly.service
	/lib/systemd/system/pobox-nightly.timer)
if command -v systemd-analyze >/dev/null 2>&1; then
	check "systemd-analyze verify accepts the three units" \
		sh -c 'out=$(systemd-analyze verify "$@" 2>&1); rc=$?; echo "$out"; [ $rc -eq 0 ] && [ -z "$out" ]' _ "${units[@]}"
	if systemd-analyze security --help >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		systemd-analyze security --offline=yes /lib/systemd/system/pobox.service 2>/dev/null |
			tail -1 | sed 's/^/       /'
	fi
else
	skip "systemd-analyze not installed: units not verified"
fi
check "pobox.service runs pobox run as pobox, hardened" \
	sh -c 'u=/lib/systemd/system/pobox.service;
	       for l in "ExecStart=/usr/bin/pobox -c /etc/pobox/pobox.conf run" "User=pobox" "Restart=on-failure" \
	                "ProtectSystem=strict" "ReadWritePaths=/var/lib/pobox" "StateDirectory=pobox" \
	                "NoNewPrivileges=yes" "CapabilityBoundingSet=" "ExecReload=/bin/kill -HUP \$MAINPID"; do
	         grep -qxF "$l" "$u" || { echo "missing: $l"; exit 1; }; done'
check "pobox-nightly.timer: 02:30, Persistent, RandomizedDelaySec" \
	sh -c 'u=/lib/systemd/system/pobox-nightly.timer;
	       grep -qx "OnCalendar=\*-\*-\* 02:30" "$u" && grep -qx "Persistent=true" "$u" && grep -qx "RandomizedDelaySec=10m" "$u"'

# ---------------------------------------------------------------------
echo "== man pages"
manok() { # file|name section: renders, with NAME, without warnings
	local out
	out=$(MANPAGER=cat MANWIDTH=80 man --warnings "$@" 2>&1) || return 1
	echo "$out" | head -8
	echo "$out" | grep -q '^NAME' || return 1
	! echo "$out" | grep -Eq '^(troff|man|groff|<standard input>):|warning:'
}
check "man pobox renders" manok pobox
check "man 5 pobox.conf renders" manok 5 pobox.conf
check "man -l pobox.1.gz renders" manok -l /usr/share/man/man1/pobox.1.gz
check "pobox.conf(5) documents every key of /etc/pobox/pobox.conf" \
	sh -c 'page=$(MANPAGER=cat MANWIDTH=200 man 5 pobox.conf 2>/dev/null);
	       for k in $(sed -n "s/^#\{0,1\}\([a-z_0-9]*\) = .*/\1/p" /etc/pobox/pobox.conf); do
	         echo "$page" | grep -q "^ *$k = " || { echo "undocumented: $k"; exit 1; }; done'
check "pobox(1) names every command of pobox --help" \
	sh -c 'page=$(MANPAGER=cat MANWIDTH=200 man 1 pobox 2>/dev/null);
	       for c in $(pobox --help | sed -n "/^commands:/,/^\$/s/^  \([a-z]*\) .*/\1/p"); do
	         echo "$page" | grep -q "^   $c\( \|\$\)" || { echo "undocumented: $c"; exit 1; }; done'

# ---------------------------------------------------------------------
echo "== the C library"
check "pkg-config --cflags --libs pobox" sh -c 'pkg-config --cflags --libs pobox | tee /dev/stderr | grep -q -- -lpobox'
check "pkg-config --modversion pobox is $version" sh -c 'test "$(pkg-config --modversion pobox)" = "$1"' _ "$version"
cat >"$tmp/putone.c" <<'EOF'
#include <pobox.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	struct pobox *pb;
	char err[512];
	if (argc != 2 || pobox_open(&pb, argv[1], NULL, err, sizeof err) != 0) {
		fprintf(stderr, "open: %s\n", argc == 2 ? err : "usage");
		return 1;
	}
	struct pobox_update u;
	memset(&u, 0, sizeof u);
	u.id_type = POBOX_ID_THIRDPARTY;
	u.profile_id = "deb-check-1";
	u.attr = "loyaltyTier";
	u.value = "gold";
	u.source = "deb-check";
	int rc = pobox_put(pb, &u);
	if (rc != 0)
		fprintf(stderr, "put: %d %s\n", rc, pobox_errmsg(pb));
	pobox_close(pb);
	return rc == 0 ? 0 : 2;
}
EOF
# shellcheck disable=SC2046 # pkg-config's output is a list of words
check "a C program using pobox.h compiles and links with pkg-config" \
	cc -std=c11 -Wall -Werror -o "$tmp/putone" "$tmp/putone.c" $(pkg-config --cflags --libs pobox)
check "it loads the installed libpobox.so.0" \
	sh -c 'ldd "$1/putone" | grep libpobox | tee /dev/stderr | grep -Eq "libpobox\.so\.0 => (/usr)?/lib/$2/libpobox\.so\.0"' _ "$tmp" "$multiarch"
check "it opens an outbox and puts one update (exit 0)" "$tmp/putone" "$tmp/lib.db"
check "the update is in the outbox (pobox status: 1 pending)" \
	sh -c 'pobox --db "$1/lib.db" status | grep -Eq "^pending +1 "' _ "$tmp"

# ---------------------------------------------------------------------
echo "== bash completion"
check "completion offers the commands and options" \
	bash -c 'source /usr/share/bash-completion/completions/pobox
	         COMP_WORDS=(pobox ""); COMP_CWORD=1; _pobox; echo "${COMPREPLY[*]}" | grep -q "import" || exit 1
	         COMP_WORDS=(pobox import x.csv --ch); COMP_CWORD=3; _pobox; test "${COMPREPLY[*]}" = "--changed-only"'

# ---------------------------------------------------------------------
echo "== delivery to the installed simulator"
pobox-target-sim --port 0 >"$tmp/sim.out" 2>"$tmp/sim.log" &
sim_pid=$!
port=
for _ in $(seq 100); do
	port=$(sed -n 's/^listening on 127.0.0.1://p' "$tmp/sim.out")
	[ -n "$port" ] && break
	sleep 0.05
done
if [ -z "$port" ]; then
	not_ok "pobox-target-sim started"
	cat "$tmp/sim.log"
else
	ok "pobox-target-sim listening on 127.0.0.1:$port"
	cat >"$tmp/pobox.conf" <<EOF
# deb-check: deliver to the local simulator
db = $tmp/e2e.db
client = demo
base_url = http://127.0.0.1:$port
poll_initial = 100ms
EOF
	cat >"$tmp/export.csv" <<'EOF'
thirdPartyId,loyaltyTier,points
deb-e2e-1,gold,1200
deb-e2e-2,silver,300
deb-e2e-3,bronze,7
EOF
	check "pobox import a CSV" pobox -c "$tmp/pobox.conf" import "$tmp/export.csv"
	check "pobox flush --wait delivers it" pobox -c "$tmp/pobox.conf" flush --wait --timeout 60s
	check "the simulator holds the three profiles" \
		sh -c 'p=$(curl -sf "http://127.0.0.1:$1/_sim/profiles"); echo "$p";
		       for id in deb-e2e-1 deb-e2e-2 deb-e2e-3; do echo "$p" | grep -q "\"id\":\"$id\"" || exit 1; done
		       echo "$p" | grep -q "\"loyaltyTier\":\"silver\""' _ "$port"

	# The nightly job as the service runs it: user pobox, outbox in /var/lib/pobox.
	cat >"$tmp/nightly.conf" <<EOF
db = /var/lib/pobox/outbox.db
client = demo
base_url = http://127.0.0.1:$port
poll_initial = 100ms
EOF
	cat >"$tmp/nightly.csv" <<'EOF'
customer_id,tier
deb-nightly-1,platinum
deb-nightly-2,gold
,missing-id
EOF
	chmod 644 "$tmp/nightly.conf" "$tmp/nightly.csv"
	check "/usr/lib/pobox/nightly as pobox: import (one row rejected: exit 65) and flush" \
		sh -c 'runuser -u pobox -- env POBOX_NIGHTLY_FILE="$1/nightly.csv" POBOX_NIGHTLY_CONFIG="$1/nightly.conf" \
		       POBOX_NIGHTLY_TIMEOUT=60s POBOX_NIGHTLY_IMPORT_ARGS="--id-column customer_id --id-type thirdPartyId" \
		       /usr/lib/pobox/nightly; rc=$?; echo "exit $rc"; [ $rc -eq 65 ]' _ "$tmp"
	check "the nightly job wrote its rejects and an outbox owned by pobox" \
		sh -c 'grep -q missing-id /var/lib/pobox/nightly-rejects.csv &&
		       test "$(stat -c %U /var/lib/pobox/outbox.db)" = pobox'
	check "the simulator holds the nightly profiles" \
		sh -c 'p=$(curl -sf "http://127.0.0.1:$1/_sim/profiles");
		       echo "$p" | grep -q "\"id\":\"deb-nightly-1\"" && echo "$p" | grep -q "\"tier\":\"platinum\""' _ "$port"
	check "the nightly job stops on a missing export (exit 66, nothing flushed)" \
		sh -c 'runuser -u pobox -- env POBOX_NIGHTLY_FILE="$1/none.csv" POBOX_NIGHTLY_CONFIG="$1/nightly.conf" \
		       /usr/lib/pobox/nightly; [ $? -eq 66 ]' _ "$tmp"
	kill "$sim_pid" 2>/dev/null
	wait "$sim_pid" 2>/dev/null
	sim_pid=
fi

# ---------------------------------------------------------------------
echo "== removing"
check "dpkg -r pobox" dpkg -r pobox
check "/usr/bin/pobox is gone" test ! -e /usr/bin/pobox
check "libpobox, the units and the man pages are gone" \
	sh -c 'for f in "$1"/libpobox.so* /lib/systemd/system/pobox.service /usr/share/man/man1/pobox.1.gz; do
	         [ -e "$f" ] && { echo "left: $f"; exit 1; }; done; exit 0' _ "$libdir"
check "remove keeps the conffile, the outbox and the user" \
	sh -c 'test -f /etc/pobox/pobox.conf && test -d /var/lib/pobox && getent passwd pobox'
check "dpkg -P pobox" dpkg -P pobox
check "purge removes /etc/pobox, /etc/default/pobox-nightly and /var/lib/pobox" \
	sh -c 'test ! -e /etc/pobox && test ! -e /etc/default/pobox-nightly && test ! -e /var/lib/pobox'
check "purge removes the pobox user and group" \
	sh -c '! getent passwd pobox && ! getent group pobox'
check "dpkg no longer knows pobox" sh -c '! dpkg-query -W pobox 2>/dev/null | grep -q .'
installed_by_us=0

summary
