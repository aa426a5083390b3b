"""S/MIME sealing against real peers: openssl cms and gpgsm read what
sealgate writes, and sealgate reads what they write (RFC 8551)."""
import base64
import pathlib
import re
import shutil
import subprocess
import tempfile

import pytest

import smime_pki as pki
from conftest import SEALGATE_BIN


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
def p():
    # a private temp dir: pytest's shared numbered dirs are pruned by other
    # pytest runs on the same machine
    d = tempfile.mkdtemp(prefix="sg-smime-")

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
    yield P
    shutil.rmtree(d, ignore_errors=True)


EXIT = {0: "OK", 2: "NO_KEY", 3: "BAD_KEY", 4: "KEY_EXPIRED", 5: "KEY_REVOKED", 6: "WRONG_KEY",
        7: "TAMPERED", 8: "UNKNOWN_SIGNER", 9: "BAD_SIGNATURE", 10: "UNSUPPORTED", 65: "MALFORMED"}


def run_cli(args, data):
    r = subprocess.run([SEALGATE_BIN, *args], input=data, capture_output=True, timeout=60)
    err = r.stderr.decode(errors="replace")
    info = {"status": EXIT.get(r.returncode, str(r.returncode)), "error": err}
    m = re.search(r"sealgate unseal: (encrypted: .*)", err)
    if m:
        summary, _, info["warning"] = m.group(1).partition("; warning: ")
        for part in summary.split("; "):
            k, _, v = part.partition(": ")
            info[k] = v
        sig = info.get("signature", "")
        info["sig"], _, info["signer"] = sig.partition(" by ")
    return r.returncode, r.stdout, info


def seal(to=(), sign=None, gcm=False, opaque=False, subject=None, data=MSG):
    """sealgate seal --smime: recipients and signer are Idents; their files
    are handed over with --key and picked by address."""
    args = ["seal", "--smime"]
    for i in to:
        args += ["--to", i.email, "--key", i.crt]
    if sign is not None:
        args += ["--sign-as", sign.email, "--key", sign.pem]
    args += (["--gcm"] if gcm else []) + (["--opaque"] if opaque else [])
    args += ["--subject", subject] if subject is not None else []
    return run_cli(args, data)


def unseal(data, keys=(), trust=(), passfile=None):
    args = ["unseal"]
    for k in keys:
        args += ["--key", k]
    for t in trust:
        args += ["--verify-key", t]
    args += ["--passphrase-file", passfile] if passfile else []
    return run_cli(args, data)


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
    rc, out, info = seal(to=[ident], gcm=gcm)
    assert rc == 0, info
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
    rc, out, info = seal(to=[p.alice, p.bob])
    assert rc == 0, info
    for ident in (p.alice, p.bob):
        r = openssl(["cms", "-decrypt", "-recip", ident.pem, "-binary"], out)
        assert r.returncode == 0 and r.stdout == expected_inner(MSG)
    r = openssl(["cms", "-decrypt", "-recip", p.carol.pem, "-binary"], out)
    assert r.returncode != 0


@pytest.mark.parametrize("gcm", [False, True])
def test_seal_roundtrip_restores_message(p, gcm):
    rc, out, _ = seal(to=[p.bob], subject="encrypted", gcm=gcm)
    assert rc == 0 and pki.field(out, "Subject") == "encrypted"
    rc, back, info = unseal(out, keys=[p.bob.pem])
    assert rc == 0, info
    assert back == MSG
    assert info["encrypted"] == "yes"
    assert info["authenticated"] == ("yes" if gcm else "no")
    if not gcm:
        assert "not integrity protected" in info["warning"]


# ---- openssl cms / gpgsm encrypt, sealgate decrypts ----

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
    rc, out, info = unseal(enc, keys=[ident.pem])
    assert rc == 0, info
    assert out.endswith(body)
    assert pki.field(out, "Content-Type") == 'multipart/mixed; boundary="b1"'
    assert info["authenticated"] == ("yes" if "gcm" in cipher else "no")
    assert info["decrypted with"] != "-"


@pytest.fixture(scope="module")
def gpgsm(p):
    """gpgsm home with dave's PKCS#12 imported and the test CA trusted."""
    d = pathlib.Path(p.dir) / "gpgsm"
    d.mkdir()
    home, env = pki.gpgsm_home(str(d), [p.dave], [p.ca])
    yield d, env
    subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True, timeout=30)


def gpgsm_run(env, args, stdin=b"pw\n"):
    return subprocess.run(["gpgsm", "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "0",
                           *args], input=stdin, env=env, capture_output=True, timeout=60)


def test_gpgsm_decrypts_seal(p, gpgsm):
    d, env = gpgsm
    rc, out, info = seal(to=[p.dave])
    assert rc == 0, info
    f = d / "in.b64"
    f.write_bytes(pki.split_message(out)[1])
    r = gpgsm_run(env, ["--assume-base64", "--decrypt", str(f)])
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected_inner(MSG)


def test_gpgsm_encrypts_seal_decrypts(p, gpgsm):
    d, env = gpgsm
    f = d / "plain"
    f.write_bytes(expected_inner(MSG))
    r = gpgsm_run(env, ["--base64", "-r", "dave@d.test", "--encrypt", str(f)], stdin=b"")
    assert r.returncode == 0, r.stderr
    enc = (b"From: x@a.test\r\nTo: dave@d.test\r\nSubject: ...\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + r.stdout.replace(b"\n", b"\r\n"))
    pw = d / "pw"
    pw.write_text("pw\n")
    # the key comes from the PKCS#12 file, unlocked with the passphrase file
    rc, back, info = unseal(enc, keys=[p.dave.p12aes], passfile=str(pw))
    assert rc == 0, info
    # protected Subject restored from the inner entity
    assert pki.field(back, "Subject") == pki.field(MSG, "Subject")
    assert pki.split_message(back)[1] == pki.split_message(MSG)[1]


def test_gpgsm_verifies_seal_signature(p, gpgsm):
    d, env = gpgsm
    rc, out, info = seal(sign=p.dave)
    assert rc == 0, info
    boundary = re.search(r'boundary="([^"]+)"', pki.field(out, "Content-Type")).group(1).encode()
    _, body = pki.split_message(out)
    parts = body.split(b"--" + boundary)
    content = parts[1][2:-2]          # after the delimiter's CRLF, before the next one's
    sig_b64 = pki.split_message(parts[2][2:])[1]
    (d / "content").write_bytes(content)
    (d / "sig").write_bytes(base64.b64decode(b"".join(sig_b64.split())))
    r = gpgsm_run(env, ["--verify", str(d / "sig"), str(d / "content")], stdin=b"")
    assert r.returncode == 0, r.stderr
    assert b"Good signature" in r.stderr
    (d / "content").write_bytes(content.replace(b"42", b"43"))
    r = gpgsm_run(env, ["--verify", str(d / "sig"), str(d / "content")], stdin=b"")
    assert r.returncode != 0


def test_gpgsm_signs_seal_verifies(p, gpgsm):
    d, env = gpgsm
    content = b"Content-Type: text/plain; charset=us-ascii\r\n\r\nSigned by gpgsm.\r\n"
    (d / "tosign").write_bytes(content)
    r = gpgsm_run(env, ["-u", "dave@d.test", "--detach-sign", "--base64", str(d / "tosign")])
    assert r.returncode == 0, r.stderr
    sig = b"\r\n".join(l for l in r.stdout.splitlines() if not l.startswith(b"-----"))
    msg = (b"From: dave@d.test\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
           b'micalg=sha-256; boundary="xyz"\r\n\r\n--xyz\r\n' + content +
           b"\r\n--xyz\r\nContent-Type: application/pkcs7-signature\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + sig + b"\r\n--xyz--\r\n")
    rc, back, info = unseal(msg, trust=[p.ca.crt])
    assert rc == 0 and info["sig"] == "valid" and info["signer"] == "dave@d.test", info
    assert back.endswith(b"\r\n\r\nSigned by gpgsm.\r\n")
    rc, back, info = unseal(msg.replace(b"by gpgsm", b"by gpgSM"), trust=[p.ca.crt])
    assert info["status"] == "BAD_SIGNATURE" and back == b"", info


# ---- signatures ----

@pytest.mark.parametrize("who,opaque", [("alice", False), ("alice", True), ("bob", False), ("bob", True)])
def test_seal_signs_openssl_verifies(p, who, opaque):
    ident = getattr(p, who)
    rc, out, info = seal(sign=ident, opaque=opaque)
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
    rc, back, info = unseal(out, trust=[ident.crt])
    assert rc == 0 and info["sig"] == "valid" and info["signer"] == ident.email, info
    assert back == MSG


@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("who", ["alice", "bob"])
def test_openssl_signs_seal_verifies(p, who, detach):
    ident = getattr(p, who)
    r = openssl(["cms", "-sign", "-signer", ident.pem, "-md", "sha256"]
                + ([] if detach else ["-nodetach"]), MSG)
    assert r.returncode == 0, r.stderr
    signed = r.stdout.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    rc, _, info = unseal(signed, trust=[ident.crt])
    assert rc == 0 and info["sig"] == "valid", info
    rc, _, info = unseal(signed, trust=[p.carol.crt])
    assert info["status"] == "UNKNOWN_SIGNER" and info["sig"] == "unknown signer", info


def test_sign_then_encrypt(p):
    rc, out, info = seal(to=[p.bob], sign=p.alice, gcm=True)
    assert rc == 0, info
    r = openssl(["cms", "-decrypt", "-recip", p.bob.pem, "-binary"], out)
    assert r.returncode == 0
    assert b"multipart/signed" in r.stdout.split(b"\r\n\r\n")[0]
    v = openssl(["cms", "-verify", "-CAfile", p.alice.crt], r.stdout)
    assert v.returncode == 0, v.stderr
    rc, back, info = unseal(out, keys=[p.bob.pem], trust=[p.alice.crt])
    assert rc == 0 and info["sig"] == "valid" and info["encrypted"] == "yes", info
    assert back == MSG


def test_chain_to_ca(p):
    for who in (p.dave, p.erin):
        rc, out, info = seal(sign=who)
        assert rc == 0, info
        rc, _, info = unseal(out, trust=[p.ca.crt])
        assert rc == 0 and info["sig"] == "valid", info
        # another certificate is no anchor for this chain
        rc, _, info = unseal(out, trust=[p.alice.crt])
        assert info["status"] == "UNKNOWN_SIGNER", info


# ---- each failure its own status ----

def test_tampered_gcm(p):
    rc, out, _ = seal(to=[p.bob], gcm=True)
    der = bytearray(pki.der_of(out))
    der[pki.gcm_tag_end(der) - 1] ^= 1  # inside the GCM tag
    rc, back, info = unseal(pki.with_der(out, bytes(der)), keys=[p.bob.pem])
    assert info["status"] == "TAMPERED" and back == b"", info


def test_wrong_key(p):
    rc, out, _ = seal(to=[p.alice])
    rc, back, info = unseal(out, keys=[p.carol.pem])
    assert info["status"] == "WRONG_KEY" and back == b"", info


def test_expired_recipient_refused(p):
    rc, out, info = seal(to=[p.old])
    assert info["status"] == "KEY_EXPIRED" and out == b"", info


def test_expired_own_cert_still_decrypts(p):
    r = openssl(["cms", "-encrypt", "-aes256", "-binary", p.old.crt],
                b"Content-Type: text/plain\r\n\r\nold\r\n")
    assert r.returncode == 0
    enc = r.stdout.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    rc, back, info = unseal(enc, keys=[p.old.pem])
    assert rc == 0, info
    assert back.endswith(b"\r\n\r\nold\r\n")
    assert "expired" in info["warning"]


def test_expired_signer(p):
    r = openssl(["cms", "-sign", "-signer", p.old.pem, "-md", "sha256"], MSG)
    assert r.returncode == 0, r.stderr
    signed = r.stdout.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    rc, _, info = unseal(signed, trust=[p.old.crt])
    assert info["status"] == "KEY_EXPIRED" and info["sig"] == "signer key expired", info


def test_untrusted_signer(p):
    rc, out, _ = seal(sign=p.alice)
    rc, back, info = unseal(out)
    assert info["status"] == "UNKNOWN_SIGNER" and info["signer"] == "alice@a.test", info


def test_bad_signature(p):
    rc, out, _ = seal(sign=p.bob)
    bad = out.replace(b"Numbers: \xc3\xa9 42", b"Numbers: \xc3\xa9 43")
    assert bad != out
    rc, back, info = unseal(bad, trust=[p.bob.crt])
    assert info["status"] == "BAD_SIGNATURE" and back == b"", info


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated(p, cut):
    rc, out, _ = seal(to=[p.alice], gcm=True)
    der = pki.der_of(out)
    rc, back, info = unseal(pki.with_der(out, der[:int(len(der) * cut)]), keys=[p.alice.pem])
    assert info["status"] == "MALFORMED" and back == b"", info


def test_garbage_base64(p):
    rc, out, _ = seal(to=[p.alice])
    head, _ = pki.split_message(out)
    rc, back, info = unseal(head + b"\r\n!!!! not base64 ****\r\n", keys=[p.alice.pem])
    assert info["status"] == "MALFORMED" and back == b"", info


def test_already_encrypted_unchanged(p):
    rc, out, _ = seal(to=[p.alice])
    rc, again, info = seal(to=[p.bob], data=out)
    assert rc == 0 and "already encrypted" in info["error"]
    assert again == out


def test_ed25519_refused(p):
    rc, out, info = seal(to=[p.ed])
    assert info["status"] == "UNSUPPORTED" and out == b"", info
    assert "X25519" in info["error"] and "Ed25519" in info["error"]
    rc, out, info = seal(sign=p.ed)
    assert info["status"] == "UNSUPPORTED" and out == b"", info
