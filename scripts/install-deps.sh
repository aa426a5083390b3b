#!/bin/sh
# Install the Debian packages from deps/debian.txt that are not yet installed.
# Usage: scripts/install-deps.sh SECTION...   (e.g. build test)
# Never starts services: Debian's policy-rc.d (if present) blocks that, and the
# debconf answers below keep postfix and slapd from writing a system config.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
list="$here/deps/debian.txt"
[ $# -gt 0 ] || set -- build
want=""
for section in "$@"; do
	pkgs=$(awk -v s="[$section]" '
		/^\[/ { on = ($0 == s); next }
		on && NF && $1 !~ /^#/ { print $1 }' "$list")
	[ -n "$pkgs" ] || { echo "install-deps: unknown or empty section '$section'" >&2; exit 2; }
	want="$want $pkgs"
done
missing=""
for p in $want; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in *"install ok installed"*) ;; *) missing="$missing $p" ;; esac
done
if [ -z "$missing" ]; then
	echo "install-deps: all packages present ($*)"
	exit 0
fi
echo "install-deps: installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
# Preseed so that the packages install without a system configuration of their own.
printf '%s\n' \
	'postfix postfix/main_mailer_type select No configuration' \
	'postfix postfix/mailname string localhost' \
	'slapd slapd/no_configuration boolean true' | $SUDO debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
# The package lists may be absent or stale on a fresh machine: update once if needed.
if ! $SUDO apt-get install -y -q --no-install-recommends $missing; then
	$SUDO apt-get update -q
	$SUDO apt-get install -y -q --no-install-recommends $missing
fi
