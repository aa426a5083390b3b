"""Real Postfix around the filter, in a temp dir: front smtpd -> queue ->
content_filter (sealgate, SMTP or LMTP) -> reinjection smtpd -> queue -> sink.

The Postfix lines that make sealgate a content filter are read from
etc/postfix/ (the files doc/postfix.md quotes), so the documented lines are
the tested ones; only ports and test-speed settings are changed here.
Everything binds 127.0.0.1 on ports chosen at run time and is stopped by PID."""
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time

from conftest import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SEALGATE_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
ETC = os.path.join(SOURCE_DIR, "etc", "postfix")
STANDIN = os.path.join(HERE, "filter_standin.py")
SINK = os.path.join(HERE, "sink_recorder.py")
# The ports the etc/postfix/ files (and etc/sealgate.conf) use.
DOC_FILTER_PORT = {"lmtp": 10024, "smtp": 10025}
DOC_REINJECT_PORT = 10026

# Lower Postfix's retry times so that a deferred message is retried within
# seconds (the crash test depends on it); everything else is Postfix's default.
FAST_RETRY = {
    "minimal_backoff_time": "2s",
    "maximal_backoff_time": "4s",
    "queue_run_delay": "2s",
}


def free_ports(n):
    return [free_port() for _ in range(n)]


def wait_for(pred, timeout, what, interval=0.1):
    """Poll pred() until it returns something true; its value, or raise."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def smtp_ready(port):
    """An SMTP server answers on port with its 220 greeting. The kernel
    completes a connection to Postfix's listening socket before an smtpd
    serves it, so a bare connect is not enough."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(2)
            if not s.recv(512).startswith(b"220"):
                return False
            s.sendall(b"QUIT\r\n")
            return True
    except OSError:
        return False


class Daemon:
    """A background process with stdout+stderr in a file, stopped by PID."""

    def __init__(self, argv, log_path, port=None):
        self.argv, self.log_path, self.port, self.proc = argv, log_path, port, None

    def start(self, timeout=10):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        if self.port is not None:
            def up():
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.argv[0]} exited with {self.proc.returncode}:\n"
                                       + self.log()[-2000:])
                return port_open(self.port)
            wait_for(up, timeout, f"{self.argv[0]} on port {self.port}", 0.05)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=30):
        """SIGTERM, then SIGKILL after timeout; the exit code (or None)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        rc, self.proc = self.proc.returncode, None
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.logf.close()
        self.proc = None

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


class Sink(Daemon):
    """The recording next hop: exact DATA bytes of every message it takes."""

    def __init__(self, tmp, port):
        self.dir = os.path.join(tmp, "sink")
        os.makedirs(self.dir, exist_ok=True)
        self._ids = {}
        super().__init__([sys.executable, SINK, str(port), self.dir],
                         os.path.join(tmp, "sink.log"), port)

    def files(self):
        return sorted(f for f in os.listdir(self.dir) if f.endswith(".eml"))

    def msgids(self):
        """{file: Message-ID} of every stored message (headers read once)."""
        for f in self.files():
            if f not in self._ids:
                with open(os.path.join(self.dir, f), "rb") as fe:
                    self._ids[f] = message_id(fe.read(256 * 1024))
        return dict(self._ids)

    def message(self, f):
        """(bytes, envelope dict) of one stored message."""
        base = os.path.join(self.dir, f[:-4])
        with open(base + ".eml", "rb") as fe, open(base + ".json") as fj:
            return fe.read(), json.load(fj)

    def messages(self):
        """[(bytes, envelope dict)] in arrival order."""
        return [self.message(f) for f in self.files()]

    def wait_count(self, n, timeout):
        return wait_for(lambda: len(self.files()) >= n, timeout, f"{n} messages at the sink")


def filter_command():
    """The filter under test: `$SEALGATE_BIN serve`. SEALGATE_FILTER=standin
    swaps in filter_standin.py (same config and contract, in Python), which
    proves the Postfix side on its own and lets bench/relay.sh be checked."""
    if os.environ.get("SEALGATE_FILTER") == "standin":
        return "standin", [sys.executable, STANDIN]
    binary = os.environ.get("SEALGATE_BIN", os.path.join(SOURCE_DIR, "build", "sealgate"))
    assert os.access(binary, os.X_OK), f"sealgate binary not built: {binary}"
    return "sealgate", [binary]


class Filter(Daemon):
    """sealgate (or its stand-in) as the content filter, relaying to the
    reinjection listener."""

    def __init__(self, tmp, proto, port, relay_port, extra=None):
        self.kind, cmd = filter_command()
        self.proto = proto
        state = os.path.join(tmp, "filter-state")
        os.makedirs(os.path.join(state, "tmp"), exist_ok=True)
        self.conf_path = os.path.join(tmp, "sealgate.conf")
        conf = {
            "hostname": "gw.example.test",
            "state_dir": state,
            "listen": f"127.0.0.1:{port}" if proto == "smtp" else "",
            "lmtp_listen": f"127.0.0.1:{port}" if proto == "lmtp" else "",
            "relay": f"127.0.0.1:{relay_port}",
            "relay_protocol": "smtp",
            "xforward": "yes",
            "max_message_size": "64M",
            "spool_memory_max": "1M",
            "log": "stderr",
        }
        conf.update(extra or {})
        with open(self.conf_path, "w") as f:
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())
        super().__init__(cmd + ["serve", "-c", self.conf_path],
                         os.path.join(tmp, "filter.log"), port)


_QUEUE_TEMPLATE = []


def _queue_template():
    """A queue directory tree made once per test process by `postfix check`
    (its create-missing step), copied into every instance with a
    quick-start flag: postfix-script then skips the integrity checks that
    take seconds on every start."""
    if not _QUEUE_TEMPLATE:
        import atexit
        import tempfile
        t = tempfile.mkdtemp(prefix="sg-postfix-template-")
        os.chmod(t, 0o755)
        for d in ("conf", "queue", "data"):
            os.mkdir(os.path.join(t, d))
        shutil.chown(os.path.join(t, "data"), "postfix")
        with open(os.path.join(t, "conf", "main.cf"), "w") as f:
            f.write(f"compatibility_level = 3.6\nqueue_directory = {t}/queue\n"
                    f"data_directory = {t}/data\n")
        shutil.copy("/etc/postfix/master.cf", os.path.join(t, "conf", "master.cf"))
        r = subprocess.run(["postfix", "-c", os.path.join(t, "conf"), "check"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        atexit.register(shutil.rmtree, t, True)
        _QUEUE_TEMPLATE.append(os.path.join(t, "queue"))
    return _QUEUE_TEMPLATE[0]


def read_etc(name):
    with open(os.path.join(ETC, name)) as f:
        return f.read()


def _sub_once(text, old, new, name):
    if old not in text:
        raise AssertionError(f"etc/postfix/{name} no longer contains {old!r}")
    return text.replace(old, new)


class Postfix:
    """One Postfix instance (postfix -c DIR) with sealgate as content filter."""

    def __init__(self, tmp, proto, front_port, filter_port, reinject_port, sink_port, main_extra=None):
        self.tmp, self.proto = tmp, proto
        self.front_port, self.reinject_port = front_port, reinject_port
        self.conf = os.path.join(tmp, "conf")
        self.queue_dir = os.path.join(tmp, "queue")
        self.data_dir = os.path.join(tmp, "data")
        self.maillog_path = os.path.join(tmp, "maillog")
        for d in (self.conf, self.data_dir):
            os.makedirs(d, exist_ok=True)
        subprocess.run(["cp", "-a", _queue_template(), self.queue_dir], check=True)
        open(os.path.join(self.queue_dir, "quick-start"), "w").close()
        os.chmod(tmp, 0o755)  # postfix's unprivileged daemons traverse it
        shutil.chown(self.data_dir, "postfix")
        self._write_main(filter_port, sink_port, main_extra or {})
        self._write_master(filter_port)
        self.proc = None

    def _write_main(self, filter_port, sink_port, extra):
        name = f"main.cf-{self.proto}"
        snippet = _sub_once(read_etc(name), f"[127.0.0.1]:{DOC_FILTER_PORT[self.proto]}",
                            f"[127.0.0.1]:{filter_port}", name)
        base = [
            "compatibility_level = 3.6",
            f"queue_directory = {self.queue_dir}",
            f"data_directory = {self.data_dir}",
            "maillog_file = /dev/stdout",
            "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4",
            "myhostname = mx.example.test",
            "mydestination =",
            "mynetworks = 127.0.0.0/8",
            f"relayhost = [127.0.0.1]:{sink_port}",
            "alias_maps =",
            "alias_database =",
            "smtpd_peername_lookup = no",  # no reverse DNS: the machine is offline
            "message_size_limit = 104857600",
            "smtputf8_enable = no",
        ]
        base += [f"{k} = {v}" for k, v in {**FAST_RETRY, **extra}.items()]
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write("\n".join(base) + "\n\n# --- etc/postfix/" + name + "\n" + snippet)

    def _write_master(self, filter_port):
        with open("/etc/postfix/master.cf") as f:
            master = f.read()
        master, n = re.subn(r"(?m)^smtp\s+inet\s.*$",
                            f"127.0.0.1:{self.front_port} inet n - n - - smtpd", master)
        assert n == 1, "no 'smtp inet' line in /etc/postfix/master.cf"
        name = "master.cf-sealgate"
        snippet = _sub_once(read_etc(name), f"127.0.0.1:{DOC_REINJECT_PORT} inet",
                            f"127.0.0.1:{self.reinject_port} inet", name)
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(master + "\n# --- etc/postfix/" + name + "\n" + snippet)
        # No chroot: the temp queue directory has no copy of /etc for it.
        self.postconf("-F", "*/*/chroot = n")

    def postconf(self, *args):
        r = subprocess.run(["postconf", "-c", self.conf, *args], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def start(self):
        self.logf = open(self.maillog_path, "ab")
        self.proc = subprocess.Popen(["postfix", "-c", self.conf, "start-fg"], stdout=self.logf,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"postfix start-fg exited {self.proc.returncode}:\n"
                                   + self.maillog()[-3000:])
            return smtp_ready(self.front_port) and smtp_ready(self.reinject_port)
        wait_for(up, 30, "postfix listeners")
        return self

    def master_pid(self):
        try:
            with open(os.path.join(self.queue_dir, "pid", "master.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        if self.proc is None:
            return
        pid = self.master_pid()
        subprocess.run(["postfix", "-c", self.conf, "stop"], capture_output=True, timeout=30)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        # If the start-fg wrapper went but master did not, kill master by PID.
        if pid is not None and _alive(pid) and _comm(pid) == "master":
            os.kill(pid, signal.SIGKILL)
        self.proc = None
        self.logf.close()

    # --- the reinjection listener (Postfix's next hop for sealgate) -------
    def _reinject_service(self):
        return f"127.0.0.1:{self.reinject_port}/inet"

    def reinject_down(self):
        """Comment the reinjection listener out (postconf -M#) and reload, so
        that sealgate's next hop refuses connections."""
        with open(os.path.join(self.conf, "master.cf")) as f:
            self._master_saved = f.read()
        self.postconf("-M#", self._reinject_service())
        self.reload()
        wait_for(lambda: not port_open(self.reinject_port), 20, "reinjection listener closed")

    def reinject_up(self):
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(self._master_saved)
        self.reload()
        wait_for(lambda: smtp_ready(self.reinject_port), 20, "reinjection listener back")

    def reload(self):
        r = subprocess.run(["postfix", "-c", self.conf, "reload"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr

    # --- queue -------------------------------------------------------------
    def queue(self):
        """postqueue -j: one dict per queued message."""
        r = subprocess.run(["postqueue", "-c", self.conf, "-j"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def queue_listing(self):
        return subprocess.run(["postqueue", "-c", self.conf, "-p"], capture_output=True,
                              text=True, timeout=30).stdout

    def flush(self):
        r = subprocess.run(["postqueue", "-c", self.conf, "-f"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr

    def flush_until_empty(self, timeout):
        """Flush, then watch the queue for 2 s; again until it is empty
        (bounded)."""
        deadline = time.monotonic() + timeout
        while self.queue():
            if time.monotonic() > deadline:
                raise TimeoutError(f"queue not empty after {timeout}s:\n{self.queue_listing()}")
            self.flush()
            settle = time.monotonic() + 2
            while time.monotonic() < settle and self.queue():
                time.sleep(0.1)

    def maillog(self):
        with open(self.maillog_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    # --- sending -------------------------------------------------------------
    def send(self, msg, sender="alice@x.test", rcpts=("bob@y.test",), helo="origclient.test",
             source="127.0.0.2", timeout=60):
        """Send to the front smtpd; the 250 reply's text (has 'queued as ID')."""
        with smtplib.SMTP("127.0.0.1", self.front_port, local_hostname=helo,
                          source_address=(source, 0), timeout=timeout) as s:
            s.ehlo(helo)
            opts = ["BODY=8BITMIME"] if any(b > 127 for b in msg) else []
            code, text = s.mail(sender, opts)
            assert code == 250, (code, text)
            for r in rcpts:
                code, text = s.rcpt(r)
                assert code == 250, (code, text)
            code, text = s.data(msg)
            assert code == 250, (code, text)
            return text.decode()


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def queued_as(reply_text):
    m = re.search(r"queued as (\S+)", reply_text)
    assert m, reply_text
    return m.group(1)


def make_message(msgid, subject="test", body=b"hello\r\n", extra_headers=b""):
    return (b"From: Alice <alice@x.test>\r\n"
            b"To: Bob <bob@y.test>\r\n"
            b"Subject: " + subject.encode() + b"\r\n"
            b"Message-ID: <" + msgid.encode() + b">\r\n"
            b"Date: Wed, 25 Nov 2026 02:00:00 +0000\r\n"
            + extra_headers + b"\r\n" + body)


def split_message(data):
    """(header block, body) of a CRLF message."""
    head, _, body = data.partition(b"\r\n\r\n")
    return head + b"\r\n", body


def header_fields(head):
    """Raw header fields (with their folding) in order."""
    fields = []
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    return fields


def message_id(data):
    m = re.search(rb"(?im)^Message-ID:\s*<([^>\r\n]*)>", split_message(data)[0])
    return m.group(1).decode() if m else None


class MailPath:
    """The whole path in one temp dir: front smtpd -> filter -> reinjection
    smtpd -> recording sink. stop() stops everything that runs, by PID."""

    def __init__(self, proto, main_extra=None, filter_extra=None):
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix=f"sg-postfix-{proto}-")
        os.chmod(self.tmp, 0o755)
        self.proto = proto
        self.front_port, self.filter_port, self.reinject_port, sink_port = free_ports(4)
        self.sink = Sink(self.tmp, sink_port)
        self.filter = Filter(self.tmp, proto, self.filter_port, self.reinject_port, filter_extra)
        self.postfix = Postfix(self.tmp, proto, self.front_port, self.filter_port,
                               self.reinject_port, sink_port, main_extra)

    def start(self, with_filter=True):
        self.sink.start()
        self.postfix.start()
        if with_filter:
            self.filter.start()
        return self

    def stop(self, keep=False):
        """Stop everything; then raise if the filter did not exit 0 on
        SIGTERM or its log has a sanitizer report (the tests run under ASan
        too). The temp dir stays when something failed or keep is set."""
        errors = []
        was_running = self.filter.running()
        for part in (self.filter, self.postfix, self.sink):
            try:
                rc = part.stop()
                if part is self.filter and was_running and rc != 0:
                    errors.append(AssertionError(f"filter exit status {rc} on SIGTERM"))
            except Exception as e:  # stop the rest regardless
                errors.append(e)
        flog = self.filter.log() if os.path.exists(self.filter.log_path) else ""
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in flog:
                errors.append(AssertionError(f"sanitizer report in {self.filter.log_path}"))
        if not keep and not errors:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if errors:
            raise errors[0]

    def logs(self):
        """The tail of every log, for a failing test's output."""
        out = []
        for name in ("maillog", "filter.log", "sink.log"):
            p = os.path.join(self.tmp, name)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    out.append(f"--- {name}\n" + f.read()[-4000:].decode("utf-8", "replace"))
        return "\n".join(out)
