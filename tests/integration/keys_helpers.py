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
            "ed25519", "sign", "never")
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
