#!/bin/sh
# Remote-key look-ups (keys/remote.h): cached look-ups per second and
# p50/p99 with the in-process cache (1 and 2 threads; goal >= 100,000/s,
# p99 <= 50 us), then cold WKD and LDAP look-ups on loopback next to
# `gpg --locate-keys` (WKD over HTTPS through dirmngr) for the same key;
# and the mail path's find_encrypt, store vs. remote cache.
# usage: bench/lookup.sh [BUILD_DIR] [N_LOOKUPS] [N_COLD] [N_FIND]
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$HERE/build}
NLOOK=${2:-1000000}
NCOLD=${3:-50}
NFIND=${4:-20000}
T=$(mktemp -d /tmp/sg-bench-lookup.XXXXXX)
trap 'rm -rf "$T"' EXIT
[ -f "$BUILD/libsealgate.a" ] || { echo "build first (cmake --build $BUILD)" >&2; exit 1; }
# shellcheck disable=SC2046
cc -O2 -D_GNU_SOURCE -I"$HERE/src" -I"$BUILD/gen" -o "$T/lookup-bench" "$HERE/bench/lookup-bench.c" \
	"$BUILD/libsealgate.a" $(pkg-config --libs libevent_core libevent_pthreads libevent_openssl \
	openssl librnp gmime-3.0 libmicrohttpd sqlite3 libpq libcurl libunbound) -lldap -llber -lpthread
"$T/lookup-bench" cached 200 "$NLOOK" 1 "sqlite:$T/c1.db"
"$T/lookup-bench" cached 200 "$NLOOK" 2 "sqlite:$T/c2.db"
# The mail path (sg_keys_find_encrypt): a key in the store vs. one known only
# from the remote cache (each look-up parses the key: far fewer per second).
"$T/lookup-bench" find 200 "$NFIND" "sqlite:$T/f.db"
SEALGATE_BIN=${SEALGATE_BIN:-$BUILD/sealgate} /usr/bin/python3 "$HERE/bench/lookup_cold.py" "$T" "$T/lookup-bench" "$NCOLD"
