#!/bin/sh
# Sealing throughput, encrypt + sign, for OpenPGP (Ed25519/Cv25519) and
# S/MIME (RSA-2048), 10 KiB and 1 MiB messages, 1 and 10 recipients:
#   sealgate  sg_seal in process (bench/seal-bench.c linked to libsealgate)
#   bare      the same crypto on the same bytes in a bare library loop
#             (librnp rnp_op_encrypt / OpenSSL CMS_sign + CMS_encrypt),
#             alternated with the sealgate loop in slices, same keys
#   tool      one `gpg -s -e` process per message / `openssl cms -sign` then
#             `openssl cms -encrypt` (two processes) per message
# Prints messages/s, MB/s (message bytes in) and the ratios sealgate/bare
# (goal >= 0.8) and sealgate/tool (goal >= 15 for pgp, 10 KiB, 1 recipient);
# then the peak RSS of the sealgate CLI sealing and unsealing a 50 MiB
# message (PGP; goal about 3x the message size).
# usage: bench/seal.sh [BUILD_DIR]   (needs a built libsealgate.a and sealgate)
# SEAL_BENCH_SECS: seconds each measurement runs for (default 1; at least
# 3 messages each). Raise it on a loaded machine for steadier figures.
# SEAL_BENCH_FORMATS: which rows to run (default "pgp smime").
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
SECS=${SEAL_BENCH_SECS:-1}
FORMATS=${SEAL_BENCH_FORMATS:-pgp smime}
NR=10 # recipients in the multi-recipient rows
T=$(mktemp -d)
cleanup() {
	gpgconf --homedir "$T/g" --kill all >/dev/null 2>&1 || true
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE
G="gpg --homedir $T/g --batch --yes --pinentry-mode loopback --passphrase="

# ---- keys: OpenPGP Ed25519/Cv25519 in a throwaway GnuPG home ----
mkdir -m 700 "$T/g"
$G --quick-gen-key 'Alice <alice@a.test>' future-default default never 2>/dev/null
$G --armor --export-secret-keys alice@a.test > "$T/alice.sec"
i=0
while [ $i -lt $NR ]; do
	$G --quick-gen-key "Bob$i <bob$i@b.test>" future-default default never 2>/dev/null
	$G --armor --export "bob$i@b.test" > "$T/bob$i.pub"
	i=$((i + 1))
done

# ---- keys: S/MIME RSA-2048 self-signed certificates ----
mkcert() { # name addr certfile keyfile
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$1" -keyout "$4" -out "$3" \
		-addext "subjectAltName=email:$2" -addext "extendedKeyUsage=emailProtection" 2>/dev/null
}
mkcert Alice alice@a.test "$T/alice.crt" "$T/alice.key"
cat "$T/alice.key" "$T/alice.crt" > "$T/alice.pem"
i=0
while [ $i -lt $NR ]; do
	mkcert "Bob$i" "bob$i@b.test" "$T/bob$i.crt" "$T/bob$i.key"
	i=$((i + 1))
done

cc -O2 -D_GNU_SOURCE -I"$SRC/src" -I"$BUILD/gen" "$SRC/bench/seal-bench.c" "$BUILD/libsealgate.a" -o "$T/seal-bench" \
   $(pkg-config --cflags --libs librnp gmime-3.0 openssl libevent_core libevent_pthreads libevent_openssl \
     libmicrohttpd sqlite3 libpq) -lldap -llber -lpthread

# files for recipients 0..n-1: list EXT N
list() {
	j=0
	while [ $j -lt "$2" ]; do
		printf '%s ' "$T/bob$j.$1"
		j=$((j + 1))
	done
}
# gpg -r options for recipients 0..n-1
gpg_recips() {
	j=0
	while [ $j -lt "$1" ]; do
		printf -- '-r bob%s@b.test ' "$j"
		j=$((j + 1))
	done
}

# one tool process (pair) per message, for at least SECS s and 3 messages: prints msg/s
tool_rate() { # fmt nrecips
	t0=$(date +%s.%N)
	k=0
	while :; do
		if [ "$1" = pgp ]; then
			$G --trust-model always --armor -z 0 --cipher-algo AES256 --digest-algo SHA256 \
			   -u alice@a.test $(gpg_recips "$2") -o "$T/out" -s -e "$T/msg" 2>/dev/null
		else
			openssl cms -sign -binary -md sha256 -signer "$T/alice.pem" -in "$T/msg" -out "$T/signed"
			openssl cms -encrypt -binary -aes256 -in "$T/signed" -out "$T/out" $(list crt "$2")
		fi
		k=$((k + 1))
		t1=$(date +%s.%N)
		if [ $k -ge 3 ] && [ "$(echo "$t1 - $t0 >= $SECS" | bc -l)" = 1 ]; then
			break
		fi
	done
	echo "$k / ($t1 - $t0)" | bc -l
}

printf '%-5s %7s %3s | %9s %7s | %9s %7s | %8s | %8s %8s\n' \
       fmt size rcp 'sg msg/s' 'sg MB/s' 'bare m/s' 'bare MB' 'tool m/s' 'sg/bare' 'sg/tool'
for fmt in $FORMATS; do
	for size in 10240 1048576; do
		for n in 1 $NR; do
			"$T/seal-bench" msg "$size" > "$T/msg"
			bytes=$(wc -c < "$T/msg")
			if [ $fmt = pgp ]; then
				r=$("$T/seal-bench" pgp "$size" "$SECS" "$T/alice.sec" $(list pub "$n"))
			else
				r=$("$T/seal-bench" smime "$size" "$SECS" "$T/alice.pem" $(list crt "$n"))
			fi
			set -- $r
			sg=${2%/s}; bare=${4%/s}
			tool=$(tool_rate $fmt "$n")
			printf '%-5s %7s %3s | %9.1f %7.2f | %9.1f %7.2f | %8.1f | %8.2f %8.1f\n' \
			       $fmt "$size" "$n" "$sg" "$(echo "$sg * $bytes / 1000000" | bc -l)" \
			       "$bare" "$(echo "$bare * $bytes / 1000000" | bc -l)" "$tool" \
			       "$(echo "$sg / $bare" | bc -l)" "$(echo "$sg / $tool" | bc -l)"
		done
	done
done
# ---- memory: peak RSS of `sealgate seal` / `unseal` on a 50 MiB message
# (goal: about 3x the message), PGP encrypt + sign to one recipient ----
case " $FORMATS " in *" pgp "*)
	"$T/seal-bench" msg 52428800 > "$T/big"
	$G --armor --export alice@a.test > "$T/alice.pub"
	$G --armor --export-secret-keys bob0@b.test > "$T/bob0.sec"
	bytes=$(wc -c < "$T/big")
	for step in seal unseal; do
		if [ $step = seal ]; then
			/usr/bin/time -f %M -o "$T/rss" "$BUILD/sealgate" seal --to bob0@b.test --key "$T/bob0.pub" \
				--sign-as alice@a.test --key "$T/alice.sec" < "$T/big" > "$T/big.sealed"
		else
			/usr/bin/time -f %M -o "$T/rss" "$BUILD/sealgate" unseal --key "$T/bob0.sec" \
				--verify-key "$T/alice.pub" < "$T/big.sealed" > "$T/big.out" 2>/dev/null
		fi
		kb=$(tail -n 1 "$T/rss")
		printf 'memory: pgp %s of %s bytes: peak RSS %.1f MiB = %.2f x the message\n' $step "$bytes" \
		       "$(echo "$kb / 1024" | bc -l)" "$(echo "$kb * 1024 / $bytes" | bc -l)"
	done
	;;
esac
echo "pgp: Ed25519/Cv25519, AES-256, SHA-256, armored, uncompressed; smime: RSA-2048, SHA-256, AES-256-CBC"
echo "tool = gpg -s -e (pgp) / openssl cms -sign + openssl cms -encrypt (smime), once per message"
echo "goals: sg/bare >= 0.8; sg/tool >= 15 for pgp 10240 bytes 1 recipient"
