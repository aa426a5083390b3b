"""Faults on the filter path (relay role): the spool's disk fills up during
DATA, the next hop closes in the middle of DATA, the next hop stalls past
sealgate's time budget. Each time the client gets a 4xx, the next hop
acknowledges nothing, and sealgate's log names the failure without the
Subject or body (log_checks.py).

Disk full is a real ENOSPC: the state dir's tmp/ (the spool) is a 256 KiB
tmpfs mounted in a private mount namespace that lives as long as sealgate
(unshare -m), so no mount outlives the test. That tests the shipped code
path on a real file system, with no test-only code in the binary (a fault
point compiled into test builds would test a simulation of write(2))."""
import json
import os
import smtplib
import subprocess
import sys

import pytest

from filter_path import FilterPath
from gateway_harness import Gateway, Sink
from log_checks import assert_log_clean
from postfix_harness import wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
SUBJECT_MARK, BODY_MARK = "FAULT-SUBJECT-5521", "FAULT-BODY-9d41"
TMPFS_SIZE = 256 * 1024


def message(size):
    """A message of about size bytes with both markers."""
    line = b"x" * 76 + b"\r\n"
    return (f"From: <a@x.test>\r\nTo: <b@y.test>\r\nSubject: {SUBJECT_MARK}\r\n"
            f"Message-ID: <fault@x.test>\r\n\r\n{BODY_MARK}\r\n").encode() + line * (size // len(line))


def can_mount_tmpfs(tmp):
    d = os.path.join(tmp, "probe")
    os.makedirs(d)
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        'mount -t tmpfs -o size=64k sgprobe "$0"', d], capture_output=True, timeout=30)
    return r.returncode == 0, r.stderr.decode(errors="replace").strip()


def spool_wrapper(tmp, bin, spool_dir):
    """An executable that starts sealgate with a small tmpfs on spool_dir,
    in its own mount namespace; exec keeps sealgate's PID."""
    path = os.path.join(tmp, "sealgate-tmpfs")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                "exec unshare -m --propagation private sh -c "
                f"'mount -t tmpfs -o size={TMPFS_SIZE},mode=0700 sgspool \"$0\" && exec \"$@\"' "
                f"'{spool_dir}' '{bin}' \"$@\"\n")
    os.chmod(path, 0o755)
    return path


def send(port, msg, rcpt="b@y.test"):
    """(code, text) of the reply to the end of DATA."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        try:
            s.sendmail("a@x.test", [rcpt], msg)
            return 250, ""
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()


@pytest.fixture
def gateway(sealgate_bin, tmp_path):
    made = []

    def start(extra="", bin=sealgate_bin, **sink_kw):
        sink = Sink(str(tmp_path), **sink_kw)
        gw = Gateway(bin, str(tmp_path), sink.port, extra)
        made.append((gw, sink))
        return gw, sink
    yield start
    for gw, sink in made:
        code = gw.stop()
        sink.stop()
        assert code == 0, gw.log()[-3000:]
        assert "Sanitizer" not in gw.log() and "runtime error:" not in gw.log()


def test_spool_disk_full_452(gateway, sealgate_bin, tmp_path):
    ok, why = can_mount_tmpfs(str(tmp_path))
    if not ok:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {why}")
    spool = tmp_path / "state" / "tmp"
    spool.mkdir(parents=True)
    gw, sink = gateway("spool_memory_max = 16K\n",
                       bin=spool_wrapper(str(tmp_path), sealgate_bin, str(spool)))
    code, text = send(gw.smtp_port, message(4 * TMPFS_SIZE))
    assert (code, text[:5]) == (452, "4.3.1"), (code, text, gw.log())
    assert sink.messages() == []
    log = gw.log()
    assert "No space left on device" in log, log
    assert_log_clean(log, [SUBJECT_MARK, BODY_MARK])
    # The spool file was unlinked when it was created: its space comes back
    # with the refused transaction, and the next message fits.
    code, text = send(gw.smtp_port, message(TMPFS_SIZE // 2))
    assert code == 250, (code, text, gw.log())
    assert len(sink.messages()) == 1


class Hop:
    """fault_hop.py as a background process (stdout+stderr to a file)."""

    def __init__(self, tmp, mode, secs=0):
        self.dir = os.path.join(tmp, "hop")
        os.makedirs(self.dir)
        portfile = os.path.join(tmp, "hop.port")
        self.log = open(os.path.join(tmp, "hop.log"), "wb")
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fault_hop.py"), mode,
                                      portfile, self.dir, str(secs)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.port = int(wait_for(lambda: os.path.exists(portfile) and open(portfile).read(),
                                 10, "fault_hop.py to listen", 0.02))

    def records(self):
        return [json.load(open(os.path.join(self.dir, n)))
                for n in sorted(os.listdir(self.dir)) if n.endswith(".json")]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


def test_next_hop_closes_mid_data_451(sealgate_bin, tmp_path):
    hop = Hop(str(tmp_path), "close")
    gw = Gateway(sealgate_bin, str(tmp_path), hop.port)
    try:
        code, text = send(gw.smtp_port, message(1024 * 1024))
        assert code == 451 and text.startswith("4."), (code, text, gw.log())
        recs = wait_for(hop.records, 10, "the next hop's record")
        assert recs and not any(r["dot"] or r["acked"] for r in recs), recs
        assert all(r["bytes"] > 0 for r in recs), recs   # it was mid-DATA
        assert_log_clean(gw.log(), [SUBJECT_MARK, BODY_MARK])
    finally:
        assert gw.stop() == 0, gw.log()[-3000:]
        hop.stop()


def test_next_hop_stall_past_budget_451_447_postfix_keeps_it():
    """Postfix -> sealgate -> a next hop that stops reading mid-DATA: the
    budget (2 s) ends it with 451 4.4.7 before any other timeout, the
    final "." is never sent, and the message waits in Postfix's queue."""
    stall = 4.0
    path = FilterPath(lambda tmp: Hop(tmp, "stall", stall), proto="lmtp",
                      filter_extra={"xforward": "no", "relay_data_done_timeout": "1s",
                                    "transaction_time_budget": "2s",
                                    "relay_command_timeout": "60s"},
                      main_extra={"minimal_backoff_time": "300s", "maximal_backoff_time": "300s",
                                  "queue_run_delay": "300s"}).start()
    try:
        path.postfix.send(message(16 * 1024 * 1024), sender="a@x.test", rcpts=("b@y.test",))
        log = wait_for(lambda: (lambda l: "status=deferred" in l and l)(path.postfix.maillog()),
                       30, "Postfix to defer the message")
        assert "451 4.4.7" in log, path.logs()
        q = path.postfix.queue()
        assert len(q) == 1 and "4.4.7" in q[0]["recipients"][0]["delay_reason"], q
        recs = wait_for(path.next_hop.records, stall + 10, "the next hop's record")
        assert not any(r["dot"] or r["acked"] for r in recs), recs
        assert "time budget of 2s exceeded" in path.filter.log()
        assert_log_clean(path.filter.log(), [SUBJECT_MARK, BODY_MARK])
        assert path.outside.files() == []
    except BaseException:
        print(path.logs())
        raise
    finally:
        path.stop()
