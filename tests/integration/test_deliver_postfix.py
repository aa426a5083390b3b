"""Postfix's own lmtp(8) delivers to sealgate's deliver listener
(virtual_transport = lmtp:inet:127.0.0.1:PORT, as doc/deliver.md says),
and the mail lands sealed in the user's Maildir; gpg decrypts it."""
import os
import shutil
import smtplib
import subprocess
import tempfile
import time

import pytest

from conftest import free_port, wait_port
from deliver_helpers import DeliverGateway, gpg_decrypt, maildir_files, outer_headers, pgp_user
from test_deliver import MSG

pytestmark = pytest.mark.skipif(shutil.which("postfix") is None, reason="postfix not installed")


class Postfix:
    """Postfix in a temp dir (../shared/PEERS.md section 0): an smtpd on a
    run-time port, example.test delivered over LMTP to sealgate."""

    def __init__(self, lmtp_port):
        self.t = tempfile.mkdtemp(prefix="/tmp/pf-sg.")
        os.chmod(self.t, 0o755)
        self.port = free_port()
        conf = os.path.join(self.t, "conf")
        os.makedirs(conf)
        os.makedirs(os.path.join(self.t, "data"))
        shutil.chown(os.path.join(self.t, "data"), "postfix")
        with open(os.path.join(conf, "main.cf"), "w") as f:
            f.write(f"""compatibility_level = 3.6
queue_directory = {self.t}/queue
data_directory = {self.t}/data
maillog_file = /dev/stdout
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = example.test
virtual_transport = lmtp:inet:127.0.0.1:{lmtp_port}
smtpd_reject_unlisted_recipient = no
""")
        master = open("/etc/postfix/master.cf").read().splitlines()
        out = []
        for line in master:
            if line.startswith("smtp ") and " inet " in line:
                line = f"127.0.0.1:{self.port} inet n - n - - smtpd"
            f = line.split()
            if len(f) >= 8 and not line[0].isspace() and not line.startswith("#"):
                f[4] = "n"  # no chroot: the temp queue has no copy of /etc
                line = " ".join(f)
            out.append(line)
        with open(os.path.join(conf, "master.cf"), "w") as f:
            f.write("\n".join(out) + "\n")
        self.conf = conf
        os.makedirs(os.path.join(self.t, "queue"))
        r = subprocess.run(["postfix", "-c", conf, "check"], capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr
        self.logf = open(os.path.join(self.t, "postfix.log"), "wb")
        self.proc = subprocess.Popen(["postfix", "-c", conf, "start-fg"], stdout=self.logf,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_port(self.port, timeout=30, proc=self.proc)

    def log(self):
        return open(os.path.join(self.t, "postfix.log"), "rb").read().decode(errors="replace")

    def stop(self):
        subprocess.run(["postfix", "-c", self.conf, "stop"], capture_output=True, timeout=60)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()
        shutil.rmtree(self.t, ignore_errors=True)


def test_postfix_lmtp_to_deliver_listener(sealgate_bin, tmp_path):
    tmp = str(tmp_path)
    gw = DeliverGateway(sealgate_bin, tmp, f"deliver_maildir = {tmp}/mail/%n/Maildir\n")
    sec, fpr = pgp_user(sealgate_bin, tmp, gw.state, "alice@example.test")
    gw.start()
    pf = None
    try:
        pf = Postfix(gw.port)
        s = smtplib.SMTP("127.0.0.1", pf.port, timeout=30)
        assert s.sendmail("bob@b.test", ["alice@example.test"], MSG) == {}
        s.quit()
        deadline = time.monotonic() + 60
        while not maildir_files(f"{tmp}/mail/alice/Maildir"):
            assert time.monotonic() < deadline, pf.log() + gw.log()
            time.sleep(0.2)
        data = open(maildir_files(f"{tmp}/mail/alice/Maildir")[0], "rb").read()
        assert b"revenue" not in data and b"Subject: ...\n" in outer_headers(data)
        plain = gpg_decrypt(sec, data).replace(b"\r\n", b"\n")
        assert b"revenue is up 12%" in plain and b"Subject: the quarterly numbers" in plain
        deadline = time.monotonic() + 30
        while "status=sent" not in pf.log():
            assert time.monotonic() < deadline, pf.log()
            time.sleep(0.2)
        assert "relay=127.0.0.1" in pf.log() and "2.0.0 <alice@example.test>" in pf.log()
    finally:
        if pf is not None:
            pf.stop()
        assert gw.stop() == 0, gw.log()
