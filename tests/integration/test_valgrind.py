"""valgrind memcheck: a short SMTP session through sealgate serve with no
memory errors and no definite leaks, and `sealgate seal` / `unseal`
(OpenPGP and S/MIME, encrypted and signed, small messages) with no errors
and no definite or indirect leaks (the ASan build skips it: valgrind and
ASan do not mix). tests/valgrind.supp holds the library-internal reports
that are not ours, each with the reason. Undefined-value checking stays on
(memcheck's default); the four seal/unseal commands share one valgrind
process (tests/cli-batch), since valgrind's start-up is most of each run."""
import os
import shutil
import smtplib
import subprocess

import pytest

import smime_pki
from conftest import SOURCE_DIR, free_port, wait_port
from gateway_harness import Sink
from policy_helpers import gen_pgp

SUPP = os.path.join(SOURCE_DIR, "tests", "valgrind.supp")
CLI_BATCH = os.path.join(os.environ.get("SEALGATE_BUILD_DIR", os.path.join(SOURCE_DIR, "build")),
                         "tests", "cli-batch")
MEMCHECK = ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
            f"--suppressions={SUPP}", "--track-fds=no"]
MSG = (b"From: Alice <alice@a.test>\r\nTo: Bob <bob@b.test>\r\nSubject: vg seal\r\n"
       b"Message-ID: <vg@a.test>\r\nContent-Type: text/plain\r\n\r\nvalgrind seal body\r\n")

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


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """OpenPGP: bob (recipient), alice (signer); S/MIME: carol (RSA), both."""
    d = str(tmp_path_factory.mktemp("vgkeys"))
    home = os.path.join(d, "gnupg")
    os.makedirs(home, mode=0o700)
    gen_pgp(home, d, "bob", "Bob <bob@b.test>")
    gen_pgp(home, d, "alice", "Alice <alice@a.test>")
    carol = smime_pki.self_signed(d, "carol", "carol@c.test", "rsa")
    yield d, carol
    subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True)


def test_seal_unseal_clean_under_memcheck(tmp_path, keys):
    """seal and unseal, OpenPGP and S/MIME, each encrypted and signed, then
    decrypted and verified: four sealgate commands in one memcheck process
    (tests/cli-batch runs them through sealgate's own dispatcher), so that
    valgrind starts once, not four times (~2 s of CPU each: sealgate loads
    about 60 libraries). The one leak check at exit sees all four."""
    assert os.access(CLI_BATCH, os.X_OK), f"not built: {CLI_BATCH}"
    d, carol = keys
    k = lambda n: os.path.join(d, n)
    f = lambda n: str(tmp_path / n)
    (tmp_path / "msg").write_bytes(MSG)
    cases = [
        ["msg", "pgp.sealed", "seal", "--pgp", "--to", "bob@b.test", "--sign-as", "alice@a.test",
         "--key", k("bob.pub"), "--key", k("alice.sec")],
        ["pgp.sealed", "pgp.plain", "unseal", "--key", k("bob.sec"), "--verify-key", k("alice.pub")],
        ["msg", "smime.sealed", "seal", "--smime", "--to", carol.email, "--key", carol.crt,
         "--sign-as", carol.email, "--key", carol.pem],
        ["smime.sealed", "smime.plain", "unseal", "--key", carol.pem, "--verify-key", carol.crt],
    ]
    args = []
    for c in cases:
        args += (["--"] if args else []) + [f(c[0]), f(c[1])] + c[2:]
    log = tmp_path / "vg.log"
    r = subprocess.run(MEMCHECK + [f"--log-file={log}", CLI_BATCH] + args, capture_output=True,
                       timeout=300)
    report = log.read_text()
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr.decode(errors='replace')}\n{report}"
    assert report.strip() == "", report
    assert r.stderr.decode().count(": exit 0") == len(cases), r.stderr.decode()
    assert b"-----BEGIN PGP MESSAGE-----" in (tmp_path / "pgp.sealed").read_bytes()
    assert b"application/pkcs7-mime" in (tmp_path / "smime.sealed").read_bytes()
    for n in ("pgp.plain", "smime.plain"):
        assert b"valgrind seal body" in (tmp_path / n).read_bytes(), n
    # Signed and checked, not only decrypted.
    assert b"signature: valid" in r.stderr, r.stderr.decode()
