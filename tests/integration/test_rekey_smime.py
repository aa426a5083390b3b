"""sealgate rekey-msg on S/MIME: EnvelopedData (AES-CBC) and
AuthEnvelopedData (AES-GCM) from openssl cms and sealgate seal, old
recipient RSA (KeyTransRecipientInfo) or P-256 (KeyAgreeRecipientInfo).
Afterwards openssl cms -decrypt works with the new key and the other
recipient's, not with the old one, and encryptedContent is byte-identical
(checked with a BER walker of our own)."""
import base64
import subprocess

import pytest

from conftest import SEALGATE_BIN, run
from rekeyhelp import cms_encrypted_parts, recipient_count
from smime_pki import self_signed

PLAIN = b"Content-Type: text/plain\r\n\r\nre-key me over S/MIME\r\n" + b"y" * 2000 + b"\r\n"


@pytest.fixture(scope="module")
def ids(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("rekey-smime"))
    return {
        "oldrsa": self_signed(d, "oldrsa", "oldrsa@s.test", "rsa"),
        "oldec": self_signed(d, "oldec", "oldec@s.test", "ec"),
        "newrsa": self_signed(d, "newrsa", "newrsa@s.test", "rsa"),
        "newec": self_signed(d, "newec", "newec@s.test", "ec"),
        "other": self_signed(d, "other", "other@s.test", "rsa"),
    }


def openssl_encrypt(ids, names, gcm):
    args = ["openssl", "cms", "-encrypt", "-aes-256-gcm" if gcm else "-aes256"]
    args += [ids[n].crt for n in names]
    r = subprocess.run(args, input=PLAIN, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # openssl writes LF; make it the CRLF mail the store holds
    return b"From: a@s.test\r\nSubject: x\r\n" + r.stdout.replace(b"\n", b"\r\n")


def sealgate_encrypt(ids, names, gcm):
    args = [SEALGATE_BIN, "seal", "--smime"] + (["--gcm"] if gcm else [])
    for n in names:
        args += ["--to", ids[n].email, "--key", ids[n].crt]
    r = run(args, input=b"From: a@s.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n" + PLAIN)
    assert r.returncode == 0, r.stderr
    return r.stdout


def body_der(msg):
    i = msg.index(b"\r\n\r\n") + 4
    return base64.b64decode(b"".join(msg[i:].split()))


def decrypts(ident, msg):
    r = subprocess.run(["openssl", "cms", "-decrypt", "-recip", ident.crt, "-inkey", ident.key],
                       input=msg, capture_output=True, timeout=60)
    return r.returncode == 0 and b"re-key me over S/MIME" in r.stdout


def rekey(ids, msg, old, new):
    return run([SEALGATE_BIN, "rekey-msg", "--old-key", ids[old].pem, "--new-key", ids[new].crt], input=msg)


@pytest.mark.parametrize("maker", ["openssl", "sealgate"])
@pytest.mark.parametrize("gcm", [False, True], ids=["cbc", "gcm"])
@pytest.mark.parametrize("old,new", [("oldrsa", "newrsa"), ("oldec", "newec"), ("oldrsa", "newec"),
                                     ("oldec", "newrsa")])
def test_rekey_smime(ids, maker, gcm, old, new):
    enc = openssl_encrypt if maker == "openssl" else sealgate_encrypt
    msg = enc(ids, [old, "other"], gcm)
    r = rekey(ids, msg, old, new)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    hdr = msg.index(b"\r\n\r\n") + 4
    assert out[:hdr] == msg[:hdr], "headers changed"
    assert out.endswith(msg[len(msg.rstrip(b"\r\n")):]), "trailing bytes changed"
    d0, d1 = body_der(msg), body_der(out)
    assert cms_encrypted_parts(d0) == cms_encrypted_parts(d1), "encrypted content changed"
    assert len(cms_encrypted_parts(d0)[1]) > 2000
    assert bool(cms_encrypted_parts(d0)[2]) == gcm
    assert recipient_count(d0) == recipient_count(d1) == 2
    assert decrypts(ids[new], out), "new key cannot decrypt"
    assert not decrypts(ids[old], out), "old key still decrypts"
    assert decrypts(ids[old], msg)
    assert decrypts(ids["other"], out), "other recipient lost"
    # line length kept
    assert max(len(l) for l in out[hdr:].split(b"\r\n")) == max(len(l) for l in msg[hdr:].split(b"\r\n"))


def test_not_a_recipient_skipped(ids):
    msg = openssl_encrypt(ids, ["other"], False)
    r = rekey(ids, msg, "oldrsa", "newrsa")
    assert r.returncode == 11 and r.stdout == msg


def test_garbage_body_fails_cleanly(ids):
    msg = openssl_encrypt(ids, ["oldrsa"], False)
    i = msg.index(b"\r\n\r\n") + 4
    bad = msg[:i] + base64.encodebytes(body_der(msg)[:300]).replace(b"\n", b"\r\n")
    r = rekey(ids, bad, "oldrsa", "newrsa")
    assert r.returncode == 65, r.stderr
    assert r.stdout == b""
