"""PKCS#12 files as old exports make them (RC2-40 certificate bags, 3DES
keys: `openssl pkcs12 -export -legacy`): sealgate reads them through
OpenSSL's legacy provider, loaded only for that; without the provider the
error says what is missing; a wrong passphrase is told apart."""
import os
import shutil
import subprocess
import tempfile

import pytest

import smime_pki as pki
from conftest import SEALGATE_BIN

MSG = (b"From: Alice <alice@a.test>\r\nTo: Bob <bob@b.test>\r\nSubject: old export\r\n"
       b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
       b"Read with an RC2 PKCS#12.\r\n")

EXIT_OK, EXIT_BAD_KEY, EXIT_UNSUPPORTED = 0, 3, 10


@pytest.fixture(scope="module")
def p():
    d = tempfile.mkdtemp(prefix="sg-smime-p12-")

    class P:
        dir = d
        alice = pki.self_signed(d, "alice", "alice@a.test", "rsa")
        bob = pki.self_signed(d, "bob", "bob@b.test", "ec")
        pw = os.path.join(d, "pw")
        badpw = os.path.join(d, "badpw")
        nomodules = os.path.join(d, "no-ossl-modules")
    with open(P.pw, "w") as f:
        f.write("pw\n")
    with open(P.badpw, "w") as f:
        f.write("not it\n")
    os.makedirs(P.nomodules)
    yield P
    shutil.rmtree(d, ignore_errors=True)


def run(args, data, env=None):
    return subprocess.run([SEALGATE_BIN, *args], input=data, capture_output=True, timeout=60,
                          env=env)


def test_the_file_is_legacy(p):
    info = pki.sh(["openssl", "pkcs12", "-in", p.bob.p12, "-info", "-noout", "-legacy",
                   "-passin", "pass:pw"]).stderr.decode()
    assert "RC2" in info, info
    # and plain OpenSSL 3 (no legacy provider) cannot read it
    r = subprocess.run(["openssl", "pkcs12", "-in", p.bob.p12, "-noout", "-passin", "pass:pw"],
                       capture_output=True, timeout=60)
    assert r.returncode != 0


def test_decrypt_with_legacy_p12(p):
    r = run(["seal", "--smime", "--to", "bob@b.test", "--key", p.bob.crt], MSG)
    assert r.returncode == 0, r.stderr
    u = run(["unseal", "--key", p.bob.p12, "--passphrase-file", p.pw], r.stdout)
    assert u.returncode == EXIT_OK, u.stderr
    assert u.stdout == MSG


def test_sign_with_legacy_p12_openssl_verifies(p):
    r = run(["seal", "--smime", "--sign-as", "alice@a.test", "--key", p.alice.p12,
             "--passphrase-file", p.pw], MSG)
    assert r.returncode == 0, r.stderr
    src = os.path.join(p.dir, "signed.eml")
    with open(src, "wb") as f:
        f.write(r.stdout)
    v = subprocess.run(["openssl", "cms", "-verify", "-in", src, "-CAfile", p.alice.crt],
                       capture_output=True, timeout=60)
    assert v.returncode == 0, v.stderr
    assert b"Read with an RC2 PKCS#12." in v.stdout


def test_wrong_passphrase_is_named(p):
    u = run(["unseal", "--key", p.bob.p12, "--passphrase-file", p.badpw], MSG)
    assert u.returncode == EXIT_BAD_KEY
    assert b"wrong passphrase" in u.stderr, u.stderr


def test_without_legacy_provider_the_error_says_so(p):
    env = dict(os.environ, OPENSSL_MODULES=p.nomodules)
    u = run(["unseal", "--key", p.bob.p12, "--passphrase-file", p.pw], MSG, env=env)
    assert u.returncode == EXIT_UNSUPPORTED, u.stderr
    assert b"legacy provider cannot be loaded" in u.stderr, u.stderr
    # AES exports need no legacy provider
    r = run(["seal", "--smime", "--to", "bob@b.test", "--key", p.bob.crt], MSG)
    u = run(["unseal", "--key", p.bob.p12aes, "--passphrase-file", p.pw], r.stdout, env=env)
    assert u.returncode == EXIT_OK and u.stdout == MSG, u.stderr
