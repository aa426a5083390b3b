#!/bin/sh
# Peak memory of `sealgate seal` and `sealgate unseal` for one large message
# (default 50 MiB), encrypt + sign to one recipient, OpenPGP (Ed25519/Cv25519)
# and S/MIME (RSA-2048; AES-256-CBC and AES-256-GCM). Peak RSS comes from
# GNU time (%M, ru_maxrss of the process); the baseline is the message size
# itself, measured in the same run, so the ratio is peak RSS / message size
# (goal: about 3x; the process holds the input and the output at least).
# usage: bench/memory.sh [BUILD_DIR]   MEM_BENCH_MIB: message size (default 50)
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
SG=$BUILD/sealgate
MIB=${MEM_BENCH_MIB:-50}
T=$(mktemp -d)
cleanup() {
	gpgconf --homedir "$T/g" --kill all >/dev/null 2>&1 || true
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE
[ -x "$SG" ] || { echo "memory.sh: no $SG (build first)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "memory.sh: needs GNU time (/usr/bin/time)" >&2; exit 1; }

# ---- keys ----
G="gpg --homedir $T/g --batch --yes --pinentry-mode loopback --passphrase="
mkdir -m 700 "$T/g"
$G --quick-gen-key 'Alice <alice@a.test>' future-default default never 2>/dev/null
$G --quick-gen-key 'Bob <bob@b.test>' future-default default never 2>/dev/null
$G --armor --export-secret-keys alice@a.test > "$T/alice.asc"
$G --armor --export-secret-keys bob@b.test > "$T/bob.asc"
mkcert() { # name addr pemfile
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$1" -keyout "$T/k" -out "$T/c" \
		-addext "subjectAltName=email:$2" -addext "extendedKeyUsage=emailProtection" 2>/dev/null
	cat "$T/k" "$T/c" > "$3"
	rm -f "$T/k" "$T/c"
}
mkcert Alice alice@a.test "$T/alice.pem"
mkcert Bob bob@b.test "$T/bob.pem"

# ---- the message: text lines, CRLF ----
{
	printf 'From: alice@a.test\r\nTo: bob@b.test\r\nSubject: memory\r\nMIME-Version: 1.0\r\n'
	printf 'Content-Type: text/plain; charset=us-ascii\r\n\r\n'
	python3 -c "
import sys
line = b'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-memory-bench\r\n'
n = $MIB * 1024 * 1024 // len(line)
sys.stdout.buffer.write(line * n)"
} > "$T/msg"
size=$(wc -c < "$T/msg")

# peak RSS in bytes of: "$@" < in > out
peak() { # in out cmd...
	in=$1 out=$2
	shift 2
	/usr/bin/time -f '%M' -o "$T/rss" "$@" < "$in" > "$out" 2>"$T/err" || {
		echo "memory.sh: $* failed:" >&2
		cat "$T/err" >&2
		exit 1
	}
	echo $(($(tail -n 1 "$T/rss") * 1024))
}

row() { # label seal-args... -- unseal-args...
	label=$1
	shift
	sargs=""
	while [ "$1" != -- ]; do sargs="$sargs $1"; shift; done
	shift
	s=$(peak "$T/msg" "$T/sealed" $SG seal $sargs)
	u=$(peak "$T/sealed" "$T/back" $SG unseal "$@")
	cmp -s "$T/msg" "$T/back" || { echo "memory.sh: $label: unsealed message differs" >&2; exit 1; }
	printf '%-12s %10d %10d %6.2f %10d %6.2f\n' "$label" "$size" "$s" \
	       "$(echo "$s / $size" | bc -l)" "$u" "$(echo "$u / $size" | bc -l)"
}

printf '%-12s %10s %10s %6s %10s %6s\n' format 'msg bytes' 'seal RSS' 'x' 'unseal RSS' 'x'
row pgp --pgp --to bob@b.test --sign-as alice@a.test --key "$T/alice.asc" --key "$T/bob.asc" -- \
	--key "$T/bob.asc" --verify-key "$T/alice.asc"
row smime-cbc --smime --to bob@b.test --sign-as alice@a.test --key "$T/alice.pem" --key "$T/bob.pem" -- \
	--key "$T/bob.pem" --verify-key "$T/alice.pem"
row smime-gcm --smime --gcm --to bob@b.test --sign-as alice@a.test --key "$T/alice.pem" --key "$T/bob.pem" -- \
	--key "$T/bob.pem" --verify-key "$T/alice.pem"
echo "peak RSS (GNU time %M) / message size; encrypt + sign to one recipient; goal about 3x"
