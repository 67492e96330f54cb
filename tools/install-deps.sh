#!/usr/bin/env bash
# Installs the Debian packages pobox needs to build, test, benchmark and run
# its demo.  Idempotent: does nothing when everything is present, and runs
# `apt-get update` at most once, only when something is missing.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git
  libsqlite3-dev sqlite3        # the outbox
  libcurl4-openssl-dev curl     # HTTP client (and plain curl for simulator tests)
  libcsv-dev                    # CSV import and batch files
  zlib1g-dev                    # payloads at rest
  libexpat1-dev                 # XML answers from Target
  libinih-dev                   # the INI config file
  libmicrohttpd-dev             # the Target simulator
  libpq-dev                     # the fleet coordinator client (src/fleet.c)
  postgresql                    # fleet tests start a real PostgreSQL server
  libcmocka-dev                 # unit tests
  wrk                           # simulator/benchmark load generator
  time                          # /usr/bin/time for peak-RSS figures
  dpkg-dev                      # dpkg-shlibdeps for the .deb's Depends (CPack)
  man-db groff-base             # man page checks in tools/deb-check.sh
  python3                       # JSON checks in the integration tests
  jq                            # JSON in the credential and verify tests
  tmux                          # terminal tests (progress line, status --watch)
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
