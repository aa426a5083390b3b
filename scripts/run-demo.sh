#!/bin/sh
# `make run`: start sealgate on its default configuration, in the
# foreground, with a local recording next hop so that the main job works
# with nothing else installed. Ctrl-C stops both.
set -eu
BIN=$1
STATE=$2
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$STATE"
CONF="$STATE/sealgate.conf"
if [ ! -f "$CONF" ]; then
	{
		echo "# Written by 'make run' from sealgate's defaults; edit freely."
		echo "# Every setting is explained in etc/sealgate.conf and sealgate(8)."
		"$BIN" serve --state-dir "$STATE" --print-config
	} > "$CONF"
	echo "make run: wrote the default configuration to $CONF"
fi
"$BIN" serve -c "$CONF" --check
SINK_DIR="$STATE/next-hop"
RELAY=$(sed -n 's/^relay *= *//p' "$CONF")
RELAY_PORT=${RELAY##*:}
LISTEN=$(sed -n 's/^listen *= *//p' "$CONF")
/usr/bin/python3 "$HERE/record-sink.py" "$RELAY_PORT" "$SINK_DIR" &
SINK=$!
trap 'kill $SINK 2>/dev/null || true' EXIT INT TERM
cat <<MSG

  sealgate listens for SMTP on $LISTEN and relays to a recording next hop on
  $RELAY, which stores each message it accepts in $SINK_DIR/.
  Send a test mail from another terminal:

    swaks --server ${LISTEN%:*} --port ${LISTEN##*:} --from alice@example.test --to bob@example.test

  then look at $SINK_DIR/*.eml. Ctrl-C stops sealgate and the next hop.

MSG
"$BIN" serve -c "$CONF"
