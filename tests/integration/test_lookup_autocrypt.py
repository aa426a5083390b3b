"""Autocrypt harvest through `sealgate serve`: inbound mail (LMTP) from a
sender whose domain passed DKIM at the trusted verifier (its
Authentication-Results field) with an Autocrypt header; later outbound
mail to that sender is sealed to the harvested key (gpg decrypts). No DKIM
pass, another verifier, two headers: nothing harvested, the missing-key
treatment applies. A directory key wins over a harvested one."""
import base64
import os

import pytest

import pgphelp
from gateway_harness import Raw
from keys_helpers import gpg, gpg_genkey, gpg_kill, wkd_hash
from lookup_peers import WkdServer
from policy_helpers import MARKER, dot_stuff, lmtp_send, message
from test_lookup_policy import Env

VERIFIER = "mx.example.test"
HUGO = "hugo@ext.test"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    t = tmp_path_factory.mktemp("autocrypt-keys")
    out = {}
    for n in ("1", "2"):
        home = str(t / f"gpg{n}")
        out["fpr" + n] = gpg_genkey(home, f"hugo <{HUGO}>")
        out["key" + n] = gpg(home, "--export", "--export-options", "export-minimal", HUGO).stdout
        out["home" + n] = home
    yield out
    gpg_kill(out["home1"])
    gpg_kill(out["home2"])


@pytest.fixture
def wkd():
    s = WkdServer()
    yield s
    s.stop()


def autocrypt(key, addr=HUGO):
    b64 = base64.b64encode(key).decode()
    folded = "\r\n ".join(b64[i:i + 72] for i in range(0, len(b64), 72))
    return f"Autocrypt: addr={addr}; prefer-encrypt=mutual; keydata=\r\n {folded}\r\n".encode()


def inbound(e, headers):
    """One inbound message from hugo over the LMTP listener."""
    msg = (b"From: Hugo <" + HUGO.encode() + b">\r\nTo: alice@a.test\r\nSubject: hi\r\n" +
           b"".join(headers) + b"Content-Type: text/plain\r\n\r\nhello\r\n")
    c = Raw(e.gw.lmtp_port)
    assert c.reply()[0] == 220
    assert c.cmd("LHLO client.example.test")[0] == 250
    assert c.cmd(f"MAIL FROM:<{HUGO}>")[0] == 250
    assert c.cmd("RCPT TO:<alice@a.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(dot_stuff(msg) + b".\r\n")
    code, text = c.reply()
    c.cmd("QUIT")
    c.close()
    assert code == 250, text


def start(tmp, wkd_port, wkd_domain="example.test"):
    e = Env(str(tmp), wkd_port)
    e.extra = e.extra.replace("openpgpkey.example.test=", f"openpgpkey.{wkd_domain}=")
    e.extra += f"autocrypt_authserv_id = {VERIFIER}\n"
    return e.start()


def outbound(e):
    return lmtp_send(e.port, "alice@a.test", [HUGO], message())[HUGO]


def decrypts(home, msg):
    r = pgphelp.gpg(home, "--decrypt", inp=pgphelp.encrypted_payload(msg), check=False)
    return r.returncode == 0 and MARKER in r.stdout


def test_harvested_then_sealed_to(wkd, keys, tmp_path):
    e = start(tmp_path, wkd.port)
    try:
        assert outbound(e)[0] == 554            # nothing known yet
        inbound(e, [f"Authentication-Results: {VERIFIER}; dkim=pass header.d=ext.test\r\n".encode(),
                    autocrypt(keys["key1"])])
        assert outbound(e)[0] == 250
        log = e.gw.log()
    finally:
        e.stop()
    sealed = [m for m in e.sink.messages() if b"multipart/encrypted" in m]
    assert len(sealed) == 1 and MARKER not in sealed[0]
    assert decrypts(keys["home1"], sealed[0])
    assert f"autocrypt: harvested a key for {HUGO}" in log
    assert f"key={keys['fpr1']}" in log


@pytest.mark.parametrize("name,headers", [
    ("no DKIM result", []),
    ("another verifier", [b"Authentication-Results: evil.example.test; dkim=pass header.d=ext.test\r\n"]),
    ("DKIM fail", [f"Authentication-Results: {VERIFIER}; dkim=fail header.d=ext.test\r\n".encode()]),
    ("DKIM pass for another domain",
     [f"Authentication-Results: {VERIFIER}; dkim=pass header.d=other.test\r\n".encode()]),
])
def test_not_harvested(wkd, keys, tmp_path, name, headers):
    e = start(tmp_path, wkd.port)
    try:
        inbound(e, headers + [autocrypt(keys["key1"])])
        code, text = outbound(e)
    finally:
        e.stop()
    assert code == 554 and f"no key for {HUGO}" in text, (name, text)
    assert MARKER not in b"".join(m for m in e.sink.messages() if b"To: many" in m)


def test_two_headers_count_as_none(wkd, keys, tmp_path):
    e = start(tmp_path, wkd.port)
    try:
        inbound(e, [f"Authentication-Results: {VERIFIER}; dkim=pass header.d=ext.test\r\n".encode(),
                    autocrypt(keys["key1"]), autocrypt(keys["key2"])])
        code, _ = outbound(e)
    finally:
        e.stop()
    assert code == 554


def test_directory_key_wins(wkd, keys, tmp_path):
    wkd.keys[f"/.well-known/openpgpkey/ext.test/hu/{wkd_hash(HUGO)}"] = keys["key2"]
    e = start(tmp_path, wkd.port, "ext.test")
    try:
        inbound(e, [f"Authentication-Results: {VERIFIER}; dkim=pass header.d=ext.test\r\n".encode(),
                    autocrypt(keys["key1"])])
        assert outbound(e)[0] == 250
    finally:
        e.stop()
    m = [m for m in e.sink.messages() if b"multipart/encrypted" in m][0]
    assert decrypts(keys["home2"], m) and not decrypts(keys["home1"], m)
