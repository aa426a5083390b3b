"""sealgate seal-mailbox over a Maildir++ mailbox: the root and every
sub-folder (.Sent, .Drafts, nested .Lists.foo) are sealed, each in its own
tmp/; already encrypted mail (PGP/MIME, S/MIME) stays byte for byte; flags
and base names are kept, S=/W= fixed; the journal tells equal base names in
two folders apart (Dovecot's IMAP COPY hard-links a message under its base
name); kill -9 and resume across folders; and a real Dovecot serves a
message APPENDed to "Sent" sealed after force-resync."""
import imaplib
import os
import re
import shutil

import pytest

from conftest import run
from deliver_helpers import Dovecot, gpg_decrypt, pgp_user, smime_user
from walkhelp import journal_done, kill9_after, kill9_at_pause

ADDR = "alice@example.test"
JOURNAL = ".sealgate-seal-mailbox.journal"
FOLDERS = ["", ".Sent", ".Drafts", ".Lists.foo"]
SUMMARY = re.compile(r"(\d+) sealed, (\d+) sealed earlier \(journal\), (\d+) skipped "
                     r"\(already encrypted\), (\d+) failed")


def msg(i, note=b""):
    return (b"From: x@y.test\nTo: alice@example.test\nSubject: folder msg %d\n"
            b"Message-ID: <m%d@y.test>\n\nplain body %d\n%s" % (i, i, i, note))


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def base_of(name):
    return re.split(r"[,:]", name)[0]


def files_of(md, folder):
    d = os.path.join(md, folder) if folder else md
    return {sub: sorted(os.listdir(os.path.join(d, sub))) for sub in ("new", "cur")}


def find(md, folder, sub, base):
    d = os.path.join(md, folder, sub) if folder else os.path.join(md, sub)
    got = [n for n in os.listdir(d) if base_of(n) == base]
    assert len(got) == 1, (folder, sub, base, os.listdir(d))
    return os.path.join(d, got[0])


def assert_sealed_to(sec, path, original, flags):
    name = os.path.basename(path)
    data = open(path, "rb").read()
    assert b"plain body" not in data, path                        # no plaintext left
    assert b"multipart/encrypted" in data, path
    assert name.endswith(flags), name                             # flags kept
    crlf = len(data) + data.count(b"\n")
    assert f",S={len(data)},W={crlf}" in name, name
    assert name.count(",S=") == 1 and name.count(",W=") == 1, name
    plain = gpg_decrypt(sec, data).replace(b"\r\n", b"\n")
    head, body = original.split(b"\n\n", 1)
    assert plain.endswith(b"\n\n" + body), (path, plain)         # the body, byte for byte
    for line in head.split(b"\n"):                                # every header, inside
        assert line in plain.split(b"\n\n", 1)[0].split(b"\n"), (path, line, plain)


@pytest.fixture
def mailbox(sealgate_bin, tmp_path):
    """A Maildir++ mailbox: plaintext in root new/ and cur/ (one ":2,S",
    one with stale S=/W=), .Sent/cur, .Drafts/new, .Lists.foo/cur (one a
    hard link of a root message under the same base name, as Dovecot's
    COPY makes it); already encrypted: PGP/MIME in root cur/ and
    .Lists.foo/cur, S/MIME in .Sent/cur."""
    tmp = str(tmp_path)
    state = os.path.join(tmp, "state")
    sec, fpr = pgp_user(sealgate_bin, tmp, state, ADDR)
    crt, _ = smime_user(sealgate_bin, tmp, state, "bob@example.test")
    md = os.path.join(tmp, "Maildir")
    for folder in FOLDERS:
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(md, folder, sub))
    write(os.path.join(md, ".Sent", "maildirfolder"), b"")
    write(os.path.join(md, "dovecot-uidlist"), b"3 V1 N1\n")     # files at the root: no folders
    plain = {  # (folder, sub, name) -> original bytes
        ("", "new", "1600000001.M1P1.host"): msg(1),
        ("", "cur", "1600000002.M2P1.host:2,S"): msg(2),
        ("", "cur", "1600000003.M3P1.host,S=5,W=6:2,RS"): msg(3, b".dot line\n"),
        (".Sent", "cur", "1600000004.M4P1.host:2,S"): msg(4),
        (".Drafts", "new", "1600000005.M5P1.host"): msg(5),
        (".Lists.foo", "cur", "1600000006.M6P1.host:2,"): msg(6),
    }
    for (folder, sub, name), data in plain.items():
        write(os.path.join(md, folder, sub, name), data)
    # IMAP COPY INBOX -> Lists.foo: a hard link under the same base name
    os.link(os.path.join(md, "cur", "1600000002.M2P1.host:2,S"),
            os.path.join(md, ".Lists.foo", "cur", "1600000002.M2P1.host:2,S"))
    plain[(".Lists.foo", "cur", "1600000002.M2P1.host:2,S")] = msg(2)
    pub = run([sealgate_bin, "key", "export", ADDR, "--state-dir", state]).stdout
    write(os.path.join(tmp, "alice.pub"), pub)
    pgp = run([sealgate_bin, "seal", "--to", ADDR, "--key", os.path.join(tmp, "alice.pub")],
              input=msg(7)).stdout.replace(b"\r\n", b"\n")
    assert b"multipart/encrypted" in pgp
    write(os.path.join(tmp, "m8"), msg(8))
    smime = run(["openssl", "cms", "-encrypt", "-aes256", "-in", os.path.join(tmp, "m8"),
                 crt]).stdout
    assert b"application/pkcs7-mime" in smime, smime[:200]
    enc = {
        ("", "cur", "1500000001.M1P9.host:2,S"): pgp,
        (".Lists.foo", "cur", "1500000002.M2P9.host:2,S"): pgp,
        (".Sent", "cur", "1500000003.M3P9.host:2,S"): smime,
    }
    for (folder, sub, name), data in enc.items():
        write(os.path.join(md, folder, sub, name), data)
    return {"tmp": tmp, "state": state, "sec": sec, "md": md, "plain": plain, "enc": enc}


def cmd(bin, m):
    return [bin, "seal-mailbox", ADDR, "--maildir", m["md"], "--state-dir", m["state"]]


def check_all(m):
    md = m["md"]
    for (folder, sub, name), data in m["plain"].items():
        flags = name[name.index(":"):] if ":" in name else ""
        assert_sealed_to(m["sec"], find(md, folder, sub, base_of(name)), data, flags)
    for (folder, sub, name), data in m["enc"].items():
        assert open(os.path.join(md, folder, sub, name), "rb").read() == data, name
    for folder in FOLDERS:
        assert os.listdir(os.path.join(md, folder, "tmp")) == [], folder
        n = sum(len(v) for v in files_of(md, folder).values())
        want = sum(1 for k in list(m["plain"]) + list(m["enc"]) if k[0] == folder)
        assert n == want, (folder, files_of(md, folder))          # none lost, none doubled


def test_every_folder_sealed(sealgate_bin, mailbox):
    m = mailbox
    r = run(cmd(sealgate_bin, m))
    out = r.stdout.decode()
    assert r.returncode == 0, (out, r.stderr)
    assert "10 message(s) in" in out, out
    assert SUMMARY.search(out).groups() == ("7", "0", "3", "0"), out
    # per folder when there are several
    for line in ("  INBOX (root): 3 sealed, 0 sealed earlier, 1 skipped, 0 failed",
                 "  .Sent: 1 sealed, 0 sealed earlier, 1 skipped, 0 failed",
                 "  .Drafts: 1 sealed, 0 sealed earlier, 0 skipped, 0 failed",
                 "  .Lists.foo: 2 sealed, 0 sealed earlier, 1 skipped, 0 failed"):
        assert line in out.splitlines(), out
    check_all(m)
    assert not os.path.exists(os.path.join(m["md"], JOURNAL))   # clean run: removed
    # a second run finds everything encrypted and changes nothing
    before = {(f, s, n): open(os.path.join(m["md"], f, s, n), "rb").read()
              for f in FOLDERS for s, ns in files_of(m["md"], f).items() for n in ns}
    r = run(cmd(sealgate_bin, m))
    assert SUMMARY.search(r.stdout.decode()).groups() == ("0", "0", "10", "0"), r.stdout
    after = {(f, s, n): open(os.path.join(m["md"], f, s, n), "rb").read()
             for f in FOLDERS for s, ns in files_of(m["md"], f).items() for n in ns}
    assert before == after


def test_leftovers_cleaned_per_folder(sealgate_bin, mailbox):
    """A killed run's copy in a sub-folder's tmp/ goes; another writer's file stays."""
    m = mailbox
    ours = os.path.join(m["md"], ".Drafts", "tmp", "1600000005.M5P1.host.sealgate-seal-4242")
    other = os.path.join(m["md"], ".Drafts", "tmp", "1700000000.M1P1.otherhost")
    write(ours, msg(5))
    write(other, b"delivery in progress")
    r = run(cmd(sealgate_bin, m))
    assert r.returncode == 1 or r.returncode == 0, r.stderr
    assert not os.path.exists(ours)
    assert open(other, "rb").read() == b"delivery in progress"


def test_same_base_in_two_folders_is_two_journal_entries(sealgate_bin, mailbox):
    """Stopped after .Lists.foo's copy of 1600000002 was journalled done;
    then a plaintext of exactly that sealed size appears in the root under
    the same base name. Keyed by base name alone, the journal would call it
    sealed and skip it unread: keyed by folder, it is sealed."""
    m, md = mailbox, mailbox["md"]
    # listing order: .Drafts, .Lists.foo (1600000002, 1600000006), .Sent, root
    kill9_at_pause(cmd(sealgate_bin, m), 4, m["tmp"])
    done = journal_done(os.path.join(md, JOURNAL))
    assert ".Lists.foo/1600000002.M2P1.host" in done, done
    sealed = find(md, ".Lists.foo", "cur", "1600000002.M2P1.host")
    size = os.path.getsize(sealed)
    os.unlink(os.path.join(md, "cur", "1600000002.M2P1.host:2,S"))
    head = msg(2)
    padded = head + b"x" * (size - len(head) - 1) + b"\n"
    assert len(padded) == size
    write(os.path.join(md, "cur", "1600000002.M2P1.host:2,S"), padded)
    m["plain"][("", "cur", "1600000002.M2P1.host:2,S")] = padded
    r = run(cmd(sealgate_bin, m))
    out = r.stdout.decode()
    assert r.returncode == 0, (out, r.stderr)
    sealed_n, earlier, skipped, failed = (int(x) for x in SUMMARY.search(out).groups())
    assert earlier == len(done) and failed == 0, out
    assert sealed_n + earlier + skipped == 10, out
    check_all(m)


def test_kill9_then_resume_over_two_folders(sealgate_bin, tmp_path):
    """kill -9 while the second of two folders is being sealed (the journal
    lists more done than the first folder holds), then run again: every
    message of both is sealed exactly once, the journalled ones skipped
    unread, nothing left in either tmp/."""
    tmp = str(tmp_path)
    state = os.path.join(tmp, "state")
    sec, _ = pgp_user(sealgate_bin, tmp, state, ADDR)
    md = os.path.join(tmp, "Maildir")
    n = 120                      # per folder; the same base names in both
    plain = {}
    for folder in ("", ".Sent"):
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(md, folder, sub))
        for i in range(n):
            name = f"1700{i:06d}.M{i}P7.host" + (":2,S" if i % 2 else "")
            sub = "cur" if i % 2 else "new"
            data = msg(i, folder.encode() + b"\n")
            write(os.path.join(md, folder, sub, name), data)
            plain[(folder, sub, name)] = data
    journal = os.path.join(md, JOURNAL)
    c = [sealgate_bin, "seal-mailbox", ADDR, "--maildir", md, "--state-dir", state]
    kill9_after(c, journal, n + n // 4, tmp)     # .Sent is listed first, then the root
    done = journal_done(journal)
    assert any(k.startswith(".Sent/") for k in done) and any("/" not in k for k in done), done
    assert len(done) < 2 * n
    r = run(c, timeout=300)
    out = r.stdout.decode()
    assert r.returncode == 0, (out, r.stderr)
    sealed_n, earlier, skipped, failed = (int(x) for x in SUMMARY.search(out).groups())
    assert earlier == len(done) and skipped <= 1 and failed == 0, out
    assert sealed_n + earlier + skipped == 2 * n, out
    assert "  .Sent: " in out and "  INBOX (root): " in out, out
    for folder in ("", ".Sent"):
        assert os.listdir(os.path.join(md, folder, "tmp")) == []
        names = [x for v in files_of(md, folder).values() for x in v]
        assert len(names) == n, folder
    for i, ((folder, sub, name), data) in enumerate(sorted(plain.items())):
        path = find(md, folder, sub, base_of(name))
        blob = open(path, "rb").read()
        assert b"plain body" not in blob, path
        if i % 15 == 0:                               # gpg on a sample: it is slow
            assert_sealed_to(sec, path, data, name[name.index(":"):] if ":" in name else "")
            assert b"-----BEGIN PGP MESSAGE-----" not in gpg_decrypt(sec, blob), "sealed twice"


@pytest.mark.skipif(shutil.which("dovecot") is None, reason="dovecot not installed")
def test_appended_to_sent_under_dovecot(sealgate_bin, tmp_path):
    """An IMAP client APPENDs to "Sent" and COPYs an INBOX message there;
    seal-mailbox (resync by doveadm force-resync) seals both; IMAP FETCH
    returns them sealed and gpg opens them to the originals."""
    tmp = str(tmp_path)
    state = os.path.join(tmp, "state")
    sec, _ = pgp_user(sealgate_bin, tmp, state, ADDR)
    dc = Dovecot(["alice"])
    try:
        sent = msg(1).replace(b"\n", b"\r\n")
        inbox = msg(2).replace(b"\n", b"\r\n")
        im = imaplib.IMAP4("127.0.0.1", dc.imap_port)
        try:
            assert im.login("alice", "secret")[0] == "OK"
            assert im.create("Sent")[0] == "OK"
            assert im.append("Sent", "(\\Seen)", None, sent)[0] == "OK"
            assert im.append("INBOX", None, None, inbox)[0] == "OK"
            assert im.select("INBOX")[0] == "OK"
            assert im.copy("1", "Sent")[0] == "OK"
        finally:
            im.logout()
        md = os.path.join(dc.t, "Maildir", "alice")
        sent_files = [n for s in ("new", "cur") for n in os.listdir(os.path.join(md, ".Sent", s))]
        inbox_files = [n for s in ("new", "cur") for n in os.listdir(os.path.join(md, s))]
        assert len(sent_files) == 2 and len(inbox_files) == 1, (sent_files, inbox_files)
        # what the journal keying relies on: COPY keeps the base name
        assert base_of(inbox_files[0]) in {base_of(n) for n in sent_files}, \
            (inbox_files, sent_files)
        resync = f'doveadm -c {dc.conf} force-resync -u "$1" "*"'
        r = run([sealgate_bin, "seal-mailbox", ADDR, "--maildir", md, "--state-dir", state,
                 "--resync-cmd", resync])
        out = r.stdout.decode()
        assert r.returncode == 0, (out, r.stderr, dc.log())
        assert SUMMARY.search(out).groups() == ("3", "0", "0", "0"), out
        assert "  .Sent: 2 sealed" in out, out
        im = imaplib.IMAP4("127.0.0.1", dc.imap_port)
        try:
            im.login("alice", "secret")
            for box, want in (("Sent", [sent, inbox]), ("INBOX", [inbox])):
                typ, data = im.select(box)
                assert typ == "OK" and int(data[0]) == len(want), (box, data)
                got = []
                for i in range(1, len(want) + 1):
                    typ, d = im.fetch(str(i), "(FLAGS RFC822.SIZE BODY.PEEK[])")
                    assert typ == "OK", d
                    meta = d[0][0].decode()
                    size = int(re.search(r"RFC822\.SIZE (\d+)", meta).group(1))
                    assert size == len(d[0][1]), (meta, len(d[0][1]))
                    assert b"plain body" not in d[0][1]
                    if box == "Sent" and i == 1:
                        assert "\\Seen" in meta, meta
                    got.append(gpg_decrypt(sec, d[0][1]).replace(b"\r\n", b"\n"))
                for g, w in zip(got, want):
                    assert g.endswith(w.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]), (box, g)
        finally:
            im.logout()
    finally:
        dc.stop()
