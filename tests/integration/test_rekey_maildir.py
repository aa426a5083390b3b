"""sealgate rekey --maildir: every message of a Maildir (and a Maildir++
folder) re-keyed in place, names keep base and flags with S=/W= fixed;
kill -9 in the middle and a second run: none lost, none duplicated, all
readable with the new key only."""
import os

import pytest

from conftest import SEALGATE_BIN, run
from pgphelp import gpg, kill_agent, pgp_mime
from rekeyhelp import dearmor, packets, pkesk_keyids
from walkhelp import journal_done, kill9_after

N = 400


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("rekey-md")
    home = str(d / "gnupg")
    os.makedirs(home, mode=0o700)
    out = {"dir": d, "home": home}
    for name in ("old", "new"):
        uid = f"{name} <{name}@m.test>"
        gpg(home, "--passphrase", "", "--quick-gen-key", uid, "future-default", "default", "never")
        for ext, args in (("pub", ["--export"]), ("sec", ["--export-secret-keys"])):
            p = str(d / f"{name}.{ext}")
            with open(p, "wb") as f:
                f.write(gpg(home, "--armor", *args, f"{name}@m.test").stdout)
            out[f"{name}.{ext}"] = p
        out[f"{name}.keyid"] = gpg(home, "--with-colons", "--list-keys", f"{name}@m.test").stdout \
            .decode().split("\nsub:")[1].split(":")[3]
    armored = gpg(home, "--trust-model", "always", "--armor", "-e", "-r", "old@m.test",
                  inp=b"Content-Type: text/plain\r\n\r\nmaildir body\r\n").stdout
    out["armored"] = armored
    yield out
    kill_agent(home)


def make_maildir(root, keys, n):
    """n messages (unique headers around one ciphertext), LF line ends so
    that W= differs from S=; a few in new/ and in .Sent; one plain."""
    for f in ("", ".Sent"):
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(root, f, sub), exist_ok=True)
    names = []
    for i in range(n):
        msg = pgp_mime(b"Message-ID: <%d@m.test>\r\nSubject: n%d\r\n" % (i, i), keys["armored"])
        msg = msg.replace(b"\r\n", b"\n")
        folder = ".Sent" if i % 10 == 3 else ""
        if i % 7 == 0:
            rel = os.path.join(folder, "new", f"1700{i:06d}.M{i}P1.host")
        else:
            rel = os.path.join(folder, "cur", f"1700{i:06d}.M{i}P1.host,S={len(msg)},W=1:2,S")
        with open(os.path.join(root, rel), "wb") as f:
            f.write(msg)
        names.append(rel)
    with open(os.path.join(root, "cur", "1699.plain.host:2,"), "wb") as f:
        f.write(b"Subject: plain\n\nnot encrypted\n")
    return names


def rekey_cmd(keys, root):
    return [SEALGATE_BIN, "rekey", "user@m.test", "--old-key", keys["old.sec"], "--new-key",
            keys["new.pub"], "--maildir", root]


def all_messages(root):
    out = []
    for f in ("", ".Sent"):
        for sub in ("cur", "new"):
            d = os.path.join(root, f, sub)
            out += [os.path.join(d, n) for n in os.listdir(d)]
    return out


def check_maildir(root, keys, n):
    files = all_messages(root)
    bases = [os.path.basename(p).split(",")[0].split(":")[0] for p in files]
    assert len(files) == n + 1, f"{len(files)} files, expected {n + 1}"
    assert len(set(bases)) == len(bases), "duplicated message"
    assert os.listdir(os.path.join(root, "tmp")) == []
    for p in files:
        data = open(p, "rb").read()
        name = os.path.basename(p)
        if "plain" in name:
            continue
        assert "Message-ID: <%d@m.test>" % int(name[4:10]) in data.decode()
        ids = pkesk_keyids(packets(dearmor(data)[2]))
        assert ids == [keys["new.keyid"]], (p, ids)
        fields = dict(f.split("=", 1) for f in name.split(":")[0].split(",")[1:])
        if fields:
            assert int(fields["S"]) == len(data)
            assert int(fields["W"]) == len(data) + data.count(b"\n")
        if "/cur/" in p:
            assert name.endswith(":2,S")


def test_rekey_maildir_and_summary(keys, tmp_path):
    root = str(tmp_path / "Maildir")
    make_maildir(root, keys, 40)
    r = run(rekey_cmd(keys, root))
    assert r.returncode == 0, r.stderr
    assert b"40 done, 0 done earlier, 1 skipped, 0 failed" in r.stderr
    assert b"skipped: " in r.stderr and b"not encrypted" in r.stderr
    check_maildir(root, keys, 40)
    # only the new key decrypts (gpg, a sample)
    sample = open(all_messages(root)[0], "rb").read()
    newhome, oldhome = str(tmp_path / "hn"), str(tmp_path / "ho")
    for h, k in ((newhome, "new.sec"), (oldhome, "old.sec")):
        os.makedirs(h, mode=0o700)
        gpg(h, "--import", keys[k])
    try:
        assert b"maildir body" in gpg(newhome, "-d", inp=dearmor(sample)[2]).stdout
        assert gpg(oldhome, "-d", inp=dearmor(sample)[2], check=False).returncode != 0
    finally:
        kill_agent(newhome)
        kill_agent(oldhome)
    # again: nothing left to do
    r = run(rekey_cmd(keys, root))
    assert r.returncode == 0 and b"0 done, 40 done earlier" in r.stderr


def test_kill9_then_resume(keys, tmp_path):
    root = str(tmp_path / "Maildir")
    make_maildir(root, keys, N)
    journal = os.path.join(root, ".sealgate-rekey.journal")
    kill9_after(rekey_cmd(keys, root), journal, N // 5, str(tmp_path))
    done_first = len(journal_done(journal))
    assert done_first < N
    r = run(rekey_cmd(keys, root), timeout=300)
    assert r.returncode == 0, r.stderr
    line = [l for l in r.stderr.decode().splitlines() if "done earlier" in l][0]
    done2, earlier = int(line.split(": ")[2].split(" ")[0]), int(line.split(", ")[1].split(" ")[0])
    assert done2 + earlier == N, line
    check_maildir(root, keys, N)


def test_begun_then_resume_fixes_size_fields(keys, tmp_path):
    """The state a kill -9 between the exchange and the rename leaves: new
    content under the old name (stale W=), the journal's last line for it
    "begin". The next run finishes the name and counts it done earlier."""
    root = str(tmp_path / "Maildir")
    make_maildir(root, keys, 10)
    r = run(rekey_cmd(keys, root))
    assert r.returncode == 0, r.stderr
    cur = os.path.join(root, "cur")
    done = sorted(n for n in os.listdir(cur) if ",S=" in n)
    victim = done[0]
    base = victim.split(",")[0]
    stale = victim.split(",W=")[0] + ",W=1:2,S"
    os.rename(os.path.join(cur, victim), os.path.join(cur, stale))
    with open(os.path.join(root, ".sealgate-rekey.journal"), "a") as f:
        f.write(f"begin {base}\n")
    r = run(rekey_cmd(keys, root))
    assert r.returncode == 0, r.stderr
    assert b"0 done, 10 done earlier, 1 skipped, 0 failed" in r.stderr, r.stderr
    names = os.listdir(cur)
    assert victim in names and stale not in names, names
