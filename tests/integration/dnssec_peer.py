"""A DNSSEC-signed test zone served offline: keys made with ldns-keygen,
the zone signed with ldns-signzone, served by nsd on 127.0.0.1 (port
chosen at run time, stopped by PID). Its KSK's DS record is the trust
anchor handed to sealgate's resolver (dns_trust_anchor_file)."""
import hashlib
import os
import shutil
import subprocess
import tempfile

from conftest import free_port, wait_port

RR_SMIMEA, RR_OPENPGPKEY = 53, 61


def owner(addr, label):
    """RFC 7929 3 / RFC 8162 3.1: SHA2-256 of the local part, 28 octets, hex."""
    local, domain = addr.rsplit("@", 1)
    return f"{hashlib.sha256(local.encode()).hexdigest()[:56]}.{label}.{domain}."


def generic(rrtype, data):
    """RFC 3597 generic RDATA syntax: independent of the tools' type tables."""
    return f"TYPE{rrtype} \\# {len(data)} {data.hex()}"


class SignedZone:
    def __init__(self, zone, records, signed=True, tamper=None):
        """records: [(owner, rrtype, rdata bytes)]. signed=False serves the
        same records without signatures; tamper=(owner, type name)
        breaks the RRSIG over that RRset after signing."""
        self.zone = zone.rstrip(".")
        self.tmp = tempfile.mkdtemp(prefix="sg-dnssec-")
        self.port = free_port()
        self.proc = None
        lines = [f"$ORIGIN {self.zone}.", "$TTL 300",
                 f"@ IN SOA ns.{self.zone}. admin.{self.zone}. 1 3600 600 86400 300",
                 f"@ IN NS ns.{self.zone}.", "ns IN A 127.0.0.1"]
        lines += [f"{o} IN {generic(t, d)}" for o, t, d in records]
        zfile = os.path.join(self.tmp, "zone")
        with open(zfile, "w") as f:
            f.write("\n".join(lines) + "\n")
        ksk = self._run("ldns-keygen", "-a", "ECDSAP256SHA256", "-k", self.zone)
        zsk = self._run("ldns-keygen", "-a", "ECDSAP256SHA256", self.zone)
        self.anchor = os.path.join(self.tmp, ksk + ".ds")
        served = zfile
        if signed:
            self._run("ldns-signzone", "zone", zsk, ksk)
            served = zfile + ".signed"
            if tamper is not None:
                self._tamper(served, tamper)
        self._start(served)

    def _run(self, *args):
        r = subprocess.run(args, cwd=self.tmp, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    @staticmethod
    def _tamper(path, which):
        """Flip one character in the signature of the RRSIG over the RRset
        which = (owner, type) (not the NSEC one at the same name)."""
        name, rrtype = which
        out = []
        for line in open(path).read().splitlines():
            f = line.split()
            if len(f) > 5 and f[0] == name and f[3] == "RRSIG" and f[4] in rrtype:
                sig = f[-1]
                c = "A" if sig[10] != "A" else "B"
                line = line[: line.rindex(sig)] + sig[:10] + c + sig[11:]
            out.append(line)
        with open(path, "w") as fh:
            fh.write("\n".join(out) + "\n")

    def _start(self, zonefile):
        conf = os.path.join(self.tmp, "nsd.conf")
        with open(conf, "w") as f:
            f.write(f"""server:
  ip-address: 127.0.0.1
  port: {self.port}
  username: ""
  chroot: ""
  zonesdir: "{self.tmp}"
  database: ""
  zonelistfile: "{self.tmp}/zone.list"
  xfrdfile: "{self.tmp}/xfrd.state"
  xfrdir: "{self.tmp}"
  pidfile: "{self.tmp}/nsd.pid"
  logfile: "{self.tmp}/nsd.log"
  server-count: 1
  tcp-count: 10
remote-control:
  control-enable: no
zone:
  name: {self.zone}
  zonefile: "{zonefile}"
""")
        self.out = open(os.path.join(self.tmp, "nsd.out"), "w")
        self.proc = subprocess.Popen(["nsd", "-d", "-c", conf], stdout=self.out,
                                     stderr=subprocess.STDOUT)
        # nsd listens on TCP too: the port answering means the zone is loaded.
        wait_port(self.port, proc=self.proc)

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None
            self.out.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
