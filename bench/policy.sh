#!/bin/sh
# Through-gateway throughput of the outbound policy path: 10 KiB messages
# over LMTP into submission_listen, sealgate -> recording sink, with
# 4 concurrent clients: treatment pass vs e2e to 1 recipient (Ed25519/
# Cv25519) vs 10 recipients with mixed treatments (5 e2e, 2 pass,
# 2 tls-only, 1 refused). Prints messages/s.
# usage: bench/policy.sh [BUILD_DIR] [MESSAGES]
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
N=${2:-400}
SG=$BUILD/sealgate
T=$(mktemp -d)
SINK_PID= ; TLS_PID= ; GW_PID=
cleanup() {
	for p in $GW_PID $SINK_PID $TLS_PID; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	gpgconf --homedir "$T/g" --kill all >/dev/null 2>&1 || true
	rm -rf "$T"
}
trap cleanup EXIT
mkdir -m 700 "$T/g" "$T/state" "$T/sink" "$T/tls"
for i in 0 1 2 3 4; do
	gpg --homedir "$T/g" --batch --passphrase '' --quick-gen-key "R$i <r$i@b.test>" future-default default never 2>/dev/null
	gpg --homedir "$T/g" --armor --export "r$i@b.test" > "$T/r$i.pub"
	"$SG" key import --state-dir "$T/state" "$T/r$i.pub" >/dev/null
done
cat > "$T/rules" <<'R'
to=*@p.test pass
to=*@t.test tls-only
to=*@x.test e2e
to=*@b.test e2e
R
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
python3 "$SRC/scripts/record-sink.py" --port-file "$T/sink.port" 0 "$T/sink" >"$T/sink.log" 2>&1 & SINK_PID=$!
python3 "$SRC/scripts/record-sink.py" --port-file "$T/tls.port" 0 "$T/tls" >"$T/tls.log" 2>&1 & TLS_PID=$!
while [ ! -s "$T/sink.port" ] || [ ! -s "$T/tls.port" ]; do sleep 0.05; done
SUB=$(port)
cat > "$T/sg.conf" <<C
state_dir = $T/state
listen = 127.0.0.1:$(port)
submission_listen = 127.0.0.1:$SUB
relay = 127.0.0.1:$(cat "$T/sink.port")
relay_tls_only = 127.0.0.1:$(cat "$T/tls.port")
policy_file = $T/rules
C
"$SG" serve -c "$T/sg.conf" >"$T/gw.log" 2>&1 & GW_PID=$!
while ! grep -q " started: " "$T/gw.log"; do sleep 0.05; done
run() { # name, recipients...
	name=$1; shift
	python3 - "$SUB" "$N" "$@" <<'PY' | sed "s/^/$name: /"
import socket, sys, threading, time
port, n, rcpts = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
body = b"From: <a@a.test>\r\nSubject: bench\r\n\r\n" + (b"x" * 76 + b"\r\n") * 131
def one(c, f):
    c.sendall(b"MAIL FROM:<a@a.test>\r\n" + b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts) + b"DATA\r\n")
    for _ in range(2 + len(rcpts)):
        f.readline()
    c.sendall(body + b".\r\n")
    return [f.readline()[:3] for _ in rcpts]
codes = {}
def worker(k):
    c = socket.create_connection(("127.0.0.1", port)); f = c.makefile("rb")
    f.readline(); c.sendall(b"LHLO b\r\n")
    while f.readline()[3:4] == b"-": pass
    for _ in range(k):
        for x in one(c, f): codes[x] = codes.get(x, 0) + 1
    c.close()
t0 = time.monotonic()
ts = [threading.Thread(target=worker, args=(n // 4,)) for _ in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
dt = time.monotonic() - t0
print("%d messages x %d rcpts in %.2fs: %.1f msg/s (replies %s)" % (n // 4 * 4, len(rcpts), dt, n // 4 * 4 / dt,
      {k.decode(): v for k, v in codes.items()}))
PY
}
run "pass, 1 rcpt        " u@p.test
run "e2e, 1 rcpt         " r0@b.test
run "mixed, 10 rcpts     " r0@b.test r1@b.test r2@b.test r3@b.test r4@b.test u1@p.test u2@p.test t1@t.test t2@t.test nokey@x.test
