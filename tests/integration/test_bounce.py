"""Plaintext leak over bounces: a real Postfix in front of sealgate's
outbound (must-encrypt) listener, mail that fails in every way Postfix
turns into a bounce, and an outside sender. A random marker stands in the
Subject and the body; it must reach no sink: neither the recipient's next
hop nor the bounce to the sender, nor sealgate's log.

Topology (all 127.0.0.1, ports chosen at run time):
  client -> Postfix front smtpd -> queue -> sealgate-lmtp -> sealgate
  (submission_listen, rules `to=*@a.test pass` / `to=* e2e missing=reject`)
  -> recipient's next hop (scripts/record-sink.py: data5-* answers 554)
  Postfix's relayhost (sink_recorder.py) is the outside world: bounces to
  the outside sender land there.
The bounce settings come from etc/postfix/main.cf-bounce, which
doc/postfix.md section 12 quotes (test_doc_quotes_bounce_files)."""
import os
import re
import secrets

import pytest

import pgphelp
from gateway_harness import Sink as NextHop
from log_checks import assert_log_clean
from policy_helpers import gen_pgp, key_import
from filter_path import FilterPath
from postfix_harness import SOURCE_DIR, read_etc, wait_for

RULES = "to=*@a.test pass\nto=* e2e missing=reject\n"
OUTSIDE = "carol@outside.test"   # an outside sender: the bounce goes back out


def settings(name):
    """etc/postfix/NAME as a dict (comments dropped)."""
    out = {}
    for line in read_etc(name).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def bounce_settings(tmp, filter_port):
    """main.cf-bounce, its regexp table copied into tmp with the test's
    filter port, and main.cf-submission's bounce_size_limit (the rest of
    that file is SASL for the submission service, not used here): the
    documented lines, tested."""
    table = os.path.join(tmp, "sealgate-bounce.regexp")
    with open(table, "w") as f:
        f.write(read_etc("sealgate-bounce.regexp").replace(
            "[127.0.0.1]:10027", f"[127.0.0.1]:{filter_port}"))
    out = settings("main.cf-bounce")
    out["header_checks"] = out["header_checks"].replace("/etc/postfix/sealgate-bounce.regexp", table)
    out["bounce_size_limit"] = settings("main.cf-submission")["bounce_size_limit"]
    return out


def submission_transport():
    """The sealgate-submission transport of master.cf-submission (the
    FILTER target), as documented."""
    lines = read_etc("master.cf-submission").splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("sealgate-submission "))
    block = [lines[start]]
    for l in lines[start + 1:]:
        if not l.startswith("  -o "):
            break
        block.append(l)
    return "\n".join(block) + "\n"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """bob@b.test and data5-k@b.test have OpenPGP keys; nobody else."""
    d = str(tmp_path_factory.mktemp("keys"))
    home = os.path.join(d, "gnupg")
    os.makedirs(home, mode=0o700)
    for name, uid in (("bob", "Bob <bob@b.test>"), ("data5", "Data5 <data5-k@b.test>")):
        gen_pgp(home, d, name, uid)
    yield d
    pgphelp.kill_agent(home)


def make_path(keys, main_extra, protected):
    """Started; sealgate's outbound listener with RULES and bob's and
    data5's keys, the record-sink as its next hop."""
    def main(tmp, filter_port):
        return {**main_extra, **(bounce_settings(tmp, filter_port) if protected else {})}
    path = FilterPath(lambda tmp: NextHop(os.path.join(tmp, "nexthop-base")),
                      filter_role_listen="submission_listen",
                      filter_extra={"xforward": "no"}, main_extra=main)
    rules_path = os.path.join(path.tmp, "policy.rules")
    with open(rules_path, "w") as f:
        f.write(RULES)
    with open(path.filter.conf_path, "a") as f:
        f.write(f"policy_file = {rules_path}\n")
    for name in ("bob", "data5"):
        key_import(path.state, os.path.join(keys, name + ".pub"))
    with open(os.path.join(path.postfix.conf, "master.cf"), "a") as f:
        f.write("\n# --- etc/postfix/master.cf-submission (the transport)\n" + submission_transport())
    return path.start()


def message(marker, sender=OUTSIDE, rcpt="bob@b.test"):
    return (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: quarterly {marker}\r\n"
            f"Message-ID: <{secrets.token_hex(8)}@outside.test>\r\n"
            f"Content-Type: text/plain\r\n\r\nsecret body {marker}\r\n").encode()


def handled(path, timeout=40):
    """Wait until Postfix has made its bounce and dealt with it (sent,
    refused or dropped: its queue file removed); the maillog."""
    def done():
        log = path.postfix.maillog()
        m = re.search(r"sender non-delivery notification: (\w+)", log)
        return m and f"{m.group(1)}: removed" in log and log
    return wait_for(done, timeout, "the bounce to be handled", 0.2)


def arrived(path):
    """[(envelope recipients, bytes)] of everything at the next hop and at
    the outside world."""
    out = [(set(re.findall(r"<([^>]*)>", " ".join(env["rcpts"]))), data)
           for data, env in path.outside.messages()]
    for env, data in zip(path.next_hop.envelopes(), path.next_hop.messages()):
        rcpts = re.findall(r"<([^>]*)>", " ".join(l for l in env.splitlines() if l.startswith("RCPT ")))
        out.append((set(rcpts), data))
    return out


def leaks(path, marker, allowed=()):
    """Recipients sets of the messages holding the marker, but for those
    addressed only to allowed domains."""
    found = []
    for rcpts, data in arrived(path):
        doms = {r.rsplit("@", 1)[-1] for r in rcpts}
        if marker.encode() in data and not doms <= set(allowed):
            found.append(rcpts)
    return found


def run_case(keys, rcpt, sender=OUTSIDE, main_extra=None, protected=True, next_hop_down=False):
    """Send one message that fails; (path, marker, maillog) once the bounce
    was handled. The caller stops path."""
    path = make_path(keys, main_extra or {}, protected)
    try:
        if next_hop_down:
            path.next_hop.stop()
        marker = "LEAK-" + secrets.token_hex(8)
        path.postfix.send(message(marker, sender, rcpt), sender=sender, rcpts=(rcpt,))
        log = handled(path)
        assert_log_clean(path.filter.log(), [marker])
    except BaseException:
        print(path.logs())
        path.stop()
        raise
    return path, marker, log


EXPIRE = {"maximal_queue_lifetime": "1s", "bounce_queue_lifetime": "1s",
          "minimal_backoff_time": "1s", "maximal_backoff_time": "1s", "queue_run_delay": "1s"}
CASES = {
    # name: (recipient, main.cf for the case, next hop down)
    "no-key": ("nokey@n.test", {}, False),              # sealgate: 554 5.7.1
    "next-hop-5xx": ("data5-k@b.test", {}, False),      # sealed, next hop: 554 after DATA
    "expired": ("bob@b.test", EXPIRE, True),            # 451 4.4.1 until the queue lifetime ends
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bounce_to_outside_sender_carries_no_plaintext(keys, case):
    rcpt, extra, down = CASES[case]
    path, marker, log = run_case(keys, rcpt, main_extra=extra, next_hop_down=down)
    try:
        assert leaks(path, marker) == [], path.logs()
        # The bounce went to sealgate (header_checks FILTER) and was refused there.
        assert f"from=<> to=<{OUTSIDE}>: sealgate-submission:" in log, log
        assert f"no key for {OUTSIDE}" in path.filter.log()
        if case == "expired":
            assert "4.4.1" in log and "status=expired" in log, log
    finally:
        path.stop()


def test_postfix_default_bounce_leaks(keys):
    """The control: without main.cf-bounce Postfix returns the plaintext to
    the outside sender, and leaks() sees it."""
    path, marker, log = run_case(keys, "nokey@n.test", protected=False)
    try:
        assert leaks(path, marker), "Postfix's default bounce did not quote the message"
    finally:
        path.stop()


def test_bounce_sealed_for_sender_with_key(keys):
    """An outside sender with a key gets the bounce, sealed."""
    path, marker, log = run_case(keys, "nokey@n.test", sender="bob@b.test")
    try:
        assert leaks(path, marker) == [], path.logs()
        got = [d for r, d in arrived(path) if r == {"bob@b.test"}]
        assert len(got) == 1 and b"-----BEGIN PGP MESSAGE-----" in got[0], path.logs()
    finally:
        path.stop()


def test_bounce_to_internal_sender_may_quote(keys):
    """An internal sender (rule `to=*@a.test pass`) gets its own headers
    back; the marker reaches nobody else."""
    path, marker, log = run_case(keys, "nokey@n.test", sender="alice@a.test")
    try:
        assert leaks(path, marker, allowed=("a.test",)) == [], path.logs()
        got = [d for r, d in arrived(path) if r == {"alice@a.test"}]
        assert len(got) == 1, path.logs()
        # bounce_size_limit: the headers come back (the Subject with the
        # marker), the body does not.
        assert b"text/rfc822-headers" in got[0] and marker.encode() in got[0], got[0]
        assert b"secret body" not in got[0], got[0]
    finally:
        path.stop()


@pytest.mark.parametrize("name", ["main.cf-bounce", "sealgate-bounce.regexp"])
def test_doc_quotes_bounce_files(name):
    """doc/postfix.md section 12 quotes the files this test uses, unchanged."""
    with open(os.path.join(SOURCE_DIR, "doc", "postfix.md")) as f:
        doc = f.read()
    assert "```\n" + read_etc(name) + "```" in doc, f"doc/postfix.md does not quote etc/postfix/{name}"
