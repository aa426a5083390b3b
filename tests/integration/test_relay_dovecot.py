"""relay/ over LMTP to a real Dovecot (recipe: /work/shared/PEERS.md, 1):
per-recipient replies after the final ".", queue IDs, byte-exact Maildir
delivery with dot-stuffing, connection reuse."""
import glob
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import free_port, wait_port
from test_relay import MSG, Result, relay_send, send  # noqa: F401 (fixture)

USERS = ("alice", "bob")


@pytest.fixture
def dovecot():
    if shutil.which("dovecot") is None:
        pytest.skip("dovecot not installed")
    t = tempfile.mkdtemp(prefix="relay-dovecot.")
    os.chmod(t, 0o755)  # dovecot's unprivileged processes must traverse it
    port = free_port()
    for u in USERS:
        for d in ("new", "cur", "tmp"):
            os.makedirs(f"{t}/Maildir/{u}/{d}")
    os.makedirs(f"{t}/run")
    os.makedirs(f"{t}/state")
    subprocess.run(["chown", "-R", "nobody:nogroup", f"{t}/Maildir"], check=True)
    with open(f"{t}/users", "w") as f:
        for u in USERS:
            f.write(f"{u}:{{PLAIN}}secret:65534:65534::{t}/home/{u}::\n")
    conf = f"{t}/dovecot.conf"
    with open(conf, "w") as f:
        f.write(f"""base_dir = {t}/run
state_dir = {t}/state
instance_name = relay-test-{port}
log_path = /dev/stderr
info_log_path = /dev/stderr
protocols = lmtp
listen = 127.0.0.1
ssl = no
auth_username_format = %Ln
mail_location = maildir:{t}/Maildir/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {t}/users
}}
userdb {{
  driver = passwd-file
  args = {t}/users
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
""")
    log = open(f"{t}/dovecot.log", "wb")
    proc = subprocess.Popen(["dovecot", "-F", "-c", conf], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc=proc)
        yield f"127.0.0.1:{port}", t
    finally:
        subprocess.run(["dovecot", "-c", conf, "stop"], capture_output=True)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(t, ignore_errors=True)


def delivered(t, user, n, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = glob.glob(f"{t}/Maildir/{user}/*/*")
        if len(files) >= n:
            return [open(f, "rb").read() for f in sorted(files)]
        time.sleep(0.05)
    raise AssertionError(f"{user}: {len(glob.glob(f'{t}/Maildir/{user}/*/*'))} messages")


def test_dovecot_lmtp(relay_send, dovecot, tmp_path):  # noqa: F811
    hostport, t = dovecot
    msg = tmp_path / "msg"
    msg.write_bytes(MSG)
    r = send(relay_send, hostport, str(msg), "-l", "-r", "2",
             rcpts=("alice@example.test", "nosuch@example.test", "bob@example.test"))
    for rid in (0, 1):
        codes = r.codes(rid)
        assert codes[0] == 250 and codes[2] == 250, r.out
        assert codes[1] == 550, r.out  # unknown user, refused at RCPT
        # One reply per accepted recipient, each naming its recipient.
        assert "<alice@example.test>" in r.replies[rid][0][2]
        assert "<bob@example.test>" in r.replies[rid][2][2]
        assert r.queued_as[rid] and r.queued_as[rid] in r.replies[rid][0][2]
    assert r.proc.stderr.count(": connected") == 1  # the second went over the same connection
    for u in ("alice", "bob"):
        for body in delivered(t, u, 2):
            # Dovecot adds Return-Path/Received on top and stores LF line ends;
            # the rest is ours, unstuffed.
            assert body.endswith(MSG.replace(b"\r\n", b"\n")), body
