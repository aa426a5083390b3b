"""The inbound listener: signed mail (OpenPGP, S/MIME) is verified against
the store's keys and the configured S/MIME trust anchors and gets an
Authentication-Results field (RFC 8601); forged fields claiming our
authserv-id are removed; unsigned mail passes byte for byte; nothing is
ever signed here."""
import os
import re
import shutil

import pytest

import smime_pki
from gateway_harness import Gateway, Raw, Sink
from policy_helpers import MARKER, Keys, message, sealgate

AUTHSERV = "mx.example.test"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    k = Keys(str(tmp_path_factory.mktemp("keys")))
    k.ca = smime_pki.make_ca(k.dir, "TestCA")
    k.grace = smime_pki.issued(k.dir, "grace", "grace@g.test", "rsa", k.ca)
    k.outsider = smime_pki.self_signed(k.dir, "outsider", "outsider@o.test", "rsa")
    yield k
    k.stop()


@pytest.fixture(scope="module")
def gateway(keys, tmp_path_factory):
    """One gateway for the module; each test starts with an empty sink."""
    tmp = tmp_path_factory.mktemp("gw")
    class E:
        pass
    e = E()
    e.sink = Sink(str(tmp))
    state = str(tmp / "state")
    keys.populate(state)
    e.gw = Gateway(os.environ.get("SEALGATE_BIN"), str(tmp), e.sink.port,
                   f"authserv_id = {AUTHSERV}\nsmime_trust_anchors = {keys.ca.crt}\n")
    yield e
    code = e.gw.stop()
    e.sink.stop()
    assert code == 0
    assert "ERROR: AddressSanitizer" not in e.gw.log() and "runtime error" not in e.gw.log()


@pytest.fixture
def env(gateway):
    for name in os.listdir(gateway.sink.dir):
        os.unlink(os.path.join(gateway.sink.dir, name))
    return gateway


def smtp_send(port, msg, mail="x@outside.test", rcpt="local@here.test"):
    c = Raw(port)
    assert c.reply()[0] == 220
    c.cmd("EHLO outside.test")
    assert c.cmd(f"MAIL FROM:<{mail}>")[0] == 250
    assert c.cmd(f"RCPT TO:<{rcpt}>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(msg + b".\r\n")
    r = c.reply()
    c.cmd("QUIT")
    c.close()
    return r


def got(env):
    (msg,) = env.sink.messages()
    return msg


def ar_fields(msg):
    hdr = msg.split(b"\r\n\r\n", 1)[0].decode()
    return re.findall(r"^Authentication-Results:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*", hdr, re.M | re.I)


def signed_pgp(keys, name, addr, body=None):
    r = sealgate("seal", "--sign-as", addr, "--key", os.path.join(keys.dir, name + ".sec"),
                 inp=body or message())
    assert r.returncode == 0, r.stderr
    return r.stdout


def signed_smime(ident, body=None):
    r = sealgate("seal", "--smime", "--sign-as", ident.email, "--key", ident.pem,
                 inp=body or message())
    assert r.returncode == 0, r.stderr
    return r.stdout


def from_(addr):
    return message().replace(b"From: Alice <alice@a.test>", b"From: <" + addr.encode() + b">")


def test_pgp_signed_by_known_key_passes(env, keys):
    assert smtp_send(env.gw.smtp_port, signed_pgp(keys, "bob", "bob@b.test", from_("bob@b.test")))[0] == 250
    ar = ar_fields(got(env))
    assert len(ar) == 1 and ar[0].startswith(f"Authentication-Results: {AUTHSERV};")
    assert "openpgp=pass" in ar[0] and "header.from=bob@b.test" in ar[0], ar
    assert re.search(r"verify: from=<bob@b\.test>, method=openpgp, result=pass", env.gw.log())


def test_pgp_signed_by_other_key_is_neutral(env, keys):
    # signed with mallory's key, claiming to be from bob: bob's stored key does not verify it
    msg = signed_pgp(keys, "mallory", "mallory@m.test", from_("bob@b.test"))
    smtp_send(env.gw.smtp_port, msg)
    (ar,) = ar_fields(got(env))
    assert "openpgp=neutral" in ar and "unknown signer" in ar


def test_pgp_tampered_fails(env, keys):
    msg = signed_pgp(keys, "bob", "bob@b.test", from_("bob@b.test"))
    assert MARKER in msg
    smtp_send(env.gw.smtp_port, msg.replace(MARKER, MARKER.lower()))
    (ar,) = ar_fields(got(env))
    assert "openpgp=fail" in ar, ar


def test_smime_anchored_passes(env, keys):
    smtp_send(env.gw.smtp_port, signed_smime(keys.grace, from_("grace@g.test")))
    (ar,) = ar_fields(got(env))
    assert "smime=pass" in ar and "grace@g.test" in ar, ar


def test_smime_unanchored_is_neutral(env, keys):
    smtp_send(env.gw.smtp_port, signed_smime(keys.outsider, from_("outsider@o.test")))
    (ar,) = ar_fields(got(env))
    assert "smime=neutral" in ar, ar


def test_smime_signer_not_author_is_policy(env, keys):
    smtp_send(env.gw.smtp_port, signed_smime(keys.grace, from_("ceo@g.test")))
    (ar,) = ar_fields(got(env))
    assert "smime=policy" in ar and "not the From address" in ar, ar


def test_forged_results_removed(env, keys):
    forged = (f"Authentication-Results: {AUTHSERV}; openpgp=pass header.from=bob@b.test\r\n"
              "Authentication-Results: other.example; dkim=pass\r\n").encode()
    # a forged "pass" on a message signed by the wrong key
    msg = forged + signed_pgp(keys, "mallory", "mallory@m.test", from_("bob@b.test"))
    line = "removed 1 Authentication-Results field(s) claiming authserv-id " + AUTHSERV
    before = env.gw.log().count(line)
    smtp_send(env.gw.smtp_port, msg)
    m = got(env)
    ar = ar_fields(m)
    assert len(ar) == 2, ar
    assert "openpgp=neutral" in ar[0] and ar[1].startswith("Authentication-Results: other.example")
    assert env.gw.log().count(line) == before + 1


def test_forged_results_removed_from_unsigned(env, keys):
    msg = (f"Authentication-Results: {AUTHSERV}; smime=pass\r\n").encode() + message()
    smtp_send(env.gw.smtp_port, msg)
    m = got(env)
    assert ar_fields(m) == []
    assert m.endswith(message())


def test_unsigned_passes_unchanged(env, keys):
    smtp_send(env.gw.smtp_port, message())
    m = got(env)
    assert ar_fields(m) == []
    # only our Received: line in front
    assert m.endswith(message()) and m.startswith(b"Received: ")


def test_never_signs_inbound(env, keys):
    # alice's secret key is not even needed: nothing is signed here, whatever headers say
    smtp_send(env.gw.smtp_port, message(extra=b"X-Sealgate-Sign: yes\r\nX-Sealgate-Encrypt: yes\r\n"))
    m = got(env)
    assert b"multipart/signed" not in m and b"multipart/encrypted" not in m and MARKER in m
