"""Delivery with sealing at rest, Maildir mode: sealgate's deliver listener
seals each recipient's copy to that user's own key and writes the Maildir
itself (tmp/ -> fsync -> new/ -> fsync dir). Decrypted with real gpg;
failures (no key, disk full, unwritable) answered per recipient."""
import os
import re
import smtplib
import subprocess

import pytest

from deliver_helpers import (DeliverGateway, gpg_decrypt, maildir_files, outer_headers,
                             pgp_user)

MSG = (b"From: Bob <bob@b.test>\r\nTo: Alice <alice@example.test>\r\n"
       b"Subject: the quarterly numbers\r\nMessage-ID: <q1@b.test>\r\n"
       b"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\nrevenue is up 12%\r\n")


def lmtp_send(port, rcpts, msg=MSG):
    """Per-recipient replies {addr: (code, text)} (LMTP, RFC 2033 s4.2)."""
    l = smtplib.LMTP("127.0.0.1", port)
    try:
        l.ehlo_or_helo_if_needed()
        l.mail("bob@b.test")
        ok = []
        out = {}
        for r in rcpts:
            code, text = l.rcpt(r)
            if code == 250:
                ok.append(r)
            else:
                out[r] = (code, text.decode())
        l.putcmd("data")
        code, _ = l.getreply()
        assert code == 354
        l.send(re.sub(rb"(?m)^\.", b"..", msg) + b".\r\n")
        for r in ok:
            code, text = l.getreply()
            out[r] = (code, text.decode())
        return out
    finally:
        l.close()


@pytest.fixture
def env(sealgate_bin, tmp_path):
    tmp = str(tmp_path)
    gws = []

    def make(extra=""):
        gw = DeliverGateway(sealgate_bin, tmp, f"deliver_maildir = {tmp}/mail/%d/%n/Maildir\n"
                            + extra, name=f"gw{len(gws)}")
        gws.append(gw)
        return gw
    yield tmp, make
    for gw in gws:
        assert gw.stop() == 0, gw.log()


def test_sealed_to_each_user_gpg_decrypts(sealgate_bin, env):
    tmp, make = env
    gw = make()
    sec, fpr = pgp_user(sealgate_bin, tmp, gw.state, "alice@example.test")
    sec2, fpr2 = pgp_user(sealgate_bin, tmp, gw.state, "carol@example.test")
    gw.start()
    replies = lmtp_send(gw.port, ["alice@example.test", "carol@example.test"])
    assert replies["alice@example.test"][0] == 250, replies
    assert replies["carol@example.test"][0] == 250, replies
    for user, key, fp in (("alice", sec, fpr), ("carol", sec2, fpr2)):
        files = maildir_files(f"{tmp}/mail/example.test/{user}/Maildir")
        assert len(files) == 1 and "/new/" in files[0]
        assert os.listdir(f"{tmp}/mail/example.test/{user}/Maildir/tmp") == []
        data = open(files[0], "rb").read()
        assert b"\r\n" not in data  # Maildir keeps LF lines
        assert f",S={len(data)}," in files[0]
        assert b"revenue" not in data and b"quarterly" not in data
        hdr = outer_headers(data)
        assert b"Subject: ...\n" in hdr and b"multipart/encrypted" in hdr
        assert b"Message-ID: <q1@b.test>" in hdr  # threading keeps working
        plain = gpg_decrypt(key, data).replace(b"\r\n", b"\n")
        assert b"Subject: the quarterly numbers" in plain
        assert b"revenue is up 12%" in plain
        assert f"to=<{user}@example.test>, deliver=maildir, treatment=sealed-pgp, key {fp}" in gw.log()
    # Each copy is sealed to its own user only: alice's key cannot open carol's.
    carol_file = maildir_files(f"{tmp}/mail/example.test/carol/Maildir")[0]
    with pytest.raises(AssertionError):
        gpg_decrypt(sec, open(carol_file, "rb").read())


def test_already_encrypted_stored_as_is(sealgate_bin, env):
    tmp, make = env
    gw = make()
    pgp_user(sealgate_bin, tmp, gw.state, "alice@example.test")
    gw.start()
    assert lmtp_send(gw.port, ["alice@example.test"])["alice@example.test"][0] == 250
    first = open(maildir_files(f"{tmp}/mail/example.test/alice/Maildir")[0], "rb").read()
    again = first.replace(b"\n", b"\r\n")
    assert lmtp_send(gw.port, ["alice@example.test"], again)["alice@example.test"][0] == 250
    files = maildir_files(f"{tmp}/mail/example.test/alice/Maildir")
    assert len(files) == 2
    stored = [open(f, "rb").read() for f in files]
    assert stored[0] == stored[1]
    assert "treatment=encrypted, already encrypted" in gw.log()


@pytest.mark.parametrize("policy,code,enh", [("plain", 250, "2.0.0"), ("refuse", 550, "5.7.1"),
                                             ("defer", 450, "4.7.1")])
def test_no_key_policy(sealgate_bin, env, policy, code, enh):
    tmp, make = env
    gw = make(f"deliver_no_key = {policy}\n")
    pgp_user(sealgate_bin, tmp, gw.state, "alice@example.test")
    gw.start()
    r = lmtp_send(gw.port, ["nokey@example.test", "alice@example.test"])
    assert r["alice@example.test"][0] == 250
    assert r["nokey@example.test"][0] == code and r["nokey@example.test"][1].startswith(enh), r
    files = maildir_files(f"{tmp}/mail/example.test/nokey/Maildir")
    if policy == "plain":
        assert len(files) == 1
        assert open(files[0], "rb").read() == MSG.replace(b"\r\n", b"\n")
        assert "no key for nokey@example.test" in gw.log()
    else:
        assert files == []
        assert "no key" in r["nokey@example.test"][1]


def mount_tmpfs(path, opts):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", path], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: " + r.stderr.decode(errors="replace"))


def test_disk_full_and_unwritable_452_nothing_in_new(sealgate_bin, env):
    tmp, make = env
    gw = make()
    pgp_user(sealgate_bin, tmp, gw.state, "alice@example.test")
    pgp_user(sealgate_bin, tmp, gw.state, "full@example.test")
    pgp_user(sealgate_bin, tmp, gw.state, "ro@example.test")
    full = f"{tmp}/mail/example.test/full"
    ro = f"{tmp}/mail/example.test/ro"
    mount_tmpfs(full, "size=64k")
    try:
        os.makedirs(f"{ro}/Maildir/new")
        os.makedirs(f"{ro}/Maildir/cur")
        os.makedirs(f"{ro}/Maildir/tmp")
        mount_tmpfs(ro, "ro,size=64k")  # hides the dirs above: an unwritable, empty mailbox
        try:
            gw.start()
            big = MSG + b"x" * 70 + b"\r\n"
            big = big + (b"y" * 76 + b"\r\n") * 2000  # ~150 KiB: cannot fit in 64 KiB
            r = lmtp_send(gw.port, ["full@example.test", "ro@example.test", "alice@example.test"],
                          big)
            assert r["full@example.test"][0] == 452 and r["full@example.test"][1].startswith("4.3.1"), r
            assert r["ro@example.test"][0] == 452 and r["ro@example.test"][1].startswith("4.3.1"), r
            assert r["alice@example.test"][0] == 250, r
            for sub in ("new", "tmp", "cur"):
                assert os.listdir(f"{full}/Maildir/{sub}") == []
            assert maildir_files(f"{ro}/Maildir") == []
            # Room again: the retry succeeds.
            r = lmtp_send(gw.port, ["full@example.test"])
            assert r["full@example.test"][0] == 250, r
            assert len(maildir_files(f"{full}/Maildir")) == 1
        finally:
            subprocess.run(["umount", ro], capture_output=True)
    finally:
        subprocess.run(["umount", full], capture_output=True)


def test_serve_refuses_deliver_without_destination(sealgate_bin, tmp_path):
    gw = DeliverGateway(sealgate_bin, str(tmp_path))
    r = subprocess.run([sealgate_bin, "serve", "-c", gw.conf], capture_output=True, timeout=30)
    assert r.returncode != 0
    assert b"deliver_lmtp" in r.stderr + r.stdout
