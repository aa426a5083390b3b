"""Real Postfix in front of the outbound path, configured from
etc/postfix/main.cf-submission and master.cf-submission: SASL submission
(Dovecot auth, reject_sender_login_mismatch) -> content_filter LMTP ->
sealgate submission_listen -> reinjection smtpd -> sink, and the TLS-only
treatment through its own reinjection listener whose transport demands TLS.
A recipient matrix and one submission encrypted to the gateway: every
sealed copy is decrypted by gpg / openssl cms here; the plaintext marker
never reaches the sink where policy said encrypt, nor in the bounce."""
import os
import re
import smtplib
import subprocess

import pytest

import pgphelp
from policy_helpers import MARKER, message
from postfix_harness import Daemon, MailPath, free_ports, read_etc, wait_for
from submission_helpers import GATEWAY, client  # noqa: F401 (client is a fixture)

RULES = """to=*@t.test tls-only
to=*@p.test pass
* e2e
"""


def sub_once(text, old, new):
    assert old in text, f"etc/postfix no longer contains {old!r}"
    return text.replace(old, new)


class Auth(Daemon):
    """Dovecot as Postfix's SASL server only: its auth socket in Postfix's
    queue directory (private/auth, as main.cf-submission says)."""

    def __init__(self, tmp, socket_path):
        self.conf = os.path.join(tmp, "dovecot.conf")
        run = os.path.join(tmp, "dovecot-run")
        os.makedirs(run)
        users = os.path.join(tmp, "dovecot-users")
        with open(users, "w") as f:
            for u in ("alice", "mallory"):
                f.write(f"{u}:{{PLAIN}}secret-{u}:65534:65534::/nonexistent::\n")
        with open(self.conf, "w") as f:
            f.write(f"""base_dir = {run}
state_dir = {run}
instance_name = sealgate-test-auth
log_path = /dev/stderr
protocols =
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {users}
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home=/nonexistent
}}
service auth {{
  unix_listener {socket_path} {{
    mode = 0666
  }}
}}
""")
        self.socket_path = socket_path
        super().__init__(["dovecot", "-F", "-c", self.conf], os.path.join(tmp, "dovecot.log"))

    def start(self, timeout=10):
        super().start()
        wait_for(lambda: os.path.exists(self.socket_path), timeout, "dovecot auth socket")
        return self

    def stop(self, timeout=30):
        subprocess.run(["dovecot", "-c", self.conf, "stop"], capture_output=True, timeout=30)
        return super().stop(timeout)


class SubmissionPath(MailPath):
    def __init__(self, client):
        self.sub_front, self.sub_filter, self.tls_port = free_ports(3)
        self.client = client
        super().__init__("lmtp", main_extra={}, filter_extra={})
        state = os.path.join(self.tmp, "keys-state")
        mk = client.copy_state(state)
        rules = os.path.join(self.tmp, "policy.rules")
        with open(rules, "w") as f:
            f.write(RULES)
        with open(self.filter.conf_path, "a") as f:
            f.write(f"store = sqlite:{state}/sealgate.db\nmaster_key_file = {mk}\npolicy_file = {rules}\n"
                    f"submission_listen = 127.0.0.1:{self.sub_filter}\n"
                    f"relay_tls_only = 127.0.0.1:{self.tls_port}\ngateway_address = {GATEWAY}\n")
        conf = self.postfix.conf
        logins = os.path.join(self.tmp, "sender_login")
        with open(logins, "w") as f:
            f.write("alice@a.test alice\nmallory@m.test mallory\n")
        main = read_etc("main.cf-submission")
        main = sub_once(main, "hash:/etc/postfix/sender_login", f"texthash:{logins}")
        main = sub_once(main, "default_filter_nexthop =\n",
                        f"default_filter_nexthop = [127.0.0.1]:{self.sink.port}\n")
        master = read_etc("master.cf-submission")
        master = sub_once(master, "\nsubmission inet", f"\n127.0.0.1:{self.sub_front} inet")
        master = sub_once(master, "[127.0.0.1]:10027", f"[127.0.0.1]:{self.sub_filter}")
        master = sub_once(master, "127.0.0.1:10028 inet", f"127.0.0.1:{self.tls_port} inet")
        with open(os.path.join(conf, "main.cf"), "a") as f:
            f.write("\n# --- etc/postfix/main.cf-submission\n" + main)
        with open(os.path.join(conf, "master.cf"), "a") as f:
            f.write("\n# --- etc/postfix/master.cf-submission\n" + master)
        self.postfix.postconf("-F", "*/*/chroot = n")
        self.auth = Auth(self.tmp, os.path.join(self.postfix.queue_dir, "private", "auth"))

    def start(self):
        self.auth.start()
        super().start()
        wait_for(lambda: self.filter.running() and " started: " in self.filter.log(), 20, "sealgate")
        return self

    def stop(self, keep=False):
        try:
            self.auth.stop()
        finally:
            super().stop(keep)

    def submit(self, user, sender, rcpts, msg):
        """Authenticated submission; returns the 250 text."""
        with smtplib.SMTP("127.0.0.1", self.sub_front, local_hostname="client.a.test", timeout=60) as s:
            s.ehlo("client.a.test")
            s.login(user, f"secret-{user}")
            return s.sendmail(sender, rcpts, msg)


@pytest.fixture(scope="module")
def path(client, tmp_path_factory):
    p = SubmissionPath(client)
    try:
        p.start()
    except Exception:
        print(p.logs())
        p.stop(keep=True)
        raise
    yield p
    p.stop()


def rcpts_of(env):
    return {r.strip("<>").split()[0].strip("<>") for r in env["rcpts"]}


def sink_by_rcpt(path):
    out = {}
    for msg, env in path.sink.messages():
        for r in rcpts_of(env):
            out.setdefault(r, []).append(msg)
    return out


def test_matrix_through_postfix(path, client):
    keys = client.keys
    rcpts = ["bob@b.test", "carol@c.test", "x@t.test", "x@p.test", "nokey@n.test"]
    path.submit("alice", "alice@a.test", rcpts, message(subject="matrix"))
    # an encrypted submission: signed by alice, encrypted to the gateway
    path.submit("alice", "alice@a.test", ["bob@b.test"], client.pgp_mime(marker=MARKER + b" ENC-SUB"))
    # sealed copies (bob twice, carol, pass) + the bounce for nokey to alice
    path.sink.wait_count(5, 90)
    try:
        wait_for(lambda: "TLS is required, but" in path.postfix.maillog(), 60, "tls-only deferral")
        got = sink_by_rcpt(path)
        # e2e OpenPGP: both of bob's copies decrypt with gpg; one is the opened submission
        plains = []
        for msg in got["bob@b.test"]:
            assert MARKER not in msg and b"multipart/encrypted" in msg
            rc, plain, status = keys.gpg_decrypt(pgphelp.encrypted_payload(msg))
            assert rc == 0, status
            plains.append(plain)
        assert sum(MARKER in p for p in plains) == 2 and any(b"ENC-SUB" in p for p in plains)
        # e2e S/MIME
        (smime,) = got["carol@c.test"]
        assert MARKER not in smime
        rc, plain = keys.cms_decrypt(keys.carol, smime, path.tmp)
        assert rc == 0 and MARKER in plain
        # pass: the clear text, as policy says
        assert MARKER in got["x@p.test"][0]
        # tls-only: handed to the TLS listener, whose transport refuses a next hop without TLS
        assert "x@t.test" not in got
        assert re.search(r"postfix/smtp-tls-only/smtp\[\d+\]: \w+: to=<x@t\.test>.*status=deferred "
                         r"\(TLS is required, but", path.postfix.maillog())
        # no key: refused by sealgate, bounced by Postfix to the sender, headers only
        (bounce,) = got["alice@a.test"]
        assert b"nokey@n.test" in bounce and b"5.7.1" in bounce and b"no key for nokey@n.test" in bounce
        assert MARKER not in bounce and b"text/rfc822-headers" in bounce
        # nothing but the pass copy ever held the marker
        for msg, env in path.sink.messages():
            assert MARKER not in msg or rcpts_of(env) == {"x@p.test"}, rcpts_of(env)
        flog = path.filter.log()
        assert re.search(r"submission: client=\S+\[127\.0\.0\.1\], proto=ESMTP", flog)
        assert "submission: decrypted with" in flog
    except Exception:
        print(path.logs())
        raise


def test_sender_login_mismatch(path, client):
    """Mallory cannot submit as alice (so she cannot have alice's mail signed
    or opened for her)."""
    with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
        path.submit("mallory", "alice@a.test", ["bob@b.test"], client.pgp_mime())
    (code, text), = e.value.recipients.values()
    assert code == 553 and b"not owned by user mallory" in text


def test_replay_under_own_login_refused(path, client):
    """Mallory resubmits alice's ciphertext from her own address: sealgate
    refuses, and the bounce to mallory carries no plaintext."""
    before = len(path.sink.files())
    path.submit("mallory", "mallory@m.test", ["mallory@m.test", "x@p.test"], client.pgp_mime())
    path.sink.wait_count(before + 1, 60)
    new = [path.sink.message(f) for f in path.sink.files()[before:]]
    assert all(MARKER not in m for m, _ in new)
    assert any(b"Encrypted submission refused" in m for m, _ in new)
    # the bounce carries only headers: no ciphertext either
    assert all(b"BEGIN PGP MESSAGE" not in m for m, _ in new)
