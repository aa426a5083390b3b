"""`sealgate key generate ADDR --smime [--type rsa3072|p256]`: a self-signed
S/MIME certificate (SAN rfc822Name, keyUsage per key type, EKU
emailProtection) whose private key is sealed under the master key. openssl
checks and encrypts to the exported certificate, and decrypts with the
`key export --secret` output; gpgsm imports it; `sealgate seal` uses it."""
import os
import sqlite3
import subprocess

import pytest

from conftest import SEALGATE_BIN

KU = {"rsa3072": "Digital Signature, Key Encipherment",
      "p256": "Digital Signature, Key Agreement"}


def run(*args, inp=None, text=True):
    return subprocess.run(list(args), capture_output=True, timeout=120, input=inp, text=text)


def sg(state, mk, *args, text=True):
    return run(SEALGATE_BIN, "key", *args, "--state-dir", str(state), "--master-key", str(mk),
               text=text)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One key of each type, generated once for the module."""
    t = tmp_path_factory.mktemp("smime-gen")
    mk = t / "master.key"
    assert run(SEALGATE_BIN, "key", "init-master", "--master-key", str(mk)).returncode == 0
    out = {"dir": t, "state": t / "state", "mk": mk}
    for typ in KU:
        addr = f"s-{typ}@example.test"
        r = sg(out["state"], mk, "generate", addr, "--smime", "--type", typ)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("generated S/MIME "), r.stdout
        fpr = r.stdout.split()[-3]
        cert = t / f"{typ}.der"
        r = sg(out["state"], mk, "export", addr, text=False)
        assert r.returncode == 0 and r.stdout[:1] == b"\x30"
        cert.write_bytes(r.stdout)
        key = t / f"{typ}.key"
        r = sg(out["state"], mk, "export", addr, "--secret", text=False)
        assert r.returncode == 0 and r.stdout.startswith(b"-----BEGIN PRIVATE KEY-----"), r.stderr
        key.write_bytes(r.stdout)
        os.chmod(key, 0o600)
        out[typ] = {"addr": addr, "fpr": fpr, "cert": cert, "key": key}
    return out


@pytest.mark.parametrize("typ", list(KU))
def test_certificate_profile(made, typ):
    k = made[typ]
    r = run("openssl", "x509", "-inform", "DER", "-in", str(k["cert"]), "-noout", "-text",
            "-checkemail", k["addr"], "-fingerprint", "-sha256")
    assert r.returncode == 0, r.stderr
    txt = r.stdout
    assert f"email:{k['addr']}" in txt
    assert "E-mail Protection" in txt and KU[typ] in txt and "CA:FALSE" in txt
    assert f"Email {k['addr']} does match certificate" in txt
    # The listed fingerprint is the certificate's SHA-256, as `key import` gives it.
    assert k["fpr"] == txt.split("sha256 Fingerprint=")[1].split()[0].replace(":", "")
    # Self-signed, and fit for S/MIME by OpenSSL's purpose checks. (OpenSSL's
    # smimeencrypt wants keyEncipherment, which RFC 5480 3 forbids for EC
    # keys: an EC certificate is checked for signing, and encrypted to below.)
    pem = made["dir"] / f"{typ}.pem"
    run("openssl", "x509", "-inform", "DER", "-in", str(k["cert"]), "-out", str(pem))
    purpose = "smimeencrypt" if typ == "rsa3072" else "smimesign"
    r = run("openssl", "verify", "-partial_chain", "-CAfile", str(pem), "-purpose",
            purpose, str(pem))
    assert r.returncode == 0 and ": OK" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("typ", list(KU))
def test_openssl_cms_round_trip(made, typ, tmp_path):
    k = made[typ]
    msg = tmp_path / "m.txt"
    msg.write_bytes(b"Content-Type: text/plain\r\n\r\nfor your eyes only\r\n")
    enc = tmp_path / "m.p7m"
    r = run("openssl", "cms", "-encrypt", "-aes256", "-in", str(msg), "-out", str(enc),
            str(k["cert"]))
    assert r.returncode == 0, r.stderr
    r = run("openssl", "cms", "-decrypt", "-in", str(enc), "-recip", str(k["cert"]), "-inkey",
            str(k["key"]), text=False)
    assert r.returncode == 0 and b"for your eyes only" in r.stdout, r.stderr


def test_sealgate_seals_to_generated_cert(made, tmp_path):
    k = made["p256"]
    r = subprocess.run([SEALGATE_BIN, "seal", "--smime", "--to", k["addr"], "--state-dir",
                        str(made["state"])], input=b"Subject: hi\r\n\r\nsealed words\r\n",
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    sealed = tmp_path / "sealed.eml"
    sealed.write_bytes(r.stdout)
    r = run("openssl", "cms", "-decrypt", "-in", str(sealed), "-recip", str(k["cert"]), "-inkey",
            str(k["key"]), text=False)
    assert r.returncode == 0 and b"sealed words" in r.stdout, r.stderr


def test_gpgsm_imports(made, tmp_path):
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    k = made["rsa3072"]
    r = subprocess.run(["gpgsm", "--batch", "--import", str(k["cert"])], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 0 and "imported: 1" in r.stderr, r.stderr
    r = subprocess.run(["gpgsm", "--batch", "--with-colons", "--list-keys", k["addr"]],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and f"<{k['addr']}>" in r.stdout, r.stdout + r.stderr
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)


def test_secret_sealed_in_store(made):
    """The private key is in the store only sealed: neither the PEM nor its
    DER body appears in the database file."""
    key_pem = made["p256"]["key"].read_bytes()
    body = b"".join(l for l in key_pem.splitlines() if not l.startswith(b"-----"))
    db = sqlite3.connect(str(made["state"] / "sealgate.db"))
    rows = db.execute("SELECT owner, purpose, blob FROM private_keys").fetchall()
    db.close()
    assert {(o, p) for o, p, _ in rows} >= {(made["p256"]["addr"], "smime-secret"),
                                            (made["rsa3072"]["addr"], "smime-secret")}
    raw = open(made["state"] / "sealgate.db", "rb").read()
    assert b"PRIVATE KEY" not in raw and body[:40] not in raw
    # Without the right master key nothing comes out.
    other = made["dir"] / "other.key"
    assert run(SEALGATE_BIN, "key", "init-master", "--master-key", str(other)).returncode == 0
    r = sg(made["state"], other, "export", made["p256"]["addr"], "--secret")
    assert r.returncode != 0 and "PRIVATE KEY" not in r.stdout


def test_bad_type_named(made, tmp_path):
    r = sg(made["state"], made["mk"], "generate", "x@example.test", "--smime", "--type", "ed25519")
    assert r.returncode == 64 and "rsa3072 or p256" in r.stderr
