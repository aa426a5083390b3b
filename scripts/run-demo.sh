#!/bin/sh
# `make run`: show sealgate's main job on its own. A demo user gets a key,
# sealgate listens for local delivery (LMTP) and writes each message into
# a Maildir sealed to that user's key; one test mail is sent through it,
# and the script prints where the sealed file is and how to decrypt it.
# Then sealgate keeps serving in the foreground; Ctrl-C stops it.
# Needs only the build and python3 (no gpg, no mail server).
set -eu
BIN=$1
STATE=$2
PORT=${SEALGATE_DEMO_PORT:-10024}
USER_ADDR=demo@example.test
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
CONF="$STATE/sealgate.conf"
MAILDIR="$STATE/Maildir"
KEYS="$STATE/demo-keys"          # the demo user's own key store (with its secret key)
MASTER="$STATE/demo-master.key"  # seals that secret key; outside $KEYS, as required

# A configuration from an older `make run` (no deliver listener) is kept aside.
if [ -f "$CONF" ] && ! grep -q "^deliver_listen *= *[^ ]" "$CONF"; then
	mv "$CONF" "$CONF.old"
	echo "make run: moved the previous configuration to $CONF.old"
fi
if [ ! -f "$CONF" ]; then
	{
		echo "# Written by 'make run' from sealgate's defaults; edit freely."
		echo "# Every setting is explained in etc/sealgate.conf and sealgate(8)."
		"$BIN" serve --state-dir "$STATE" --print-config |
			sed -e "s|^listen = .*|listen = |" \
			    -e "s|^deliver_listen = .*|deliver_listen = 127.0.0.1:$PORT|" \
			    -e "s|^deliver_maildir = .*|deliver_maildir = $MAILDIR|"
	} > "$CONF"
	echo "make run: wrote the demo configuration to $CONF"
fi
"$BIN" serve -c "$CONF" --check >/dev/null
LISTEN=$(sed -n 's/^deliver_listen *= *//p' "$CONF")

# The demo user's key: generated once, public part in sealgate's store,
# secret part exported to $STATE/demo.key for the decrypt command below.
if [ ! -f "$STATE/demo.key" ]; then
	[ -f "$MASTER" ] || "$BIN" key init-master --master-key "$MASTER" >/dev/null
	"$BIN" key generate "$USER_ADDR" --type ed25519 --state-dir "$KEYS" --master-key "$MASTER"
	"$BIN" key export "$USER_ADDR" --state-dir "$KEYS" > "$STATE/demo.pub"
	(umask 077 && "$BIN" key export "$USER_ADDR" --secret --state-dir "$KEYS" \
		--master-key "$MASTER" > "$STATE/demo.key")
fi
# Every time (idempotent): the store may be new while the key is not.
"$BIN" key import "$STATE/demo.pub" --state-dir "$STATE" -c "$CONF" >/dev/null

"$BIN" serve -c "$CONF" &
SERVE=$!
trap 'kill -TERM $SERVE 2>/dev/null || true' INT TERM
FILE=$(/usr/bin/python3 - "$LISTEN" "$MAILDIR" "$USER_ADDR" <<'PY'
import os, smtplib, sys, time
host, port = sys.argv[1].rsplit(":", 1)
maildir, addr = sys.argv[2], sys.argv[3]
for _ in range(100):
    try:
        l = smtplib.LMTP(host, int(port))
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("make run: sealgate is not listening on %s:%s" % (host, port))
before = set(os.listdir(os.path.join(maildir, "new"))) if os.path.isdir(os.path.join(maildir, "new")) else set()
msg = ("From: Alice <alice@example.test>\r\nTo: Demo <%s>\r\n"
       "Subject: the launch date\r\nMessage-ID: <demo.%d@example.test>\r\n\r\n"
       "We launch on Friday. Keep it quiet.\r\n" % (addr, int(time.time())))
refused = l.sendmail("alice@example.test", [addr], msg.encode())
l.quit()
if refused:
    sys.exit("make run: the test mail was refused: %r" % (refused,))
new = sorted(set(os.listdir(os.path.join(maildir, "new"))) - before)
print(os.path.join(maildir, "new", new[-1]))
PY
) || { kill -TERM $SERVE; wait $SERVE || true; exit 1; }
cat <<MSG

  sealgate listens for local delivery (LMTP) on $LISTEN and writes every
  message into $MAILDIR, sealed to the recipient's own key.

  A test mail to $USER_ADDR (Subject: the launch date) is stored, sealed, in
    $FILE
  Its outer Subject is "...": look with   head -20 '$FILE'
  Decrypt it with the demo user's key:
    $BIN unseal --key $STATE/demo.key < '$FILE'

  Send more from another terminal (any recipient; without a key it is stored
  in the clear, see deliver_no_key):
    swaks --protocol LMTP --server ${LISTEN%:*} --port ${LISTEN##*:} --from alice@example.test --to $USER_ADDR
  Ctrl-C stops sealgate.

MSG
wait $SERVE
