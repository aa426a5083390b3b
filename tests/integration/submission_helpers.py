"""Shared by the encrypted-submission tests (test_submission.py,
test_postfix_policy.py): a store with the recipients' keys (policy_helpers),
a gateway key made by `sealgate key generate --gateway`, a client (alice)
whose gpg key and S/MIME certificate the store knows, and messages that
gpg / openssl cms encrypt to the gateway."""
import os
import shutil

import pytest

import pgphelp
import smime_pki
from policy_helpers import MARKER, Keys, key_import, sealgate

GATEWAY = "gateway@gw.example.test"
CLIENT = "alice@a.test"


def inner(marker=MARKER, extra=b""):
    return (b"Content-Type: text/plain; charset=us-ascii\r\n\r\nsecret body " + marker + b"\r\n" + extra)


def outer_header(frm=CLIENT, to="bob@b.test", subject="encrypted submission"):
    return (f"From: Alice <{frm}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <sub1@a.test>\r\nMIME-Version: 1.0\r\n").encode()


def crlf(b):
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class Client:
    """The keys a submission test needs, made once per module."""

    def __init__(self, keys):
        self.keys = keys
        self.home = keys.home
        d = os.path.join(keys.dir, "submission")
        os.makedirs(d)
        self.dir = d
        self.mk = os.path.join(d, "master.key")
        self.state = os.path.join(d, "state")
        keys.populate(self.state)
        assert sealgate("key", "init-master", "--master-key", self.mk).returncode == 0
        conf = os.path.join(d, "gen.conf")
        with open(conf, "w") as f:
            f.write(f"gateway_address = {GATEWAY}\n")
        r = sealgate("key", "generate", "--gateway", "-c", conf, "--state-dir", self.state,
                     "--master-key", self.mk)
        assert r.returncode == 0, r.stderr
        pub = sealgate("key", "export", "--state-dir", self.state, GATEWAY)
        assert pub.returncode == 0, pub.stderr
        pgphelp.gpg(self.home, "--import", inp=pub.stdout)
        # alice: an OpenPGP key and an S/MIME certificate, public parts in the store
        pgphelp.gpg(self.home, "--passphrase", "", "--quick-gen-key", f"Alice <{CLIENT}>",
                    "future-default", "default", "never")
        with open(os.path.join(d, "alice.pub"), "wb") as f:
            f.write(pgphelp.gpg(self.home, "--armor", "--export", CLIENT).stdout)
        key_import(self.state, os.path.join(d, "alice.pub"))
        self.alice_x509 = smime_pki.self_signed(d, "alicex", CLIENT, "rsa")
        key_import(self.state, self.alice_x509.crt, CLIENT)
        # the gateway's S/MIME identity: a key file for gateway_smime_key
        self.gw_x509 = smime_pki.self_signed(d, "gwx", GATEWAY, "rsa")
        self.gw_pem = os.path.join(d, "gateway-smime.pem")
        with open(self.gw_pem, "wb") as f:
            f.write(open(self.gw_x509.key, "rb").read() + open(self.gw_x509.crt, "rb").read())
        os.chmod(self.gw_pem, 0o600)

    def copy_state(self, dest):
        shutil.copytree(self.state, dest)
        mk = os.path.join(os.path.dirname(dest), "master.key")
        shutil.copy(self.mk, mk)
        os.chmod(mk, 0o600)
        return mk

    def pgp_ciphertext(self, data, to=(GATEWAY,), sign=True, armor=True):
        args = ["--trust-model", "always", "--encrypt"] + (["--armor"] if armor else [])
        if sign:
            args += ["--sign", "-u", CLIENT]
        for r in to:
            args += ["-r", r]
        return pgphelp.gpg(self.home, *args, inp=data).stdout

    def pgp_mime(self, to=(GATEWAY,), sign=True, frm=CLIENT, marker=MARKER):
        """RFC 3156 PGP/MIME, signed and encrypted in one OpenPGP message (s6.2)."""
        ct = crlf(self.pgp_ciphertext(inner(marker), to, sign))
        b = b"sub-boundary-42"
        return (outer_header(frm) +
                b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="' + b +
                b'"\r\n\r\n--' + b + b"\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--" +
                b + b"\r\nContent-Type: application/octet-stream\r\n\r\n" + ct + b"\r\n--" + b + b"--\r\n")

    def pgp_inline(self, marker=MARKER):
        ct = crlf(self.pgp_ciphertext(b"secret body " + marker + b"\r\n"))
        return outer_header() + b"Content-Type: text/plain\r\n\r\n" + ct

    def smime(self, tmp, gcm=True, sign=True):
        """Signed by alice's certificate, then encrypted to the gateway's."""
        src = os.path.join(tmp, "smime-inner.eml")
        with open(src, "wb") as f:
            f.write(inner())
        cur = src
        if sign:
            smime_pki.sh(["openssl", "cms", "-sign", "-in", cur, "-signer", self.alice_x509.crt,
                          "-inkey", self.alice_x509.key, "-out", src + ".signed"])
            cur = src + ".signed"
        smime_pki.sh(["openssl", "cms", "-encrypt", "-in", cur, "-out", src + ".enc"] +
                     (["-aes-256-gcm"] if gcm else ["-aes-256-cbc"]) + [self.gw_x509.crt])
        enc = open(src + ".enc", "rb").read()
        # openssl writes MIME-Version, Content-Disposition, Content-Type, ... : keep them
        return crlf(outer_header().replace(b"MIME-Version: 1.0\r\n", b"") + enc)


def filter_script(path, seen_dir):
    """A content filter: keeps what it saw; VIRUS-EICAR rejects with a
    reason, FILTER-TEMPFAIL exits 3, FILTER-SLOW outlives its budget,
    FILTER-REWRITE adds a header (content_filter_rewrite)."""
    with open(path, "w") as f:
        f.write(f"""#!/bin/sh
f=$(mktemp -p {seen_dir} seen.XXXXXX)
cat > "$f"
printf '%s|%s|%s\n' "$SEALGATE_SENDER" "$SEALGATE_RECIPIENTS" "$SEALGATE_QUEUE_ID" > "$f.env"
if grep -q VIRUS-EICAR "$f"; then echo "virus found: EICAR-Test-Signature"; exit 1; fi
if grep -q FILTER-TEMPFAIL "$f"; then exit 3; fi
if grep -q FILTER-SLOW "$f"; then sleep 30; fi
if grep -q FILTER-REWRITE "$f"; then printf 'X-Filtered: yes\\n'; cat "$f"; fi
exit 0
""")
    os.chmod(path, 0o755)


def seen(seen_dir):
    return [open(os.path.join(seen_dir, n), "rb").read() for n in sorted(os.listdir(seen_dir))
            if not n.endswith(".env")]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """The recipients' keys (policy_helpers.Keys) and the Client, per module."""
    k = Keys(str(tmp_path_factory.mktemp("keys")))
    c = Client(k)
    yield c
    k.stop()
