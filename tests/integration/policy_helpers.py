"""Shared set-up for the policy tests (test_outbound_policy.py,
test_policy_cli.py, test_inbound_verify.py): keys of every kind made with
gpg and openssl, put into a sealgate store (`sealgate key import`, or raw
rows for keys that import refuses: expired, revoked, wrong user ID)."""
import os
import shutil
import sqlite3
import subprocess
import time

import pgphelp
import smime_pki
from conftest import SEALGATE_BIN, run
from gateway_harness import Raw

MARKER = b"PLAINTEXT-MARKER-7f3e9a"


def gen_pgp(home, keydir, name, uid, expired=False):
    """A gpg key (Ed25519/Cv25519); NAME.pub, NAME.sec in keydir; fingerprint."""
    extra = ["--faked-system-time", "20200101T000000!"] if expired else []
    pgphelp.gpg(home, *extra, "--passphrase", "", "--quick-gen-key", uid, "future-default",
                "default", "1d" if expired else "never")
    addr = uid.split("<")[1].rstrip(">")
    fpr = pgphelp.fingerprint(home, addr)
    for ext, args in (("pub", ["--armor", "--export"]),
                      ("sec", ["--passphrase", "", "--armor", "--export-secret-keys"])):
        with open(os.path.join(keydir, name + "." + ext), "wb") as f:
            f.write(pgphelp.gpg(home, *args, addr).stdout)
    return fpr


def revoke(home, keydir, name, addr):
    fpr = pgphelp.fingerprint(home, addr)
    rev = open(os.path.join(home, "openpgp-revocs.d", fpr + ".rev"), "rb").read()
    rev = rev.replace(b":-----BEGIN PGP PUBLIC KEY BLOCK", b"-----BEGIN PGP PUBLIC KEY BLOCK")
    pgphelp.gpg(home, "--import", inp=rev)
    with open(os.path.join(keydir, name + ".pub"), "wb") as f:
        f.write(pgphelp.gpg(home, "--armor", "--export", addr).stdout)


def sealgate(*args, inp=b""):
    return run([SEALGATE_BIN, *args], input=inp)


def key_import(state, path, addr=None):
    args = ["key", "import", "--state-dir", state, path] + (["--addr", addr] if addr else [])
    r = sealgate(*args)
    assert r.returncode == 0, r.stderr.decode()


def raw_row(state, addr, fpr, kind, pubfile):
    """Put a key into the store as it is: the CLI refuses expired and
    revoked keys and keys without the address, but a store can still hold
    them (imported while valid, synced from elsewhere)."""
    db = sqlite3.connect(os.path.join(state, "sealgate.db"))
    db.execute("INSERT INTO user_keys (addr, fingerprint, kind, wkd_hash, domain, expires, created,"
               " source, trust, data) VALUES (?,?,?,?,?,?,?,?,?,?)",
               (addr, fpr, kind, "", addr.split("@")[1], 0, int(time.time()), "test", "configured",
                open(pubfile, "rb").read()))
    db.commit()
    db.close()


class Keys:
    """Every kind of recipient key, in keydir; gpg home in home."""

    def __init__(self, tmp):
        self.home = os.path.join(tmp, "gnupg")
        self.dir = os.path.join(tmp, "keys")
        os.makedirs(self.home, mode=0o700)
        os.makedirs(self.dir)
        self.fpr = {}
        for name, uid in (("bob", "Bob <bob@b.test>"), ("frank", "Frank <frank@f.test>"),
                          ("data5", "Data5 <data5-k@b.test>"), ("erin", "Erin <erin@e.test>"),
                          ("mallory", "Mallory <mallory@m.test>")):
            self.fpr[name] = gen_pgp(self.home, self.dir, name, uid)
        self.fpr["dave"] = gen_pgp(self.home, self.dir, "dave", "Dave <dave@d.test>", expired=True)
        revoke(self.home, self.dir, "erin", "erin@e.test")
        self.carol = smime_pki.self_signed(self.dir, "carol", "carol@c.test", "rsa")
        self.frank_x509 = smime_pki.self_signed(self.dir, "frankx", "frank@f.test", "ec")

    def path(self, name):
        return os.path.join(self.dir, name + ".pub")

    def x509_fpr(self, ident):
        out = smime_pki.sh(["openssl", "x509", "-in", ident.crt, "-noout", "-fingerprint",
                            "-sha256"]).stdout.decode()
        return out.strip().split("=", 1)[1].replace(":", "")

    def populate(self, state):
        """populate_once() into a template, copied to state for each caller."""
        tmpl = os.path.join(self.dir, "store-template")
        if not os.path.exists(tmpl):
            self.populate_once(tmpl)
        shutil.copytree(tmpl, state, dirs_exist_ok=True)

    def populate_once(self, state):
        """The store: bob, frank (both kinds), data5-k: usable; carol:
        S/MIME; dave expired, erin revoked, mallory's key filed under
        wrong@w.test: raw rows."""
        os.makedirs(state, mode=0o700, exist_ok=True)
        for name in ("bob", "frank", "data5"):
            key_import(state, self.path(name))
        key_import(state, self.carol.crt, "carol@c.test")
        key_import(state, self.frank_x509.crt, "frank@f.test")
        raw_row(state, "dave@d.test", self.fpr["dave"], "pgp", self.path("dave"))
        raw_row(state, "erin@e.test", self.fpr["erin"], "pgp", self.path("erin"))
        raw_row(state, "wrong@w.test", self.fpr["mallory"], "pgp", self.path("mallory"))

    def gpg_decrypt(self, armored):
        r = pgphelp.gpg(self.home, "--status-fd", "2", "--decrypt", inp=armored, check=False)
        return r.returncode, r.stdout, r.stderr.decode(errors="replace")

    def cms_decrypt(self, ident, msg, tmp):
        path = os.path.join(tmp, "cms-in.eml")
        with open(path, "wb") as f:
            f.write(msg)
        r = subprocess.run(["openssl", "cms", "-decrypt", "-in", path, "-recip", ident.crt,
                            "-inkey", ident.key], capture_output=True, timeout=60)
        return r.returncode, r.stdout

    def stop(self):
        pgphelp.kill_agent(self.home)


def dot_stuff(msg):
    return b"".join(b"." + l if l.startswith(b".") else l for l in msg.splitlines(keepends=True))


def lmtp_send(port, mail, rcpts, msg):
    """One LMTP transaction: ({rcpt: (code, text)} for RCPT failures and
    DATA replies, per recipient)."""
    c = Raw(port)
    assert c.reply()[0] == 220
    assert c.cmd("LHLO client.example.test")[0] == 250
    assert c.cmd(f"MAIL FROM:<{mail}>")[0] == 250
    out, ok = {}, []
    for r in rcpts:
        code, text = c.cmd(f"RCPT TO:<{r}>")
        if code >= 300:
            out[r] = (code, text)
        else:
            ok.append(r)
    if ok:
        assert c.cmd("DATA")[0] == 354
        c.send(dot_stuff(msg) + b".\r\n")
        for r in ok:
            out[r] = c.reply()
    c.cmd("QUIT")
    c.close()
    return out


def message(subject="hello", extra=b""):
    return (b"From: Alice <alice@a.test>\r\nTo: many\r\nSubject: " + subject.encode() +
            b"\r\nMessage-ID: <m1@a.test>\r\n" + extra +
            b"Content-Type: text/plain\r\n\r\nsecret body " + MARKER + b"\r\n")
