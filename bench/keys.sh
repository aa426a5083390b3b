#!/bin/sh
# Key-store look-ups per second and p50/p99 latency: SQLite (file in a temp
# dir), then PostgreSQL 15 started in a temp dir when its binaries exist.
# These are store look-ups without an in-process cache (not built yet).
# usage: bench/keys.sh [BUILD_DIR] [N_KEYS] [N_LOOKUPS]
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$HERE/build}
NKEYS=${2:-1000}
NLOOK=${3:-100000}
T=$(mktemp -d /tmp/sg-bench-keys.XXXXXX)
chmod 711 "$T"   # the postgres user must reach $T/pg
PGBIN=/usr/lib/postgresql/15/bin
cleanup() {
	if [ -f "$T/pg/data/postmaster.pid" ]; then
		(cd / && runuser -u postgres -- $PGBIN/pg_ctl -D "$T/pg/data" -m fast -w stop >/dev/null 2>&1) || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE
[ -f "$BUILD/libsealgate.a" ] || { echo "build first (cmake --build $BUILD)" >&2; exit 1; }
# shellcheck disable=SC2046
cc -O2 -D_GNU_SOURCE -I"$HERE/src" -o "$T/keys-bench" "$HERE/bench/keys-bench.c" \
	"$BUILD/libsealgate.a" $(pkg-config --libs libevent_core libevent_pthreads libevent_openssl \
	openssl librnp gmime-3.0 libmicrohttpd sqlite3 libpq) -lldap -llber -lpthread
"$T/keys-bench" "sqlite:$T/bench.db" "$NKEYS" "$NLOOK"
if [ -x "$PGBIN/initdb" ] && id postgres >/dev/null 2>&1; then
	mkdir -p "$T/pg" && chown postgres:postgres "$T/pg"
	PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
	cd /
	runuser -u postgres -- $PGBIN/initdb -D "$T/pg/data" -U postgres -A trust --no-sync -E UTF8 \
		--locale=C.UTF-8 >"$T/initdb.log" 2>&1
	runuser -u postgres -- $PGBIN/pg_ctl -D "$T/pg/data" -l "$T/pg/pg.log" -w -t 30 \
		-o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$T/pg -c fsync=off" \
		start >/dev/null
	runuser -u postgres -- $PGBIN/createdb -h 127.0.0.1 -p "$PORT" -U postgres bench
	"$T/keys-bench" "postgresql://postgres@127.0.0.1:$PORT/bench" "$NKEYS" "$((NLOOK / 5))"
fi
