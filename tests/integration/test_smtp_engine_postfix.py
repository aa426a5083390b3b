"""The engine against the peer it is built for: Postfix's lmtp client (as a
content_filter would use it) delivers to smtp-test-server over STARTTLS,
with XFORWARD and PIPELINING, and acts on the per-recipient LMTP replies."""
import os
import pathlib
import shutil
import re
import signal
import subprocess
import tempfile
import time
import urllib.parse

import pytest

from conftest import free_port, wait_port
from test_smtp_engine import SERVER_BIN

POSTFIX = "/usr/sbin/postfix"


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise TimeoutError(what)


@pytest.fixture
def postfix_to_engine():
    if not os.access(POSTFIX, os.X_OK):
        pytest.skip("postfix is not installed")
    # Not pytest's tmp_path: its parents are 0700, and Postfix's
    # unprivileged daemons must traverse the directory (PEERS.md).
    t = pathlib.Path(tempfile.mkdtemp(prefix="sg-smtp-postfix-"))
    os.chmod(t, 0o755)
    for d in ("conf", "queue", "data", "out", "spool"):
        (t / d).mkdir()
    subprocess.run(["chown", "postfix", str(t / "data")], check=True)
    smtpd_port, engine_port = free_port(), free_port()
    res = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                          "-nodes", "-keyout", str(t / "key.pem"), "-out", str(t / "cert.pem"),
                          "-days", "1", "-subj", "/CN=mx.test"], capture_output=True, timeout=30)
    assert res.returncode == 0, res.stderr
    (t / "conf" / "main.cf").write_text(f"""compatibility_level = 3.6
queue_directory = {t}/queue
data_directory = {t}/data
maillog_file = /dev/stdout
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
default_transport = lmtp:inet:[127.0.0.1]:{engine_port}
lmtp_send_xforward_command = yes
lmtp_tls_security_level = encrypt
lmtp_tls_loglevel = 1
""")
    master = open("/etc/postfix/master.cf").read()
    master = re.sub(r"(?m)^smtp\s+inet\s.*smtpd$", f"127.0.0.1:{smtpd_port} inet n - n - - smtpd", master)
    (t / "conf" / "master.cf").write_text(master)

    engine_log = t / "engine.log"
    with open(t / "engine.out", "wb") as out, open(engine_log, "wb") as err:
        engine = subprocess.Popen([SERVER_BIN, "--lmtp", "--xforward", "--listen", f"127.0.0.1:{engine_port}",
                                   "--outdir", str(t / "out"), "--spool-dir", str(t / "spool"),
                                   "--cert", str(t / "cert.pem"), "--key", str(t / "key.pem")],
                                  stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    pf_log = t / "postfix.log"
    with open(pf_log, "wb") as log:
        pf = subprocess.Popen([POSTFIX, "-c", str(t / "conf"), "start-fg"], stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_port(engine_port, proc=engine)
        wait_port(smtpd_port, timeout=60, proc=pf)
        yield {"smtpd_port": smtpd_port, "out": t / "out", "pf_log": pf_log, "engine_log": engine_log}
    finally:
        subprocess.run([POSTFIX, "-c", str(t / "conf"), "stop"], capture_output=True, timeout=60)
        try:
            pf.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pf.kill()
        engine.send_signal(signal.SIGTERM)
        try:
            engine.wait(timeout=10)
        except subprocess.TimeoutExpired:
            engine.kill()
        shutil.rmtree(t, ignore_errors=True)


def read_env(path):
    env = {}
    for line in path.read_text().splitlines():
        k, v = line.split(" ", 1)
        env.setdefault(k, []).append(None if v == "-" else urllib.parse.unquote(v))
    return env


def test_postfix_lmtp_client_tls_xforward(postfix_to_engine):
    p = postfix_to_engine
    res = subprocess.run(["swaks", "--server", f"127.0.0.1:{p['smtpd_port']}", "--from", "a@b.test",
                          "--to", "ok@d.test,fail4@d.test,fail5@d.test", "--body", "via postfix"],
                         capture_output=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr

    def statuses():
        return re.findall(r"to=<([^>]+)>, relay=127\.0\.0\.1.*?status=(\w+)", p["pf_log"].read_text())
    wait_for(lambda: len(statuses()) >= 3, 60, "Postfix did not report three recipients")
    got = dict(statuses()[:3])
    assert got == {"ok@d.test": "sent", "fail4@d.test": "deferred", "fail5@d.test": "bounced"}
    pf_text = p["pf_log"].read_text()
    assert "TLS connection established to 127.0.0.1" in pf_text
    assert re.search(r"status=deferred \(host \S+ said: 451 4\.3\.0 <fail4@d\.test>", pf_text)

    envs = [read_env(p["out"] / n) for n in os.listdir(p["out"]) if n.endswith(".env")]
    [env] = [e for e in envs if e["mail_from"] == ["a@b.test"]]
    assert sorted(env["rcpt"]) == ["fail4@d.test", "fail5@d.test", "ok@d.test"]  # Postfix orders them
    assert env["tls"] == ["1"] and env["lmtp"] == ["1"]
    # XFORWARD told us about Postfix's client (swaks on 127.0.0.1), and
    # Postfix's queue ID as IDENT.
    assert env["xf_addr"] == ["127.0.0.1"] and env["xf_proto"] == ["ESMTP"]
    assert env["xf_source"] == ["LOCAL"] and env["xf_ident"][0] and env["xf_port"][0]
    body = (p["out"] / (env["queue_id"][0] + ".eml")).read_bytes()
    assert b"via postfix" in body and b"\r\n" in body
