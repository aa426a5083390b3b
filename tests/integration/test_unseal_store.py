"""`sealgate unseal` and `sealgate seal --sign-as` without --key take the
secret keys sealed in the key store (`sealgate key import --with-secret`,
opened with the master key): gpg encrypts (PGP/MIME and inline) to a stored
key and sealgate decrypts with the key the PKESKs name; a message to a key
the store lacks, or no master key, is refused with its reason; a signature
made with a stored key verifies with gpg."""
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from pgphelp import (fingerprint, gpg, kill_agent, make_keys, multipart_parts, part_body, pgp_mime,
                     sealgate)

INNER = b"Content-Type: text/plain; charset=us-ascii\r\n\r\nSTORE-UNSEAL-MARKER\r\n"


@pytest.fixture(scope="module")
def world():
    tmp = tempfile.mkdtemp(prefix="unseal-store-")
    home = os.path.join(tmp, "gnupg")
    keydir = os.path.join(tmp, "keys")
    os.makedirs(keydir)
    make_keys(home, keydir, names=["alice", "bob", "mallory"])
    state = os.path.join(tmp, "state")
    master = os.path.join(tmp, "master.key")
    r = sealgate("key", "init-master", "--state-dir", state, "--master-key", master)
    assert r.returncode == 0, r.stderr
    for name in ("alice", "bob"):
        r = sealgate("key", "import", "--state-dir", state, "--master-key", master, "--with-secret",
                     os.path.join(keydir, name + ".sec"))
        assert r.returncode == 0, r.stderr
    yield {"tmp": tmp, "home": home, "keys": keydir, "state": state, "master": master}
    kill_agent(home)
    shutil.rmtree(tmp, ignore_errors=True)


def store_args(w, master=None):
    return ["--state-dir", w["state"], "--master-key", master or w["master"]]


def encrypt(w, *recips, sign_as=None):
    args = ["--trust-model", "always", "--armor"]
    for r in recips:
        args += ["-r", r]
    if sign_as:
        args += ["-u", sign_as, "--sign"]
    return gpg(w["home"], *args, "--encrypt", inp=INNER).stdout


def summary(stderr):
    return stderr.decode(errors="replace")


def packets(w, armored):
    return gpg(w["home"], "--list-packets", inp=armored, check=False).stdout


def test_pgp_mime_from_store_with_signature(world):
    armored = encrypt(world, "bob@b.test", sign_as="alice@a.test")
    # gpg compresses by default: sealgate reads compressed data too
    assert b"compressed packet" in packets(world, armored)
    msg = pgp_mime(b"From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nSubject: x\r\n", armored)
    r = sealgate("unseal", *store_args(world), inp=msg)
    assert r.returncode == 0, r.stderr
    assert b"STORE-UNSEAL-MARKER" in r.stdout
    s = summary(r.stderr)
    assert "decrypted with: " + fingerprint(world["home"], "bob@b.test") in s
    # alice's stored public key verified her signature (From: address)
    assert "signature: valid by " + fingerprint(world["home"], "alice@a.test") in s


def test_picks_the_key_the_message_names(world):
    # both alice's and bob's secrets are stored; the PKESK names alice
    msg = pgp_mime(b"From: bob@b.test\r\nTo: alice@a.test\r\n", encrypt(world, "alice@a.test"))
    r = sealgate("unseal", *store_args(world), inp=msg)
    assert r.returncode == 0, r.stderr
    assert "decrypted with: " + fingerprint(world["home"], "alice@a.test") in summary(r.stderr)


def test_inline_pgp_from_store(world):
    armored = encrypt(world, "alice@a.test").replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    msg = b"From: bob@b.test\r\nTo: alice@a.test\r\nContent-Type: text/plain\r\n\r\n" + armored
    r = sealgate("unseal", *store_args(world), inp=msg)
    assert r.returncode == 0, r.stderr
    assert b"STORE-UNSEAL-MARKER" in r.stdout


def test_recipient_not_in_store(world):
    msg = pgp_mime(b"From: bob@b.test\r\nTo: mallory@m.test\r\n", encrypt(world, "mallory@m.test"))
    r = sealgate("unseal", *store_args(world), inp=msg)
    assert r.returncode == 2, r.stderr
    assert "recipient key ID" in summary(r.stderr)
    assert r.stdout == b""


def test_no_or_wrong_master_key(world, tmp_path):
    msg = pgp_mime(b"From: bob@b.test\r\n", encrypt(world, "bob@b.test"))
    r = sealgate("unseal", "--state-dir", world["state"], inp=msg)
    assert r.returncode == 2, r.stderr
    assert "no master key" in summary(r.stderr) and r.stdout == b""
    other = str(tmp_path / "other.key")
    assert sealgate("key", "init-master", "--master-key", other).returncode == 0
    r = sealgate("unseal", *store_args(world, other), inp=msg)
    assert r.returncode != 0 and r.stdout == b""
    assert "master key" in summary(r.stderr)


def test_sign_as_stored_key_encrypted(world):
    body = b"From: bob@b.test\r\nTo: alice@a.test\r\nSubject: signed\r\n" + INNER
    r = sealgate("seal", "--to", "alice@a.test", "--sign-as", "bob@b.test", *store_args(world), inp=body)
    assert r.returncode == 0, r.stderr
    parts = multipart_parts(r.stdout)
    # sealgate does not compress (issue #4: compression off by default)
    listing = packets(world, part_body(parts[1]))
    assert b"literal data packet" in listing and b"compressed packet" not in listing
    d = gpg(world["home"], "--status-fd", "2", "--decrypt", inp=part_body(parts[1]))
    assert b"STORE-UNSEAL-MARKER" in d.stdout
    assert re.search(rb"\[GNUPG:\] GOODSIG \S+ Bob <bob@b.test>", d.stderr), d.stderr


def test_sign_only_with_stored_key(world, tmp_path):
    body = b"From: alice@a.test\r\nTo: bob@b.test\r\nSubject: signed\r\n" + INNER
    r = sealgate("seal", "--sign-as", "alice@a.test", *store_args(world), inp=body)
    assert r.returncode == 0, r.stderr
    parts = multipart_parts(r.stdout)
    data, sig = tmp_path / "data", tmp_path / "data.asc"
    data.write_bytes(parts[0])
    sig.write_bytes(part_body(parts[1]))
    v = gpg(world["home"], "--status-fd", "2", "--verify", str(sig), str(data), check=False)
    assert v.returncode == 0, v.stderr
    assert b"GOODSIG" in v.stderr
    # a signer without a stored secret: refused, with the store's reason
    r = sealgate("seal", "--sign-as", "mallory@m.test", *store_args(world), inp=body)
    assert r.returncode == 2 and r.stdout == b""
    assert "key store" in summary(r.stderr)
