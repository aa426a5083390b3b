"""Helpers for the tests of the in-place Maildir walks (rekey, seal-mailbox):
killing a run with kill -9 in the middle, at a point its journal shows."""
import os
import signal
import subprocess
import time


def journal_done(journal):
    """Base names the journal lists as done."""
    if not os.path.exists(journal):
        return set()
    with open(journal) as f:
        return {l.split()[1] for l in f.read().splitlines() if l.startswith("done ") and
                len(l.split()) > 1}


def kill9_after(args, journal, at, outdir, timeout=60):
    """Run args (stdout, stderr to files in outdir) and kill -9 it once the
    journal lists at least `at` messages done. Fails when the run ended
    first (make the Maildir larger)."""
    with open(os.path.join(outdir, "killed.out"), "wb") as o, \
            open(os.path.join(outdir, "killed.err"), "wb") as e:
        p = subprocess.Popen(args, stdout=o, stderr=e)
    deadline = time.monotonic() + timeout
    killed = False
    while time.monotonic() < deadline and p.poll() is None:
        if len(journal_done(journal)) >= at:
            os.kill(p.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.002)
    p.wait()
    assert killed, "finished before it could be killed; make the Maildir larger"


def wait_stopped(p):
    """Wait until process p stopped itself (SIGSTOP: the SEALGATE_TEST_PAUSE_AT
    hook); fails if it exited instead."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert p.poll() is None, "exited instead of pausing"
        with open(f"/proc/{p.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.005)
    raise AssertionError("did not pause")


def kill9_at_pause(args, at, outdir):
    """Run args with the SEALGATE_TEST_PAUSE_AT=at hook (stdout, stderr to
    files in outdir), wait until it stops itself there, kill -9 it."""
    env = dict(os.environ, SEALGATE_TEST_PAUSE_AT=str(at))
    with open(os.path.join(outdir, "paused.out"), "wb") as o, \
            open(os.path.join(outdir, "paused.err"), "wb") as e:
        p = subprocess.Popen(args, stdout=o, stderr=e, env=env)
    try:
        wait_stopped(p)
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
