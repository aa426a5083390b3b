#!/bin/sh
# Gateway-to-gateway domain sealing ([domain], doc/domain.md): 10 KiB
# messages over LMTP into instance a's submission listener, a -> b over SMTP
# (b's inbound listener) -> recording sink, 4 concurrent clients:
#   domain   a seals for b.test (sign P-256 + encrypt to b's short-lived
#            P-256 key, AES-256-GCM), b opens, verifies, adds Authentication-Results
#   plain    the same two instances and path, treatment pass (no crypto)
#   inproc   bench/seal.sh's in-process S/MIME rate (seal-bench smime, 10 KiB,
#            1 recipient, RSA-2048): sealing only, no gateway, no network
#   dom-inproc  bench/domain-bench.c: seal + open in one process, no gateway
# Prints messages/s and the ratios domain/plain and domain/inproc (goal >= 0.7),
# and dom-inproc/inproc (the domain crypto, both ends, against S/MIME sealing).
# usage: bench/domain.sh [BUILD_DIR] [MESSAGES]
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
N=${2:-400}
SECS=${SEAL_BENCH_SECS:-2}
SG=$BUILD/sealgate
T=$(mktemp -d)
PIDS=
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

python3 "$SRC/scripts/record-sink.py" --port-file "$T/sink.port" 0 "$T/sink" >"$T/sink.log" 2>&1 & PIDS="$PIDS $!"
mkdir -p "$T/sink"
while [ ! -s "$T/sink.port" ]; do sleep 0.05; done
printf 'to=*@b.test domain\n* pass\n' > "$T/rules"
HA=$(port); HB=$(port); SUB=$(port); INB=$(port)
conf() { # name domains relay extra...
	mkdir -p "$T/$1"
	"$SG" key init-master --master-key "$T/$1/mk" >/dev/null
	cat > "$T/$1/sg.conf" <<C
state_dir = $T/$1/state
master_key_file = $T/$1/mk
domain_names = $2
relay = 127.0.0.1:$3
policy_file = $T/rules
wkd_allow_hosts = a.test=127.0.0.1:$HA b.test=127.0.0.1:$HB
$4
C
	"$SG" domain -c "$T/$1/sg.conf" init >/dev/null
}
conf b b.test "$(cat "$T/sink.port")" "listen = 127.0.0.1:$INB"
conf a a.test "$INB" "listen = 127.0.0.1:$(port)
submission_listen = 127.0.0.1:$SUB"
for i in a b; do
	eval hp=\$H$(echo $i | tr ab AB)
	"$SG" key serve-wkd -c "$T/$i/sg.conf" --listen "127.0.0.1:$hp" >"$T/$i/http.log" 2>&1 & PIDS="$PIDS $!"
	"$SG" serve -c "$T/$i/sg.conf" >"$T/$i/gw.log" 2>&1 & PIDS="$PIDS $!"
	while ! grep -q " started: " "$T/$i/gw.log"; do sleep 0.05; done
done

run() { # recipient -> msg/s
	python3 - "$SUB" "$N" "$1" <<'PY'
import socket, sys, threading, time
port, n, rcpt = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
body = b"From: <a@a.test>\r\nSubject: bench\r\n\r\n" + (b"x" * 76 + b"\r\n") * 131
bad = []
def worker(k):
    c = socket.create_connection(("127.0.0.1", port)); f = c.makefile("rb")
    f.readline(); c.sendall(b"LHLO b\r\n")
    while f.readline()[3:4] == b"-": pass
    for _ in range(k):
        c.sendall(b"MAIL FROM:<a@a.test>\r\nRCPT TO:<%s>\r\nDATA\r\n" % rcpt.encode())
        for _ in range(3): f.readline()
        c.sendall(body + b".\r\n")
        r = f.readline()
        if r[:3] != b"250": bad.append(r)
    c.close()
t0 = time.monotonic()
ts = [threading.Thread(target=worker, args=(n // 4,)) for _ in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
dt = time.monotonic() - t0
if bad: sys.exit("failed replies: %r" % bad[:3])
print("%.1f" % (n // 4 * 4 / dt))
PY
}
run bob@b.test >/dev/null   # warm up: fetch, pin, cache
before=$(ls "$T/sink" | grep -c '\.eml$' || true)
dom=$(run bob@b.test)
plain=$(run u@p.test)
grep -q 'domsec=pass' "$(ls -d "$T"/sink/*.eml | head -n "$((before + 1))" | tail -1)" || {
	echo "bench/domain.sh: the domain copies did not arrive opened" >&2; exit 1; }

# the in-process S/MIME rate, as bench/seal.sh measures it
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=Alice" -keyout "$T/alice.key" \
	-out "$T/alice.crt" -addext "subjectAltName=email:alice@a.test" \
	-addext "extendedKeyUsage=emailProtection" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=Bob" -keyout "$T/bob.key" \
	-out "$T/bob.crt" -addext "subjectAltName=email:bob@b.test" \
	-addext "extendedKeyUsage=emailProtection" 2>/dev/null
cat "$T/alice.key" "$T/alice.crt" > "$T/alice.pem"
cc -O2 -D_GNU_SOURCE -I"$SRC/src" -I"$BUILD/gen" "$SRC/bench/seal-bench.c" "$BUILD/libsealgate.a" -o "$T/seal-bench" \
   $(pkg-config --cflags --libs librnp gmime-3.0 openssl libevent_core libevent_pthreads libevent_openssl \
     libmicrohttpd sqlite3 libpq libcurl libunbound) -lldap -llber -lpthread
set -- $("$T/seal-bench" smime 10240 "$SECS" "$T/alice.pem" "$T/bob.crt")
inproc=${2%/s}
cc -O2 -D_GNU_SOURCE -I"$SRC/src" -I"$BUILD/gen" "$SRC/bench/domain-bench.c" "$BUILD/libsealgate.a" -o "$T/domain-bench" \
   $(pkg-config --cflags --libs librnp gmime-3.0 openssl libevent_core libevent_pthreads libevent_openssl \
     libmicrohttpd sqlite3 libpq libcurl libunbound) -lldap -llber -lpthread
mkdir "$T/db"
set -- $("$T/domain-bench" "$T/db" "$SECS" 2>/dev/null)
domin=${6%/s}

printf '%-44s %9s\n' "10 KiB, 1 recipient, 4 clients" "msg/s"
printf '%-44s %9.1f\n' "domain: a seals -> b opens + verifies" "$dom"
printf '%-44s %9.1f\n' "plain: a -> b, pass" "$plain"
printf '%-44s %9.1f\n' "inproc: sg_seal S/MIME (bench/seal.sh)" "$inproc"
printf '%-44s %9.1f  (seal %s/s, open %s/s)\n' "dom-inproc: domain seal + open, one process" "$domin" "${2%/s}" "${4%/s}"
printf 'domain/plain  %.2f\n' "$(echo "$dom / $plain" | bc -l)"
printf 'domain/inproc %.2f (goal >= 0.7)\n' "$(echo "$dom / $inproc" | bc -l)"
printf 'dom-inproc/inproc %.2f\n' "$(echo "$domin / $inproc" | bc -l)"
