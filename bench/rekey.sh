#!/bin/bash
# Re-keying benchmark: sealgate rekey over a Maildir of N_SMALL 10 KiB and
# N_LARGE 1 MiB PGP/MIME messages, next to copy+fsync of the same files
# (the floor: every file is rewritten) and to a full unseal + seal.
# Usage: bench/rekey.sh [BUILD_DIR]   (N_SMALL=10000 N_LARGE=2000 by default)
set -euo pipefail
BUILD=${1:-build}
SG=$(realpath "$BUILD/sealgate")
N_SMALL=${N_SMALL:-10000}
N_LARGE=${N_LARGE:-2000}
N_FULL=${N_FULL:-50}
W=$(mktemp -d /tmp/sg-rekey-bench.XXXXXX)
trap 'gpgconf --homedir "$W/g" --kill all >/dev/null 2>&1; rm -rf "$W"' EXIT
G="gpg --homedir $W/g --batch --yes --pinentry-mode loopback --passphrase="
mkdir -m700 "$W/g"
for n in old new; do
	$G --quick-gen-key "$n <$n@b.test>" future-default default never 2>/dev/null
	$G --armor --export $n@b.test >"$W/$n.pub"
	$G --armor --export-secret-keys $n@b.test >"$W/$n.sec"
done

# one ciphertext per size, unique headers per file (fast to lay out)
body() {
	printf 'MIME-Version: 1.0\r\nContent-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b"\r\n\r\n--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n'
	cat "$1"
	printf '\r\n--b--\r\n'
}
lay_out() { # dir count bodyfile
	mkdir -p "$1/cur" "$1/new" "$1/tmp"
	python3 - "$1" "$2" "$3" <<'PY'
import os, sys
d, n, body = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], "rb").read()
for i in range(n):
    m = b"Message-ID: <%d@b.test>\r\n" % i + body
    with open(f"{d}/cur/17{i:08d}.M{i}.bench,S={len(m)}:2,S", "wb") as f:
        f.write(m)
PY
}
for s in small large; do
	sz=$([ $s = small ] && echo 7400 || echo 760000)
	{ printf 'Content-Type: text/plain\r\n\r\n'; head -c $sz /dev/urandom | base64 -w 76 | sed 's/$/\r/'; } |
		$G --trust-model always --armor -e -r old@b.test 2>/dev/null | sed 's/$/\r/' >"$W/$s.asc"
	body "$W/$s.asc" >"$W/$s.body"
done

copy_fsync() { # dir: copy every message to tmp/, fsync, rename back (same I/O pattern)
	python3 - "$1" <<'PY'
import os, sys
d = sys.argv[1]
for n in os.listdir(d + "/cur"):
    src = f"{d}/cur/{n}"
    data = open(src, "rb").read()
    tmp = f"{d}/tmp/{n}.copy"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, data); os.fsync(fd); os.close(fd)
    os.rename(tmp, src)
    dfd = os.open(f"{d}/cur", os.O_RDONLY); os.fsync(dfd); os.close(dfd)
PY
}

report() { # label dir count
	local d=$2 n=$3 bytes t0 t1 tc
	bytes=$(du -sb "$d/cur" | cut -f1)
	sync
	t0=$(date +%s.%N)
	copy_fsync "$d"
	t1=$(date +%s.%N)
	tc=$(echo "$t1 - $t0" | bc)
	sync
	local tf=$W/time.$1
	/usr/bin/time -f "%e %U %S" -o "$tf" "$SG" rekey bench@b.test --old-key "$W/old.sec" --new-key "$W/new.pub" \
		--maildir "$d" 2>"$W/rekey.$1.log" || { cat "$W/rekey.$1.log"; exit 1; }
	read -r el us sy <"$tf"
	grep -q " $n done" "$W/rekey.$1.log" || { echo "not all done:"; cat "$W/rekey.$1.log"; exit 1; }
	printf '%-6s %6d msgs %8.1f MiB | copy+fsync %6.2f s %7.1f MiB/s | rekey %6.2f s %7.1f MiB/s  ratio %.2f | rekey CPU %.3f ms/msg (user %.3f)\n' \
		"$1" "$n" "$(echo "$bytes/1048576" | bc -l)" "$tc" "$(echo "$bytes/1048576/$tc" | bc -l)" \
		"$el" "$(echo "$bytes/1048576/$el" | bc -l)" "$(echo "$tc/$el" | bc -l)" \
		"$(echo "($us+$sy)*1000/$n" | bc -l)" "$(echo "$us*1000/$n" | bc -l)"
}

full() { # label dir count: unseal + seal of N_FULL messages, per-message time
	local i=0 t0 t1
	t0=$(date +%s.%N)
	for f in "$2"/cur/*; do
		[ $i -ge "$N_FULL" ] && break
		"$SG" unseal --key "$W/new.sec" <"$f" >"$W/plain.eml" 2>"$W/unseal.err" ||
			{ echo "unseal failed: $(cat "$W/unseal.err")"; exit 1; }
		"$SG" seal --to old@b.test --key "$W/old.pub" <"$W/plain.eml" >/dev/null 2>"$W/seal.err" ||
			{ echo "seal failed: $(cat "$W/seal.err")"; exit 1; }
		i=$((i + 1))
	done
	t1=$(date +%s.%N)
	printf '%-6s full unseal+seal: %.2f ms/msg (%d messages)\n' "$1" "$(echo "($t1-$t0)*1000/$i" | bc -l)" "$i"
}

echo "sealgate rekey benchmark ($(nproc) cores): small ~10 KiB x $N_SMALL, large ~1 MiB x $N_LARGE"
lay_out "$W/small" "$N_SMALL" "$W/small.body"
report small "$W/small" "$N_SMALL"
full small "$W/small" "$N_SMALL"
rm -rf "$W/small"
lay_out "$W/large" "$N_LARGE" "$W/large.body"
report large "$W/large" "$N_LARGE"
full large "$W/large" "$N_LARGE"
