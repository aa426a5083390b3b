"""sealgate seal-mailbox: the mail a user already has is sealed in place,
per message atomically (base name and flags kept, S=/W= fixed), already
encrypted mail skipped, so that a second run does nothing; gpg decrypts
every sealed file to the original."""
import os
import re
import shutil
import subprocess

from conftest import run
from deliver_helpers import gpg_decrypt, outer_headers, pgp_user

JOURNAL = ".sealgate-seal-mailbox.journal"

PLAIN = [
    ("cur", "1600000000.M1P1.host,S=99:2,FS",
     b"From: x@y.test\nTo: alice@example.test\nSubject: old one\n\nold body\n"),
    ("new", "1600000001.M2P1.host",
     b"From: x@y.test\nTo: alice@example.test\nSubject: new one\n\nnew body\n"),
    ("cur", "1600000002.M3P1.host:2,",
     b"From: x@y.test\nSubject: dotted\n\n.leading dot line\n"),
]


def make_maildir(d):
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(d, sub))
    for sub, name, data in PLAIN:
        with open(os.path.join(d, sub, name), "wb") as f:
            f.write(data)
    with open(os.path.join(d, "cur", "1600000003.M4P1.host:2,S"), "wb") as f:
        f.write(b"this is not a message\n")


def test_seal_mailbox_in_place_and_resumable(sealgate_bin, tmp_path):
    tmp = str(tmp_path)
    state = os.path.join(tmp, "state")
    sec, fpr = pgp_user(sealgate_bin, tmp, state, "alice@example.test")
    md = os.path.join(tmp, "Maildir")
    make_maildir(md)
    # An already encrypted message (sealed by the CLI) is left alone.
    pub = run([sealgate_bin, "key", "export", "alice@example.test", "--state-dir", state]).stdout
    with open(os.path.join(tmp, "alice.pub"), "wb") as f:
        f.write(pub)
    sealed = run([sealgate_bin, "seal", "--to", "alice@example.test", "--key",
                  os.path.join(tmp, "alice.pub")], input=PLAIN[0][2]).stdout
    assert b"multipart/encrypted" in sealed
    enc_path = os.path.join(md, "cur", "1500000000.M9P9.host:2,S")
    with open(enc_path, "wb") as f:
        f.write(sealed.replace(b"\r\n", b"\n"))
    enc_before = open(enc_path, "rb").read()

    r = run([sealgate_bin, "seal-mailbox", "alice@example.test", "--maildir", md,
             "--state-dir", state])
    out = r.stdout.decode()
    assert r.returncode == 1, (out, r.stderr)   # one message could not be sealed
    assert "3 sealed, 0 sealed earlier (journal), 1 skipped (already encrypted), 1 failed" in out, out
    assert re.search(r"failed cur/1600000003\.M4P1\.host:2,S: malformed", out), out
    assert fpr in out

    assert open(enc_path, "rb").read() == enc_before
    assert os.listdir(os.path.join(md, "tmp")) == []
    names = {sub: sorted(os.listdir(os.path.join(md, sub))) for sub in ("new", "cur")}
    for sub, name, data in PLAIN:
        base = re.split(r"[,:]", name)[0]
        info = name[name.index(":"):] if ":" in name else ""
        got = [n for n in names[sub] if n.startswith(base + ",")]
        assert len(got) == 1, (name, names)
        path = os.path.join(md, sub, got[0])
        body = open(path, "rb").read()
        assert got[0].endswith(info)                          # flags kept
        crlf_size = len(body.replace(b"\n", b"\r\n"))
        assert f",S={len(body)},W={crlf_size}" in got[0]
        assert got[0].count("S=") == 1
        assert b"body" not in body and b"dotted" not in body
        assert b"Subject: ...\n" in outer_headers(body)
        plain = gpg_decrypt(sec, body).replace(b"\r\n", b"\n")
        assert data.split(b"\n\n", 1)[1] in plain                # content back
        subject = [l for l in data.split(b"\n") if l.startswith(b"Subject:")][0]
        assert subject in plain                                   # protected inside
    # The unsealable message stays as it was.
    assert open(os.path.join(md, "cur", "1600000003.M4P1.host:2,S"), "rb").read() == \
        b"this is not a message\n"

    # Resumable: a run with a failure keeps its journal; the second run
    # skips the three it sealed without reading them, seals nothing more
    # and changes nothing.
    assert os.path.exists(os.path.join(md, JOURNAL))
    before = {n: open(os.path.join(md, s, n), "rb").read() for s in ("new", "cur")
              for n in os.listdir(os.path.join(md, s))}
    r = run([sealgate_bin, "seal-mailbox", "alice@example.test", "--maildir", md,
             "--state-dir", state])
    assert "0 sealed, 3 sealed earlier (journal), 1 skipped (already encrypted), 1 failed" \
        in r.stdout.decode(), r.stdout
    after = {n: open(os.path.join(md, s, n), "rb").read() for s in ("new", "cur")
             for n in os.listdir(os.path.join(md, s))}
    assert before == after

    # A run stopped between its two renames leaves a sealed file with stale
    # size fields under the original name, journalled "begin" but not
    # "done": the next run reads it, finds it sealed (not sealed twice) and
    # puts the size fields right.
    name = [n for n in os.listdir(os.path.join(md, "new")) if n.startswith("1600000001.")][0]
    stale = "1600000001.M2P1.host,S=61,W=65"
    os.rename(os.path.join(md, "new", name), os.path.join(md, "new", stale))
    with open(os.path.join(md, JOURNAL), "a") as f:
        f.write("begin 1600000001.M2P1.host\n")
    r = run([sealgate_bin, "seal-mailbox", "alice@example.test", "--maildir", md,
             "--state-dir", state])
    assert "0 sealed, 2 sealed earlier (journal), 2 skipped" in r.stdout.decode(), r.stdout
    assert os.listdir(os.path.join(md, "new")) == [name]
    assert open(os.path.join(md, "new", name), "rb").read() == before[name]


def test_seal_mailbox_progress_on_a_tty_and_errors(sealgate_bin, tmp_path):
    tmp = str(tmp_path)
    state = os.path.join(tmp, "state")
    md = os.path.join(tmp, "Maildir")
    make_maildir(md)
    pgp_user(sealgate_bin, tmp, state, "alice@example.test")
    # No key for the user: exit 2, nothing touched.
    r = run([sealgate_bin, "seal-mailbox", "nobody@example.test", "--maildir", md,
             "--state-dir", state])
    assert r.returncode == 2 and b"no key" in r.stderr, r.stderr
    assert sorted(os.listdir(os.path.join(md, "new"))) == ["1600000001.M2P1.host"]
    r = run([sealgate_bin, "seal-mailbox", "x@example.test"])
    assert r.returncode == 64
    if shutil.which("script") is None:
        return
    cmd = f"{sealgate_bin} seal-mailbox alice@example.test --maildir {md} --state-dir {state}"
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, timeout=60)
    out = r.stdout.decode(errors="replace")
    assert re.search(r"4/4 \(100%\) [0-9.]+ msg/s, ETA", out), out


def test_seal_mailbox_follows_renames(sealgate_bin, tmp_path):
    """Every message moved new/ -> cur/ with flags after seal-mailbox listed
    the Maildir (as Dovecot does on SELECT): each is sealed once, in its new
    place with its flags; no plaintext copy and no duplicate remains."""
    tmp = str(tmp_path)
    state = os.path.join(tmp, "state")
    pgp_user(sealgate_bin, tmp, state, "alice@example.test")
    md = os.path.join(tmp, "Maildir")
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(md, sub))
    n = 120
    for i in range(n):
        with open(os.path.join(md, "new", f"1700{i:06d}.M{i}P1.host"), "wb") as f:
            f.write(b"From: x@y.test\nSubject: m%d\n\nplain body %d\n" % (i, i))
    proc = subprocess.Popen([sealgate_bin, "seal-mailbox", "alice@example.test", "--maildir", md,
                             "--state-dir", state], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    first = proc.stdout.readline()          # printed after the listing
    assert b"message(s) in" in first, first
    for name in sorted(os.listdir(os.path.join(md, "new")), reverse=True):
        try:
            os.rename(os.path.join(md, "new", name), os.path.join(md, "cur", name + ":2,S"))
        except FileNotFoundError:
            pass
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (out, err)
    assert b"%d sealed, 0 sealed earlier (journal), 0 skipped (already encrypted), 0 failed" % n \
        in out, out
    assert not os.path.exists(os.path.join(md, JOURNAL))   # a clean run leaves none
    files = [os.path.join(md, s, f) for s in ("new", "cur") for f in os.listdir(os.path.join(md, s))]
    assert len(files) == n
    bases = set()
    for p in files:
        data = open(p, "rb").read()
        assert b"multipart/encrypted" in data and b"plain body" not in data, p
        bases.add(os.path.basename(p).split(",")[0].split(":")[0])
        if "/cur/" in p:
            assert p.endswith(":2,S"), p
    assert len(bases) == n
    assert os.listdir(os.path.join(md, "tmp")) == []
