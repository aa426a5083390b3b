#!/bin/sh
# Delivery at rest: LMTP -> sealed -> fsynced Maildir messages/s through
# sealgate, next to plain fsynced Maildir writes of the same messages with
# the same number of writers and the same fsync pattern (write tmp/, fsync,
# rename into new/, fsync new/). Goal: ratio >= 0.8.
# usage: bench/deliver.sh [SEALGATE_BIN] [MESSAGES] [WRITERS] [SIZE_BYTES]
set -eu
BIN=${1:-build/sealgate}
N=${2:-2000}
W=${3:-2}
SIZE=${4:-10240}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
T=$(mktemp -d /tmp/sg-bench-deliver.XXXXXX)
PORT=$(/usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
cleanup() {
	[ -n "${SERVE:-}" ] && kill -TERM "$SERVE" 2>/dev/null && wait "$SERVE" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
"$BIN" key init-master --master-key "$T/master.key" >/dev/null
"$BIN" key generate bench@example.test --type ed25519 --state-dir "$T/state" \
	--master-key "$T/master.key" >/dev/null
cat > "$T/sealgate.conf" <<CONF
state_dir = $T/state
listen =
deliver_listen = 127.0.0.1:$PORT
deliver_maildir = $T/mail/%n/Maildir
worker_threads = $W
max_sessions = $((W + 8))
CONF
"$BIN" serve -c "$T/sealgate.conf" >"$T/serve.log" 2>&1 &
SERVE=$!
/usr/bin/python3 - "$PORT" "$T" "$N" "$W" "$SIZE" <<'PY'
import os, smtplib, sys, threading, time
port, T, N, W, SIZE = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
for _ in range(100):
    try:
        smtplib.LMTP("127.0.0.1", port).quit()
        break
    except OSError:
        time.sleep(0.1)
line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor\r\n"
hdr = (b"From: Alice <alice@example.test>\r\nTo: <%s>\r\nSubject: bench\r\n"
       b"Message-ID: <%d@example.test>\r\n\r\n")
def message(rcpt, i):
    h = hdr % (rcpt.encode(), i)
    return h + line * max(1, (SIZE - len(h)) // len(line))

def lmtp_run(rcpt):
    per = [N // W + (1 if k < N % W else 0) for k in range(W)]
    errors = []
    def worker(k):
        l = smtplib.LMTP("127.0.0.1", port)
        for i in range(per[k]):
            r = l.sendmail("alice@example.test", [rcpt], message(rcpt, i))
            if r:
                errors.append(r)
        l.quit()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(W)]
    t0 = time.monotonic()
    [t.start() for t in ts]
    [t.join() for t in ts]
    dt = time.monotonic() - t0
    assert not errors, errors[:3]
    return N / dt

def plain_run():
    d = os.path.join(T, "plain", "Maildir")
    for s in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(d, s), exist_ok=True)
    global plain_round
    plain_round = globals().get("plain_round", 0) + 1
    data = [message("bench@example.test", i).replace(b"\r\n", b"\n") for i in range(64)]
    per = [N // W + (1 if k < N % W else 0) for k in range(W)]
    def worker(k):
        newdir = os.open(os.path.join(d, "new"), os.O_RDONLY | os.O_DIRECTORY)
        for i in range(per[k]):
            name = "%d.M%dP%dQ%d_%d_%d.bench" % (time.time(), i, os.getpid(), k, i, plain_round)
            tmp = os.path.join(d, "tmp", name)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, data[i % 64])
            os.fsync(fd)
            os.close(fd)
            os.rename(tmp, os.path.join(d, "new", name))
            os.fsync(newdir)
        os.close(newdir)
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(W)]
    t0 = time.monotonic()
    [t.start() for t in ts]
    [t.join() for t in ts]
    return N / (time.monotonic() - t0)

# Interleaved rounds, medians: the machine's load drifts between runs.
ROUNDS = 3
rounds = []
for r in range(ROUNDS):
    rounds.append((plain_run(), lmtp_run("bench@example.test"), lmtp_run("nokey@example.test")))
med = lambda xs: sorted(xs)[len(xs) // 2]
plain, sealed, clear = (med([x[i] for x in rounds]) for i in range(3))
count = len(os.listdir(os.path.join(T, "mail", "bench", "Maildir", "new")))
assert count == N * ROUNDS, count
print(f"deliver bench: {N} messages of ~{SIZE} bytes x {ROUNDS} interleaved rounds, {W} writers, "
      f"fsync file + new/ per message (medians)")
print(f"  plain fsynced Maildir writes (python, no LMTP): {plain:8.1f} msg/s")
print(f"  sealgate LMTP -> sealed (OpenPGP) -> Maildir:   {sealed:8.1f} msg/s")
print(f"  sealgate LMTP -> no key, clear     -> Maildir:   {clear:8.1f} msg/s")
print("  per-round sealed/plain: " + ", ".join(f"{s / p:.2f}" for p, s, _ in rounds))
print(f"  ratio sealed / plain writes: {sealed / plain:.2f} (goal >= 0.8)")
PY
