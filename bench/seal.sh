#!/bin/sh
# Sealing throughput: sealgate in process vs a bare librnp loop vs one gpg
# process per message, per message size; prints messages/s and ratios.
# usage: bench/seal.sh [BUILD_DIR]   (needs a built libsealgate.a)
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
T=$(mktemp -d)
trap 'gpgconf --homedir "$T/g" --kill all >/dev/null 2>&1 || true; rm -rf "$T"' EXIT
mkdir -m 700 "$T/g"
gpg --homedir "$T/g" --batch --passphrase '' --quick-gen-key 'Bob <bob@b.test>' future-default default never 2>/dev/null
gpg --homedir "$T/g" --armor --export bob@b.test > "$T/bob.pub"
cc -O2 -D_GNU_SOURCE -I"$SRC/src" -I"$BUILD/gen" "$SRC/bench/seal-bench.c" "$BUILD/libsealgate.a" -o "$T/seal-bench" \
   $(pkg-config --cflags --libs librnp gmime-3.0 openssl libevent_core libevent_pthreads libevent_openssl \
     libmicrohttpd sqlite3 libpq) -lldap -llber -lpthread
for spec in 4096:300:50 1048576:30:10; do
	size=${spec%%:*}; rest=${spec#*:}; count=${rest%%:*}; gcount=${rest#*:}
	set -- $("$T/seal-bench" "$T/bob.pub" bob@b.test "$size" "$count")
	sg=${2%/s}; rn=${4%/s}
	head -c "$size" /dev/zero | tr '\0' 'a' > "$T/msg"
	t0=$(date +%s.%N)
	i=0
	while [ $i -lt "$gcount" ]; do
		gpg --homedir "$T/g" --batch --yes --trust-model always --armor -z 0 -r bob@b.test \
		    -o "$T/out.asc" -e "$T/msg" 2>/dev/null
		i=$((i + 1))
	done
	t1=$(date +%s.%N)
	gp=$(echo "$gcount / ($t1 - $t0)" | bc -l)
	printf '%8s bytes: sealgate %8.1f msg/s  librnp %8.1f msg/s  gpg %6.1f msg/s  sealgate/librnp %.2f  sealgate/gpg %.1f\n' \
	       "$size" "$sg" "$rn" "$gp" "$(echo "$sg / $rn" | bc -l)" "$(echo "$sg / $gp" | bc -l)"
done
