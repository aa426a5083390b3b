"""Two (or more) sealgate instances serving domains on loopback, each with
its own state dir, store, sink and domain-key HTTP server ([domain],
doc/domain.md). The clock is SEALGATE_NOW (test only), set per start."""
import os
import re
import smtplib
import subprocess

from conftest import SEALGATE_BIN, free_port, wait_port
from gateway_harness import Gateway, Sink
from keys_helpers import Daemon
from policy_helpers import lmtp_send

DAY = 86400
RULES = "to=*@b.test domain\nto=*@c.test e2e missing=domain\n* pass\n"


def sealgate(*args, now=None, check=True):
    env = dict(os.environ)
    if now is not None:
        env["SEALGATE_NOW"] = str(now)
    r = subprocess.run([SEALGATE_BIN, *args], capture_output=True, env=env, timeout=60)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


class Instance:
    """One gateway: `domain init`, the bundle server, sealgate serve (started
    and restarted by start()), a recording sink as its next hop."""

    def __init__(self, tmp, name, domains, allow=""):
        self.tmp = os.path.join(tmp, name)
        os.makedirs(os.path.join(self.tmp, "sink"), exist_ok=True)
        self.domains = domains
        self.mk = os.path.join(self.tmp, "master.key")
        sealgate("key", "init-master", "--master-key", self.mk)
        self.rules = os.path.join(self.tmp, "policy.rules")
        with open(self.rules, "w") as f:
            f.write(RULES)
        self.state = os.path.join(self.tmp, "state")
        self.sub_port = free_port()
        self.http_port = free_port()
        self.allow = allow
        self.sink = Sink(os.path.join(self.tmp, "sink"))
        self.gw = None
        self.http = None
        self.now = None
        self.conf_extra = ""  # more settings, for serve and the CLI alike
        self.write_conf()

    def extra(self):
        return (f"submission_listen = 127.0.0.1:{self.sub_port}\npolicy_file = {self.rules}\n"
                f"master_key_file = {self.mk}\ndomain_names = {self.domains}\n"
                f"authserv_id = {self.domains.split()[0]}\nwkd_allow_hosts = {self.allow}\n"
                + self.conf_extra)

    def write_conf(self):
        # the same settings for the CLI as for serve (Gateway writes its own copy)
        self.conf = os.path.join(self.tmp, "cli.conf")
        with open(self.conf, "w") as f:
            f.write(f"state_dir = {self.state}\n" + self.extra())

    def cli(self, *args, check=True):
        return sealgate("domain", "-c", self.conf, *args, now=self.now, check=check)

    def serve_bundle(self):
        """The bundle server (`key serve-wkd`), once: it reads the store
        on every request, so it never needs a restart."""
        self.http = Daemon([SEALGATE_BIN, "key", "serve-wkd", "-c", self.conf, "--listen",
                            f"127.0.0.1:{self.http_port}"], self.tmp, "http", self.http_port)
        try:
            wait_port(self.http_port, proc=self.http.proc)
        except RuntimeError as e:
            raise RuntimeError(f"{e}: {self.http.stderr()}")

    def start(self, now):
        """(Re)start serve with the clock at now."""
        self.stop()
        self.now = now
        self.write_conf()
        os.environ["SEALGATE_NOW"] = str(now)
        try:
            self.gw = Gateway(SEALGATE_BIN, self.tmp, self.sink.port, self.extra())
        finally:
            del os.environ["SEALGATE_NOW"]

    def stop(self):
        if self.gw is not None:
            code = self.gw.stop()
            log = self.gw.log()
            assert code == 0, log[-3000:]
            assert "ERROR: AddressSanitizer" not in log and "runtime error" not in log, log[-3000:]
            self.gw = None

    def close(self):
        self.stop()
        if self.http is not None:
            self.http.stop()
            self.http = None
        self.sink.stop()

    def submit(self, sender, rcpts, msg):
        return lmtp_send(self.sub_port, sender, rcpts, msg)

    def inject(self, sender, rcpt, msg):
        """Deliver bytes to the inbound listener: (code, text) of the reply."""
        s = smtplib.SMTP("127.0.0.1", self.gw.smtp_port, timeout=60)
        try:
            s.ehlo("peer.example.test")
            s.sendmail(sender, [rcpt], msg)
            return 250, ""
        except smtplib.SMTPRecipientsRefused as e:
            code, text = list(e.recipients.values())[0]
            return code, text.decode()
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()
        finally:
            s.close()

    def signing_fpr(self):
        """Our long-term signing key's fingerprint, from `domain status`."""
        out = self.cli("status").stdout.decode()
        return re.search(r"^signing +(\w+) ", out, re.M).group(1)

    def peer_rows(self):
        """{domain: (fingerprint, trust, rest)} from the peer lines of `domain status`."""
        out = self.cli("status").stdout.decode()
        return {m.group(1): (m.group(2), m.group(3), m.group(4))
                for m in re.finditer(r"^peer +(\S+) (\w+) trust=(\S+) (.*)$", out, re.M)}

    def key_rows(self):
        """{fingerprint: state} from `domain status` (encryption keys)."""
        out = self.cli("status").stdout.decode()
        rows = {}
        for l in out.splitlines():
            m = re.match(r"encryption (\w+) \S+ \.\. \S+ +(\w+) +private=(\w+)", l)
            if m:
                rows[m.group(1)] = (m.group(2), m.group(3))
        return rows


def allow_for(peers):
    return " ".join(f"{d}=127.0.0.1:{i.http_port}" for i in peers for d in i.domains.split())
