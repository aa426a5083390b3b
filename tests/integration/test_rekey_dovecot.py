"""Re-keying a Maildir that a real Dovecot serves: mail delivered through
sealgate into Dovecot (LMTP), read over IMAP (Dovecot moves it to cur/ and
indexes it), then re-keyed with --resync-cmd running doveadm force-resync:
an IMAP fetch returns the re-keyed message with its flags, and gpg holding
only the new key decrypts it."""
import imaplib
import os
import re
import shutil

import pytest

from conftest import run
from deliver_helpers import DeliverGateway, Dovecot, gpg_decrypt, maildir_files, pgp_user
from pgphelp import kill_agent
from rekey_keys import gpg_keypair
from rekeyhelp import dearmor, packets, pkesk_keyids
from test_deliver import MSG, lmtp_send

pytestmark = pytest.mark.skipif(shutil.which("dovecot") is None, reason="dovecot not installed")
ADDR = "alice@example.test"


def imap_all(port):
    """[(flags, RFC822 bytes)] of alice's INBOX."""
    m = imaplib.IMAP4("127.0.0.1", port)
    try:
        assert m.login("alice", "secret")[0] == "OK"
        typ, data = m.select("INBOX")
        assert typ == "OK"
        out = []
        for i in range(1, int(data[0]) + 1):
            typ, d = m.fetch(str(i), "(FLAGS RFC822.SIZE BODY.PEEK[])")
            assert typ == "OK"
            meta = d[0][0].decode()
            size = int(re.search(r"RFC822\.SIZE (\d+)", meta).group(1))
            assert size == len(d[0][1]), (meta, len(d[0][1]))  # index agrees with the file
            out.append((re.search(r"FLAGS \(([^)]*)\)", meta).group(1), d[0][1]))
        return out
    finally:
        m.logout()


def imap_flag_first(port):
    m = imaplib.IMAP4("127.0.0.1", port)
    try:
        m.login("alice", "secret")
        m.select("INBOX")
        assert m.store("1", "+FLAGS", "(\\Flagged)")[0] == "OK"
    finally:
        m.logout()


def test_rekey_under_dovecot(sealgate_bin, tmp_path):
    tmp = str(tmp_path)
    dc = Dovecot(["alice"])
    gw = DeliverGateway(sealgate_bin, tmp, f"deliver_lmtp = 127.0.0.1:{dc.lmtp_port}\n")
    home = os.path.join(tmp, "gnupg")
    os.makedirs(home, mode=0o700)
    try:
        old_sec, _ = pgp_user(sealgate_bin, tmp, gw.state, ADDR)
        gw.start()
        for i in range(3):
            r = lmtp_send(gw.port, [ADDR], MSG.replace(b"<q1@", b"<q%d@" % i))
            assert r[ADDR][0] == 250, (r, dc.log(), gw.log())
        got = imap_all(dc.imap_port)             # Dovecot moves new/ -> cur/, indexes
        assert len(got) == 3
        imap_flag_first(dc.imap_port)            # a flag set by a client: in the file name
        assert b"revenue is up" in gpg_decrypt(old_sec, got[0][1])
        new = gpg_keypair(home, f"Alice <{ADDR}>", tmp, "new")
        new_pub, new_sec, new_id = new["pub"], new["sec"], new["id"]
        md = os.path.join(dc.t, "Maildir", "alice")
        names_before = sorted(os.path.basename(p).split(",")[0] for p in maildir_files(md))
        resync = f'doveadm -c {dc.conf} force-resync -u "$1" "*"'
        r = run([sealgate_bin, "rekey", ADDR, "--old-key", old_sec, "--new-key", new_pub,
                 "--maildir", md, "--resync-cmd", resync])
        assert r.returncode == 0, (r.stderr, dc.log())
        assert b"3 done, 0 done earlier, 0 skipped, 0 failed" in r.stderr, r.stderr
        files = maildir_files(md)
        assert sorted(os.path.basename(p).split(",")[0] for p in files) == names_before
        assert all(os.stat(p).st_uid == 65534 for p in files)  # Dovecot's user still owns them
        got = imap_all(dc.imap_port)
        assert len(got) == 3
        assert "\\Flagged" in got[0][0], got[0][0]
        for flags, data in got:
            assert pkesk_keyids(packets(dearmor(data)[2])) == [new_id]
            assert b"revenue is up" in gpg_decrypt(new_sec, data)
    finally:
        code = gw.stop()
        dc.stop()
        kill_agent(home)
    assert code == 0, gw.log()
