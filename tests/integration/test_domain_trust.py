"""Trust in peer domains and changes of our own domain set ([domain],
doc/domain.md): b trusts a.test only by its configured fingerprint and
opens a's mail; c is configured with another fingerprint for a.test and
refuses the same kind of mail with 5.7.8; `domain status` lists the
peers with how and since when they are trusted. Then a's domain_names
changes: serve and rotate refuse with a message naming `domain rekey`;
after the rekey a publishes a new signing key, b (still configured with
the old fingerprint) refuses a's mail, and once b's domain_peers names
the new fingerprint, a's mail opens again."""
import os
import re

import pytest

from domain_helpers import DAY, RULES, Instance, allow_for
from policy_helpers import MARKER, message

T0 = 1_900_000_000 // DAY * DAY + 3600
WRONG = "AB" * 32  # a fingerprint that is no one's


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("domtrust"))
    a = Instance(tmp, "a", "a.test")
    b = Instance(tmp, "b", "b.test")
    c = Instance(tmp, "c", "c.test")
    for i in (a, b, c):
        i.now = T0
        i.write_conf()
        i.cli("init")
    a.allow = allow_for([b, c])
    b.allow = c.allow = allow_for([a])
    fpr_a = a.signing_fpr()
    b.conf_extra = f"domain_peer_trust = configured\ndomain_peers = a.test={fpr_a}\n"
    c.conf_extra = f"domain_peer_trust = configured\ndomain_peers = a.test={WRONG}\n"
    for i in (a, b, c):
        i.write_conf()
        i.serve_bundle()
        i.start(T0)
    yield {"a": a, "b": b, "c": c, "fpr_a": fpr_a, "tmp": tmp}
    for i in (a, b, c):
        i.close()


def seal_at_a(w, rcpt, subject):
    a = w["a"]
    before = len(a.sink.messages())
    r = a.submit("alice@a.test", [rcpt], message(subject))
    assert r[rcpt][0] == 250, r
    msgs = a.sink.messages()
    assert len(msgs) == before + 1
    return msgs[-1]


def test_configured_fingerprint_accepted(world):
    b = world["b"]
    sealed = seal_at_a(world, "bob@b.test", "configured ok")
    assert MARKER not in sealed
    assert b.inject("alice@a.test", "bob@b.test", sealed)[0] == 250
    got = b.sink.messages()[-1]
    assert MARKER in got and b"domsec=pass" in got and b"header.d=a.test" in got
    assert "PINNED" not in b.gw.log()  # trusted by configuration, not on first use
    fpr, trust, rest = b.peer_rows()["a.test"]
    assert fpr == world["fpr_a"] and trust == "configured"
    assert re.match(r"since=\d{4}-\d\d-\d\dT", rest) and "MISMATCH" not in rest, rest


def test_configured_mismatch_refused(world):
    c = world["c"]
    sealed = seal_at_a(world, "carol@c.test", "configured mismatch")
    before = len(c.sink.messages())
    code, text = c.inject("alice@a.test", "carol@c.test", sealed)
    assert code == 554 and "5.7.8" in text and "configured key" in text, text
    assert len(c.sink.messages()) == before
    # the log names both keys
    assert re.search(rf"signing key of a\.test is {world['fpr_a']}, not the configured key {WRONG}",
                     c.gw.log()), c.gw.log()[-2000:]
    # nothing stored for a.test: status shows the configured key, never contacted
    assert c.peer_rows()["a.test"] == (WRONG, "configured", "since=- (not contacted yet)")


def test_status_lists_pinned_peers(world):
    """a trusts b and c on first use (the default): both listed as pinned."""
    rows = world["a"].peer_rows()
    assert set(rows) == {"b.test", "c.test"}
    for dom, inst in (("b.test", world["b"]), ("c.test", world["c"])):
        fpr, trust, rest = rows[dom]
        assert fpr == inst.signing_fpr() and trust == "pinned-on-first-use", rows


def test_domain_names_change_needs_rekey(world):
    a, b = world["a"], world["b"]
    old = world["fpr_a"]
    a.stop()
    a.domains = "a.test a2.test"
    a.write_conf()
    # rotate and serve refuse, naming the command
    r = a.cli("rotate", check=False)
    assert r.returncode != 0 and b"sealgate domain rekey" in r.stderr, r.stderr
    assert b"a.test a2.test" in r.stderr and b"differs from the domains" in r.stderr
    with pytest.raises(RuntimeError):
        a.start(T0)
    assert "sealgate domain rekey" in open(os.path.join(a.tmp, "sealgate.log")).read()
    assert "WARNING: domain_names" in a.cli("status").stdout.decode()

    out = a.cli("rekey").stdout.decode()
    assert "new signing key for a.test a2.test" in out, out
    new = a.signing_fpr()
    assert new != old
    status = a.cli("status").stdout.decode()
    assert "WARNING" not in status
    # the old short-lived keys are kept for mail sealed to them, unpublished
    assert re.search(r"^retired +\w+ .* unpublished private=present$", status, re.M), status
    a.cli("export", os.path.join(a.tmp, "pub"))
    bundle = open(os.path.join(a.tmp, "pub", ".well-known", "sealgate", "domain-keys")).read()
    assert bundle.count("BEGIN CERTIFICATE") == 1 + 7  # the new signing key and its 7 windows

    # b still trusts the old key by configuration: a's new signature is refused
    a.start(T0)
    sealed = seal_at_a(world, "bob@b.test", "after rekey")
    code, text = b.inject("alice@a.test", "bob@b.test", sealed)
    assert code == 554 and "5.7.8" in text, text
    # b's administrator configures the new fingerprint: it replaces the stored one
    b.conf_extra = f"domain_peer_trust = configured\ndomain_peers = a.test={new}\n"
    b.start(T0)
    assert b.inject("alice@a.test", "bob@b.test", sealed)[0] == 250
    assert b"Subject: after rekey" in b.sink.messages()[-1]
    assert b.peer_rows()["a.test"][:2] == (new, "configured")


def test_unpin_after_peer_rekey(world):
    """a trusts b on first use. b makes a new signing key: a refuses b's
    mail signed with it (5.7.8) until a's administrator runs `domain
    unpin b.test`; then a pins b's current key again (logged) and opens."""
    a, b = world["a"], world["b"]
    old = b.signing_fpr()
    assert a.peer_rows()["b.test"][:2] == (old, "pinned-on-first-use")
    b.stop()
    b.cli("rekey")
    new = b.signing_fpr()
    assert new != old
    with open(b.rules, "w") as f:  # b seals for a.test too
        f.write("to=*@a.test domain\n" + RULES)
    b.start(T0)
    r = b.submit("bob@b.test", ["alice@a.test"], message("from b after its rekey"))
    assert r["alice@a.test"][0] == 250, r
    sealed = b.sink.messages()[-1]
    assert MARKER not in sealed
    code, text = a.inject("bob@b.test", "alice@a.test", sealed)
    assert code == 554 and "5.7.8" in text, text

    out = a.cli("unpin", "b.test").stdout.decode()
    assert old in out, out
    assert "b.test" not in a.peer_rows()
    r = a.cli("unpin", "b.test", check=False)
    assert r.returncode == 2 and b"no signing key of b.test is stored" in r.stderr, r.stderr
    a.start(T0)  # serve drops the peer keys it holds at a restart
    assert a.inject("bob@b.test", "alice@a.test", sealed)[0] == 250
    got = a.sink.messages()[-1]
    assert MARKER in got and b"domsec=pass" in got and b"header.d=b.test" in got
    assert a.peer_rows()["b.test"][:2] == (new, "pinned-on-first-use")
    assert re.search(rf"PINNED signing key {new} for b\.test", a.gw.log()), a.gw.log()[-2000:]
