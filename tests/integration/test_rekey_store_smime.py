"""sealgate rekey --from-store for S/MIME: the user's old S/MIME key exists
only in the key store (made by `key generate --smime`, private key sealed
under the master key, certificate stored as DER); the mailbox was sealed to
it by seal-mailbox. After the re-key, openssl cms with only the new key
opens every message, the old key opens none, each message has exactly one
RecipientInfo, and the encryptedContent bytes are unchanged."""
import base64
import os
import re
import smtplib
import subprocess

import pytest

from conftest import run
from deliver_helpers import DeliverGateway, maildir_files, sealgate_ok
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


def store_fprs(bin, w):
    """Fingerprints of ADDR's keys in the store (`key list`)."""
    out = run([bin, "key", "list", ADDR, "--state-dir", w["state"]]).stdout.decode()
    return set(re.findall(r"\b[0-9A-F]{40,64}\b", out))


def unseal_from_store(bin, w, path):
    """`sealgate unseal` with no --key: the store's sealed secret keys."""
    r = run([bin, "unseal", "--state-dir", w["state"], "--master-key", w["mk"]],
            input=open(path, "rb").read())
    return r.stdout if r.returncode == 0 else None


def test_store_new_smime(sealgate_bin, world):
    """--store-new with a new certificate + private key: the new certificate
    becomes ADDR's S/MIME key (delivery seals to it) and the new private key
    its sealed secret (unseal from the store opens re-keyed and new mail).
    Fails when the store update is skipped: delivery would still seal to the
    old certificate, and the store could open none of the re-keyed mail."""
    w = world
    old_fprs = store_fprs(sealgate_bin, w)
    assert len(old_fprs) == 1, old_fprs
    r = run([sealgate_bin, "rekey", ADDR, "--from-store", "--new-key", w["new"].pem, "--store-new",
             "--maildir", w["md"], "--state-dir", w["state"], "--master-key", w["mk"]])
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert f"{N} done, 0 done earlier, 0 skipped, 0 failed" in err, err
    assert "the store now seals to S/MIME" in err and "private key stored sealed" in err, err
    new_fprs = store_fprs(sealgate_bin, w)
    assert len(new_fprs) == 1 and not new_fprs & old_fprs, (old_fprs, new_fprs)
    # (a) openssl cms: the new key opens every message, the old key none
    files = maildir_files(w["md"])
    assert len(files) == N
    for p in files:
        assert b"stored body" in opens(w["new"].crt, w["new"].key, p), p
        assert opens(w["old_crt"], w["old_key"], p) is None, p
    # (b) a fresh delivery through the gateway is sealed to the new certificate
    gw = DeliverGateway(sealgate_bin, w["tmp"], f"deliver_maildir = {w['tmp']}/mail/%n/Maildir\n"
                        "deliver_format = smime\n")
    gw.start()
    try:
        l = smtplib.LMTP("127.0.0.1", gw.port)
        try:
            l.sendmail("bob@b.test", [ADDR], b"From: bob@b.test\r\nTo: " + ADDR.encode() +
                       b"\r\nSubject: after\r\n\r\nfresh delivery body\r\n")
        finally:
            l.close()
    finally:
        assert gw.stop() == 0, gw.log()
    fresh = maildir_files(f"{w['tmp']}/mail/carol/Maildir")
    assert len(fresh) == 1, gw.log()
    assert b"application/pkcs7-mime" in open(fresh[0], "rb").read()
    assert b"fresh delivery body" in opens(w["new"].crt, w["new"].key, fresh[0])
    assert opens(w["old_crt"], w["old_key"], fresh[0]) is None
    # (c) unseal with the store's keys opens the re-keyed and the new mail
    for p in files + fresh:
        got = unseal_from_store(sealgate_bin, w, p)
        assert got is not None and b"body" in got, p
    # a second S/MIME re-key from the store takes the stored new key as the old one
    newer = self_signed(w["tmp"], "newer", ADDR, "ec")
    r = run([sealgate_bin, "rekey", ADDR, "--from-store", "--new-key", newer.crt,
             "--maildir", w["md"], "--state-dir", w["state"], "--master-key", w["mk"]])
    assert r.returncode == 0 and f"{N} done,".encode() in r.stderr, r.stderr
    assert all(b"stored body" in opens(newer.crt, newer.key, p) for p in maildir_files(w["md"]))


def test_store_new_smime_refusals(sealgate_bin, world):
    """Checked before the walk, nothing touched: a certificate that does not
    name ADDR, and a private key that does not match the certificate."""
    w = world
    snapshot = {p: open(p, "rb").read() for p in maildir_files(w["md"])}
    before = store_fprs(sealgate_bin, w)
    other = self_signed(w["tmp"], "other", "dave@example.test", "rsa")
    mismatched = os.path.join(w["tmp"], "mismatched.pem")
    with open(mismatched, "wb") as f:
        f.write(open(w["new"].crt, "rb").read() + open(other.key, "rb").read())
    for key, why in ((other.pem, b"does not name <carol@example.test>"),
                     (mismatched, b"does not match the certificate")):
        r = run([sealgate_bin, "rekey", ADDR, "--from-store", "--new-key", key, "--store-new",
                 "--maildir", w["md"], "--state-dir", w["state"], "--master-key", w["mk"]])
        assert r.returncode == 3 and why in r.stderr, r.stderr
    assert {p: open(p, "rb").read() for p in maildir_files(w["md"])} == snapshot
    assert store_fprs(sealgate_bin, w) == before
