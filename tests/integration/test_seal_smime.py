"""S/MIME sealing against real peers: openssl cms and gpgsm read what
sealgate writes, and sealgate reads what they write (RFC 8551)."""
import os
import re
import shlex
import subprocess

import pytest

import smime_pki as pki
from conftest import SOURCE_DIR

TOOL = os.environ.get("SMIME_TOOL", os.path.join(SOURCE_DIR, "build", "tests", "smime-tool"))

MSG = (b"From: Alice <alice@a.test>\r\n"
       b"To: Bob <bob@b.test>\r\n"
       b"Subject: Quarterly numbers \xe2\x80\x93 secret\r\n"
       b"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
       b"Message-ID: <q3@a.test>\r\n"
       b"X-Mailer: test\r\n"
       b"MIME-Version: 1.0\r\n"
       b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
       b"\r\n"
       b"--b1\r\n"
       b"Content-Type: text/plain; charset=utf-8\r\n"
       b"Content-Transfer-Encoding: 8bit\r\n"
       b"\r\n"
       b"Numbers: \xc3\xa9 42 \r\n"
       b"From the start of a line.\r\n"
       b"--b1\r\n"
       b"Content-Type: application/octet-stream\r\n"
       b"Content-Transfer-Encoding: base64\r\n"
       b"\r\n"
       b"AAECAwQFBgc=\r\n"
       b"--b1--\r\n")

PROTECTED = ("subject", "from", "to", "cc", "date", "message-id", "reply-to", "in-reply-to",
             "references")


@pytest.fixture(scope="module")
def p(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))

    class P:
        dir = d
        alice = pki.self_signed(d, "alice", "alice@a.test", "rsa")
        bob = pki.self_signed(d, "bob", "bob@b.test", "ec")
        carol = pki.self_signed(d, "carol", "carol@c.test", "rsa")
        old = pki.back_dated(d, "old", "old@a.test", "rsa", "20200101000000Z", "20210101000000Z")
        ed = pki.self_signed(d, "ed", "ed@e.test", "ed25519")
        ca = pki.make_ca(d, "Test CA")
        dave = pki.issued(d, "dave", "dave@d.test", "rsa", ca)
        erin = pki.issued(d, "erin", "erin@d.test", "ec", ca)
    return P


def tool(verb, args, data):
    r = subprocess.run([TOOL, verb, *args], input=data, capture_output=True, timeout=60)
    line = r.stderr.decode(errors="replace").strip().splitlines()[-1]
    info = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
    return r.returncode, r.stdout, info


def seal(args, data=MSG):
    return tool("seal", args, data)


def unseal(args, data):
    return tool("unseal", args, data)


def openssl(args, data):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=60)


def expected_inner(msg):
    """The encrypted entity: Content-* fields (Content-Type marked), the
    protected fields byte for byte, blank line, body byte for byte."""
    head, body = pki.split_message(msg)
    fields = pki.header_fields(head)
    out = b""
    for n, raw in fields:
        if n.startswith("content-"):
            out += raw + (b'; protected-headers="v1"' if n == "content-type" else b"") + b"\r\n"
    for n, raw in fields:
        if n in PROTECTED:
            out += raw + b"\r\n"
    return out + b"\r\n" + body


def outer_without_content(msg):
    head, _ = pki.split_message(msg)
    return [raw for n, raw in pki.header_fields(head)
            if not n.startswith("content-") and n not in ("subject", "mime-version")]


# ---- sealgate encrypts, openssl cms / gpgsm decrypt ----

@pytest.mark.parametrize("who,gcm", [("alice", False), ("alice", True), ("bob", False), ("bob", True)])
def test_seal_openssl_decrypts(p, who, gcm):
    ident = getattr(p, who)
    rc, out, info = seal(["--to", ident.crt] + (["--gcm"] if gcm else []))
    assert rc == 0, info
    assert info["outcome"] == "sealed"
    ctype = pki.field(out, "Content-Type")
    assert "application/pkcs7-mime" in ctype
    assert ("smime-type=authEnveloped-data" if gcm else "smime-type=enveloped-data") in ctype
    assert 'name="smime.p7m"' in ctype
    assert pki.field(out, "Subject") == "..."
    # every other outer field is untouched, in order
    assert outer_without_content(out) == outer_without_content(MSG)
    _, body = pki.split_message(out)
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))
    assert b"Numbers" not in out and b"Quarterly" not in out
    r = openssl(["cms", "-decrypt", "-recip", ident.pem, "-binary"], out)
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected_inner(MSG)


def test_seal_two_recipients(p):
    rc, out, info = seal(["--to", p.alice.crt, "--to", p.bob.crt])
    assert rc == 0, info
    for ident in (p.alice, p.bob):
        r = openssl(["cms", "-decrypt", "-recip", ident.pem, "-binary"], out)
        assert r.returncode == 0 and r.stdout == expected_inner(MSG)
    r = openssl(["cms", "-decrypt", "-recip", p.carol.pem, "-binary"], out)
    assert r.returncode != 0


def test_seal_roundtrip_restores_message(p):
    for gcm in ([], ["--gcm"]):
        rc, out, _ = seal(["--to", p.bob.crt, "--subject", "encrypted"] + gcm)
        assert rc == 0 and pki.field(out, "Subject") == "encrypted"
        rc, back, info = unseal(["--key", p.bob.pem], out)
        assert rc == 0, info
        assert back == MSG
        assert info["encrypted"] == "1"
        assert info["authenticated"] == ("1" if gcm else "0")
        if not gcm:
            assert "not integrity protected" in info["warning"]


# ---- openssl cms encrypts, sealgate decrypts ----

@pytest.mark.parametrize("cipher", ["-aes256", "-aes-256-gcm"])
@pytest.mark.parametrize("who", ["alice", "bob"])
def test_openssl_encrypts_seal_decrypts(p, cipher, who):
    ident = getattr(p, who)
    head, body = pki.split_message(MSG)
    inner = b"".join(raw + b"\r\n" for n, raw in pki.header_fields(head)
                     if n.startswith("content-")) + b"\r\n" + body
    r = openssl(["cms", "-encrypt", cipher, "-binary", "-from", "alice@a.test",
                 "-to", "bob@b.test", "-subject", "...", ident.crt], inner)
    assert r.returncode == 0, r.stderr
    enc = r.stdout.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    rc, out, info = unseal(["--key", ident.pem], enc)
    assert rc == 0, info
    assert out.endswith(body)
    assert pki.field(out, "Content-Type") == 'multipart/mixed; boundary="b1"'
    assert info["authenticated"] == ("1" if "gcm" in cipher else "0")
    assert info["decrypted_with"] != "-"


def test_gpgsm_both_directions(p, tmp_path):
    home, env = pki.gpgsm_home(str(tmp_path), [p.dave], [p.ca])
    try:
        # sealgate -> gpgsm
        rc, out, info = seal(["--to", p.dave.crt])
        assert rc == 0, info
        _, b64 = pki.split_message(out)
        f = tmp_path / "in.b64"
        f.write_bytes(b64)
        r = subprocess.run(["gpgsm", "--batch", "--pinentry-mode", "loopback", "--passphrase-fd",
                            "0", "--assume-base64", "--decrypt", str(f)],
                           input=b"pw\n", env=env, capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout == expected_inner(MSG)
        # gpgsm -> sealgate
        f = tmp_path / "plain"
        f.write_bytes(expected_inner(MSG))
        r = subprocess.run(["gpgsm", "--batch", "--base64", "-r", "dave@d.test", "--encrypt",
                            str(f)], env=env, capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        enc = (b"From: x@a.test\r\nTo: dave@d.test\r\nSubject: ...\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\n" + r.stdout.replace(b"\n", b"\r\n"))
        rc, back, info = unseal(["--pass", "pw", "--key", p.dave.p12aes], enc)
        assert rc == 0, info
        # protected Subject restored from the inner entity
        assert pki.field(back, "Subject") == pki.field(MSG, "Subject")
        assert pki.split_message(back)[1] == pki.split_message(MSG)[1]
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True,
                       timeout=30)


# ---- signatures ----

@pytest.mark.parametrize("who,opaque", [("alice", False), ("alice", True), ("bob", False), ("bob", True)])
def test_seal_signs_openssl_verifies(p, who, opaque):
    ident = getattr(p, who)
    rc, out, info = seal(["--sign", ident.pem] + (["--opaque"] if opaque else []))
    assert rc == 0, info
    ctype = pki.field(out, "Content-Type")
    if opaque:
        assert "smime-type=signed-data" in ctype
    else:
        assert "multipart/signed" in ctype and "micalg=sha-256" in ctype
        assert 'protocol="application/pkcs7-signature"' in ctype
    assert pki.field(out, "Subject") == pki.field(MSG, "Subject")
    # (no -binary: the CLI hands multipart parts over with LF line ends then)
    r = openssl(["cms", "-verify", "-CAfile", ident.crt], out)
    assert r.returncode == 0, r.stderr
    assert b"Numbers: \xc3\xa9 42" in r.stdout
    r = openssl(["cms", "-verify", "-CAfile", p.carol.crt], out)
    assert r.returncode != 0
    rc, back, info = unseal(["--trust", ident.crt], out)
    assert rc == 0 and info["sig"] == "VALID" and info["signer"] == ident.email
    assert back == MSG


@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("who", ["alice", "bob"])
def test_openssl_signs_seal_verifies(p, who, detach):
    ident = getattr(p, who)
    r = openssl(["cms", "-sign", "-signer", ident.pem, "-md", "sha256"]
                + ([] if detach else ["-nodetach"]), MSG)
    assert r.returncode == 0, r.stderr
    signed = r.stdout.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    rc, _, info = unseal(["--trust", ident.crt], signed)
    assert rc == 0 and info["sig"] == "VALID", info
    rc, _, info = unseal(["--trust", p.carol.crt], signed)
    assert rc == 0 and info["sig"] == "UNKNOWN_SIGNER", info


def test_sign_then_encrypt(p):
    rc, out, info = seal(["--sign", p.alice.pem, "--to", p.bob.crt, "--gcm"])
    assert rc == 0, info
    r = openssl(["cms", "-decrypt", "-recip", p.bob.pem, "-binary"], out)
    assert r.returncode == 0
    assert b"multipart/signed" in r.stdout.split(b"\r\n\r\n")[0]
    v = openssl(["cms", "-verify", "-CAfile", p.alice.crt], r.stdout)
    assert v.returncode == 0, v.stderr
    rc, back, info = unseal(["--key", p.bob.pem, "--trust", p.alice.crt], out)
    assert rc == 0 and info["sig"] == "VALID" and info["encrypted"] == "1", info
    assert back == MSG


def test_chain_to_ca(p):
    for who in (p.dave, p.erin):
        rc, out, info = seal(["--sign", who.pem])
        assert rc == 0, info
        rc, _, info = unseal(["--trust", p.ca.crt], out)
        assert rc == 0 and info["sig"] == "VALID", info
        # the leaf's own certificate is not an anchor for a CA-issued chain
        rc, _, info = unseal(["--trust", p.alice.crt], out)
        assert rc == 0 and info["sig"] == "UNKNOWN_SIGNER", info


# ---- each failure its own status ----

def test_tampered_gcm(p):
    rc, out, _ = seal(["--to", p.bob.crt, "--gcm"])
    der = bytearray(pki.der_of(out))
    der[-1] ^= 1  # inside the GCM tag
    rc, back, info = unseal(["--key", p.bob.pem], pki.with_der(out, bytes(der)))
    assert info["status"] == "TAMPERED" and rc != 0 and back == b""


def test_wrong_key(p):
    rc, out, _ = seal(["--to", p.alice.crt])
    rc, back, info = unseal(["--key", p.carol.pem], out)
    assert info["status"] == "WRONG_KEY" and rc != 0 and back == b""


def test_expired_recipient_refused(p):
    rc, out, info = seal(["--to", p.old.crt])
    assert info["status"] == "KEY_EXPIRED" and rc != 0 and out == b""


def test_expired_own_cert_still_decrypts(p):
    r = openssl(["cms", "-encrypt", "-aes256", "-binary", p.old.crt], b"Content-Type: text/plain\r\n\r\nold\r\n")
    assert r.returncode == 0
    rc, back, info = unseal(["--key", p.old.pem], r.stdout.replace(b"\n", b"\r\n").replace(b"\r\r", b"\r"))
    assert rc == 0, info
    assert back.endswith(b"\r\n\r\nold\r\n")
    assert "expired" in info["warning"]


def test_expired_signer(p):
    r = openssl(["cms", "-sign", "-signer", p.old.pem, "-md", "sha256"], MSG)
    assert r.returncode == 0, r.stderr
    rc, _, info = unseal(["--trust", p.old.crt], r.stdout.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    assert rc == 0 and info["sig"] == "KEY_EXPIRED", info


def test_untrusted_signer(p):
    rc, out, _ = seal(["--sign", p.alice.pem])
    rc, back, info = unseal([], out)
    assert rc == 0 and info["sig"] == "UNKNOWN_SIGNER", info


def test_bad_signature(p):
    rc, out, _ = seal(["--sign", p.bob.pem])
    bad = out.replace(b"Numbers: \xc3\xa9 42", b"Numbers: \xc3\xa9 43")
    assert bad != out
    rc, back, info = unseal(["--trust", p.bob.crt], bad)
    assert info["status"] == "TAMPERED" and info["sig"] == "BAD" and rc != 0 and back == b""


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated(p, cut):
    rc, out, _ = seal(["--to", p.alice.crt, "--gcm"])
    der = pki.der_of(out)
    rc, back, info = unseal(["--key", p.alice.pem], pki.with_der(out, der[:int(len(der) * cut)]))
    assert info["status"] == "MALFORMED" and rc != 0 and back == b""


def test_garbage_base64(p):
    rc, out, _ = seal(["--to", p.alice.crt])
    head, _ = pki.split_message(out)
    rc, back, info = unseal(["--key", p.alice.pem], head + b"\r\n!!!! not base64 ****\r\n")
    assert info["status"] == "MALFORMED" and rc != 0 and back == b""


def test_already_encrypted_unchanged(p):
    rc, out, _ = seal(["--to", p.alice.crt])
    rc, again, info = seal(["--to", p.bob.crt], out)
    assert rc == 0 and info["outcome"] == "already-encrypted"
    assert again == out


def test_ed25519_refused(p):
    rc, out, info = seal(["--to", p.ed.crt])
    assert info["status"] == "UNSUPPORTED" and rc != 0 and out == b""
    assert "X25519" in info["error"] or "ED25519" in info["error"]
    rc, out, info = seal(["--sign", p.ed.pem])
    assert info["status"] == "UNSUPPORTED" and rc != 0
