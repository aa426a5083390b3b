"""The outbound (submission) listener with policy rules: a matrix of
recipients (OpenPGP key, S/MIME certificate, expired, revoked, wrong user
ID, nothing) x treatments in one LMTP transaction, per-recipient replies;
whatever arrives encrypted is decrypted with gpg / openssl cms here; the
plaintext marker never reaches a next hop for a recipient that policy
said to encrypt, under every failure path."""
import os
import re
import shutil

import pytest

import pgphelp
from conftest import free_port
from gateway_harness import Gateway, Sink
from policy_helpers import MARKER, Keys, lmtp_send, message, sealgate

RULES = """# test policy
to=*@t.test tls-only
to=*@p.test pass
to=*@r.test reject text="no mail for r.test"
to=*@dom.test domain
to=*@portal.test portal
to=*@nd.test e2e missing=defer
to=*@nt.test e2e missing=tls-only
to=frank@f.test subject=[smime] e2e prefer=smime
header="X-Sealgate-Sign: yes" e2e sign=yes
* e2e
"""


class Env:
    pass


def template(keys):
    """The store and master key, made once per module and copied per test."""
    t = os.path.join(keys.dir, "template")
    if not os.path.exists(t):
        os.makedirs(t)
        keys.populate(os.path.join(t, "state"))
        mk = os.path.join(t, "master.key")
        assert sealgate("key", "init-master", "--master-key", mk).returncode == 0
        r = sealgate("key", "generate", "--state-dir", os.path.join(t, "state"), "--master-key", mk,
                     "alice@a.test")
        assert r.returncode == 0, r.stderr
    return t


def start(tmp, keys, tls_route=True, rules=RULES):
    e = Env()
    e.tmp = tmp
    e.sink = Sink(os.path.join(tmp, "relay"))
    e.tls = Sink(os.path.join(tmp, "tls")) if tls_route else None
    t = template(keys)
    state = os.path.join(tmp, "state")
    shutil.copytree(os.path.join(t, "state"), state)
    mk = os.path.join(tmp, "master.key")
    shutil.copy(os.path.join(t, "master.key"), mk)
    os.chmod(mk, 0o600)
    rules_path = os.path.join(tmp, "policy.rules")
    with open(rules_path, "w") as f:
        f.write(rules)
    e.sub_port = free_port()
    extra = (f"submission_listen = 127.0.0.1:{e.sub_port}\npolicy_file = {rules_path}\n"
             f"master_key_file = {mk}\n")
    if tls_route:
        extra += f"relay_tls_only = 127.0.0.1:{e.tls.port}\n"
    e.gw = Gateway(os.environ.get("SEALGATE_BIN"), tmp, e.sink.port, extra)
    e.state, e.mk = state, mk
    return e


def stop(e):
    code = e.gw.stop()
    e.sink.stop()
    if e.tls:
        e.tls.stop()
    assert code == 0, e.gw.log()[-3000:]
    assert "ERROR: AddressSanitizer" not in e.gw.log() and "runtime error" not in e.gw.log()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    k = Keys(str(tmp_path_factory.mktemp("keys")))
    yield k
    k.stop()


@pytest.fixture
def env(keys, tmp_path):
    for sub in ("relay", "tls"):
        os.makedirs(tmp_path / sub)
    e = start(str(tmp_path), keys)
    yield e
    stop(e)


def received(sink):
    """[(set of envelope recipients, message bytes)]"""
    out = []
    for env, msg in zip(sink.envelopes(), sink.messages()):
        out.append((set(re.findall(r"<([^>]*)>", "\n".join(l for l in env.splitlines()
                                                          if l.startswith("RCPT")))), msg))
    return out


def assert_no_marker_except(sink, allowed):
    for rcpts, msg in received(sink):
        if MARKER in msg:
            assert rcpts <= allowed, f"plaintext reached {rcpts}"


MATRIX = {
    "bob@b.test": (250, None),
    "carol@c.test": (250, None),
    "frank@f.test": (250, None),
    "dave@d.test": (554, "5.7.1 Encryption required by policy: dave@d.test: key "),
    "erin@e.test": (554, "revoked"),
    "wrong@w.test": (554, "does not carry this address"),
    "nokey@n.test": (554, "5.7.1 Encryption required by policy: no key for nokey@n.test"),
    "x@t.test": (250, None),
    "x@p.test": (250, None),
    "x@r.test": (554, "5.7.1 no mail for r.test"),
    "x@dom.test": (554, "domain keys not available"),
    "x@portal.test": (554, "portal"),
    "x@nd.test": (451, "4.7.1 Encryption required by policy: no key for x@nd.test"),
    "x@nt.test": (250, None),
}


def test_matrix_one_transaction(env, keys):
    replies = lmtp_send(env.sub_port, "alice@a.test", list(MATRIX), message())
    for rcpt, (code, text) in MATRIX.items():
        got = replies[rcpt]
        assert got[0] == code, (rcpt, got)
        if text:
            assert text in got[1], (rcpt, got)
    assert "expired" in replies["dave@d.test"][1] and keys.fpr["dave"] in replies["dave@d.test"][1]
    assert "General error" not in repr(replies)

    relay = received(env.sink)
    by_rcpts = {frozenset(r): m for r, m in relay}
    assert set(by_rcpts) == {frozenset({"bob@b.test", "frank@f.test"}), frozenset({"carol@c.test"}),
                             frozenset({"x@p.test"})}, relay
    # pass: the clear original
    assert MARKER in by_rcpts[frozenset({"x@p.test"})]
    # one PGP/MIME copy for both OpenPGP recipients, decrypted by gpg
    pgp = by_rcpts[frozenset({"bob@b.test", "frank@f.test"})]
    assert MARKER not in pgp and b"multipart/encrypted" in pgp
    rc, plain, status = keys.gpg_decrypt(pgphelp.encrypted_payload(pgp))
    assert rc == 0 and MARKER in plain, status
    # S/MIME for carol, decrypted by openssl cms
    smime = by_rcpts[frozenset({"carol@c.test"})]
    assert MARKER not in smime and b"application/pkcs7-mime" in smime
    rc, plain = keys.cms_decrypt(keys.carol, smime, env.tmp)
    assert rc == 0 and MARKER in plain
    # tls-only and missing=tls-only: the TLS-enforcing route, unchanged
    tls = received(env.tls)
    assert len(tls) == 1 and tls[0][0] == {"x@t.test", "x@nt.test"} and MARKER in tls[0][1]
    assert_no_marker_except(env.sink, {"x@p.test"})
    log = env.gw.log()
    assert re.search(r"policy: to=<dave@d\.test>, rule=\S+:11, asked=e2e, treatment=e2e, refused=554", log)
    assert re.search(r"policy: to=<bob@b\.test>, rule=\S+:11, asked=e2e, treatment=e2e, key=" +
                     keys.fpr["bob"], log)


def test_preference_by_rule(env, keys):
    """frank has both kinds: OpenPGP by default, S/MIME where the rule says."""
    replies = lmtp_send(env.sub_port, "alice@a.test", ["frank@f.test"], message("[smime] hi"))
    assert replies["frank@f.test"][0] == 250
    (rcpts, msg), = received(env.sink)
    assert b"application/pkcs7-mime" in msg and MARKER not in msg
    rc, plain = keys.cms_decrypt(keys.frank_x509, msg, env.tmp)
    assert rc == 0 and MARKER in plain


def test_signed_with_senders_key(env, keys):
    pub = sealgate("key", "export", "--state-dir", env.state, "alice@a.test")
    assert pub.returncode == 0
    pgphelp.gpg(keys.home, "--import", inp=pub.stdout)
    replies = lmtp_send(env.sub_port, "alice@a.test", ["bob@b.test"],
                        message(extra=b"X-Sealgate-Sign: yes\r\n"))
    assert replies["bob@b.test"][0] == 250
    (rcpts, msg), = received(env.sink)
    rc, plain, status = keys.gpg_decrypt(pgphelp.encrypted_payload(msg))
    assert rc == 0 and MARKER in plain
    assert "GOODSIG" in status or "VALIDSIG" in status, status
    assert ", signed" in env.gw.log()


def test_already_encrypted_passes_untouched(env, keys):
    r = sealgate("seal", "--to", "bob@b.test", "--key", keys.path("bob"), inp=message())
    assert r.returncode == 0, r.stderr
    sealed = r.stdout
    # nokey@n.test has no key: encrypted mail passes anyway, byte for byte
    replies = lmtp_send(env.sub_port, "alice@a.test", ["nokey@n.test"], sealed)
    assert replies["nokey@n.test"][0] == 250
    (rcpts, msg), = received(env.sink)
    assert msg.endswith(sealed)


def test_signed_only_is_encrypted_around(env, keys):
    r = sealgate("seal", "--sign-as", "frank@f.test", "--key",
                 os.path.join(keys.dir, "frank.sec"), inp=message())
    assert r.returncode == 0, r.stderr
    signed = r.stdout
    assert b"multipart/signed" in signed
    replies = lmtp_send(env.sub_port, "alice@a.test", ["bob@b.test"], signed)
    assert replies["bob@b.test"][0] == 250
    (rcpts, msg), = received(env.sink)
    assert MARKER not in msg
    rc, plain, status = keys.gpg_decrypt(pgphelp.encrypted_payload(msg))
    assert rc == 0 and b"multipart/signed" in plain and MARKER in plain


def test_next_hop_5xx_no_plaintext(env, keys):
    replies = lmtp_send(env.sub_port, "alice@a.test", ["data5-k@b.test"], message())
    assert replies["data5-k@b.test"][0] == 554
    assert env.sink.messages() == []
    assert_no_marker_except(env.sink, set())


def test_route_not_configured_fails_closed(keys, tmp_path):
    os.makedirs(tmp_path / "relay")
    e = start(str(tmp_path), keys, tls_route=False)
    try:
        replies = lmtp_send(e.sub_port, "alice@a.test", ["x@t.test", "x@nt.test", "bob@b.test"],
                            message())
        assert replies["x@t.test"][0] == 451 and "not configured" in replies["x@t.test"][1]
        assert replies["x@nt.test"][0] == 451
        assert replies["bob@b.test"][0] == 250
        assert_no_marker_except(e.sink, set())
    finally:
        stop(e)


def test_inbound_listener_does_not_apply_policy(env, keys):
    """The same mail on the inbound (SMTP filter) listener is not sealed or
    signed: policy is for the outbound role only."""
    from gateway_harness import Raw
    c = Raw(env.gw.smtp_port)
    assert c.reply()[0] == 220
    c.cmd("EHLO x")
    c.cmd("MAIL FROM:<alice@a.test>")
    assert c.cmd("RCPT TO:<bob@b.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(message(extra=b"X-Sealgate-Sign: yes\r\n") + b".\r\n")
    assert c.reply()[0] == 250
    c.close()
    (rcpts, msg), = received(env.sink)
    assert MARKER in msg and b"multipart/encrypted" not in msg and b"multipart/signed" not in msg
