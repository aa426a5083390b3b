"""Proof with real software: sealgate's deliver listener seals each local
recipient's copy (OpenPGP for alice, S/MIME for bob) and hands it to a real
Dovecot over LMTP; Dovecot serves it over IMAP, and gpg / openssl cms
decrypt what imaplib fetched back to the original content."""
import imaplib
import shutil

import pytest

from deliver_helpers import (DeliverGateway, Dovecot, cms_decrypt, gpg_decrypt, outer_headers,
                             pgp_user, smime_user)
from test_deliver import MSG, lmtp_send

pytestmark = pytest.mark.skipif(shutil.which("dovecot") is None, reason="dovecot not installed")


def imap_fetch_all(port, user):
    m = imaplib.IMAP4("127.0.0.1", port)
    try:
        assert m.login(user, "secret")[0] == "OK"
        typ, data = m.select("INBOX")
        assert typ == "OK"
        n = int(data[0])
        out = []
        for i in range(1, n + 1):
            typ, data = m.fetch(str(i), "(RFC822)")
            assert typ == "OK"
            out.append(data[0][1])
        typ, data = m.fetch("1", "(ENVELOPE)") if n else ("OK", [b""])
        return out, data[0]
    finally:
        m.logout()


@pytest.fixture
def setup(sealgate_bin, tmp_path):
    dc = Dovecot(["alice", "bob", "dave"])
    gw = DeliverGateway(sealgate_bin, str(tmp_path),
                        f"deliver_lmtp = 127.0.0.1:{dc.lmtp_port}\n")
    try:
        yield dc, gw
    finally:
        code = gw.stop()
        dc.stop()
        assert code == 0, gw.log()


def test_dovecot_serves_sealed_copies(sealgate_bin, tmp_path, setup):
    dc, gw = setup
    tmp = str(tmp_path)
    sec, fpr = pgp_user(sealgate_bin, tmp, gw.state, "alice@example.test")
    crt, key = smime_user(sealgate_bin, tmp, gw.state, "bob@example.test")
    gw.start()
    r = lmtp_send(gw.port, ["alice@example.test", "bob@example.test", "dave@example.test",
                            "ghost@example.test"])
    assert r["alice@example.test"][0] == 250, (r, dc.log(), gw.log())
    assert r["bob@example.test"][0] == 250, r
    assert r["dave@example.test"][0] == 250, r       # no key: stored in the clear (default)
    # Dovecot's own per-recipient answer passes back through sealgate.
    assert r["ghost@example.test"][0] == 550 and "5.1.1" in r["ghost@example.test"][1], r

    msgs, envelope = imap_fetch_all(dc.imap_port, "alice")
    assert len(msgs) == 1
    sealed = msgs[0]
    assert b"revenue" not in sealed
    hdr = outer_headers(sealed)
    assert b"Subject: ...\n" in hdr and b"application/pgp-encrypted" in hdr
    assert b'"..."' in envelope and b"<q1@b.test>" in envelope  # IMAP list view, threading
    plain = gpg_decrypt(sec, sealed).replace(b"\r\n", b"\n")
    assert b"Subject: the quarterly numbers" in plain      # protected header, inside
    assert b"From: Bob <bob@b.test>" in plain
    assert b"revenue is up 12%" in plain

    msgs, _ = imap_fetch_all(dc.imap_port, "bob")
    assert len(msgs) == 1
    assert b"revenue" not in msgs[0]
    hdr = outer_headers(msgs[0])
    assert b"Subject: ...\n" in hdr and b"application/pkcs7-mime" in hdr
    plain = cms_decrypt(crt, key, msgs[0], tmp).replace(b"\r\n", b"\n")
    assert b"Subject: the quarterly numbers" in plain
    assert b"revenue is up 12%" in plain

    msgs, _ = imap_fetch_all(dc.imap_port, "dave")
    assert len(msgs) == 1 and b"revenue is up 12%" in msgs[0]
    log = gw.log()
    assert f"to=<alice@example.test>, deliver=lmtp, treatment=sealed-pgp, key {fpr}" in log
    assert "to=<bob@example.test>, deliver=lmtp, treatment=sealed-smime, key " in log
    assert "to=<dave@example.test>, deliver=lmtp, treatment=plain, stored in the clear" in log
