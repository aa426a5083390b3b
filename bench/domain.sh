#!/bin/sh
# Gateway-to-gateway domain sealing ([domain], doc/domain.md), 10 KiB
# messages. Harness (all C, so the load generator is not the bottleneck):
# smtp-source -L (4 sessions) -> instance a's submission listener (LMTP),
# a -> b over SMTP (b's inbound listener) -> smtp-sink as b's next hop.
# The plain row uses the same harness and instances. A small verification
# run first goes through a recording sink (scripts/record-sink.py) and
# checks the copies arrived opened (domsec=pass); b is then restarted with
# smtp-sink as its next hop for the timed runs.
#   domain   a seals for b.test (sign P-256 + encrypt to b's short-lived
#            P-256 key, AES-256-GCM), b opens, verifies, adds Authentication-Results
#   plain    the same two instances and path, treatment pass (no crypto)
#   inproc   bench/seal.sh's in-process S/MIME rate (seal-bench smime, 10 KiB,
#            1 recipient, RSA-2048): sealing only, no gateway, no network
#   dom-inproc  bench/domain-bench.c: seal + open in one process, no gateway
# Prints messages/s, each instance's CPU per message (utime+stime from
# /proc/PID/stat over the run), and the ratios domain/plain and
# domain/inproc (goal >= 0.7), and dom-inproc/inproc.
# usage: bench/domain.sh [BUILD_DIR] [MESSAGES]
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
N=${2:-400}
SECS=${SEAL_BENCH_SECS:-2}
VN=20 # verification run through the recording sink
SG=$BUILD/sealgate
command -v smtp-source >/dev/null || { echo "domain.sh: smtp-source missing (package postfix)" >&2; exit 2; }
T=$(mktemp -d)
chmod 755 "$T" # smtp-sink drops to nobody
PIDS=
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { # PORT: until something accepts there (10 s)
	python3 - "$1" <<'PY'
import socket, sys, time
end = time.monotonic() + 10
while True:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close(); break
    except OSError:
        if time.monotonic() > end: sys.exit("domain.sh: nothing listens on port %s" % sys.argv[1])
        time.sleep(0.05)
PY
}

mkdir -p "$T/rec"
python3 "$SRC/scripts/record-sink.py" --port-file "$T/rec.port" 0 "$T/rec" >"$T/rec.log" 2>&1 & PIDS="$PIDS $!"
SINK=$(port)
smtp-sink -u nobody 127.0.0.1:"$SINK" 256 >"$T/sink.log" 2>&1 & PIDS="$PIDS $!"
while [ ! -s "$T/rec.port" ]; do sleep 0.05; done
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
${DOMAIN_EXTRA:-}
C
	"$SG" domain -c "$T/$1/sg.conf" init >/dev/null 2>&1
}
conf b b.test "$(cat "$T/rec.port")" "listen = 127.0.0.1:$INB"
conf a a.test "$INB" "listen = 127.0.0.1:$(port)
submission_listen = 127.0.0.1:$SUB"
start() { # name -> sets GW_<name>
	"$SG" serve -c "$T/$1/sg.conf" >"$T/$1/gw.log" 2>&1 &
	eval "GW_$1=$!"; PIDS="$PIDS $!"
	while ! grep -q " started: " "$T/$1/gw.log"; do sleep 0.05; done
}
for i in a b; do
	eval hp=\$H$(echo $i | tr ab AB)
	"$SG" key serve-wkd -c "$T/$i/sg.conf" --listen "127.0.0.1:$hp" >"$T/$i/http.log" 2>&1 & PIDS="$PIDS $!"
	wait_port "$hp"
	start $i
done

# source N RCPT -> fails on smtp-source errors
source_run() {
	if ! smtp-source -L -d -s "${DOMAIN_SESSIONS:-16}" -m "$1" -l 10240 -r 1 -f a@a.test -t "$2" 127.0.0.1:"$SUB" \
	     >"$T/source.log" 2>&1; then
		echo "domain.sh: smtp-source failed:" >&2; head -20 "$T/source.log" >&2; exit 1
	fi
}
# verification (and warm-up: fetch, pin, cache) through the recording sink
source_run "$VN" bob@b.test
got=$(grep -l 'domsec=pass' "$T"/rec/*.eml 2>/dev/null | wc -l)
[ "$got" -eq "$VN" ] || { echo "domain.sh: $got of $VN domain copies arrived opened" >&2; exit 1; }
# b again, with smtp-sink as its next hop
kill "$GW_b"; wait "$GW_b" 2>/dev/null || true
sed -i "s/^relay = .*/relay = 127.0.0.1:$SINK/" "$T/b/sg.conf"
start b

cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
# timed CMD ARGS... (CMD sends N messages) -> sets RATE, CPU_A, CPU_B (us per message)
timed() {
	a0=$(cpu "$GW_a"); b0=$(cpu "$GW_b"); t0=$(date +%s.%N)
	"$@"
	t1=$(date +%s.%N); a1=$(cpu "$GW_a"); b1=$(cpu "$GW_b")
	RATE=$(echo "$N / ($t1 - $t0)" | bc -l)
	CPU_A=$(echo "($a1 - $a0) * 1000000 / $TICK / $N" | bc -l)
	CPU_B=$(echo "($b1 - $b0) * 1000000 / $TICK / $N" | bc -l)
}
run() { timed source_run "$N" "$1"; } # RCPT
# DOMAIN_BENCH_PERF=DIR: perf record (DWARF call graphs) both instances during the domain run
if [ -n "${DOMAIN_BENCH_PERF:-}" ]; then
	perf record --call-graph dwarf,16384 -F 4000 -o "$DOMAIN_BENCH_PERF/a.data" -p "$GW_a" >/dev/null 2>&1 & PA=$!
	perf record --call-graph dwarf,16384 -F 4000 -o "$DOMAIN_BENCH_PERF/b.data" -p "$GW_b" >/dev/null 2>&1 & PB=$!
	sleep 1
fi
run bob@b.test; dom=$RATE; dom_a=$CPU_A; dom_b=$CPU_B
if [ -n "${DOMAIN_BENCH_PERF:-}" ]; then kill -INT $PA $PB; wait $PA $PB || true; fi
run u@p.test; plain=$RATE; plain_a=$CPU_A; plain_b=$CPU_B

# Each gateway's stage alone, with the sink as its next hop: on two
# machines the a -> b rate is the slower of these two; here a, b, the
# load generator and the sink share the same 2 cores.
# a alone: seals for b.test (b's bundle already pinned and cached), to the
# recording sink for one copy (b's input for its own stage), then to smtp-sink.
restart_a() { # RELAY_PORT
	kill "$GW_a"; wait "$GW_a" 2>/dev/null || true
	sed -i "s/^relay = .*/relay = 127.0.0.1:$1/" "$T/a/sg.conf"
	: > "$T/a/gw.log"; start a
}
restart_a "$(cat "$T/rec.port")"
rm -f "$T"/rec/*.eml "$T"/rec/*.env
source_run 1 bob@b.test
cap=$(ls "$T"/rec/*.eml | head -1)
grep -qi '^Content-Type: application/pkcs7-mime' "$cap" ||
	{ echo "domain.sh: the captured copy is not domain-sealed" >&2; exit 1; }
tr -d '\r' < "$cap" > "$T/sealed.eml" # smtp-source -F sends LF lines with CRLF
restart_a "$SINK"
run bob@b.test; stage_a=$RATE; stage_a_cpu=$CPU_A
# b alone: the captured sealed copy, N times, into b's inbound listener
# (SMTP; b opens, verifies and relays to smtp-sink). No replay cache
# exists, so each copy is opened in full.
replay_b() {
	if ! smtp-source -d -s "${DOMAIN_SESSIONS:-16}" -m "$N" -F "$T/sealed.eml" -f a@a.test -t bob@b.test \
	     127.0.0.1:"$INB" >"$T/source.log" 2>&1; then
		echo "domain.sh: smtp-source (b stage) failed:" >&2; head -20 "$T/source.log" >&2; exit 1
	fi
}
opened0=$(grep -c ': domain: opened for ' "$T/b/gw.log" || true)
timed replay_b; stage_b=$RATE; stage_b_cpu=$CPU_B
opened=$(grep -c ': domain: opened for ' "$T/b/gw.log" || true)
[ $((opened - opened0)) -eq "$N" ] || { echo "domain.sh: b opened $((opened - opened0)) of the $N replayed copies" >&2; exit 1; }

# the in-process S/MIME rate, as bench/seal.sh measures it
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=Alice" -keyout "$T/alice.key" \
	-out "$T/alice.crt" -addext "subjectAltName=email:alice@a.test" \
	-addext "extendedKeyUsage=emailProtection" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=Bob" -keyout "$T/bob.key" \
	-out "$T/bob.crt" -addext "subjectAltName=email:bob@b.test" \
	-addext "extendedKeyUsage=emailProtection" 2>/dev/null
cat "$T/alice.key" "$T/alice.crt" > "$T/alice.pem"
LIBS="$(pkg-config --cflags --libs librnp gmime-3.0 openssl libevent_core libevent_pthreads libevent_openssl \
     libmicrohttpd sqlite3 libpq libcurl libunbound) -lldap -llber -lpthread"
cc -O2 -D_GNU_SOURCE -I"$SRC/src" -I"$BUILD/gen" "$SRC/bench/seal-bench.c" "$BUILD/libsealgate.a" \
   -o "$T/seal-bench" $LIBS
set -- $("$T/seal-bench" smime 10240 "$SECS" "$T/alice.pem" "$T/bob.crt")
inproc=${2%/s}
cc -O2 -D_GNU_SOURCE -I"$SRC/src" -I"$BUILD/gen" "$SRC/bench/domain-bench.c" "$BUILD/libsealgate.a" \
   -o "$T/domain-bench" $LIBS
mkdir "$T/db"
set -- $("$T/domain-bench" "$T/db" "$SECS" 2>/dev/null)
domin=${6%/s}

printf '%-44s %9s %12s %12s\n' "10 KiB, 1 recipient, smtp-source -s ${DOMAIN_SESSIONS:-16}" "msg/s" "a us/msg" "b us/msg"
printf '%-44s %9.1f %12.0f %12.0f\n' "domain: a seals -> b opens + verifies" "$dom" "$dom_a" "$dom_b"
printf '%-44s %9.1f %12.0f %12.0f\n' "plain: a -> b, pass" "$plain" "$plain_a" "$plain_b"
printf '%-44s %9.1f  (%.0f us/msg, one thread)\n' "inproc: sg_seal S/MIME (bench/seal.sh)" "$inproc" \
       "$(echo "1000000 / $inproc" | bc -l)"
printf '%-44s %9.1f  (seal %s/s, open %s/s)\n' "dom-inproc: domain seal + open, one process" "$domin" "${2%/s}" "${4%/s}"
printf '%-44s %9.1f %12.0f %12s\n' "a alone: seals -> smtp-sink" "$stage_a" "$stage_a_cpu" "-"
printf '%-44s %9.1f %12s %12.0f\n' "b alone: opens captured copies -> smtp-sink" "$stage_b" "-" "$stage_b_cpu"
printf 'domain/plain  %.2f\n' "$(echo "$dom / $plain" | bc -l)"
printf 'domain/inproc %.2f (goal >= 0.7)\n' "$(echo "$dom / $inproc" | bc -l)"
printf 'dom-inproc/inproc %.2f\n' "$(echo "$domin / $inproc" | bc -l)"
slow=$(echo "if ($stage_a < $stage_b) $stage_a else $stage_b" | bc -l)
printf 'slower stage alone / inproc %.2f (a %.2f, b %.2f): the a -> b rate with each gateway on its own machine\n' \
       "$(echo "$slow / $inproc" | bc -l)" "$(echo "$stage_a / $inproc" | bc -l)" "$(echo "$stage_b / $inproc" | bc -l)"
printf 'gateway CPU per domain message, a+b: %.0f us (plain %.0f us); dom-inproc seal+open %.0f us\n' \
       "$(echo "$dom_a + $dom_b" | bc -l)" "$(echo "$plain_a + $plain_b" | bc -l)" "$(echo "1000000 / $domin" | bc -l)"
