"""S/MIME with secret keys from the key store: `sealgate key generate
--smime` seals the private key under the master key; `openssl cms`
encrypts to the exported certificate (CBC and GCM) and `sealgate unseal`
without --key decrypts; `seal --smime --sign-as` signs with the stored key
and `openssl cms -verify` accepts it. Skipped where `key generate --smime`
is not built yet."""
import os
import shutil
import subprocess
import tempfile

import pytest

from pgphelp import sealgate

INNER = b"Content-Type: text/plain\r\n\r\nSMIME-STORE-MARKER\r\n"


def openssl(*args, inp=None):
    return subprocess.run(["openssl", *args], input=inp, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def world():
    tmp = tempfile.mkdtemp(prefix="unseal-store-smime-")
    state, master = os.path.join(tmp, "state"), os.path.join(tmp, "master.key")
    w = {"tmp": tmp, "args": ["--state-dir", state, "--master-key", master]}
    assert sealgate("key", "init-master", "--master-key", master).returncode == 0
    r = sealgate("key", "generate", "bob@b.test", "--smime", "--type", "p256", *w["args"])
    if r.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.skip("sealgate key generate --smime not available: " + r.stderr.decode(errors="replace"))
    exported = sealgate("key", "export", "bob@b.test", *w["args"]).stdout
    cert = os.path.join(tmp, "bob.crt")
    # the store may keep the certificate as DER: PEM for openssl -CAfile
    r = openssl("x509", "-inform", "PEM" if exported.startswith(b"-----") else "DER", "-out", cert,
                inp=exported)
    assert r.returncode == 0, r.stderr
    w["cert"] = cert
    # a certificate whose key the store does not have
    w["other"] = os.path.join(tmp, "other.crt")
    r = openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-days", "2", "-subj", "/CN=Other", "-keyout", os.path.join(tmp, "other.key"),
                "-out", w["other"], "-addext", "subjectAltName=email:other@b.test")
    assert r.returncode == 0, r.stderr
    yield w
    shutil.rmtree(tmp, ignore_errors=True)


def cms_encrypt(cert, cipher):
    r = openssl("cms", "-encrypt", "-" + cipher, "-from", "alice@a.test", "-to", "bob@b.test",
                "-subject", "s", cert, inp=INNER)
    assert r.returncode == 0, r.stderr
    return r.stdout.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@pytest.mark.parametrize("cipher", ["aes256", "aes-256-gcm"])
def test_openssl_encrypts_sealgate_unseals_from_store(world, cipher):
    r = sealgate("unseal", *world["args"], inp=cms_encrypt(world["cert"], cipher))
    assert r.returncode == 0, r.stderr
    assert b"SMIME-STORE-MARKER" in r.stdout
    assert b"authenticated: " + (b"yes" if "gcm" in cipher else b"no") in r.stderr


def test_not_encrypted_to_a_stored_key(world):
    r = sealgate("unseal", *world["args"], inp=cms_encrypt(world["other"], "aes256"))
    assert r.returncode == 6, r.stderr  # wrong key
    assert r.stdout == b""


def test_sign_as_stored_smime_key(world, tmp_path):
    msg = b"From: bob@b.test\r\nTo: alice@a.test\r\nSubject: s\r\n" + INNER
    r = sealgate("seal", "--smime", "--sign-as", "bob@b.test", *world["args"], inp=msg)
    assert r.returncode == 0, r.stderr
    signed = tmp_path / "signed.eml"
    signed.write_bytes(r.stdout)
    v = openssl("cms", "-verify", "-CAfile", world["cert"], "-in", str(signed))
    assert v.returncode == 0, v.stderr
    assert b"SMIME-STORE-MARKER" in v.stdout
