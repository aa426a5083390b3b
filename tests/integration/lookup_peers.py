"""Peers for the look-up chain tests: a counting WKD HTTP server (thread in
the test process, 127.0.0.1, port chosen at run time), a real slapd in a
temp dir (PEERS.md section 2, stopped by PID) and a silent TCP listener."""
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import free_port, wait_port

# pgpKey/pgpKeyInfo from the PGP keyserver LDAP schema (OIDs 3401.8.2.*),
# as binary octet strings here.
PGP_SCHEMA = """
attributetype ( 1.3.6.1.4.1.3401.8.2.11 NAME 'pgpKey'
  EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )
objectclass ( 1.3.6.1.4.1.3401.8.2.24 NAME 'pgpKeyInfo' SUP top AUXILIARY
  MAY ( pgpKey ) )
"""


class WkdServer:
    """Serves self.keys[path] for GET; counts requests per path; delay
    makes concurrent look-ups overlap."""

    def __init__(self):
        self.keys = {}
        self.hits = {}
        self.delay = 0.0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?")[0]
                with outer.lock:
                    outer.hits[path] = outer.hits.get(path, 0) + 1
                    body = outer.keys.get(path)
                if outer.delay:
                    time.sleep(outer.delay)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def count(self, path=None):
        with self.lock:
            return sum(self.hits.values()) if path is None else self.hits.get(path, 0)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Slapd:
    """slapd with a test directory (PEERS.md section 2): data loaded offline
    with slapadd, then slapd -d 0 on 127.0.0.1:PORT, stopped by PID."""

    def __init__(self, entries_ldif):
        self.tmp = tempfile.mkdtemp(prefix="sg-slapd-")
        self.port = free_port()
        self.proc = None
        os.makedirs(os.path.join(self.tmp, "db"))
        with open(os.path.join(self.tmp, "pgp.schema"), "w") as f:
            f.write(PGP_SCHEMA)
        conf = os.path.join(self.tmp, "slapd.conf")
        with open(conf, "w") as f:
            f.write(f"""include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include {self.tmp}/pgp.schema
pidfile  {self.tmp}/slapd.pid
argsfile {self.tmp}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize  10485760
suffix   "dc=example,dc=test"
rootdn   "cn=admin,dc=example,dc=test"
rootpw   secret
directory {self.tmp}/db
index objectClass eq
index mail eq
""")
        ldif = os.path.join(self.tmp, "data.ldif")
        with open(ldif, "w") as f:
            f.write("""dn: dc=example,dc=test
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,dc=example,dc=test
objectClass: organizationalUnit
ou: people

""" + entries_ldif)
        subprocess.run(["slapadd", "-f", conf, "-l", ldif], check=True, capture_output=True,
                       timeout=60)
        self.log = open(os.path.join(self.tmp, "slapd.log"), "w")
        self.proc = subprocess.Popen(["slapd", "-h", f"ldap://127.0.0.1:{self.port}/", "-f", conf,
                                      "-d", "0"], stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, proc=self.proc)
        self.uri = f"ldap://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class SilentServer:
    """Accepts TCP connections and never answers (a hung directory)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def stop(self):
        self.sock.close()


class TinyDns:
    """A UDP DNS responder on 127.0.0.1 (port chosen at run time) in a
    thread: answers type-61 (OPENPGPKEY) queries for any name with the
    given record, unsigned, and everything else with an empty NOERROR.
    silent=True: never answers (a dead resolver). Counts queries."""

    def __init__(self, rdata=b"", silent=False):
        self.rdata, self.silent, self.queries = rdata, silent, []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            if len(data) < 12:
                continue
            i = 12
            while i < len(data) and data[i] != 0:
                i += data[i] + 1
            qtype = int.from_bytes(data[i + 1:i + 3], "big")
            self.queries.append(qtype)
            if self.silent:
                continue
            question = data[12:i + 5]
            answer = b""
            if qtype == 61 and self.rdata:
                answer = (b"\xc0\x0c" + (61).to_bytes(2, "big") + b"\x00\x01" +
                          (300).to_bytes(4, "big") + len(self.rdata).to_bytes(2, "big") + self.rdata)
            hdr = data[0:2] + b"\x81\x80" + b"\x00\x01" + (b"\x00\x01" if answer else b"\x00\x00") + b"\x00\x00\x00\x00"
            self.sock.sendto(hdr + question + answer, peer)

    def stop(self):
        self.stopped = True
        self.sock.close()
