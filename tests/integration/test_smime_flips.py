"""Bit flips in S/MIME enveloped messages written by real peers in
indefinite-length BER: `openssl cms -encrypt -stream` (AES-CBC, AES-GCM) and
gpgsm (AES-CBC). Each changed message goes through `sealgate unseal`: with
GCM nothing but the original plaintext ever comes out; with CBC whatever
comes out is labelled unauthenticated. (tests/unit/test-smime-mime.c flips
thousands of bits in-process; this proves the same on the peers' bytes.)"""
import os
import pathlib
import random
import shutil
import subprocess
import tempfile

import pytest

import smime_pki as pki
from conftest import SEALGATE_BIN

HEAD = (b"From: Carol <carol@c.test>\r\nTo: Dave <dave@d.test>\r\nSubject: flips\r\n"
        b"MIME-Version: 1.0\r\n")
INNER = (b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" +
         b"".join(b"Line %03d of a body longer than one BER chunk.\r\n" % i for i in range(120)))
# per message and place (DER head, anywhere in the DER, base64 text); one
# process each, so fewer under ASan (the unit test flips thousands in-process)
FLIPS = 8 if os.environ.get("SEALGATE_SANITIZE") == "1" else 20


@pytest.fixture(scope="module")
def p():
    d = tempfile.mkdtemp(prefix="sg-smime-flip-")

    class P:
        dir = pathlib.Path(d)
        ca = pki.make_ca(d, "Flip CA")
        dave = pki.issued(d, "dave", "dave@d.test", "rsa", ca)
    home, env = pki.gpgsm_home(d, [], [P.ca])
    pki.sh(["gpgsm", "--batch", "--import", P.dave.crt], env=env)
    P.gpgsm_env = env
    yield P
    subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True, timeout=30)
    shutil.rmtree(d, ignore_errors=True)


def wrap(der, gcm):
    kind = b"authEnveloped-data" if gcm else b"enveloped-data"
    return pki.with_der(HEAD + b"Content-Type: application/pkcs7-mime; smime-type=" + kind +
                        b"; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\nAA==\r\n", der)


def openssl_stream(p, gcm):
    src, out = p.dir / "inner", p.dir / "out.der"
    src.write_bytes(INNER)
    pki.sh(["openssl", "cms", "-encrypt", "-stream", "-binary", "-outform", "DER",
            "-aes-256-gcm" if gcm else "-aes-256-cbc", "-in", str(src), "-out", str(out),
            p.dave.crt])
    return out.read_bytes()


def gpgsm_der(p):
    src = p.dir / "inner"
    src.write_bytes(INNER)
    r = subprocess.run(["gpgsm", "--batch", "-r", "dave@d.test", "--encrypt", str(src)],
                       env=p.gpgsm_env, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def unseal(p, msg):
    r = subprocess.run([SEALGATE_BIN, "unseal", "--key", p.dave.pem], input=msg,
                       capture_output=True, timeout=60)
    return r.returncode, r.stdout, r.stderr.decode()


def check(p, msg, gcm, want, where):
    """1 when the flip showed: refused, or (CBC only) changed output."""
    rc, out, err = unseal(p, msg)
    if rc != 0:
        assert out == b"", (where, err)
        return 1
    if gcm:
        assert out == want, (where, err)
        assert "authenticated: yes" in err, (where, err)
    elif "encrypted: yes" in err:
        assert "authenticated: no" in err and "not integrity protected" in err, (where, err)
    return int(out != want)


@pytest.mark.parametrize("peer", ["openssl-cbc", "openssl-gcm", "gpgsm-cbc"])
def test_flips(p, peer):
    gcm = peer.endswith("gcm")
    der = gpgsm_der(p) if peer.startswith("gpgsm") else openssl_stream(p, gcm)
    assert der[0] == 0x30 and der[1] == 0x80, "expected indefinite-length BER"
    rc, want, err = unseal(p, wrap(der, gcm))
    assert rc == 0, err
    assert want == HEAD + INNER
    rnd = random.Random(peer)
    head = der.find(bytes.fromhex("6086480165030401"))  # aes arc: the algorithm identifier
    assert head > 0
    shown = 0
    for where in ("head", "der", "base64"):
        for _ in range(FLIPS):
            bit = 1 << rnd.randrange(8)
            if where == "base64":
                msg = bytearray(wrap(der, gcm))
                body = msg.index(b"\r\n\r\n") + 4
                pos = rnd.randrange(body, len(msg))
                msg[pos] ^= bit & 0x3f
                msg = bytes(msg)
            else:
                pos = rnd.randrange(head + 40) if where == "head" else rnd.randrange(len(der))
                changed = bytearray(der)
                changed[pos] ^= bit
                msg = wrap(bytes(changed), gcm)
            shown += check(p, msg, gcm, want, (where, pos, bit))
    # the flips did something: most were refused or (CBC) came out changed
    assert shown > FLIPS
