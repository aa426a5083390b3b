"""sealgate seal-mailbox after kill -9: the journal resumes the run. Every
message ends up sealed exactly once (gpg opens each to its original, whose
plaintext is no second sealed layer), none lost, none duplicated, nothing
left in tmp/; the second run skips what the journal lists as done without
reading it and says how many; a clean run removes the journal."""
import os
import re
import signal
import subprocess

import pytest

from conftest import SEALGATE_BIN, run
from deliver_helpers import pgp_user
from pgphelp import gpg, kill_agent
from walkhelp import journal_done, kill9_after, kill9_at_pause, wait_stopped

ADDR = "alice@example.test"
JOURNAL = ".sealgate-seal-mailbox.journal"
SUMMARY = re.compile(r"(\d+) sealed, (\d+) sealed earlier \(journal\), (\d+) skipped "
                     r"\(already encrypted\), (\d+) failed")


@pytest.fixture
def user(tmp_path):
    tmp = str(tmp_path)
    state = os.path.join(tmp, "state")
    sec, _ = pgp_user(SEALGATE_BIN, tmp, state, ADDR)
    home = os.path.join(tmp, "gnupg")
    os.makedirs(home, mode=0o700)
    gpg(home, "--import", sec)
    yield {"tmp": tmp, "state": state, "home": home}
    kill_agent(home)


def make_maildir(md, n):
    """n plaintext messages, LF line ends; every third in new/, the rest in
    cur/ with flags (some with stale size fields). base -> body marker."""
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(md, sub))
    bodies = {}
    for i in range(n):
        base = f"1700{i:06d}.M{i}P7.host"
        marker = b"plain body %d" % i
        data = b"From: x@y.test\nTo: %s\nSubject: m%d\n\n%s\n" % (ADDR.encode(), i, marker)
        if i % 3 == 0:
            path = os.path.join(md, "new", base)
        else:
            path = os.path.join(md, "cur", base + (",S=1,W=2" if i % 5 == 0 else "") + ":2,S")
        with open(path, "wb") as f:
            f.write(data)
        bodies[base] = marker
    return bodies


def cmd(u, md):
    return [SEALGATE_BIN, "seal-mailbox", ADDR, "--maildir", md, "--state-dir", u["state"]]


def summary(out):
    m = SUMMARY.search(out)
    assert m, out
    return tuple(int(x) for x in m.groups())


def check_sealed_once(u, md, bodies):
    files = [os.path.join(md, s, f) for s in ("new", "cur") for f in os.listdir(os.path.join(md, s))]
    bases = [os.path.basename(p).split(",")[0].split(":")[0] for p in files]
    assert len(bases) == len(set(bases)), "a message is there twice"
    assert sorted(bases) == sorted(bodies), "a message was lost or is new"
    assert os.listdir(os.path.join(md, "tmp")) == []
    for p, base in zip(files, bases):
        data = open(p, "rb").read()
        assert b"plain body" not in data, p
        name = os.path.basename(p)
        crlf = len(data) + data.count(b"\n")
        assert f",S={len(data)},W={crlf}" in name, name
        if "/cur/" in p:
            assert name.endswith(":2,S"), name
        m = re.search(rb"-----BEGIN PGP MESSAGE-----.*?-----END PGP MESSAGE-----", data, re.S)
        plain = gpg(u["home"], "--decrypt", inp=m.group(0)).stdout
        assert bodies[base] in plain, p
        assert b"-----BEGIN PGP MESSAGE-----" not in plain, f"{p}: sealed twice"


def test_kill9_then_resume(user, tmp_path):
    u = user
    n = 240
    md = str(tmp_path / "Maildir")
    bodies = make_maildir(md, n)
    journal = os.path.join(md, JOURNAL)
    kill9_after(cmd(u, md), journal, n // 4, str(tmp_path))
    done_first = len(journal_done(journal))
    assert n // 4 <= done_first < n
    r = run(cmd(u, md), timeout=300)
    out = r.stdout.decode()
    assert r.returncode == 0, (out, r.stderr)
    sealed, earlier, skipped, failed = summary(out)
    # every message journalled done is skipped unread; at most the one
    # killed around its exchange was sealed already and is found so
    assert earlier == done_first, (out, done_first)
    assert skipped <= 1 and failed == 0, out
    assert sealed + earlier + skipped == n, out
    assert not os.path.exists(journal)
    check_sealed_once(u, md, bodies)


def test_killed_between_exchange_and_done(user, tmp_path):
    """Killed (at a test hook) right after the 5th sealed copy replaced its
    original, before its size fields and its "done" line: the second run
    reads that one (journalled "begin" only), finds it sealed and does not
    seal it again, fixes its name, and skips the 4 done ones unread."""
    u = user
    n, k = 12, 5
    md = str(tmp_path / "Maildir")
    bodies = make_maildir(md, n)
    kill9_at_pause(cmd(u, md), k, str(tmp_path))
    lines = open(os.path.join(md, JOURNAL)).read().splitlines()
    assert [l.split()[0] for l in lines] == ["begin", "done"] * (k - 1) + ["begin"], lines
    # a copy a killed run left in tmp/ (it may be the exchanged-out plaintext) goes
    with open(os.path.join(md, "tmp", "1700000001.M1P7.host.sealgate-seal-4242"), "wb") as f:
        f.write(b"Subject: m1\n\nplain body 1\n")
    r = run(cmd(u, md), timeout=120)
    out = r.stdout.decode()
    assert r.returncode == 0, (out, r.stderr)
    assert summary(out) == (n - k, k - 1, 1, 0), out
    assert not os.path.exists(os.path.join(md, JOURNAL))
    check_sealed_once(u, md, bodies)
    # A clean run left no journal: a third run reads everything again
    r = run(cmd(u, md))
    assert summary(r.stdout.decode()) == (0, 0, n, 0), r.stdout


def test_second_run_refused_while_one_runs(user, tmp_path):
    """The journal is locked: a second run on the same Maildir is refused."""
    u = user
    md = str(tmp_path / "Maildir")
    make_maildir(md, 3)
    env = dict(os.environ, SEALGATE_TEST_PAUSE_AT="1")
    p = subprocess.Popen(cmd(u, md), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_stopped(p)
        r = run(cmd(u, md))
        assert r.returncode == 1 and b"another run is working on this Maildir" in r.stderr, r.stderr
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
