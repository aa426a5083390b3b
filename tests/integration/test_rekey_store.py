"""sealgate rekey --from-store / --store-new / --resync-cmd, and a Maildir
renamed under a running rekey: the user's old secret key exists only sealed
in the key store; afterwards gpg holding only the new key decrypts every
message, the old key none, the SEIPD bytes are unchanged, and delivery
(the store) seals to the new key."""
import base64
import os
import re
import subprocess
import time

import pytest

from conftest import run
from deliver_helpers import gpg_decrypt, maildir_files, pgp_user
from pgphelp import crc24, kill_agent
from rekey_keys import enc_keyid, gpg_keypair, seipd
from rekeyhelp import dearmor, packets, pkesk_keyids

ADDR = "alice@example.test"
N = 4


@pytest.fixture
def world(sealgate_bin, tmp_path):
    tmp = str(tmp_path)
    state = os.path.join(tmp, "state")
    old_sec, old_fpr = pgp_user(sealgate_bin, tmp, state, ADDR)  # secret: in the store
    home = os.path.join(tmp, "gnupg")
    os.makedirs(home, mode=0o700)
    new = gpg_keypair(home, f"Alice <{ADDR}>", tmp, "new")
    new_pub, new_sec = new["pub"], new["sec"]
    md = os.path.join(tmp, "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub))
    for i in range(N):
        with open(os.path.join(md, "cur" if i % 2 else "new",
                               f"170000000{i}.M{i}P1.host" + (":2,S" if i % 2 else "")), "wb") as f:
            f.write(b"From: b@b.test\nTo: %s\nSubject: s%d\n\nstored body %d\n" % (ADDR.encode(), i, i))
    # sealed to the stored key by seal-mailbox (key from the store)
    r = run([sealgate_bin, "seal-mailbox", ADDR, "--maildir", md, "--state-dir", state])
    assert r.returncode == 0, (r.stdout, r.stderr)
    yield {"tmp": tmp, "state": state, "mk": os.path.join(tmp, "master.key"), "md": md,
           "old_sec": old_sec, "old_fpr": old_fpr, "new_pub": new_pub, "new_sec": new_sec,
           "home": home}
    kill_agent(home)


def test_rekey_from_store_and_store_new(sealgate_bin, world):
    w = world
    # The old secret is only in the store: the exported copy is for the
    # "old key decrypts none" check and is not given to rekey.
    before = {os.path.basename(p).split(":")[0].split(",")[0]: open(p, "rb").read()
              for p in maildir_files(w["md"])}
    new_id = enc_keyid(w["home"], w["new_pub"])
    old_id = enc_keyid(w["home"], w["old_sec"])
    assert all(pkesk_keyids(packets(dearmor(d)[2])) == [old_id] for d in before.values())
    marker = os.path.join(w["tmp"], "resync.args")
    r = run([sealgate_bin, "rekey", ADDR, "--from-store", "--new-key", w["new_pub"],
             "--store-new", "--maildir", w["md"], "--state-dir", w["state"],
             "--master-key", w["mk"], "--resync-cmd", f'printf "%s|%s" "$1" "$2" > {marker}'])
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert f"{N} done, 0 done earlier, 0 skipped, 0 failed" in err, err
    assert "the store now seals to" in err
    assert open(marker).read() == f"{ADDR}|{w['md']}"
    after = {os.path.basename(p).split(":")[0].split(",")[0]: (p, open(p, "rb").read())
             for p in maildir_files(w["md"])}
    assert after.keys() == before.keys()
    for base, (p, data) in after.items():
        assert pkesk_keyids(packets(dearmor(data)[2])) == [new_id], p
        assert seipd(data) == seipd(before[base])        # content bytes untouched
        assert b"stored body" in gpg_decrypt(w["new_sec"], data)
        if "/cur/" in p:
            assert p.endswith(":2,S")
    # the old key decrypts none (gpg holding only it)
    with pytest.raises(AssertionError):
        gpg_decrypt(w["old_sec"], next(iter(after.values()))[1])
    # the store now has the new key only; a message sealed from the store is for it
    lst = run([sealgate_bin, "key", "list", ADDR, "--state-dir", w["state"]]).stdout.decode()
    assert w["old_fpr"] not in lst and ADDR in lst, lst
    s = run([sealgate_bin, "seal", "--to", ADDR, "--state-dir", w["state"]],
            input=b"Subject: after\r\n\r\nnew mail\r\n")
    assert s.returncode == 0, s.stderr
    assert pkesk_keyids(packets(dearmor(s.stdout)[2])) == [new_id]
    assert b"new mail" in gpg_decrypt(w["new_sec"], s.stdout)


def test_from_store_needs_a_stored_secret(sealgate_bin, world):
    w = world
    r = run([sealgate_bin, "rekey", "bob@example.test", "--from-store", "--new-key", w["new_pub"],
             "--maildir", w["md"], "--state-dir", w["state"], "--master-key", w["mk"]])
    assert r.returncode == 3 and b"no secret key" in r.stderr, r.stderr
    # --store-new refuses a new key without the user's address, before touching mail
    r = run([sealgate_bin, "rekey", "bob@example.test", "--from-store", "--new-key", w["new_pub"],
             "--store-new", "--maildir", w["md"], "--state-dir", w["state"], "--master-key",
             os.path.join(w["tmp"], "missing.key")])
    assert r.returncode == 3, r.stderr
    # a failing resync command makes the run fail, and says so
    r = run([sealgate_bin, "rekey", ADDR, "--from-store", "--new-key", w["new_pub"], "--maildir",
             w["md"], "--state-dir", w["state"], "--master-key", w["mk"], "--resync-cmd", "exit 7"])
    assert r.returncode == 1 and b"exited with 7" in r.stderr, r.stderr


def test_renamed_while_rekeying(sealgate_bin, world):
    """Every message moved new/ -> cur/ with flags (as Dovecot does on
    SELECT) after rekey listed the Maildir: each is still re-keyed once,
    in its new place, with its flags."""
    w = world
    n = 150
    src = open(maildir_files(w["md"])[0], "rb").read()
    for p in maildir_files(w["md"]):
        os.unlink(p)
    for i in range(n):
        with open(os.path.join(w["md"], "new", f"1800{i:06d}.M{i}P2.host"), "wb") as f:
            f.write(b"X-N: %d\n" % i + src)
    journal = os.path.join(w["md"], ".sealgate-rekey.journal")
    proc = subprocess.Popen([sealgate_bin, "rekey", ADDR, "--from-store", "--new-key", w["new_pub"],
                             "--maildir", w["md"], "--state-dir", w["state"], "--master-key",
                             w["mk"]], stderr=subprocess.PIPE)
    # Listing done once the first message is journalled; then move the rest.
    deadline = time.monotonic() + 30
    while not (os.path.exists(journal) and os.path.getsize(journal) > 0):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.001)
    for name in sorted(os.listdir(os.path.join(w["md"], "new")), reverse=True):
        try:
            os.rename(os.path.join(w["md"], "new", name), os.path.join(w["md"], "cur", name + ":2,S"))
        except FileNotFoundError:
            pass
    err = proc.communicate(timeout=60)[1].decode()
    assert proc.returncode == 0, err
    assert f"{n} done, 0 done earlier, 0 skipped, 0 failed" in err, err
    new_id = enc_keyid(w["home"], w["new_pub"])
    files = maildir_files(w["md"])
    assert len(files) == n
    seen = set()
    for p in files:
        data = open(p, "rb").read()
        assert pkesk_keyids(packets(dearmor(data)[2])) == [new_id], p
        seen.add(data.split(b"\n", 1)[0])
        if "/cur/" in p:
            assert p.endswith(":2,S"), p
    assert len(seen) == n
    assert os.listdir(os.path.join(w["md"], "tmp")) == []


def armor_lines(data):
    m = re.search(rb"-----BEGIN PGP MESSAGE-----\r?\n(.*?)-----END PGP MESSAGE-----", data, re.S)
    return m.group(1).split(b"\n")


def test_large_message_patched_in_place(sealgate_bin, world):
    """A large message takes the fast path (only the first armor lines are
    decoded and re-encoded, the CRC-24 is patched); a new key of another
    size (RSA) changes the PKESK length and takes the full path. Either
    way: gpg decrypts with the new key, the CRC line is right, the SEIPD
    bytes are unchanged."""
    w = world
    plain = b"Subject: big\r\n\r\n" + os.urandom(300 * 1024).hex().encode() + b"\r\n"
    s = run([sealgate_bin, "seal", "--to", ADDR, "--state-dir", w["state"]], input=plain)
    assert s.returncode == 0, s.stderr
    big = s.stdout
    rsa_home = os.path.join(w["tmp"], "rsa")
    os.makedirs(rsa_home, mode=0o700)
    rsa = gpg_keypair(rsa_home, f"R <{ADDR}>", w["tmp"], "rsa", "rsa2048", "sign,encr")
    rsa_pub, rsa_sec = rsa["pub"], rsa["sec"]
    try:
        for pub, sec, same_len in ((w["new_pub"], w["new_sec"], True), (rsa_pub, rsa_sec, False)):
            r = run([sealgate_bin, "rekey-msg", "--old-key", w["old_sec"], "--new-key", pub],
                    input=big)
            assert r.returncode == 0, r.stderr
            out = r.stdout
            a, b = armor_lines(big), armor_lines(out)
            crc = [l for l in b if l.startswith(b"=")]
            assert len(crc) == 1
            assert base64.b64decode(crc[0].strip()[1:]) == crc24(dearmor(out)[2]).to_bytes(3, "big")
            assert seipd(out) == seipd(big)
            if same_len:   # every line after the session-key packets is the same text
                assert len(a) == len(b)
                differ = [i for i in range(len(a)) if a[i] != b[i]]
                assert len(differ) <= 4 and differ[-1] == len(a) - 2, differ
            assert gpg_decrypt(sec, out).endswith(plain[-200:].replace(b"\r\n", b"\n")) or \
                plain[-200:] in gpg_decrypt(sec, out)
            with pytest.raises(AssertionError):
                gpg_decrypt(w["old_sec"], out)
    finally:
        kill_agent(rsa_home)


def test_store_new_with_secret_key(sealgate_bin, world):
    """--store-new given the new *secret* key (with --from-store): it is
    sealed into the store as well, so `unseal` with the store's keys (no
    --key) opens the re-keyed mail."""
    w = world
    r = run([sealgate_bin, "rekey", ADDR, "--from-store", "--new-key", w["new_sec"],
             "--store-new", "--maildir", w["md"], "--state-dir", w["state"],
             "--master-key", w["mk"]])
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "(its private key stored sealed)" in err, err
    for p in maildir_files(w["md"]):
        u = run([sealgate_bin, "unseal", "--state-dir", w["state"], "--master-key", w["mk"]],
                input=open(p, "rb").read())
        assert u.returncode == 0 and b"stored body" in u.stdout, (p, u.stderr)
