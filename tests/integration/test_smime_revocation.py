"""S/MIME signer revocation against CRLs (RFC 5280 s5): a test CA made with
openssl revokes one of two signers; `sealgate unseal` says revoked (exit 5)
for that one and valid for the other, in each revocation mode, from
command-line CRLs and from the configuration (files and a directory)."""
import os
import shutil
import subprocess
import tempfile

import pytest

import smime_pki as pki
from conftest import SEALGATE_BIN

MSG = (b"From: Good <good@d.test>\r\nTo: Bob <bob@b.test>\r\nSubject: revocation\r\n"
       b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
       b"Signed words.\r\n")

EXIT_OK, EXIT_REVOKED, EXIT_UNKNOWN_SIGNER, EXIT_USAGE = 0, 5, 8, 64


@pytest.fixture(scope="module")
def p():
    d = tempfile.mkdtemp(prefix="sg-smime-crl-")

    class P:
        dir = d
        ca = pki.make_ca(d, "Revoking CA")
        other_ca = pki.make_ca(d, "Other CA")
        good = pki.issued(d, "good", "good@d.test", "rsa", ca)
        bad = pki.issued(d, "bad", "bad@d.test", "ec", ca)
        bob = pki.self_signed(d, "bob", "bob@b.test", "rsa")
        auth = pki.CrlAuthority(d, ca)
    P.auth.revoke(P.bad)
    P.crl = P.auth.crl(os.path.join(d, "ca.crl"))
    P.crl_der = P.auth.crl(os.path.join(d, "ca-der.crl"), der=True)
    P.other_crl = pki.CrlAuthority(d, P.other_ca).crl(os.path.join(d, "other.crl"))
    P.crl_dir = os.path.join(d, "crldir")
    os.makedirs(P.crl_dir)
    shutil.copy(P.crl_der, os.path.join(P.crl_dir, "ca.crl"))
    with open(os.path.join(P.crl_dir, "README"), "w") as f:
        f.write("CRLs for sealgate\n")
    yield P
    shutil.rmtree(d, ignore_errors=True)


def run(args, data):
    return subprocess.run([SEALGATE_BIN, *args], input=data, capture_output=True, timeout=60)


def seal(signer, to=None):
    args = ["seal", "--smime", "--sign-as", signer.email, "--key", signer.pem]
    if to is not None:
        args += ["--to", to.email, "--key", to.crt]
    r = run(args, MSG.replace(b"good@d.test", signer.email.encode()))
    assert r.returncode == 0, r.stderr
    return r.stdout


def unseal(p, sealed, *extra, keys=()):
    args = ["unseal", "--verify-key", p.ca.crt]
    for k in keys:
        args += ["--key", k]
    r = run(args + list(extra), sealed)
    return r.returncode, r.stdout, r.stderr.decode()


@pytest.fixture(scope="module")
def sealed(p):
    return {"good": seal(p.good), "bad": seal(p.bad),
            "good-enc": seal(p.good, to=p.bob), "bad-enc": seal(p.bad, to=p.bob)}


def test_without_revocation_both_valid(p, sealed):
    for who in ("good", "bad"):
        rc, out, err = unseal(p, sealed[who])
        assert rc == EXIT_OK and "signature: valid" in err, err
        assert b"Signed words." in out


@pytest.mark.parametrize("crl", ["crl", "crl_der"])
def test_revoked_signer_exit_5(p, sealed, crl):
    rc, out, err = unseal(p, sealed["bad"], "--crl", getattr(p, crl))
    assert rc == EXIT_REVOKED, err
    assert "signer key revoked" in err and "certificate revoked" in err, err
    rc, out, err = unseal(p, sealed["good"], "--crl", getattr(p, crl))
    assert rc == EXIT_OK and "signature: valid" in err, err


def test_revoked_inside_encryption(p, sealed):
    rc, _, err = unseal(p, sealed["bad-enc"], "--crl", p.crl, keys=[p.bob.pem])
    assert rc == EXIT_REVOKED and "encrypted: yes" in err, err
    rc, out, err = unseal(p, sealed["good-enc"], "--crl", p.crl, keys=[p.bob.pem])
    assert rc == EXIT_OK and "signature: valid" in err, err
    assert b"Signed words." in out


def test_crl_mode_without_a_matching_crl_passes(p, sealed):
    """crl (soft): no CRL from this issuer is held, so nothing says revoked."""
    rc, _, err = unseal(p, sealed["bad"], "--crl", p.other_crl)
    assert rc == EXIT_OK and "signature: valid" in err, err


def test_require_without_crl_is_a_clear_error(p, sealed):
    for who in ("good", "bad"):
        rc, _, err = unseal(p, sealed[who], "--crl", p.other_crl, "--revocation", "require")
        assert rc == EXIT_UNKNOWN_SIGNER, err
        assert "unable to get certificate CRL" in err, err
    rc, _, err = unseal(p, sealed["good"], "--revocation", "require", "--crl", p.crl)
    assert rc == EXIT_OK, err


def test_revocation_off_ignores_crls(p, sealed):
    rc, _, err = unseal(p, sealed["bad"], "--crl", p.crl, "--revocation", "off")
    assert rc == EXIT_OK, err


def test_config_files_and_dir(p, sealed, tmp_path):
    for body in (f"smime_revocation = crl\nsmime_crl_files = {p.crl}\n",
                 f"smime_revocation = require\nsmime_crl_dir = {p.crl_dir}\n"):
        conf = tmp_path / "sealgate.conf"
        conf.write_text(body)
        rc, _, err = unseal(p, sealed["bad"], "-c", str(conf))
        assert rc == EXIT_REVOKED, (body, err)
        rc, _, err = unseal(p, sealed["good"], "-c", str(conf))
        assert rc == EXIT_OK, (body, err)


def test_bad_revocation_settings(p, sealed, tmp_path):
    rc, _, err = unseal(p, sealed["good"], "--revocation", "sometimes")
    assert rc == EXIT_USAGE and "'sometimes' is not off, crl or require" in err, err
    notcrl = tmp_path / "not.crl"
    notcrl.write_text("hello\n")
    rc, _, err = unseal(p, sealed["good"], "--crl", str(notcrl))
    assert rc == EXIT_USAGE and "no CRL in the file" in err, err
    rc, _, err = unseal(p, sealed["good"], "--crl", str(tmp_path / "missing.crl"))
    assert rc == EXIT_USAGE and "missing.crl" in err, err


def test_openssl_signed_revoked(p):
    """A signature made by openssl cms, not by sealgate."""
    d = tempfile.mkdtemp(dir=p.dir)
    src = os.path.join(d, "m.eml")
    with open(src, "wb") as f:
        f.write(MSG.replace(b"good@d.test", b"bad@d.test"))
    out = os.path.join(d, "s.eml")
    pki.sh(["openssl", "cms", "-sign", "-in", src, "-signer", p.bad.crt, "-inkey", p.bad.key,
            "-out", out, "-md", "sha256"])
    with open(out, "rb") as f:
        signed = f.read()
    rc, _, err = unseal(p, signed, "--crl", p.crl)
    assert rc == EXIT_REVOKED, err
