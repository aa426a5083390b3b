"""Start `sealgate serve` in a temp dir with the recording next hop
(scripts/record-sink.py) behind it; stop both by PID."""
import os
import signal
import socket
import subprocess
import time

from conftest import SOURCE_DIR, free_port, wait_port

SINK = os.path.join(SOURCE_DIR, "scripts", "record-sink.py")


class Sink:
    def __init__(self, tmp, lmtp=False, stall=30.0):
        self.dir = os.path.join(tmp, "sink")
        os.makedirs(self.dir, exist_ok=True)
        portfile = os.path.join(tmp, "sink.port")
        args = ["/usr/bin/python3", SINK, "--port-file", portfile, "--stall", str(stall)]
        if lmtp:
            args.append("--lmtp")
        self.log = open(os.path.join(tmp, "sink.log"), "wb")
        self.proc = subprocess.Popen(args + ["0", self.dir], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not os.path.exists(portfile):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("record-sink did not start")
            time.sleep(0.02)
        self.port = int(open(portfile).read())

    def messages(self):
        names = sorted(n for n in os.listdir(self.dir) if n.endswith(".eml"))
        return [open(os.path.join(self.dir, n), "rb").read() for n in names]

    def envelopes(self):
        names = sorted(n for n in os.listdir(self.dir) if n.endswith(".env"))
        return [open(os.path.join(self.dir, n)).read() for n in names]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Gateway:
    """sealgate serve with an SMTP and an LMTP listener."""

    def __init__(self, bin, tmp, relay_port, extra=""):
        self.tmp = tmp
        self.smtp_port, self.lmtp_port = free_port(), free_port()
        self.state = os.path.join(tmp, "state")
        self.conf = os.path.join(tmp, "sealgate.conf")
        with open(self.conf, "w") as f:
            f.write(f"hostname = gw.example.test\nstate_dir = {self.state}\n"
                    f"listen = 127.0.0.1:{self.smtp_port}\nlmtp_listen = 127.0.0.1:{self.lmtp_port}\n"
                    f"relay = 127.0.0.1:{relay_port}\n" + extra)
        self.logpath = os.path.join(tmp, "sealgate.log")
        self.logf = open(self.logpath, "wb")
        self.proc = subprocess.Popen([bin, "serve", "-c", self.conf], stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        wait_port(self.smtp_port, proc=self.proc)
        wait_port(self.lmtp_port, proc=self.proc)
        # Listening comes before dropping privileges: "started" comes after.
        deadline = time.monotonic() + 10
        while " started: " not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("sealgate did not start:\n" + self.log())
            time.sleep(0.02)

    def log(self):
        return open(self.logpath, "rb").read().decode("utf-8", "replace")

    def stop(self, timeout=20):
        """SIGTERM, wait; returns the exit code (kills on timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        return self.proc.returncode


class Raw:
    """A raw SMTP/LMTP client: exact bytes out, replies parsed."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.f = self.s.makefile("rb")

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def reply(self):
        lines = []
        while True:
            l = self.f.readline()
            if not l:
                raise ConnectionError("connection closed; got %r" % lines)
            lines.append(l.decode("utf-8", "replace").rstrip("\r\n"))
            if len(l) < 4 or l[3:4] != b"-":
                return int(lines[-1][:3]), "\n".join(x[4:] for x in lines)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass
