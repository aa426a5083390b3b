"""valgrind memcheck smoke run: a short SMTP session through sealgate serve
with no memory errors and no definite leaks (the ASan build skips it:
valgrind and ASan do not mix)."""
import os
import shutil
import smtplib
import subprocess
import time

import pytest

from conftest import free_port, wait_port
from gateway_harness import Sink

pytestmark = pytest.mark.skipif(os.environ.get("SEALGATE_SANITIZE") == "1" or not shutil.which("valgrind"),
                                reason="valgrind run only on the normal build")


def test_serve_session_clean_under_memcheck(sealgate_bin, tmp_path):
    sink = Sink(str(tmp_path))
    port = free_port()
    log = tmp_path / "vg.log"
    proc = subprocess.Popen(["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
                             "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
                             "--track-fds=no", f"--log-file={log}",
                             sealgate_bin, "serve", "--state-dir", str(tmp_path / "st"),
                             "--listen", f"127.0.0.1:{port}", "--relay", f"127.0.0.1:{sink.port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, timeout=60, proc=proc)
        s = smtplib.SMTP("127.0.0.1", port, timeout=60)
        s.sendmail("a@example.test", ["b@example.test", "c@example.test"],
                   b"Subject: vg\r\n\r\nvalgrind smoke\r\n.dot\r\n")
        s.quit()
        # a refused one too (next hop 5xx)
        s = smtplib.SMTP("127.0.0.1", port, timeout=60)
        with pytest.raises(smtplib.SMTPDataError):
            s.sendmail("a@example.test", ["data5-x@example.test"], b"Subject: vg\r\n\r\nno\r\n")
        s.quit()
    finally:
        proc.terminate()
        code = proc.wait(60)
        sink.stop()
    report = log.read_text()
    assert code == 0, report
    assert "Invalid" not in report and "definitely lost" not in report, report
    assert len(sink.messages()) == 1
