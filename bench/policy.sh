#!/bin/sh
# Through-gateway throughput of the outbound policy path, 10 KiB messages,
# smtp-source -L (4 sessions) -> sealgate submission_listen (LMTP) ->
# smtp-sink (relay and the tls-only route), against baselines measured in
# the same run:
#   direct     smtp-source -> smtp-sink, no gateway
#   zeyple     bench/zeyple-style.py: one gpg process per message, then SMTP
#   relay      the same sealgate, inbound LMTP listener, no policy (plain relay path)
#   in-process bench/seal-bench.c: sg_seal (encrypt + sign) in a loop, same keys
# Rows: policy pass, 1 rcpt; e2e + signed (Ed25519/Cv25519), 1 rcpt; 10 rcpts
# mixed (5 e2e in one copy, 2 pass, 3 tls-only). Prints
# msg/s, sealgate CPU per message, and the ratios (goal: e2e >= 0.7 of
# in-process; pass next to relay). The gateway runs worker_threads (2)
# sealing threads, seal-bench one: the CPU per message of the e2e row next
# to seal-bench's time per message is the like-for-like figure.
# usage: bench/policy.sh [BUILD_DIR] [MESSAGES]
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
N=${2:-800}
SECS=${SEAL_BENCH_SECS:-2}
SG=$BUILD/sealgate
command -v smtp-source >/dev/null || { echo "policy.sh: smtp-source missing (package postfix)" >&2; exit 2; }
T=$(mktemp -d)
chmod 755 "$T" # smtp-sink drops to nobody
SINK_PID= ; TLS_PID= ; GW_PID=
cleanup() {
	for p in $GW_PID $SINK_PID $TLS_PID; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	gpgconf --homedir "$T/g" --kill all >/dev/null 2>&1 || true
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE
mkdir -m 700 "$T/g" "$T/state"
# recipients as smtp-source -r names them: r@b.test, 2r@b.test, ... 10r@b.test
KEYED="r 2r 3r 4r 5r"
for r in $KEYED; do
	gpg --homedir "$T/g" --batch --passphrase '' --quick-gen-key "R <$r@b.test>" future-default default never 2>/dev/null
	gpg --homedir "$T/g" --armor --export "$r@b.test" > "$T/$r.pub"
	"$SG" key import --state-dir "$T/state" "$T/$r.pub" >/dev/null
done
"$SG" key init-master --master-key "$T/master.key" >/dev/null
"$SG" key generate --state-dir "$T/state" --master-key "$T/master.key" a@a.test >/dev/null
"$SG" key export --state-dir "$T/state" --master-key "$T/master.key" --secret a@a.test > "$T/a.sec"
cat > "$T/rules" <<'R'
to=*@p.test pass
to=6r@b.test pass
to=7r@b.test pass
to=8r@b.test tls-only
to=9r@b.test tls-only
to=10r@b.test tls-only
to=*@b.test e2e sign=yes
R
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
SINK=$(port); TLS=$(port); SUB=$(port); IN=$(port)
smtp-sink -u nobody 127.0.0.1:"$SINK" 256 >"$T/sink.log" 2>&1 & SINK_PID=$!
smtp-sink -u nobody 127.0.0.1:"$TLS" 256 >"$T/tls.log" 2>&1 & TLS_PID=$!
cat > "$T/sg.conf" <<C
state_dir = $T/state
listen =
lmtp_listen = 127.0.0.1:$IN
submission_listen = 127.0.0.1:$SUB
relay = 127.0.0.1:$SINK
relay_tls_only = 127.0.0.1:$TLS
policy_file = $T/rules
master_key_file = $T/master.key
inbound_verify = no
C
"$SG" serve -c "$T/sg.conf" >"$T/gw.log" 2>&1 & GW_PID=$!
while ! grep -q " started: " "$T/gw.log"; do sleep 0.05; done

cpu() { awk '{ print $14 + $15 }' "/proc/$GW_PID/stat"; }
TICK=$(getconf CLK_TCK)
# run NAME PORT RCPTS -> prints a line, sets RATE; fails on smtp-source errors
run() {
	c0=$(cpu); t0=$(date +%s.%N)
	if ! smtp-source $PROTO -d -s 4 -m "$N" -l 10240 -r "$3" -f a@a.test -t "$4" 127.0.0.1:"$2" >"$T/source.log" 2>&1; then
		echo "policy.sh: smtp-source ($1) failed:" >&2; head -20 "$T/source.log" >&2; exit 1
	fi
	t1=$(date +%s.%N); c1=$(cpu)
	RATE=$(echo "$N / ($t1 - $t0)" | bc -l)
	CPU=$(echo "($c1 - $c0) * 1000000 / $TICK / $N" | bc -l)
	printf '%-28s %8.1f msg/s  sealgate CPU %7.0f us/msg\n' "$1" "$RATE" "$CPU"
}
cc -O2 -D_GNU_SOURCE -I"$SRC/src" -I"$BUILD/gen" "$SRC/bench/seal-bench.c" "$BUILD/libsealgate.a" -o "$T/seal-bench" \
   $(pkg-config --cflags --libs librnp gmime-3.0 openssl libevent_core libevent_pthreads libevent_openssl \
     libmicrohttpd sqlite3 libpq) -lldap -llber -lpthread
inproc() { # recipients' .pub files -> in-process seal rate (encrypt + sign)
	set -- $("$T/seal-bench" pgp 10240 "$SECS" "$T/a.sec" "$@")
	echo "${2%/s}"
}

PROTO= ; run "direct source -> sink (SMTP)" "$SINK" 1 u@p.test; DIRECT=$RATE
PROTO=-L
run "relay (inbound, no policy)" "$IN" 1 u@p.test; RELAY=$RATE
run "pass, 1 rcpt" "$SUB" 1 u@p.test; PASS=$RATE
run "e2e+sign, 1 rcpt" "$SUB" 1 r@b.test; E2E=$RATE; E2E_CPU=$CPU
run "mixed, 10 rcpts" "$SUB" 10 r@b.test; MIXED=$RATE
IP1=$(inproc "$T/r.pub")
IP5=$(inproc $(for r in $KEYED; do printf '%s ' "$T/$r.pub"; done))
printf '%-28s %8.1f msg/s  (one thread: %.0f us/msg)\n' "in-process seal, 1 rcpt" "$IP1" "$(echo "1000000 / $IP1" | bc -l)" \
       "in-process seal, 5 rcpts" "$IP5" "$(echo "1000000 / $IP5" | bc -l)"
# Zeyple-style: one gpg process per message (encrypt + sign), then SMTP.
gpg --homedir "$T/g" --batch --import "$T/a.sec" 2>/dev/null
ZN=$(( N < 100 ? N : 100 ))
ZEY=$(/usr/bin/python3 "$SRC/bench/zeyple-style.py" "$T/g" a@a.test r@b.test "$SINK" "$ZN" 4 10240)
printf '%-28s %8.1f msg/s  (%d messages)\n' "zeyple-style gpg per msg" "$ZEY" "$ZN"
printf 'ratios: relay/direct %.2f; e2e/zeyple-style %.1fx\n' "$(echo "$RELAY / $DIRECT" | bc -l)" \
       "$(echo "$E2E / $ZEY" | bc -l)"
printf 'ratios: pass/relay %.2f; e2e/in-process %.2f (goal >= 0.7); mixed/in-process(5 rcpts) %.2f\n' \
       "$(echo "$PASS / $RELAY" | bc -l)" "$(echo "$E2E / $IP1" | bc -l)" "$(echo "$MIXED / $IP5" | bc -l)"
printf 'cpu per e2e message: gateway %.0f us, in-process %.0f us: ratio %.2f\n' "$E2E_CPU" \
       "$(echo "1000000 / $IP1" | bc -l)" "$(echo "1000000 / $IP1 / $E2E_CPU" | bc -l)"
