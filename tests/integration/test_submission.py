"""Encrypted submission and the content filter on the outbound listener:
mail that gpg / openssl cms encrypted to the gateway's key is opened, the
filter sees the plaintext, and policy re-seals it per recipient (each copy
decrypted here by gpg / openssl cms). Unsigned, tampered, replayed under
another sender, CBC: refused with the reason, nothing at the sink. Mail
encrypted to someone else passes untouched; the inbound listener never
opens mail encrypted to the gateway."""
import os
import re

import pytest

import pgphelp
from conftest import free_port
from gateway_harness import Gateway, Sink
from policy_helpers import MARKER, lmtp_send, message
from submission_helpers import GATEWAY, client, filter_script, seen  # noqa: F401 (client: a fixture)

RULES = """to=*@t.test tls-only
to=*@p.test pass
* e2e
"""


class Env:
    pass


def start(client, tmp, extra=""):
    e = Env()
    e.tmp = tmp
    for sub in ("relay", "tls", "seen"):
        os.makedirs(os.path.join(tmp, sub))
    e.sink = Sink(os.path.join(tmp, "relay"))
    e.tls = Sink(os.path.join(tmp, "tls"))
    mk = client.copy_state(os.path.join(tmp, "state"))
    rules = os.path.join(tmp, "policy.rules")
    with open(rules, "w") as f:
        f.write(RULES)
    e.seen = os.path.join(tmp, "seen")
    filt = os.path.join(tmp, "filter.sh")
    filter_script(filt, e.seen)
    e.sub_port = free_port()
    e.gw = Gateway(os.environ.get("SEALGATE_BIN"), tmp, e.sink.port,
                   f"submission_listen = 127.0.0.1:{e.sub_port}\npolicy_file = {rules}\n"
                   f"master_key_file = {mk}\nrelay_tls_only = 127.0.0.1:{e.tls.port}\n"
                   f"gateway_address = {GATEWAY}\ngateway_smime_key = {client.gw_pem}\n"
                   f"content_filter_cmd = {filt}\ncontent_filter_timeout = 2s\n"
                   f"content_filter_rewrite = yes\n" + extra)
    return e


def stop(e):
    code = e.gw.stop()
    e.sink.stop()
    e.tls.stop()
    assert code == 0, e.gw.log()[-3000:]
    assert "ERROR: AddressSanitizer" not in e.gw.log() and "runtime error" not in e.gw.log()


@pytest.fixture(scope="module")
def gateway(client, tmp_path_factory):
    """One gateway for the module; each test starts with empty sinks."""
    e = start(client, str(tmp_path_factory.mktemp("gw")))
    yield e
    stop(e)


@pytest.fixture
def env(gateway):
    for d in (gateway.sink.dir, gateway.tls.dir, gateway.seen):
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))
    gateway.log_start = len(gateway.gw.log())
    return gateway


def new_log(e):
    """What the gateway logged during this test."""
    return e.gw.log()[e.log_start:]


def by_rcpts(sink):
    out = {}
    for env, msg in zip(sink.envelopes(), sink.messages()):
        rcpts = frozenset(re.findall(r"RCPT TO:<([^>]*)>", env))
        out[rcpts] = msg
    return out


def nothing_relayed(e):
    assert e.sink.messages() == [] and e.tls.messages() == []


MATRIX = ["bob@b.test", "carol@c.test", "x@p.test", "y@t.test", "nokey@n.test"]


def check_resealed(e, client, replies):
    assert [replies[r][0] for r in MATRIX] == [250, 250, 250, 250, 554], replies
    assert "no key for nokey@n.test" in replies["nokey@n.test"][1]
    got = by_rcpts(e.sink)
    assert set(got) == {frozenset({"bob@b.test"}), frozenset({"carol@c.test"}), frozenset({"x@p.test"})}
    rc, plain, status = client.keys.gpg_decrypt(pgphelp.encrypted_payload(got[frozenset({"bob@b.test"})]))
    assert rc == 0 and MARKER in plain, status
    rc, plain = client.keys.cms_decrypt(client.keys.carol, got[frozenset({"carol@c.test"})], e.tmp)
    assert rc == 0 and MARKER in plain
    # pass and tls-only: the plaintext, as for a clear submission
    assert MARKER in got[frozenset({"x@p.test"})]
    (tls,) = e.tls.messages()
    assert MARKER in tls
    for rcpts, msg in got.items():
        assert b"BEGIN PGP MESSAGE" not in msg or rcpts == {"bob@b.test"}
    # the filter saw the plaintext
    (filtered,) = seen(e.seen)
    assert MARKER in filtered


def test_pgp_mime_reencrypted_per_recipient(env, client):
    replies = lmtp_send(env.sub_port, "alice@a.test", MATRIX, client.pgp_mime())
    check_resealed(env, client, replies)
    assert re.search(r"submission: decrypted with [0-9A-F]+, integrity=yes, signer=\S+, accepted", new_log(env))


def test_inline_pgp(env, client):
    replies = lmtp_send(env.sub_port, "alice@a.test", ["bob@b.test"], client.pgp_inline())
    assert replies["bob@b.test"][0] == 250, replies
    (msg,) = env.sink.messages()
    rc, plain, status = client.keys.gpg_decrypt(pgphelp.encrypted_payload(msg))
    assert rc == 0 and MARKER in plain, status


def test_smime_gcm_reencrypted(env, client):
    replies = lmtp_send(env.sub_port, "alice@a.test", MATRIX, client.smime(env.tmp))
    check_resealed(env, client, replies)


def test_smime_cbc_refused_unless_allowed(env, client):
    replies = lmtp_send(env.sub_port, "alice@a.test", ["bob@b.test"], client.smime(env.tmp, gcm=False))
    assert replies["bob@b.test"][0] == 554 and "no integrity protection" in replies["bob@b.test"][1]
    nothing_relayed(env)


REFUSALS = [
    ("unsigned", lambda c: c.pgp_mime(sign=False), "alice@a.test", "must be signed"),
    # someone else's login resubmits alice's ciphertext: no plaintext for them
    ("replayed", lambda c: c.pgp_mime(), "mallory@m.test", "must be signed"),
    ("tampered", None, "alice@a.test", "could not be decrypted: tampered"),
]


@pytest.mark.parametrize("name,make,sender,reason", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_with_reason(env, client, name, make, sender, reason):
    if make is None:
        raw = client.pgp_ciphertext(b"Content-Type: text/plain\r\n\r\n" + MARKER + b"\r\n", armor=False)
        raw = bytearray(raw)
        raw[len(raw) - 30] ^= 0x01  # inside the encrypted data, before the MDC
        import base64
        body = base64.encodebytes(bytes(raw)).replace(b"\n", b"\r\n")
        msg = (b"From: <alice@a.test>\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
               b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b"\r\n\r\n'
               b"--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--b\r\n"
               b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body +
               b"--b--\r\n")
    else:
        msg = make(client)
    replies = lmtp_send(env.sub_port, sender, ["bob@b.test", "x@p.test"], msg)
    for r in ("bob@b.test", "x@p.test"):
        assert replies[r][0] == 554 and reason in replies[r][1], replies
    nothing_relayed(env)
    assert seen(env.seen) == []


def test_from_must_match_sender(client, tmp_path):
    """With signatures not required, the inner From still binds the envelope."""
    e = start(client, str(tmp_path), "submission_require_signature = no\n")
    e.log_start = 0
    try:
        msg = client.pgp_mime(sign=False, frm="boss@a.test")
        replies = lmtp_send(e.sub_port, "alice@a.test", ["bob@b.test"], msg)
        assert replies["bob@b.test"][0] == 554
        assert "inner From <boss@a.test> is not the sender <alice@a.test>" in replies["bob@b.test"][1]
        nothing_relayed(e)
        replies = lmtp_send(e.sub_port, "alice@a.test", ["bob@b.test"], client.pgp_mime(sign=False))
        assert replies["bob@b.test"][0] == 250, replies
    finally:
        stop(e)


def test_encrypted_to_others_passes_untouched(env, client):
    msg = client.pgp_mime(to=("bob@b.test",))
    replies = lmtp_send(env.sub_port, "alice@a.test", ["nokey@n.test"], msg)
    assert replies["nokey@n.test"][0] == 250
    (got,) = env.sink.messages()
    assert got.endswith(msg)
    assert seen(env.seen) == []  # the filter cannot see inside


def test_inbound_listener_never_decrypts(env, client):
    msg = client.pgp_mime()
    replies = lmtp_send(env.gw.lmtp_port, "alice@a.test", ["bob@b.test"], msg)
    assert replies["bob@b.test"][0] == 250
    (got,) = env.sink.messages()
    assert MARKER not in got and got.endswith(msg)
    assert "submission: decrypted" not in new_log(env)


FILTER = [
    ("reject", b"VIRUS-EICAR", 554, "5.7.1 virus found: EICAR-Test-Signature"),
    ("tempfail", b"FILTER-TEMPFAIL", 451, "4.7.1 content filter unavailable"),
    ("timeout", b"FILTER-SLOW", 451, "4.7.1 content filter unavailable"),
]


@pytest.mark.parametrize("name,word,code,text", FILTER, ids=[f[0] for f in FILTER])
def test_content_filter_refuses(env, client, name, word, code, text):
    # plaintext and encrypted-to-the-gateway submissions alike
    for msg in (message(extra=b"X-Test: " + word + b"\r\n"), client.pgp_mime(marker=MARKER + b" " + word)):
        replies = lmtp_send(env.sub_port, "alice@a.test", ["bob@b.test", "x@p.test"], msg)
        for r in ("bob@b.test", "x@p.test"):
            assert replies[r][0] == code and text in replies[r][1], replies
    nothing_relayed(env)
    assert len(seen(env.seen)) == 2 and all(MARKER in s for s in seen(env.seen))


def test_content_filter_rewrites(env, client):
    msg = client.pgp_mime(marker=MARKER + b" FILTER-REWRITE")
    replies = lmtp_send(env.sub_port, "alice@a.test", ["bob@b.test", "x@p.test"], msg)
    assert replies["bob@b.test"][0] == 250 and replies["x@p.test"][0] == 250, replies
    got = by_rcpts(env.sink)
    assert b"\r\nX-Filtered: yes\r\n" in got[frozenset({"x@p.test"})].split(b"\r\n\r\n")[0]
    rc, plain, status = client.keys.gpg_decrypt(pgphelp.encrypted_payload(got[frozenset({"bob@b.test"})]))
    assert rc == 0 and MARKER in plain
    assert b"MARKER" not in got[frozenset({"bob@b.test"})]
    # the filter got the envelope in its environment
    (envfile,) = [n for n in os.listdir(env.seen) if n.endswith(".env")]
    sender, rcpts, queue_id = open(os.path.join(env.seen, envfile)).read().strip().split("|")
    assert sender == "alice@a.test" and rcpts == "bob@b.test x@p.test" and re.fullmatch(r"[0-9A-F]{8,}", queue_id)


def test_gateway_key_published_by_wkd(client, tmp_path):
    """`key export-wkd` publishes the gateway's key with the others: a
    client finds it by the gateway address (WKD direct method hash)."""
    from policy_helpers import sealgate
    r = sealgate("key", "export-wkd", "--state-dir", client.state, str(tmp_path / "www"))
    assert r.returncode == 0, r.stderr
    hu = tmp_path / "www" / ".well-known" / "openpgpkey" / "hu"
    files = sorted(hu.iterdir())
    home = tmp_path / "g"
    home.mkdir(mode=0o700)
    found = []
    for f in files:
        out = pgphelp.gpg(str(home), "--with-colons", "--import-options", "show-only", "--import",
                          inp=f.read_bytes()).stdout.decode()
        found += re.findall(r"^uid:[^\n]*<([^>]+)>", out, re.M)
    assert GATEWAY in found, found
