"""The SMTP/LMTP engine (src/smtp/) on its own, through tests/smtp-echo-server.c
(smtp-test-server): real clients (smtplib, swaks, raw sockets, openssl) talk
to it on 127.0.0.1; it writes each message and envelope to a directory."""
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import warnings

import pytest

from conftest import free_port, wait_port

SOURCE_DIR = os.environ.get("SEALGATE_SOURCE_DIR",
                            os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
SERVER_BIN = os.environ.get("SMTP_TEST_SERVER",
                            os.path.join(SOURCE_DIR, "build", "tests", "smtp-test-server"))


def wait_v6(host, port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on [{host}]:{port}")


class Server:
    def __init__(self, tmp_path, *args, host="127.0.0.1"):
        assert os.access(SERVER_BIN, os.X_OK), f"not built: {SERVER_BIN}"
        self.port = free_port()
        self.outdir = tmp_path / "out"
        self.outdir.mkdir(exist_ok=True)
        spool = tmp_path / "spool"
        spool.mkdir(exist_ok=True)
        self.log = tmp_path / "server.log"
        self.stdout = tmp_path / "server.out"
        listen = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        cmd = [SERVER_BIN, "--listen", listen, "--outdir", str(self.outdir),
               "--spool-dir", str(spool), *args]
        with open(self.stdout, "wb") as out, open(self.log, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        if host == "127.0.0.1":
            wait_port(self.port, proc=self.proc)
        else:
            wait_v6(host, self.port, self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def messages(self):
        """[(envelope dict, body bytes)] in no particular order."""
        res = []
        for name in sorted(os.listdir(self.outdir)):
            if name.endswith(".env"):
                env = {}
                for line in (self.outdir / name).read_text().splitlines():
                    k, v = line.split(" ", 1)
                    v = None if v == "-" else urllib.parse.unquote_to_bytes(v).decode("utf-8", "surrogateescape")
                    env.setdefault(k, []).append(v)
                body = (self.outdir / (name[:-4] + ".eml")).read_bytes()
                res.append((env, body))
        return res

    def logtext(self):
        return self.log.read_text(errors="replace")


@pytest.fixture
def server(tmp_path):
    started = []

    def start(*args, **kw):
        s = Server(tmp_path, *args, **kw)
        started.append(s)
        return s
    yield start
    for s in started:
        s.stop()


class Raw:
    """A raw client: bytes out, whole replies (code, [lines]) in."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        lines = []
        while True:
            line = self.line()
            lines.append(line[4:])
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), lines

    def cmd(self, text):
        self.send(text.encode() + b"\r\n")
        return self.reply()

    def eof(self, timeout=5.0):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def raw_session(port, helo="EHLO client.test"):
    r = Raw(port)
    assert r.reply()[0] == 220
    code, _ = r.cmd(helo)
    assert code == 250
    return r


MSG = b"From: a@b.test\r\nTo: c@d.test\r\nSubject: t\r\n\r\nhello\r\n"


def test_greeting_and_ehlo_capabilities(server):
    s = server()
    r = Raw(s.port)
    assert r.reply() == (220, ["mx.test ESMTP sealgate"])
    code, lines = r.cmd("EHLO client.test")
    assert code == 250
    assert lines == ["mx.test", "PIPELINING", "SIZE 10485760", "8BITMIME", "ENHANCEDSTATUSCODES",
                     "SMTPUTF8", "DSN"]
    assert r.cmd("HELO client.test") == (250, ["mx.test"])
    assert r.cmd("VRFY bob")[0] == 252
    assert r.cmd("VRFY bob")[1][0].startswith("2.5.2 ")
    assert r.cmd("HELP")[0] == 214
    assert r.cmd("NOOP") == (250, ["2.0.0 Ok"])
    assert r.cmd("QUIT") == (221, ["2.0.0 Bye"])
    assert r.eof()
    s.stop()
    assert "disconnect from unknown[127.0.0.1] helo=1 ehlo=1 noop=1 quit=1 vrfy=2 help=1 commands=7" \
        in s.logtext()


def test_ehlo_xforward_advertised(server):
    s = server("--xforward")
    with smtplib.SMTP("127.0.0.1", s.port) as c:
        c.ehlo("client.test")
        assert c.esmtp_features["xforward"].strip() == "NAME ADDR PORT PROTO HELO IDENT SOURCE"
        assert "starttls" not in c.esmtp_features


def test_roundtrip_dot_stuffing_and_envelope(server):
    s = server()
    body = (b"Subject: dots\r\n\r\n.hidden\r\n..two\r\n.\r\nx.\r\n. \r\nlast line\r\n")
    with smtplib.SMTP("127.0.0.1", s.port) as c:
        c.sendmail("a@b.test", ["c@d.test", "e@f.test"], body,
                   rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;c@d.test"],
                   mail_options=["RET=HDRS", "ENVID=abc"])
    [(env, got)] = s.messages()
    assert got == body
    assert env["mail_from"] == ["a@b.test"]
    assert env["mail_params"] == [f"size={len(body)} RET=HDRS ENVID=abc"]  # smtplib adds SIZE
    assert env["rcpt"] == ["c@d.test", "e@f.test"]
    assert env["rcpt_params"] == ["NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@d.test"] * 2
    assert env["client_addr"] == ["127.0.0.1"]
    assert env["tls"] == ["0"] and env["lmtp"] == ["0"]
    assert re.fullmatch(r"[0-9A-F]{12}", env["queue_id"][0])
    s.stop()
    log = s.logtext()
    assert f"{env['queue_id'][0]}: client=unknown[127.0.0.1]" in log
    assert "hidden" not in log and "dots" not in log  # never log content
    assert re.search(r"disconnect from unknown\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=2 data=1 quit=1 "
                     r"commands=6", log)


def test_queue_ids_unique(server):
    s = server()
    with smtplib.SMTP("127.0.0.1", s.port) as c:
        for _ in range(20):
            c.sendmail("a@b.test", ["c@d.test"], MSG)
    ids = [env["queue_id"][0] for env, _ in s.messages()]
    assert len(ids) == 20 and len(set(ids)) == 20


def test_pipelined_in_one_write_and_async_reply(server):
    s = server()
    r = Raw(s.port)
    assert r.reply()[0] == 220
    r.send(b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<delay@d.test>\r\n"
           b"RCPT TO:<bad address>\r\nDATA\r\n")
    assert r.reply()[0] == 250
    assert r.reply() == (250, ["2.1.0 Ok"])
    assert r.reply() == (250, ["2.1.5 Ok"])
    assert r.reply()[0] == 501
    assert r.reply()[0] == 354
    # The data, and commands pipelined after it, in one write: the data()
    # callback answers after 0.5 s, and the following commands must wait.
    t0 = time.monotonic()
    r.send(b"body\r\n.\r\nRSET\r\nMAIL FROM:<x@y.test>\r\nQUIT\r\n")
    code, lines = r.reply()
    assert code == 250 and lines[0].startswith("2.0.0 Ok: queued as ")
    assert time.monotonic() - t0 >= 0.4
    assert r.reply() == (250, ["2.0.0 Ok"])
    assert r.reply() == (250, ["2.1.0 Ok"])
    assert r.reply() == (221, ["2.0.0 Bye"])
    assert r.eof()
    [(env, body)] = s.messages()
    assert body == b"body\r\n"


def test_swaks_pipelining(server):
    s = server()
    res = subprocess.run(["swaks", "--server", f"127.0.0.1:{s.port}", "--pipeline",
                          "--from", "a@b.test", "--to", "c@d.test,e@f.test", "--body", "swaks body"],
                         capture_output=True, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
    [(env, body)] = s.messages()
    assert env["rcpt"] == ["c@d.test", "e@f.test"]
    assert b"swaks body" in body


def test_lmtp_per_recipient_replies(server):
    s = server("--lmtp")
    r = Raw(s.port)
    assert r.reply() == (220, ["mx.test LMTP sealgate"])
    assert r.cmd("HELO c.test")[0] == 500
    assert r.cmd("EHLO c.test")[0] == 500
    assert r.cmd("MAIL FROM:<a@b.test>") == (503, ["5.5.1 Error: send LHLO first"])
    code, lines = r.cmd("LHLO c.test")
    assert code == 250 and "PIPELINING" in lines
    r.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<ok1@d.test>\r\nRCPT TO:<fail4@d.test>\r\n"
           b"RCPT TO:<refuse@d.test>\r\nRCPT TO:<fail5@d.test>\r\nRCPT TO:<ok2@d.test>\r\nDATA\r\n")
    assert [r.reply()[0] for _ in range(7)] == [250, 250, 250, 550, 250, 250, 354]
    r.send(b"lmtp body\r\n.\r\n")
    replies = [r.reply() for _ in range(4)]
    assert [c for c, _ in replies] == [250, 451, 550, 250]
    assert "<ok1@d.test>" in replies[0][1][0] and "<ok2@d.test>" in replies[3][1][0]
    assert replies[1][1][0].startswith("4.3.0") and replies[2][1][0].startswith("5.1.1")
    assert r.cmd("QUIT")[0] == 221
    [(env, body)] = s.messages()
    assert env["lmtp"] == ["1"]
    assert env["rcpt"] == ["ok1@d.test", "fail4@d.test", "fail5@d.test", "ok2@d.test"]


def test_lmtp_refused_data_one_reply_per_recipient(server):
    s = server("--lmtp", "--max-size", "100")
    r = raw_session(s.port, "LHLO c.test")
    r.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<x@d.test>\r\nRCPT TO:<y@d.test>\r\nDATA\r\n")
    assert [r.reply()[0] for _ in range(4)] == [250, 250, 250, 354]
    r.send(b"x" * 50 + b"\r\n" + b"y" * 70 + b"\r\n.\r\nNOOP\r\n")
    assert r.reply() == (552, ["5.3.4 Message size exceeds fixed limit"])
    assert r.reply() == (552, ["5.3.4 Message size exceeds fixed limit"])
    assert r.reply()[0] == 250
    assert s.messages() == []


def test_8bit_body(server):
    s = server()
    body = "Subject: caf\u00e9\r\n\r\nd\u00e9j\u00e0 vu \u2014 ok\r\n".encode()
    with smtplib.SMTP("127.0.0.1", s.port) as c:
        c.sendmail("a@b.test", ["c@d.test"], body, mail_options=["BODY=8BITMIME"])
    [(env, got)] = s.messages()
    assert got == body
    assert env["body_8bit"] == ["1"] and env["smtputf8"] == ["0"]


def test_smtputf8(server):
    s = server()
    r = raw_session(s.port)
    r.send("MAIL FROM:<\u00fcser@b.test>\r\n".encode())
    assert r.reply() == (553, ["5.6.7 Error: non-ASCII sender address needs SMTPUTF8"])
    r.send("MAIL FROM:<a@b.test>\r\nRCPT TO:<j\u00f6rg@d.test>\r\n".encode())
    assert r.reply()[0] == 250
    assert r.reply()[0] == 553
    r.close()
    with smtplib.SMTP("127.0.0.1", s.port) as c:
        c.sendmail("\u00fcser@b.test", ["j\u00f6rg@d\u00f6.test"], MSG,
                   mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    [(env, got)] = s.messages()
    assert env["mail_from"] == ["\u00fcser@b.test"]
    assert env["rcpt"] == ["j\u00f6rg@d\u00f6.test"]
    assert env["smtputf8"] == ["1"]


def test_size_refusal(server):
    s = server("--max-size", "1000")
    r = raw_session(s.port)
    assert r.cmd("MAIL FROM:<a@b.test> SIZE=1001") == (552, ["5.3.4 Message size exceeds fixed limit"])
    assert r.cmd("MAIL FROM:<a@b.test> SIZE=1000")[0] == 250
    assert r.cmd("RCPT TO:<c@d.test>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    # Bigger than announced: read to the end, then refuse; the session goes on.
    r.send((b"y" * 70 + b"\r\n") * 20 + b".\r\n")
    assert r.reply() == (552, ["5.3.4 Message size exceeds fixed limit"])
    assert r.cmd("MAIL FROM:<a@b.test>")[0] == 250
    assert r.cmd("RCPT TO:<c@d.test>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    r.send(b"small\r\n.\r\n")
    assert r.reply()[0] == 250
    assert len(s.messages()) == 1
    assert r.cmd("MAIL FROM:<a@b.test> FOO=bar")[0] == 555


def test_spool_io_error_is_temporary(server, tmp_path):
    # Messages over 100 bytes go to a file in the spool directory, which
    # does not exist: the append fails like a full disk would.
    s = server("--spool-mem", "100", "--spool-dir", str(tmp_path / "missing"))
    r = raw_session(s.port)
    r.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n")
    assert [r.reply()[0] for _ in range(3)] == [250, 250, 354]
    r.send(b"x" * 60 + b"\r\n" + b"y" * 60 + b"\r\n.\r\n")
    assert r.reply() == (452, ["4.3.1 Insufficient system storage"])
    r.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nsmall\r\n.\r\n")
    assert [r.reply()[0] for _ in range(4)] == [250, 250, 354, 250]
    [(env, body)] = s.messages()
    assert body == b"small\r\n"


def test_too_many_recipients(server):
    s = server("--max-rcpt", "2")
    r = raw_session(s.port)
    assert r.cmd("MAIL FROM:<a@b.test>")[0] == 250
    assert r.cmd("RCPT TO:<c1@d.test>")[0] == 250
    assert r.cmd("RCPT TO:<c2@d.test>")[0] == 250
    assert r.cmd("RCPT TO:<c3@d.test>") == (452, ["4.5.3 Error: too many recipients"])
    assert r.cmd("DATA")[0] == 354
    r.send(b"x\r\n.\r\n")
    assert r.reply()[0] == 250
    [(env, _)] = s.messages()
    assert env["rcpt"] == ["c1@d.test", "c2@d.test"]


def test_line_too_long(server):
    s = server("--max-line", "100")
    r = raw_session(s.port)
    assert r.cmd("NOOP " + "x" * 200) == (500, ["5.5.2 Error: line too long"])
    # Longer than the read buffer's slack too: skipped to its end.
    r.send(b"NOOP " + b"z" * 200000 + b"\r\nNOOP\r\n")
    assert r.reply() == (500, ["5.5.2 Error: line too long"])
    assert r.reply() == (250, ["2.0.0 Ok"])
    assert r.cmd("NOOP " + "x" * 90)[0] == 250
    assert r.cmd("MAIL FROM:<a@b.test>")[0] == 250
    assert r.cmd("RCPT TO:<c@d.test>")[0] == 250
    assert r.cmd("DATA")[0] == 354
    r.send(b"short\r\n" + b"L" * 150 + b"\r\nshort\r\n.\r\n")
    assert r.reply() == (552, ["5.3.4 Error: message line too long"])
    assert r.cmd("NOOP")[0] == 250
    assert s.messages() == []


def test_syntax_and_sequence_errors(server):
    s = server("--max-errors", "100")
    r = Raw(s.port)
    r.reply()
    assert r.cmd("MAIL FROM:<a@b.test>") == (503, ["5.5.1 Error: send HELO/EHLO first"])
    assert r.cmd("EHLO") == (501, ["5.5.4 Syntax: EHLO hostname"])
    assert r.cmd("EHLO a\rb\tc") == (501, ["5.5.4 Syntax: EHLO hostname"])
    assert r.cmd("EHLO c.test")[0] == 250
    assert r.cmd("FROB") == (500, ["5.5.1 Error: command not recognized"])
    assert r.cmd("LHLO c.test")[0] == 500
    assert r.cmd("") == (500, ["5.5.2 Error: bad syntax"])
    assert r.cmd("RCPT TO:<c@d.test>") == (503, ["5.5.1 Error: need MAIL command"])
    assert r.cmd("DATA") == (503, ["5.5.1 Error: need RCPT command"])
    assert r.cmd("MAIL TO:<a@b.test>") == (501, ["5.5.4 Syntax: MAIL FROM:<address>"])
    assert r.cmd("MAIL FROM:a@b.test") == (501, ["5.1.7 Bad sender address syntax"])
    assert r.cmd("MAIL FROM:<a@b.test> =bad")[0] == 501
    assert r.cmd("mail from:<a@b.test>") == (250, ["2.1.0 Ok"])
    assert r.cmd("MAIL FROM:<a@b.test>") == (503, ["5.5.1 Error: nested MAIL command"])
    assert r.cmd("RCPT TO:<a b@c.test>") == (501, ["5.1.3 Bad recipient address syntax"])
    assert r.cmd("RCPT TO:<>")[0] == 501
    assert r.cmd("RCPT TO:<c@d.test> NOTIFY=MAYBE")[0] == 501
    assert r.cmd("RCPT TO:<c@d.test> FOO")[0] == 555
    assert r.cmd("DATA") == (503, ["5.5.1 Error: need RCPT command"])
    assert r.cmd("RCPT TO:<Postmaster>")[0] == 250
    assert r.cmd("DATA extra") == (501, ["5.5.4 Syntax: DATA"])
    assert r.cmd("XFORWARD NAME=x") == (502, ["5.5.1 Error: command not implemented"])
    assert r.cmd("STARTTLS") == (503, ["5.5.1 Error: MAIL transaction in progress"])
    assert r.cmd("RSET") == (250, ["2.0.0 Ok"])
    assert r.cmd("STARTTLS") == (454, ["4.7.0 TLS not available"])
    r.send(b"NO\x00OP\r\n")
    assert r.reply()[0] == 500
    assert r.cmd("QUIT")[0] == 221
    s.stop()
    assert re.search(r"disconnect from unknown\[127\.0\.0\.1\] ehlo=1/3 starttls=0/2 xforward=0/1 "
                     r"mail=1/6 rcpt=1/6 data=0/3 rset=1 quit=1 unknown=0/4 commands=5/27", s.logtext())


def test_too_many_errors(server):
    s = server("--max-errors", "3")
    r = raw_session(s.port)
    assert r.cmd("FOO")[0] == 500
    assert r.cmd("MAIL FROM:bad")[0] == 501
    # Refusals that are not client errors do not count.
    assert r.cmd("MAIL FROM:<a@b.test> SIZE=99999999999")[0] == 552
    assert r.cmd("BAR")[0] == 500
    assert r.reply() == (421, ["4.7.0 mx.test Error: too many errors"])
    assert r.eof()


def test_command_timeout(server):
    s = server("--timeout", "1")
    r = raw_session(s.port)
    t0 = time.monotonic()
    assert r.reply() == (421, ["4.4.2 mx.test Error: timeout exceeded"])
    assert 0.8 <= time.monotonic() - t0 < 4
    assert r.eof()


def test_data_timeout(server):
    s = server("--data-timeout", "1")
    r = raw_session(s.port)
    r.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n")
    assert [r.reply()[0] for _ in range(3)] == [250, 250, 354]
    r.send(b"partial line")
    assert r.reply() == (421, ["4.4.2 mx.test Error: timeout exceeded"])
    assert r.eof()
    assert s.messages() == []


def test_smuggling_bare_lf_dot_is_content(server):
    s = server()
    r = raw_session(s.port)
    r.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n")
    assert [r.reply()[0] for _ in range(3)] == [250, 250, 354]
    # Postfix before 3.8.4 ended the data at "\n.\n" or "\n.\r\n"; we must not.
    r.send(b"Subject: s\r\n\r\nx\n.\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@d.test>\r\nDATA\r\n"
           b"smuggled\r\n\r\n.\n\r\nmore\r\n.\r\nNOOP\r\n")
    code, lines = r.reply()
    assert code == 250
    assert r.reply() == (250, ["2.0.0 Ok"])  # the NOOP, nothing else
    [(env, body)] = s.messages()
    assert env["rcpt"] == ["c@d.test"]
    assert body == (b"Subject: s\r\n\r\nx\r\n.\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@d.test>\r\n"
                    b"DATA\r\nsmuggled\r\n\r\n.\r\n\r\nmore\r\n")


def test_bare_cr_refused(server):
    s = server()
    r = raw_session(s.port)
    r.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n")
    assert [r.reply()[0] for _ in range(3)] == [250, 250, 354]
    r.send(b"a\rb\r\n.\r\n")
    code, lines = r.reply()
    assert code == 554 and lines[0].startswith("5.6.0 ")
    assert r.cmd("NOOP")[0] == 250
    assert s.messages() == []


def test_xforward(server):
    s = server("--xforward")
    r = raw_session(s.port)
    assert r.cmd("XFORWARD NAME=spike.porcupine.org ADDR=168.100.189.2 PROTO=ESMTP")[0] == 250
    assert r.cmd("XFORWARD HELO=[UNAVAILABLE] IDENT=a+2Bb SOURCE=REMOTE PORT=4711")[0] == 250
    assert r.cmd("XFORWARD BOGUS=1")[0] == 501
    r.send(b"MAIL FROM:<a@b.test>\r\nXFORWARD NAME=x\r\nRCPT TO:<c@d.test>\r\nDATA\r\nx\r\n.\r\n")
    assert [r.reply()[0] for _ in range(5)] == [250, 503, 250, 354, 250]
    # Reset after the transaction, as Postfix does.
    r.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\ny\r\n.\r\n")
    assert [r.reply()[0] for _ in range(4)] == [250, 250, 354, 250]
    msgs = {body: env for env, body in s.messages()}
    first, second = msgs[b"x\r\n"], msgs[b"y\r\n"]
    assert first["xf_name"] == ["spike.porcupine.org"] and first["xf_addr"] == ["168.100.189.2"]
    assert first["xf_proto"] == ["ESMTP"] and first["xf_helo"] == [None]
    assert first["xf_ident"] == ["a+b"] and first["xf_port"] == ["4711"]
    assert first["xf_source"] == ["REMOTE"]
    assert second["xf_name"] == [None] and second["xf_addr"] == [None]
    s.stop()
    assert "orig_client=spike.porcupine.org[168.100.189.2]" in s.logtext()


def test_disconnect_while_waiting_aborts(server):
    s = server()
    r = raw_session(s.port)
    r.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<hang@d.test>\r\nDATA\r\nx\r\n.\r\n")
    assert [r.reply()[0] for _ in range(3)] == [250, 250, 354]
    time.sleep(0.2)
    r.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "abort" not in s.stdout.read_text():
        time.sleep(0.05)
    [(env, _)] = s.messages()
    assert s.stdout.read_text().split() == ["abort", env["queue_id"][0]]


def test_100_concurrent_sessions(server):
    s = server()
    errors = []

    def one(i):
        try:
            with smtplib.SMTP("127.0.0.1", s.port, timeout=30) as c:
                c.sendmail(f"s{i}@b.test", [f"r{i}@d.test"], MSG + f"n={i}\r\n".encode())
        except Exception as e:  # noqa: BLE001 - collected and reported below
            errors.append((i, repr(e)))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    msgs = s.messages()
    assert len(msgs) == 100
    assert sorted(env["mail_from"][0] for env, _ in msgs) == sorted(f"s{i}@b.test" for i in range(100))
    for env, body in msgs:
        i = env["mail_from"][0][1:].split("@")[0]
        assert body.endswith(f"n={i}\r\n".encode())


def test_max_sessions_pauses_accept(server):
    s = server("--max-sessions", "2")
    a, b = Raw(s.port), Raw(s.port)
    assert a.reply()[0] == 220 and b.reply()[0] == 220
    c = Raw(s.port, timeout=0.7)  # the kernel completes the handshake (backlog)
    with pytest.raises(socket.timeout):
        c.reply()
    a.cmd("QUIT")
    c.sock.settimeout(5)
    assert c.reply()[0] == 220
    assert c.cmd("QUIT")[0] == 221
    assert b.cmd("QUIT")[0] == 221


def test_shutdown_on_sigterm(server):
    s = server()
    idle = raw_session(s.port)
    busy = raw_session(s.port)
    assert busy.cmd("MAIL FROM:<a@b.test>")[0] == 250
    assert busy.cmd("RCPT TO:<c@d.test>")[0] == 250
    s.proc.send_signal(signal.SIGTERM)
    assert idle.reply() == (421, ["4.3.2 mx.test Service shutting down"])
    assert idle.eof()
    time.sleep(0.2)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.port), timeout=1).close()
    assert s.proc.poll() is None  # a transaction is still under way
    assert busy.cmd("DATA")[0] == 354
    busy.send(b"last\r\n.\r\n")
    assert busy.reply()[0] == 250
    assert busy.cmd("NOOP") == (421, ["4.3.2 mx.test Service shutting down"])
    assert busy.eof()
    assert s.proc.wait(timeout=5) == 0
    assert len(s.messages()) == 1
    assert "drained" in s.logtext()


@pytest.fixture
def cert(tmp_path):
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    res = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                          "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "1",
                          "-subj", "/CN=mx.test"], capture_output=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return str(crt), str(key)


def client_tls():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_starttls(server, cert):
    s = server("--cert", cert[0], "--key", cert[1])
    with smtplib.SMTP("127.0.0.1", s.port) as c:
        c.ehlo("c.test")
        assert "starttls" in c.esmtp_features
        code, _ = c.starttls(context=client_tls())
        assert code == 220
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        c.ehlo("c.test")
        assert "starttls" not in c.esmtp_features
        assert c.docmd("STARTTLS")[0] == 554
        c.sendmail("a@b.test", ["c@d.test"], MSG)
    [(env, body)] = s.messages()
    assert env["tls"] == ["1"] and body == MSG
    s.stop()
    assert "TLS connection established from unknown[127.0.0.1]" in s.logtext()


def test_starttls_refuses_tls_1_1(server, cert):
    s = server("--cert", cert[0], "--key", cert[1])
    r = raw_session(s.port)
    assert r.cmd("STARTTLS")[0] == 220
    ctx = client_tls()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with pytest.raises((ssl.SSLError, OSError)):
        ctx.wrap_socket(r.sock).do_handshake()
    s.stop()
    # The server's own reason, so a client that refused locally cannot pass this.
    assert "TLS handshake failed from unknown[127.0.0.1]: unsupported protocol" in s.logtext()
    assert "TLS connection established" not in s.logtext()


def test_starttls_discards_pipelined_commands(server, cert):
    """CVE-2011-0411: a command pipelined after STARTTLS in plaintext must not
    be executed inside the TLS session."""
    s = server("--cert", cert[0], "--key", cert[1])
    r = raw_session(s.port)
    r.send(b"STARTTLS\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<evil@d.test>\r\n")
    assert r.reply()[0] == 220
    assert r.buf == b""  # nothing else was answered in plaintext
    tls = client_tls().wrap_socket(r.sock)
    r.sock = tls
    # The state was reset (RFC 3207 4.2): EHLO is needed again, no MAIL.
    assert r.cmd("RCPT TO:<c@d.test>") == (503, ["5.5.1 Error: send HELO/EHLO first"])
    assert r.cmd("EHLO c.test")[0] == 250
    assert r.cmd("RCPT TO:<c@d.test>") == (503, ["5.5.1 Error: need MAIL command"])
    assert r.cmd("QUIT")[0] == 221
    s.stop()
    assert "discarding" in s.logtext()


def test_swaks_starttls_lmtp(server, cert):
    s = server("--lmtp", "--cert", cert[0], "--key", cert[1])
    res = subprocess.run(["swaks", "--server", f"127.0.0.1:{s.port}", "--protocol", "LMTP", "--tls",
                          "--from", "a@b.test", "--to", "c@d.test", "--body", "over tls"],
                         capture_output=True, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
    [(env, body)] = s.messages()
    assert env["tls"] == ["1"] and env["lmtp"] == ["1"]


def test_half_close_after_pipelined_batch(server):
    s = server()
    r = Raw(s.port)
    assert r.reply()[0] == 220
    r.send(b"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n")
    assert [r.reply()[0] for _ in range(4)] == [250, 250, 250, 354]
    r.send(b"x\r\n.\r\nNOOP\r\nQUIT\r\n")
    r.sock.shutdown(socket.SHUT_WR)
    assert [r.reply()[0] for _ in range(3)] == [250, 250, 221]
    assert r.eof()


def test_ipv6_listen(server):
    s = server(host="::1")
    with smtplib.SMTP("::1", s.port) as c:
        c.sendmail("a@b.test", ["c@d.test"], MSG)
    [(env, _)] = s.messages()
    assert env["client_addr"] == ["::1"]


@pytest.mark.parametrize("lmtp", [False, True])
def test_postfix_smtp_source(server, lmtp):
    """Postfix's own load generator as the client: 200 messages, 3
    recipients each, over 10 parallel sessions."""
    s = server(*(["--lmtp"] if lmtp else []))
    args = ["/usr/sbin/smtp-source", "-s", "10", "-m", "200", "-r", "3", "-l", "2000",
            "-f", "src@b.test", "-t", "dst@d.test", "-M", "client.test"]
    if lmtp:
        args.append("-L")
    t0 = time.monotonic()
    res = subprocess.run(args + [f"127.0.0.1:{s.port}"], capture_output=True, timeout=60)
    elapsed = time.monotonic() - t0
    assert res.returncode == 0, res.stdout + res.stderr
    msgs = s.messages()
    assert len(msgs) == 200
    for env, body in msgs:
        assert len(env["rcpt"]) == 3 and env["lmtp"] == [str(int(lmtp))]
    print(f"smtp-source {'LMTP' if lmtp else 'SMTP'}: 200 messages in {elapsed:.2f}s")


def test_starttls_handshake_timeout(server, cert):
    s = server("--cert", cert[0], "--key", cert[1], "--timeout", "1")
    r = raw_session(s.port)
    assert r.cmd("STARTTLS")[0] == 220
    t0 = time.monotonic()
    assert r.eof(timeout=5)  # no ClientHello: the server gives up
    assert time.monotonic() - t0 < 4
    s.stop()
    assert "TLS handshake failed from unknown[127.0.0.1]: timeout" in s.logtext()
