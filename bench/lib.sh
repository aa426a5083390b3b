# Shared by the bench scripts that run servers (source it): free ports,
# waiting for a listener, sealgate's relay-role config, CPU ticks.

free_port() {
	python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# wait_port PORT PID LOG: until PORT accepts (30 s); exit if PID dies (its LOG shown).
wait_port() {
	local i me
	me=$(basename "$0")
	for i in $(seq 300); do
		python3 -c "import socket;socket.create_connection(('127.0.0.1',$1)).close()" 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || { echo "$me: process $2 died; log:" >&2; cat "$3" >&2; exit 1; }
		sleep 0.1
	done
	echo "$me: nothing listening on $1" >&2; exit 1
}

# relay_conf FILE STATE_DIR PORT SINK_PORT HOSTNAME: sealgate.conf for the
# relay role (SMTP in on PORT, out to SINK_PORT, no XFORWARD); callers
# append their own lines.
relay_conf() {
	mkdir -p "$2/tmp"
	cat >"$1" <<CONF
hostname = $5
state_dir = $2
listen = 127.0.0.1:$3
lmtp_listen =
relay = 127.0.0.1:$4
relay_protocol = smtp
xforward = no
log = stderr
CONF
}

cpu_ticks() {   # utime + stime of PID, in clock ticks (fields 14, 15 of /proc/PID/stat)
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
