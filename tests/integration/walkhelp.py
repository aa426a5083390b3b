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
