#!/bin/bash
# Relay throughput: smtp-source -> smtp-sink directly, then smtp-source ->
# sealgate -> smtp-sink, with the same sessions and message counts, in one run.
# Prints messages/s for both, the ratio (goal: >= 0.7 of direct) and
# sealgate's CPU time per message (utime+stime from /proc/PID/stat).
# Usage: bench/relay.sh [SEALGATE_BIN]   (or SEALGATE_BIN in the environment)
# Knobs (environment): SESSIONS (20), COUNT_10K (2000), COUNT_1M (200),
# SPOOL_MEMORY_MAX (1M: the 1 MiB messages go to spool files).
set -euo pipefail

SEALGATE_BIN=${1:-${SEALGATE_BIN:-build/sealgate}}
SESSIONS=${SESSIONS:-20}
COUNT_10K=${COUNT_10K:-2000}
COUNT_1M=${COUNT_1M:-200}
SPOOL_MEMORY_MAX=${SPOOL_MEMORY_MAX:-1M}   # messages above this are spooled to a 0600 file under state_dir/tmp

[ -x "$SEALGATE_BIN" ] || { echo "relay.sh: $SEALGATE_BIN is not executable" >&2; exit 2; }
command -v smtp-source >/dev/null || { echo "relay.sh: smtp-source missing (package postfix)" >&2; exit 2; }

T=$(mktemp -d /tmp/sealgate-bench.XXXXXX)
chmod 755 "$T"                         # smtp-sink drops to nobody
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

. "$(dirname "$0")/lib.sh"
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }

SINK_PORT=$(free_port)
GW_PORT=$(free_port)
smtp-sink -u nobody 127.0.0.1:"$SINK_PORT" 256 >"$T/sink.log" 2>&1 &
PIDS+=($!); SINK_PID=$!
wait_port "$SINK_PORT" "$SINK_PID" "$T/sink.log"

relay_conf "$T/sealgate.conf" "$T/state" "$GW_PORT" "$SINK_PORT" gw.bench.test
cat >>"$T/sealgate.conf" <<CONF
max_message_size = 64M
spool_memory_max = $SPOOL_MEMORY_MAX
CONF
"$SEALGATE_BIN" serve -c "$T/sealgate.conf" >"$T/sealgate.log" 2>&1 &
PIDS+=($!); GW_PID=$!
wait_port "$GW_PORT" "$GW_PID" "$T/sealgate.log"

# run PORT COUNT SIZE -> "seconds"; fails on any smtp-source error. -d: each
# session sends its messages over one connection (the same on both paths).
run() {
	local t0 t1
	t0=$(now)
	if ! smtp-source -d -s "$SESSIONS" -m "$2" -l "$3" -f from@x.test -t to@y.test \
		127.0.0.1:"$1" >"$T/source.log" 2>&1 || [ -s "$T/source.log" ]; then
		echo "relay.sh: smtp-source to port $1 failed:" >&2; head -20 "$T/source.log" >&2
		tail -20 "$T/sealgate.log" >&2; exit 1
	fi
	t1=$(now)
	calc "$t1 - $t0"
}

TCK=$(getconf CLK_TCK)
echo "sealgate: $SEALGATE_BIN (spool_memory_max = $SPOOL_MEMORY_MAX), $SESSIONS sessions, smtp-source -d"
printf '%-8s %6s %12s %12s %7s %14s\n' size msgs direct/s sealgate/s ratio "cpu-us/msg"
status=0
for spec in "10K 10240 $COUNT_10K" "1M 1048576 $COUNT_1M"; do
	set -- $spec
	run "$SINK_PORT" "$3" "$2" >/dev/null     # warm-up of the direct path
	d=$(run "$SINK_PORT" "$3" "$2")
	c0=$(cpu_ticks "$GW_PID")
	g=$(run "$GW_PORT" "$3" "$2")
	c1=$(cpu_ticks "$GW_PID")
	dr=$(calc "$3 / $d")
	gr=$(calc "$3 / $g")
	ratio=$(calc "$gr / $dr")
	cpu=$(calc "($c1 - $c0) * 1000000 / $TCK / $3")
	printf '%-8s %6d %12.1f %12.1f %7.2f %14.0f\n' "$1" "$3" "$dr" "$gr" "$ratio" "$cpu"
	if [ "$(calc "$ratio < 0.7")" != 0.000000 ]; then status=1; fi
done
[ $status = 0 ] && echo "goal (>= 0.7 of direct): met" || echo "goal (>= 0.7 of direct): NOT met"
kill -TERM "$GW_PID"
wait "$GW_PID" && echo "sealgate exited 0 on SIGTERM" || echo "sealgate exit status $? on SIGTERM"
exit $status
