"""sealgate as a real Postfix's content filter (SMTP and LMTP variants):
messages arrive byte-identical, the queue IDs line up in the logs, and a
filter or next hop that is down leaves the message queued in Postfix.
(The 50 MiB message is in test_postfix_big.py, so that ctest runs it in
parallel with these.)"""
import re
import threading

import pytest

from postfix_harness import (MailPath, header_fields, make_message, queued_as,
                             split_message, wait_for)

PROTOS = ["lmtp", "smtp"]


@pytest.fixture(scope="module", params=PROTOS)
def path(request):
    """One running path per variant, shared by the tests that leave it as
    they found it; each of them finds its messages by Message-ID."""
    mp = MailPath(request.param)
    try:
        mp.start()
    except Exception:
        try:
            mp.stop(keep=True)
        except Exception:
            pass  # the start failure is the one to report
        raise
    yield mp
    mp.stop(keep=request.session.testsfailed > 0)


@pytest.fixture(params=PROTOS)
def fresh_path(request):
    """A path of its own, for tests that take parts of it down."""
    mp = MailPath(request.param)
    yield mp
    mp.stop(keep=request.session.testsfailed > 0)


def at_sink(mp, msgid, timeout=30):
    """Every copy of <msgid> at the sink, once there is one."""
    def find():
        return [mp.sink.message(f) for f, i in mp.sink.msgids().items() if i == msgid]
    return wait_for(find, timeout, f"<{msgid}> at the sink\n{mp.logs()}")


def check_same_message(sent, got):
    """Body byte-identical; header fields identical, in order, with their
    folding, apart from Received: fields that Postfix (and sealgate) added
    on top."""
    sent_head, sent_body = split_message(sent)
    got_head, got_body = split_message(got)
    assert got_body == sent_body
    sent_fields, got_fields = header_fields(sent_head), header_fields(got_head)
    added = got_fields[:len(got_fields) - len(sent_fields)]
    assert got_fields[len(added):] == sent_fields
    assert added and all(f.lower().startswith(b"received:") for f in added), added


# A header block that a careless filter would change: folded fields with
# tabs and spaces, a long unfolded field, odd spacing, a duplicate field,
# an encoded word; a body with dot lines (transparency, RFC 5321 4.5.2),
# a "From " line, trailing white space and a line without CRLF at the end.
TRICKY_HEADERS = (b"X-Folded: first part\r\n\tsecond part after a tab\r\n   third after spaces\r\n"
                  b"X-Long: " + b"x" * 900 + b"\r\n"
                  b"X-Spacing:no-space-after-colon\r\n"
                  b"X-Dup: one\r\nX-Dup: two\r\n"
                  b"X-Encoded: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n")
TRICKY_BODY = (b".\r\n..two dots\r\n.leading dot\r\nFrom the start of a line\r\n"
               b"trailing spaces   \r\n\r\n\r\nlast line\r\n")


def test_pass_through(path):
    msg = make_message(f"pass-{path.proto}@x.test", extra_headers=TRICKY_HEADERS, body=TRICKY_BODY)
    up = queued_as(path.postfix.send(msg))
    (got, env), = at_sink(path, f"pass-{path.proto}@x.test")
    check_same_message(msg, got)
    assert env["from"].startswith("<alice@x.test>") and env["rcpts"] == ["<bob@y.test>"]

    # The reinjection listener took it with XFORWARD: its log names the
    # upstream queue ID and the original client (127.0.0.2, not the
    # filter's 127.0.0.1).
    log = path.postfix.maillog()
    m = re.search(r"postfix/reinject/smtpd\[\d+\]: (\w+): client=\S+\[127\.0\.0\.1\], "
                  rf"orig_queue_id={up}, orig_client=\S+\[127\.0\.0\.2\]", log)
    assert m, log
    down = m.group(1)

    # The filter's log ties its own queue ID to both Postfix queue IDs.
    flog = path.filter.log()
    ids_up = set(re.findall(rf"\]: (\w+): .*\b{up}\b", flog))
    ids_down = set(re.findall(rf"\]: (\w+): .*\b{down}\b", flog))
    ours = (ids_up & ids_down) - {up, down}
    assert ours, f"no filter queue ID linked to {up} and {down} in:\n{flog}"

    # Postfix handed the message to the filter over the configured protocol.
    transport = "lmtp" if path.proto == "lmtp" else "smtp"
    assert re.search(rf"postfix/{transport}\[\d+\]: {up}: to=<bob@y.test>, "
                     rf"relay=127\.0\.0\.1\[127\.0\.0\.1\]:{path.filter_port}, .*status=sent", log), log


def test_8bit_body(path):
    body = ("Grüße aus Köln – ½ € ✓\r\n").encode() + bytes(range(0x80, 0x100)) + b"\r\nend\r\n"
    msg = make_message(f"8bit-{path.proto}@x.test", body=body,
                       extra_headers=b"MIME-Version: 1.0\r\n"
                                     b"Content-Type: text/plain; charset=utf-8\r\n"
                                     b"Content-Transfer-Encoding: 8bit\r\n")
    path.postfix.send(msg)
    (got, env), = at_sink(path, f"8bit-{path.proto}@x.test")
    check_same_message(msg, got)
    # BODY=8BITMIME survived both hops (no MIME conversion on the way).
    assert "BODY=8BITMIME" in env["from"].upper()


def test_20_in_parallel(path):
    ids = [f"par{i}-{path.proto}@x.test" for i in range(20)]
    msgs = {i: make_message(i, body=f"message {i}\r\n".encode() * 100) for i in ids}
    errors = []

    def send(i):
        try:
            path.postfix.send(msgs[i])
        except Exception as e:  # reported below
            errors.append((i, e))
    threads = [threading.Thread(target=send, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for i in ids:
        (got, _), = at_sink(path, i)
        check_same_message(msgs[i], got)


def deferred_with(mp, msgid_up, pattern, timeout=30):
    """Wait until postqueue shows the message deferred with a reason
    matching pattern; the queue entry."""
    def find():
        for e in mp.postfix.queue():
            if e["queue_id"] == msgid_up and e["queue_name"] == "deferred":
                if all(re.search(pattern, r.get("delay_reason", "")) for r in e["recipients"]):
                    return e
        return None
    return wait_for(find, timeout, f"{msgid_up} deferred with /{pattern}/\n{mp.logs()}", 0.2)


def test_outages_keep_mail_queued(fresh_path):
    """The filter down, then its next hop down: through both outages the
    message waits in Postfix's queue (deferred, with the reason), nothing
    reaches the sink; once both are back a flush delivers it, once."""
    mp = fresh_path
    mp.start(with_filter=False)
    msg = make_message(f"outage-{mp.proto}@x.test")
    up = queued_as(mp.postfix.send(msg))
    e = deferred_with(mp, up, r"connect to 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: Connection refused")
    print(f"filter down: {e['recipients'][0]['delay_reason']}")
    assert mp.sink.files() == []

    mp.postfix.reinject_down()
    mp.filter.start()
    mp.postfix.flush()
    e = deferred_with(mp, up, r"\b4\.4\.1\b.*end of DATA")
    print(f"next hop down: {e['recipients'][0]['delay_reason']}")
    assert "\n" + up in "\n" + mp.postfix.queue_listing()
    assert mp.sink.files() == []

    mp.postfix.reinject_up()
    mp.postfix.flush_until_empty(30)
    (got, _), = at_sink(mp, f"outage-{mp.proto}@x.test")
    check_same_message(msg, got)
    assert mp.filter.stop() == 0  # SIGTERM: a clean exit
