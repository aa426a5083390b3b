"""relay/ against a scripted recording next hop (relay_peer.py), Postfix's
smtp-sink and an LMTP peer, through the relay-send driver: byte-exact
delivery with dot-stuffing, PIPELINING, parameter filtering, connection
reuse and retry, every failure mode's reply, cancel."""
import os
import pathlib
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import free_port, wait_port
from relay_peer import Peer, unstuff

SOURCE_DIR = os.environ.get("SEALGATE_SOURCE_DIR",
                            os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
RELAY_SEND = os.environ.get("RELAY_SEND", os.path.join(SOURCE_DIR, "build", "tests", "relay-send"))

SANITIZED = os.path.exists(RELAY_SEND) and b"__asan_init" in open(RELAY_SEND, "rb").read()

MSG = (b"From: bob@a.test\r\nTo: alice@b.test\r\nSubject: dots\r\n\r\n"
       b".leading dot\r\n.\r\n..two\r\nmiddle . dot\r\n\r\n.\r\nlast line\r\n")


class Result:
    def __init__(self, proc):
        self.proc = proc
        self.out = proc.stdout
        self.replies = {}    # id -> [(addr, code, text)]
        self.queued_as = {}
        self.detail = {}
        self.cancelled = None
        for line in proc.stdout.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "reply":
                rid, addr, code, text = (rest.split(" ", 3) + [""])[:4]
                self.replies.setdefault(int(rid), []).append((addr, int(code), text))
            elif kind == "queued_as":
                rid, q = rest.split(" ", 1)
                self.queued_as[int(rid)] = None if q == "-" else q
            elif kind == "detail":
                rid, d = rest.split(" ", 1)
                self.detail[int(rid)] = d
            elif kind == "cancelled":
                self.cancelled = int(rest)

    def codes(self, rid=0):
        return [c for _, c, _ in self.replies[rid]]


@pytest.fixture
def relay_send():
    assert os.access(RELAY_SEND, os.X_OK), f"relay-send not built: {RELAY_SEND}"
    return RELAY_SEND


@pytest.fixture
def peer():
    p = Peer()
    yield p
    p.stop()


@pytest.fixture
def msgfile(tmp_path):
    def make(data, name="msg"):
        f = tmp_path / name
        f.write_bytes(data)
        return str(f)
    return make


def send(relay_send, hostport, msg, *extra, rcpts=("alice@b.test",), timeout=60):
    args = [relay_send, "-v", "-f", "bob@a.test"]
    for r in rcpts:
        args += ["-t", r]
    args += list(extra) + [hostport, msg]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return Result(proc)


# ---- delivery ----

def test_byte_exact_with_dot_stuffing(relay_send, peer, msgfile, tmp_path):
    prepend = b"Received: from x by y; Wed, 25 Nov 2026 00:00:00 +0000\r\n"
    (tmp_path / "pre").write_bytes(prepend)
    r = send(relay_send, peer.hostport, msgfile(MSG), "-p", str(tmp_path / "pre"),
             rcpts=("alice@b.test", "carol@b.test"))
    assert r.codes() == [250, 250]
    assert r.replies[0][0][2].startswith("2.0.0 Ok: queued as Q0001X")
    assert r.queued_as[0] == "Q0001X"
    assert r.detail[0].startswith(peer.hostport + ": ")
    conn = peer.conns[0]
    raw = conn.messages[0]
    # On the wire every line starting with "." got one more.
    assert b"\r\n..leading dot\r\n..\r\n...two\r\n" in raw
    assert unstuff(raw) == prepend + MSG
    assert "MAIL FROM:<bob@a.test> SIZE=%d BODY" not in conn.commands
    assert conn.commands[0] == "EHLO relay-send.test"


def test_missing_final_crlf_is_added(relay_send, peer, msgfile):
    r = send(relay_send, peer.hostport, msgfile(b"Subject: x\r\n\r\nno newline at end"))
    assert r.codes() == [250]
    assert peer.conns[0].messages[0] == b"Subject: x\r\n\r\nno newline at end\r\n"


def test_empty_message(relay_send, peer, msgfile):
    r = send(relay_send, peer.hostport, msgfile(b""))
    assert r.codes() == [250]
    assert peer.conns[0].messages[0] == b""


def test_pipelining_one_packet(relay_send, peer, msgfile):
    r = send(relay_send, peer.hostport, msgfile(MSG),
             rcpts=("alice@b.test", "carol@b.test", "dave@b.test"))
    assert r.codes() == [250, 250, 250]
    c = peer.conns[0]
    i = c.commands.index("MAIL FROM:<bob@a.test> SIZE=%d" % len(MSG))
    group = c.commands[i:i + 5]
    assert [g.split(":")[0] for g in group] == ["MAIL FROM", "RCPT TO", "RCPT TO", "RCPT TO", "DATA"]
    # RFC 2920: all five arrived in the same recv().
    assert len(set(c.batches[i:i + 5])) == 1, c.batches


def test_no_pipelining_lockstep(relay_send, msgfile):
    p = Peer(caps=["8BITMIME", "SIZE 1000000"])
    p.lockstep_check = True
    try:
        r = send(relay_send, p.hostport, msgfile(MSG), rcpts=("alice@b.test", "carol@b.test"))
        assert r.codes() == [250, 250]
        c = p.conns[0]
        assert c.early == [], "commands sent before the previous reply: %r" % c.early
        assert len(set(c.batches)) == len(c.batches)
        assert unstuff(c.messages[0]) == MSG
    finally:
        p.stop()


# ---- parameters ----

def test_mail_params_filtered(relay_send, msgfile):
    params = "BODY=8BITMIME SIZE=1 RET=HDRS ENVID=e1 AUTH=<> FOO=bar"
    bare = Peer(caps=["PIPELINING"])
    full = Peer(caps=["PIPELINING", "SIZE 1000000", "8BITMIME", "DSN"])
    try:
        rc = "alice@b.test NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@b.test XX=1"
        send(relay_send, bare.hostport, msgfile(MSG), "-P", params, rcpts=(rc,))
        send(relay_send, full.hostport, msgfile(MSG), "-P", params, rcpts=(rc,))
        assert "MAIL FROM:<bob@a.test>" in bare.conns[0].commands
        assert "RCPT TO:<alice@b.test>" in bare.conns[0].commands
        assert ("MAIL FROM:<bob@a.test> SIZE=%d BODY=8BITMIME RET=HDRS ENVID=e1" % len(MSG)
                in full.conns[0].commands), full.conns[0].commands
        assert ("RCPT TO:<alice@b.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@b.test"
                in full.conns[0].commands)
    finally:
        bare.stop()
        full.stop()


def test_smtputf8_needed_but_not_offered(relay_send, peer, msgfile):
    r = send(relay_send, peer.hostport, msgfile(MSG), "-u", rcpts=("a@b.test", "c@b.test"))
    assert r.codes() == [550, 550]
    assert r.replies[0][0][2].startswith("5.6.7 ")
    assert not any(c.startswith("MAIL") for c in peer.conns[0].commands)


def test_smtputf8_offered(relay_send, msgfile):
    p = Peer(caps=["PIPELINING", "SMTPUTF8"])
    try:
        r = send(relay_send, p.hostport, msgfile(MSG), "-u")
        assert r.codes() == [250]
        assert "MAIL FROM:<bob@a.test> SMTPUTF8" in p.conns[0].commands
    finally:
        p.stop()


def test_xforward(relay_send, msgfile):
    p = Peer(caps=["PIPELINING", "XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE"])
    try:
        send(relay_send, p.hostport, msgfile(MSG), "-x", "-X", "NAME=mail.client.test",
             "-X", "ADDR=192.0.2.7", "-X", "HELO=odd helo+x", "-a", "127.0.0.9")
        send(relay_send, p.hostport, msgfile(MSG), "-x", "-a", "198.51.100.2", "-A", "2525",
             "-H", "helo.test", "-q", "ABCDEF")
        send(relay_send, p.hostport, msgfile(MSG), "-a", "198.51.100.2")  # xforward off
        xf = [[c for c in conn.commands if c.startswith("XFORWARD")] for conn in p.conns]
        assert xf[0] == ["XFORWARD NAME=mail.client.test ADDR=192.0.2.7 PORT=[UNAVAILABLE] "
                         "PROTO=[UNAVAILABLE] HELO=odd+20helo+2Bx IDENT=[UNAVAILABLE] "
                         "SOURCE=[UNAVAILABLE]"]
        assert xf[1] == ["XFORWARD NAME=[UNAVAILABLE] ADDR=198.51.100.2 PORT=2525 PROTO=ESMTP "
                         "HELO=helo.test IDENT=ABCDEF SOURCE=[UNAVAILABLE]"]
        assert xf[2] == []
        # XFORWARD goes before MAIL.
        cmds = p.conns[0].commands
        assert cmds.index(xf[0][0]) < [i for i, c in enumerate(cmds) if c.startswith("MAIL")][0]
    finally:
        p.stop()


def test_size_limit_of_next_hop(relay_send, msgfile):
    p = Peer(caps=["PIPELINING", "SIZE %d" % (len(MSG) - 1)])
    try:
        r = send(relay_send, p.hostport, msgfile(MSG))
        assert r.codes() == [552]
        assert r.replies[0][0][2].startswith("5.3.4 ")
        assert not any(c.startswith("MAIL") for c in p.conns[0].commands)
    finally:
        p.stop()


def test_helo_fallback(relay_send, peer, msgfile):
    peer.reply = lambda v, a, ci, ti: "502 5.5.2 Error: command not recognized" if v == "EHLO" else None
    r = send(relay_send, peer.hostport, msgfile(MSG))
    assert r.codes() == [250]
    cmds = peer.conns[0].commands
    assert cmds[:3] == ["EHLO relay-send.test", "HELO relay-send.test", "MAIL FROM:<bob@a.test>"]
    assert unstuff(peer.conns[0].messages[0]) == MSG


def test_xforward_without_pipelining_lockstep(relay_send, msgfile):
    p = Peer(caps=["XFORWARD NAME ADDR"])
    p.lockstep_check = True
    try:
        r = send(relay_send, p.hostport, msgfile(MSG), "-x", "-a", "192.0.2.1")
        assert r.codes() == [250]
        c = p.conns[0]
        assert c.commands[1] == "XFORWARD NAME=[UNAVAILABLE] ADDR=192.0.2.1"
        assert c.commands[2].startswith("MAIL FROM:")
        assert c.early == []
    finally:
        p.stop()


# ---- per-recipient outcomes ----

def test_recipients_mixed(relay_send, peer, msgfile):
    peer.rcpt_reply = lambda a: "550 5.1.1 <%s>: unknown" % a if a.startswith("x") else "250 2.1.5 Ok"
    r = send(relay_send, peer.hostport, msgfile(MSG),
             rcpts=("a@b.test", "x@b.test", "c@b.test"))
    assert r.codes() == [250, 550, 250]
    assert r.replies[0][1][2] == "5.1.1 <x@b.test>: unknown"
    assert r.replies[0][0][2].startswith("2.0.0 Ok: queued as")


@pytest.mark.parametrize("pipelining", [True, False])
def test_no_recipient_accepted_rset(relay_send, msgfile, pipelining):
    p = Peer(caps=["PIPELINING"] if pipelining else [])
    p.rcpt_reply = lambda a: "450 4.2.0 <%s>: greylisted" % a
    try:
        r = send(relay_send, p.hostport, msgfile(MSG), rcpts=("a@b.test", "c@b.test"))
        assert p.wait_closed(1)
        assert r.codes() == [450, 450]
        assert r.replies[0][1][2] == "4.2.0 <c@b.test>: greylisted"
        cmds = p.conns[0].commands
        assert "RSET" in cmds
        assert p.conns[0].messages == []
        assert ("DATA" in cmds) == pipelining
    finally:
        p.stop()


@pytest.mark.parametrize("pipelining", [True, False])
def test_mail_rejected_relayed(relay_send, msgfile, pipelining):
    p = Peer(caps=["PIPELINING"] if pipelining else [])
    p.reply = lambda v, a, ci, ti: "452 4.3.1 Insufficient system storage" if v == "MAIL FROM" else None
    try:
        r = send(relay_send, p.hostport, msgfile(MSG), rcpts=("a@b.test", "c@b.test"))
        assert r.codes() == [452, 452]
        assert r.replies[0][0][2] == "4.3.1 Insufficient system storage"
        assert p.conns[0].messages == []
    finally:
        p.stop()


def test_reply_without_enhanced_code_verbatim(relay_send, msgfile):
    p = Peer(caps=[])
    p.reply = lambda v, a, ci, ti: "550 Sender address rejected" if v == "MAIL FROM" else None
    try:
        r = send(relay_send, p.hostport, msgfile(MSG))
        assert r.replies[0] == [("alice@b.test", 550, "Sender address rejected")]
    finally:
        p.stop()


def test_data_rejected_relayed(relay_send, peer, msgfile):
    peer.reply = lambda v, a, ci, ti: "554 5.7.1 no DATA for you" if v == "DATA" else None
    r = send(relay_send, peer.hostport, msgfile(MSG), rcpts=("a@b.test", "c@b.test"))
    assert r.codes() == [554, 554]
    assert r.replies[0][1][2] == "5.7.1 no DATA for you"


def test_final_reply_rejected_relayed(relay_send, peer, msgfile):
    peer.dot_replies = lambda acc: ["550-5.7.1 content rejected\n550 5.7.1 see policy"]
    r = send(relay_send, peer.hostport, msgfile(MSG), rcpts=("a@b.test", "c@b.test"))
    assert r.codes() == [550, 550]
    assert r.replies[0][0][2] == r"5.7.1 content rejected\n5.7.1 see policy"
    assert r.queued_as[0] is None


# ---- failures ----

def test_connect_refused(relay_send, msgfile):
    port = free_port()
    r = send(relay_send, f"127.0.0.1:{port}", msgfile(MSG), rcpts=("a@b.test", "c@b.test"))
    assert r.codes() == [451, 451]
    assert re.match(r"4\.4\.1 next hop 127\.0\.0\.1:%d unreachable: .*refused" % port,
                    r.replies[0][0][2], re.I), r.replies


def test_host_name_resolved(relay_send, peer, msgfile):
    r = send(relay_send, "localhost:%d" % peer.port, msgfile(MSG))
    assert r.codes() == [250]
    assert r.detail[0].startswith("localhost:%d: " % peer.port)


def test_dns_failure(relay_send, msgfile):
    r = send(relay_send, "nonexistent.invalid:25", msgfile(MSG))
    assert r.codes() == [451]
    assert r.replies[0][0][2].startswith("4.4.1 next hop nonexistent.invalid:25 unreachable: ")


def test_connect_timeout(relay_send, msgfile):
    # A listener whose accept queue is full: further SYNs go unanswered.
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))
    try:
        t0 = time.monotonic()
        r = send(relay_send, f"127.0.0.1:{port}", msgfile(MSG), "-C", "1")
        assert time.monotonic() - t0 < 5
        assert r.codes() == [451]
        assert r.replies[0][0][2] == f"4.4.1 next hop 127.0.0.1:{port} unreachable: connect timeout"
    finally:
        filler.close()
        lsock.close()


@pytest.mark.parametrize("greeting,code,text", [
    ("554 5.3.2 no service here", 554, "5.3.2 no service here"),
    ("421 4.3.2 shutting down", 421, "4.3.2 shutting down"),
])
def test_greeting_not_220(relay_send, peer, msgfile, greeting, code, text):
    peer.greeting = greeting
    r = send(relay_send, peer.hostport, msgfile(MSG))
    assert r.codes() == [code]
    assert r.replies[0][0][2] == text


@pytest.mark.parametrize("greeting", ["RAW:", "RAW:hello there\r\n"])
def test_no_usable_greeting(relay_send, peer, msgfile, greeting):
    peer.greeting = greeting  # closes at once, or garbage then closes
    r = send(relay_send, peer.hostport, msgfile(MSG))
    assert r.codes() == [451]
    assert r.replies[0][0][2].startswith("4.4.1 next hop %s unreachable: " % peer.hostport)


def test_command_timeout(relay_send, peer, msgfile):
    peer.stall_on = "MAIL FROM"
    t0 = time.monotonic()
    r = send(relay_send, peer.hostport, msgfile(MSG), "-T", "1")
    assert time.monotonic() - t0 < 5
    assert r.codes() == [451]
    assert r.replies[0][0][2] == ("4.4.2 timeout from next hop %s waiting for reply to MAIL FROM"
                                  % peer.hostport)


def test_data_done_timeout(relay_send, peer, msgfile):
    peer.stall_on = "DOT"
    r = send(relay_send, peer.hostport, msgfile(MSG), "-T", "5", "-D", "1")
    assert r.codes() == [451]
    assert r.replies[0][0][2].startswith("4.4.2 timeout from next hop")
    assert "end of DATA" in r.replies[0][0][2]


def test_write_stall_mid_data_times_out(relay_send, peer, msgfile):
    # The next hop stops reading after 354: the write side times out.
    peer.slow_data = 6
    big = b"Subject: big\r\n\r\n" + (b"w" * 998 + b"\r\n") * 16000
    t0 = time.monotonic()
    r = send(relay_send, peer.hostport, msgfile(big), "-T", "1", "-D", "30")
    assert time.monotonic() - t0 < 5
    assert r.codes() == [451]
    assert r.replies[0][0][2] == ("4.4.2 timeout from next hop %s while sending the message"
                                  % peer.hostport)


def test_lost_mid_data(relay_send, peer, msgfile):
    peer.drop_in_data = 1000
    big = b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n"
    r = send(relay_send, peer.hostport, msgfile(big * 20000))
    assert r.codes() == [451]
    assert r.replies[0][0][2].startswith("4.4.2 connection to next hop %s lost" % peer.hostport)


def test_lost_before_final_reply(relay_send, peer, msgfile):
    # The next hop has all of it but closes without answering: never "sent".
    peer.drop_on = "DOT"
    r = send(relay_send, peer.hostport, msgfile(MSG), rcpts=("a@b.test", "c@b.test"))
    assert len(peer.conns[0].messages) == 1
    assert r.codes() == [451, 451]
    assert "before reply to end of DATA" in r.replies[0][0][2]


# ---- connection reuse, parallelism, cancel ----

def test_reuse_one_connection(relay_send, peer, msgfile):
    r = send(relay_send, peer.hostport, msgfile(MSG), "-r", "2")
    assert r.codes(0) == [250] and r.codes(1) == [250]
    assert r.queued_as[0] != r.queued_as[1]
    assert len(peer.conns) == 1
    c = peer.conns[0]
    assert [x for x in c.commands if x.startswith("EHLO")] == ["EHLO relay-send.test"]
    assert len(c.messages) == 2
    assert all(unstuff(m) == MSG for m in c.messages)
    assert "debug: relay %s: reusing connection" % peer.hostport in r.proc.stderr


def test_reuse_dead_connection_retried(relay_send, peer, msgfile):
    # The pooled connection answers the next MAIL with 421: the request is
    # retried once on a fresh connection.
    peer.reply = lambda v, a, ci, ti: "421 4.3.2 closing" if (v == "MAIL FROM" and ci == 0 and ti == 1) else None
    r = send(relay_send, peer.hostport, msgfile(MSG), "-r", "2")
    assert r.codes(0) == [250] and r.codes(1) == [250]
    assert len(peer.conns) == 2
    assert len(peer.conns[0].messages) == 1 and len(peer.conns[1].messages) == 1


def test_reuse_closed_before_mail_reply_retried(relay_send, peer, msgfile):
    # The pooled connection is closed when MAIL arrives: retried once.
    peer.reply = lambda v, a, ci, ti: "DROP" if (v == "MAIL FROM" and ci == 0 and ti == 1) else None
    r = send(relay_send, peer.hostport, msgfile(MSG), "-r", "2")
    assert r.codes(0) == [250] and r.codes(1) == [250]
    assert len(peer.conns) == 2
    assert "retrying on a new one" in r.proc.stderr


def test_retry_only_once(relay_send, peer, msgfile):
    # Pooled connection dies, and so does the fresh one: no second retry.
    peer.reply = lambda v, a, ci, ti: "DROP" if (v == "MAIL FROM" and (ci, ti) in ((0, 1), (1, 0))) else None
    r = send(relay_send, peer.hostport, msgfile(MSG), "-r", "2")
    assert r.codes(0) == [250]
    assert r.codes(1) == [451]
    assert r.replies[1][0][2].startswith("4.4.2 connection to next hop")
    assert len(peer.conns) == 2


def test_reuse_dead_after_data_not_retried(relay_send, peer, msgfile):
    # Once the end of DATA went out, a lost connection is never retried.
    peer.drop_on = "DOT"
    r = send(relay_send, peer.hostport, msgfile(MSG), "-r", "2")
    assert r.codes(0) == [451] and r.codes(1) == [451]
    assert len(peer.conns) == 2  # one per request, none retried
    assert all(len(c.messages) == 1 for c in peer.conns)


def test_parallel_requests_use_several_connections(relay_send, peer, msgfile):
    r = send(relay_send, peer.hostport, msgfile(MSG), "-n", "3")
    assert sorted(r.replies) == [0, 1, 2]
    assert all(r.codes(i) == [250] for i in range(3))
    assert len(peer.conns) == 3
    assert len({r.queued_as[i] for i in range(3)}) == 3


def test_parallel_and_reuse(relay_send, peer, msgfile):
    r = send(relay_send, peer.hostport, msgfile(MSG), "-n", "2", "-r", "3")
    assert sorted(r.replies) == list(range(6))
    assert all(r.codes(i) == [250] for i in range(6))
    assert len(peer.conns) == 2
    assert sum(len(c.messages) for c in peer.conns) == 6


def test_free_from_callback(relay_send, peer, msgfile):
    # sg_relay_free() inside the done callback, with another connection
    # pooled: no use after free (the ASan build checks), QUIT sent.
    r = send(relay_send, peer.hostport, msgfile(MSG), "-n", "2", "-F")
    assert r.codes(0) == [250] and r.codes(1) == [250]
    assert peer.wait_closed(2)
    assert all(c.commands[-1] == "QUIT" for c in peer.conns)


def test_idle_pool_bounded_and_quit(relay_send, peer, msgfile):
    # max_idle 1: of three parallel connections two QUIT after their
    # transaction; the pooled one QUITs at exit.
    send(relay_send, peer.hostport, msgfile(MSG), "-n", "3", "-i", "1")
    assert peer.wait_closed(3)
    assert sum("QUIT" in c.commands for c in peer.conns) == 3


def test_idle_timeout_quits(relay_send, peer, msgfile):
    # The pooled connection is closed with QUIT after idle_timeout_s, while
    # the driver's loop still runs (-w): not by sg_relay_free at exit.
    t0 = time.monotonic()
    r = send(relay_send, peer.hostport, msgfile(MSG), "-I", "1", "-w", "3")
    assert r.codes() == [250]
    assert "idle timeout" in r.proc.stderr
    assert peer.conns[0].commands[-1] == "QUIT"
    assert time.monotonic() - t0 >= 3


def test_cancel_never_completes_data(relay_send, peer, msgfile):
    peer.slow_data = 1.5  # the socket fills up, the client is mid-DATA
    big = (b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 16000)
    r = send(relay_send, peer.hostport, msgfile(big), "-c", "500")
    assert r.cancelled == 1
    assert r.replies == {}
    assert peer.wait_closed(1, timeout=10)
    c = peer.conns[0]
    assert "DATA" in c.commands
    assert c.messages == [], "the next hop got a complete message"
    assert c.incomplete is not None and len(c.incomplete) < len(big)


# ---- LMTP ----

def test_lmtp_per_recipient_replies(relay_send, msgfile):
    p = Peer(caps=["PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME"], lmtp=True)
    p.rcpt_reply = lambda a: "550 5.1.1 no such user" if a.startswith("x") else "250 2.1.5 Ok"
    p.dot_replies = lambda acc: ["250 2.0.0 <%s> QID%s Saved" % (a, a[0]) if a != "c@b.test"
                                 else "452 4.2.2 <c@b.test> mailbox full" for a in acc]
    try:
        r = send(relay_send, p.hostport, msgfile(MSG), "-l",
                 rcpts=("a@b.test", "x@b.test", "c@b.test", "d@b.test"))
        assert r.codes() == [250, 550, 452, 250]
        assert r.replies[0][2][2] == "4.2.2 <c@b.test> mailbox full"
        assert r.queued_as[0] == "QIDa"
        assert p.conns[0].commands[0] == "LHLO relay-send.test"
    finally:
        p.stop()


def test_lmtp_lost_after_first_reply(relay_send, msgfile):
    p = Peer(caps=["PIPELINING"], lmtp=True)
    # Only one of two per-recipient replies, then the connection ends.
    p.dot_replies = lambda acc: ["250 2.0.0 <a@b.test> Q1 Saved", "421 4.3.0 bye"][:1]
    p.drop_on = None
    try:
        proc_args = ("-l", "-D", "1")
        r = send(relay_send, p.hostport, msgfile(MSG), *proc_args, rcpts=("a@b.test", "c@b.test"))
        assert r.codes() == [250, 451]
        assert r.replies[0][1][2].startswith("4.4.2 timeout from next hop")
    finally:
        p.stop()


# ---- real peers: Postfix smtp-sink ----

@pytest.fixture
def smtp_sink():
    # smtp-sink drops to nobody: its dump dir must be reachable, and
    # pytest's tmp_path sits under a 0700 directory.
    top = pathlib.Path(tempfile.mkdtemp(prefix="relay-sink."))
    top.chmod(0o755)
    dump = top / "dump"
    dump.mkdir()
    dump.chmod(0o1777)
    port = free_port()
    log = open(top / "sink.log", "wb")
    proc = subprocess.Popen(["smtp-sink", "-u", "nobody", "-d", f"{dump}/%M.",
                             f"127.0.0.1:{port}", "10"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc=proc)
        yield f"127.0.0.1:{port}", dump
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        shutil.rmtree(top, ignore_errors=True)


def sink_content(d):
    """smtp-sink -d stores LF line ends and one extra empty line at the end."""
    assert d.endswith(b"\n\n")
    return d[:-1].replace(b"\n", b"\r\n")


def dumped(dump, n, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(dump.iterdir())
        if len(files) >= n:
            return [f.read_bytes() for f in files]
        time.sleep(0.05)
    raise AssertionError("smtp-sink dumped %d files" % len(list(dump.iterdir())))


def test_smtp_sink_reuse_and_content(relay_send, smtp_sink, msgfile):
    hostport, dump = smtp_sink
    r = send(relay_send, hostport, msgfile(MSG), "-r", "2", rcpts=("a@b.test", "c@b.test"))
    assert r.codes(0) == [250, 250] and r.codes(1) == [250, 250]
    assert r.proc.stderr.count(": connected") == 1
    for d in dumped(dump, 2):
        # smtp-sink prepends its own X-*/Received lines; the rest is ours.
        assert sink_content(d).endswith(b"\r\n" + MSG), d[-200:]


def test_smtp_sink_50mib(relay_send, smtp_sink, tmp_path):
    hostport, dump = smtp_sink
    line = b"." + b"z" * 76 + b"\r\n"          # every line needs stuffing
    mib = 16 if SANITIZED else 50  # ASan is ~10x slower; the normal build does 50
    body = b"Subject: big\r\n\r\n" + line * (mib * 1024 * 1024 // len(line))
    path = tmp_path / "big"
    path.write_bytes(body)
    t0 = time.monotonic()
    rss = tmp_path / "rss"
    proc = subprocess.run(["/usr/bin/time", "-o", str(rss), "-f", "%M", relay_send,
                           "-f", "bob@a.test", "-t", "alice@b.test", hostport, str(path)],
                          capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    r = Result(proc)
    assert r.codes() == [250], r.out
    d = dumped(dump, 1)[0]
    tail = body[len(b"Subject: big\r\n\r\n"):]
    assert sink_content(d).endswith(b"\r\n\r\n" + tail)
    # The message is mapped once from the spool file; queued to the
    # socket by reference. One more full copy would add another 50 MiB.
    max_rss_kib = int(rss.read_text().split()[-1])
    print(f"{mib} MiB via smtp-sink: {elapsed:.2f} s, max RSS {max_rss_kib / 1024:.1f} MiB")
    if not SANITIZED:  # ASan's shadow memory and quarantine dwarf the figure
        assert max_rss_kib < 85 * 1024
