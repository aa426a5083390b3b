"""Key recovery: with recovery_key configured every copy sealed at delivery
carries a second recipient block for the escrow key; when the user's key is
lost, the escrow's secret re-keys the mailbox to the user's new key: the
new key decrypts, the content bytes are unchanged, the recovery block stays
and the lost key's block goes."""
import os

import pytest

from conftest import run
from deliver_helpers import DeliverGateway, gpg_decrypt, maildir_files, pgp_user
from pgphelp import kill_agent
from rekey_keys import enc_keyid, gpg_keypair, seipd
from rekeyhelp import dearmor, packets, pkesk_keyids
from test_deliver import MSG, lmtp_send

ADDR = "alice@example.test"


@pytest.fixture
def env(sealgate_bin, tmp_path):
    tmp = str(tmp_path)
    home = os.path.join(tmp, "gnupg")
    os.makedirs(home, mode=0o700)
    rec = gpg_keypair(home, "Escrow <recovery@example.test>", tmp, "recovery")
    new = gpg_keypair(home, f"Alice new <{ADDR}>", tmp, "new")
    gw = DeliverGateway(sealgate_bin, tmp, f"deliver_maildir = {tmp}/mail/%n/Maildir\n"
                        f"recovery_key = {rec['pub']}\n")
    yield tmp, gw, rec, new, home
    code = gw.stop()
    kill_agent(home)
    assert code == 0, gw.log()


def test_recovery_key_then_rekey_from_it(sealgate_bin, env):
    tmp, gw, rec, new, home = env
    user_sec, _ = pgp_user(sealgate_bin, tmp, gw.state, ADDR)
    user_pub = os.path.join(tmp, "user.pub")
    with open(user_pub, "wb") as f:
        f.write(run([sealgate_bin, "key", "export", ADDR, "--state-dir", gw.state]).stdout)
    user_id = enc_keyid(home, user_pub)
    gw.start()
    for i in range(3):
        r = lmtp_send(gw.port, [ADDR], MSG.replace(b"<q1@", b"<q%d@" % i))
        assert r[ADDR][0] == 250, (r, gw.log())
    assert "recovery key " in gw.log()
    md = f"{tmp}/mail/alice/Maildir"
    before = {os.path.basename(p).split(",")[0]: open(p, "rb").read() for p in maildir_files(md)}
    assert len(before) == 3
    for data in before.values():
        assert sorted(pkesk_keyids(packets(dearmor(data)[2]))) == sorted([user_id, rec["id"]])
        # both the user's key and the escrow's decrypt (gpg)
        assert b"revenue is up" in gpg_decrypt(user_sec, data)
        assert b"revenue is up" in gpg_decrypt(rec["sec"], data)

    # The user lost the key: the escrow re-keys to the new one; the lost
    # key's block goes (--drop-key), the recovery block stays (the old key
    # is the configured recovery_key).
    r = run([sealgate_bin, "rekey", ADDR, "-c", gw.conf, "--old-key", rec["sec"], "--new-key",
             new["pub"], "--drop-key", user_pub, "--maildir", md])
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "the old key is the recovery key" in err and "3 done" in err, err
    after = {os.path.basename(p).split(",")[0]: open(p, "rb").read() for p in maildir_files(md)}
    assert after.keys() == before.keys()
    for base, data in after.items():
        ids = pkesk_keyids(packets(dearmor(data)[2]))
        assert sorted(ids) == sorted([new["id"], rec["id"]]), ids
        assert seipd(data) == seipd(before[base])
        assert b"revenue is up" in gpg_decrypt(new["sec"], data)
        assert b"revenue is up" in gpg_decrypt(rec["sec"], data)
        with pytest.raises(AssertionError):
            gpg_decrypt(user_sec, data)
    # A second run changes nothing.
    r = run([sealgate_bin, "rekey", ADDR, "-c", gw.conf, "--old-key", rec["sec"], "--new-key",
             new["pub"], "--drop-key", user_pub, "--maildir", md])
    assert r.returncode == 0 and b"0 done, 3 done earlier" in r.stderr, r.stderr
    assert {os.path.basename(p).split(",")[0]: open(p, "rb").read()
            for p in maildir_files(md)} == after


def test_unusable_recovery_key_stops_the_start(sealgate_bin, tmp_path):
    tmp = str(tmp_path)
    bad = os.path.join(tmp, "bad.pub")
    with open(bad, "w") as f:
        f.write("not a key\n")
    gw = DeliverGateway(sealgate_bin, tmp, f"deliver_maildir = {tmp}/m/%n\nrecovery_key = {bad}\n")
    with pytest.raises(RuntimeError):
        gw.start()
    gw.stop()
    assert "recovery_key" in gw.log(), gw.log()
