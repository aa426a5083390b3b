"""Helpers for the key-store tests: a throw-away PostgreSQL in a temp dir
(PEERS.md section 3) and GnuPG in temp homedirs. Servers bind 127.0.0.1 on
ports chosen at run time and are stopped by PID / pg_ctl stop."""
import os
import shutil
import subprocess
import tempfile

from conftest import free_port

PGBIN = "/usr/lib/postgresql/15/bin"
BUILD_DIR = os.environ.get("SEALGATE_BUILD_DIR",
                           os.path.join(os.path.dirname(__file__), "..", "..", "build"))
WKS_CLIENT = "/usr/lib/gnupg/gpg-wks-client"


class Postgres:
    """initdb as the postgres user, pg_ctl on a random port, sockets in the
    temp dir; stop() is pg_ctl stop -m fast on that data dir."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="sg-pg-")
        shutil.chown(self.tmp, "postgres", "postgres")
        self.port = free_port()
        self.data = os.path.join(self.tmp, "data")
        self.started = False

    def _as_pg(self, *args, **kw):
        return subprocess.run(["runuser", "-u", "postgres", "--", *args], cwd="/",
                              capture_output=True, timeout=60, check=True, **kw)

    def start(self):
        self._as_pg(f"{PGBIN}/initdb", "-D", self.data, "-U", "postgres", "-A", "trust",
                    "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
        self._as_pg(f"{PGBIN}/pg_ctl", "-D", self.data, "-l", os.path.join(self.tmp, "pg.log"),
                    "-w", "-t", "30", "-o",
                    f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                    f"-c unix_socket_directories={self.tmp} -c fsync=off", "start")
        self.started = True
        return self

    def createdb(self, name):
        self._as_pg(f"{PGBIN}/createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U",
                    "postgres", name)
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def psql(self, db, sql):
        return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                               "-d", db, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                              capture_output=True, text=True, timeout=30)

    def stop(self):
        if self.started:
            self._as_pg(f"{PGBIN}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
            self.started = False
        shutil.rmtree(self.tmp, ignore_errors=True)


def gpg(home, *args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 60)
    return subprocess.run(["gpg", "--homedir", home, "--batch", "--no-tty", *args], **kw)


def gpg_genkey(home, uid):
    os.makedirs(home, mode=0o700, exist_ok=True)
    r = gpg(home, "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", uid,
            "future-default", "default", "never")
    assert r.returncode == 0, r.stderr
    addr = uid.split("<")[1].rstrip(">")
    out = gpg(home, "--with-colons", "--list-keys", addr, text=True).stdout
    fpr = [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr")][0]
    return fpr


def gpg_kill(home):
    for d in ("dirmngr", "gpg-agent"):
        subprocess.run(["gpgconf", "--homedir", home, "--kill", d], capture_output=True,
                       timeout=30)


def wkd_hash(addr):
    r = subprocess.run([WKS_CLIENT, "--print-wkd-hash", addr], capture_output=True, text=True,
                       timeout=30, check=True)
    return r.stdout.split()[0]


def sealgate(bin_, *args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 60)
    kw.setdefault("text", True)
    return subprocess.run([bin_, "key", *args], **kw)


def make_tls(tmp, names=("example.test", "openpgpkey.example.test")):
    """A throw-away CA and a server certificate for names; returns paths."""
    def ossl(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True, timeout=60)
    ca_key, ca = os.path.join(tmp, "ca.key"), os.path.join(tmp, "ca.pem")
    key, csr, crt = (os.path.join(tmp, n) for n in ("srv.key", "srv.csr", "srv.pem"))
    ext = os.path.join(tmp, "ext")
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
         "-days", "2", "-subj", "/CN=sealgate-wkd-test-CA")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj",
         f"/CN={names[0]}")
    with open(ext, "w") as f:
        f.write("subjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\n")
    ossl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days",
         "2", "-extfile", ext, "-out", crt)
    return ca, crt, key


# A minimal HTTP CONNECT proxy (PEERS.md 4a): every CONNECT goes to
# 127.0.0.1:TARGET_PORT whatever the host, so dirmngr needs no DNS.
CONNECT_PROXY = r'''
import socket, sys, threading
lport, tport = int(sys.argv[1]), int(sys.argv[2])
def pipe(a, b):
    try:
        while (d := a.recv(65536)): b.sendall(d)
    except OSError: pass
    finally:
        try: b.shutdown(socket.SHUT_WR)
        except OSError: pass
def handle(c):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = c.recv(4096)
        if not d: return c.close()
        buf += d
    line = buf.split(b"\r\n", 1)[0]
    print(line.decode(), file=sys.stderr, flush=True)
    if not line.startswith(b"CONNECT "):
        c.sendall(b"HTTP/1.0 405 only CONNECT\r\n\r\n"); return c.close()
    u = socket.create_connection(("127.0.0.1", tport))
    c.sendall(b"HTTP/1.0 200 Connection established\r\n\r\n")
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
    pipe(c, u)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", lport)); s.listen(16)
while True:
    c, _ = s.accept(); threading.Thread(target=handle, args=(c,), daemon=True).start()
'''


class Daemon:
    """A background process with stdout/stderr in files, stopped by PID."""

    def __init__(self, args, tmp, name, port):
        self.out = os.path.join(tmp, f"{name}.out")
        self.err = os.path.join(tmp, f"{name}.err")
        self.port = port
        with open(self.out, "w") as o, open(self.err, "w") as e:
            self.proc = subprocess.Popen(args, stdout=o, stderr=e, stdin=subprocess.DEVNULL)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def stderr(self):
        with open(self.err) as f:
            return f.read()
