"""sealgate rekey --from-store for S/MIME: the user's old S/MIME key exists
only in the key store (made by `key generate --smime`, private key sealed
under the master key, certificate stored as DER); the mailbox was sealed to
it by seal-mailbox. After the re-key, openssl cms with only the new key
opens every message, the old key opens none, each message has exactly one
RecipientInfo, and the encryptedContent bytes are unchanged."""
import base64
import os
import subprocess

import pytest

from conftest import run
from deliver_helpers import maildir_files, sealgate_ok
from rekeyhelp import cms_encrypted_parts, recipient_count
from smime_pki import self_signed

ADDR = "carol@example.test"
N = 4


def body_der(msg):
    msg = msg.replace(b"\r\n", b"\n")
    return base64.b64decode(b"".join(msg.split(b"\n\n", 1)[1].split()))


def opens(crt, key, path):
    r = subprocess.run(["openssl", "cms", "-decrypt", "-in", path, "-recip", crt, "-inkey", key],
                       capture_output=True, timeout=60)
    return r.stdout if r.returncode == 0 else None


@pytest.fixture
def world(sealgate_bin, tmp_path):
    tmp = str(tmp_path)
    state, mk = os.path.join(tmp, "state"), os.path.join(tmp, "master.key")
    sealgate_ok(sealgate_bin, "key", "init-master", "--master-key", mk)
    sealgate_ok(sealgate_bin, "key", "generate", ADDR, "--smime", "--type", "p256",
                "--state-dir", state, "--master-key", mk)
    # the old key, exported only for the "old key opens none" check
    old_key, old_der, old_crt = (os.path.join(tmp, n) for n in ("old.key", "old.der", "old.crt"))
    r = run([sealgate_bin, "key", "export", ADDR, "--secret", "--state-dir", state, "--master-key", mk])
    assert r.returncode == 0 and b"PRIVATE KEY" in r.stdout, r.stderr
    open(old_key, "wb").write(r.stdout)
    r = run([sealgate_bin, "key", "export", ADDR, "--state-dir", state])
    assert r.returncode == 0, r.stderr
    open(old_der, "wb").write(r.stdout)
    r = run(["openssl", "x509", "-inform", "DER" if not r.stdout.startswith(b"-----") else "PEM",
             "-in", old_der, "-out", old_crt])
    assert r.returncode == 0, r.stderr
    new = self_signed(tmp, "new", ADDR, "rsa")
    md = os.path.join(tmp, "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub))
    for i in range(N):
        name = f"170000000{i}.M{i}P1.host" + (":2,S" if i % 2 else "")
        with open(os.path.join(md, "cur" if i % 2 else "new", name), "wb") as f:
            f.write(b"From: b@b.test\nTo: %s\nSubject: s%d\n\nstored body %d\n" % (ADDR.encode(), i, i))
    r = run([sealgate_bin, "seal-mailbox", ADDR, "--maildir", md, "--state-dir", state])
    assert r.returncode == 0, (r.stdout, r.stderr)
    return {"tmp": tmp, "state": state, "mk": mk, "md": md, "new": new,
            "old_key": old_key, "old_crt": old_crt}


def test_rekey_smime_from_store(sealgate_bin, world):
    w = world
    before = {os.path.basename(p).split(":")[0].split(",")[0]: open(p, "rb").read()
              for p in maildir_files(w["md"])}
    assert len(before) == N
    for p in maildir_files(w["md"]):
        assert b"application/pkcs7-mime" in open(p, "rb").read(), p
        assert b"stored body" in opens(w["old_crt"], w["old_key"], p)
        assert opens(w["new"].crt, w["new"].key, p) is None
    r = run([sealgate_bin, "rekey", ADDR, "--from-store", "--new-key", w["new"].crt,
             "--maildir", w["md"], "--state-dir", w["state"], "--master-key", w["mk"]])
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert f"{N} done, 0 done earlier, 0 skipped, 0 failed" in err, err
    after = {os.path.basename(p).split(":")[0].split(",")[0]: p for p in maildir_files(w["md"])}
    assert after.keys() == before.keys()
    for base, p in after.items():
        data = open(p, "rb").read()
        d0, d1 = body_der(before[base]), body_der(data)
        assert cms_encrypted_parts(d1) == cms_encrypted_parts(d0), p   # content bytes untouched
        assert recipient_count(d1) == 1, p
        i = int(base.split(".")[0][-1])
        assert b"stored body %d" % i in opens(w["new"].crt, w["new"].key, p), p
        assert opens(w["old_crt"], w["old_key"], p) is None, p
        if "/cur/" in p:
            assert p.endswith(":2,S")


def test_smime_from_store_wrong_master_key(sealgate_bin, world, tmp_path):
    w = world
    other = os.path.join(str(tmp_path), "other.key")
    sealgate_ok(sealgate_bin, "key", "init-master", "--master-key", other)
    snapshot = {p: open(p, "rb").read() for p in maildir_files(w["md"])}
    r = run([sealgate_bin, "rekey", ADDR, "--from-store", "--new-key", w["new"].crt,
             "--maildir", w["md"], "--state-dir", w["state"], "--master-key", other])
    assert r.returncode != 0, r.stderr
    assert {p: open(p, "rb").read() for p in maildir_files(w["md"])} == snapshot
