"""`make run` (scripts/run-demo.sh): the demo seals one test mail into
var/Maildir and prints the command that decrypts it; that command works,
and sealgate keeps serving until it is told to stop."""
import os
import re
import signal
import subprocess
import time

from conftest import SOURCE_DIR, free_port


def test_demo_prints_a_working_decrypt_command(sealgate_bin, tmp_path):
    state = str(tmp_path / "var")
    port = free_port()
    out_path = str(tmp_path / "demo.out")
    env = dict(os.environ, SEALGATE_DEMO_PORT=str(port))
    with open(out_path, "wb") as out:
        p = subprocess.Popen([os.path.join(SOURCE_DIR, "scripts", "run-demo.sh"), sealgate_bin,
                              state], stdout=out, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        text = ""
        while "Ctrl-C stops sealgate" not in text:
            assert p.poll() is None, text
            assert time.monotonic() < deadline, text
            time.sleep(0.1)
            text = open(out_path, "rb").read().decode(errors="replace")
        m = re.search(r"^\s+(\S+ unseal --key \S+ < '([^']+)')$", text, re.M)
        assert m, text
        sealed = open(m.group(2), "rb").read()
        assert m.group(2).startswith(os.path.join(state, "Maildir", "new") + "/")
        assert b"Keep it quiet" not in sealed and b"Subject: ...\n" in sealed
        r = subprocess.run(m.group(1), shell=True, capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert b"Subject: the launch date" in r.stdout
        assert b"We launch on Friday. Keep it quiet." in r.stdout
        assert p.poll() is None  # still serving in the foreground
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(30)
