"""Gateway-to-gateway domain security ([domain], doc/domain.md): two
instances (a.test; b.test + c.test) on loopback with their own stores and
sinks. Mail a -> b arrives decrypted and verified with Authentication-
Results; openssl cms reads a captured ciphertext with b's short-lived key
and a's signing certificate; tampering, replay to another domain and an
unpinned signer are each refused with their own reason; with the clock
moved, a delayed message is still read within the grace period, and after
it its key is destroyed: the ciphertext no longer opens and the key bytes
are nowhere in b's state dir."""
import base64
import os
import re
import sqlite3
import subprocess

import pytest

from domain_helpers import DAY, Instance, allow_for
from policy_helpers import MARKER, message

T0 = 1_900_000_000 // DAY * DAY + 3600  # an hour into a key window (2030)


def body_b64_tamper(msg):
    """Flip one base64 character in the middle of the body."""
    head, body = msg.split(b"\r\n\r\n", 1)
    i = len(body) // 2
    while body[i:i + 1] in (b"\r", b"\n", b"="):
        i += 1
    c = body[i:i + 1]
    body = body[:i] + (b"A" if c != b"A" else b"B") + body[i + 1:]
    return head + b"\r\n\r\n" + body


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("domain"))
    a = Instance(tmp, "a", "a.test")
    b = Instance(tmp, "b", "b.test c.test")
    evil = Instance(tmp, "evil", "a.test")   # another key claiming a.test
    for i in (a, b, evil):
        i.now = T0
        i.allow = allow_for([a, b]) if i is not a else allow_for([b])
        i.write_conf()
        out = i.cli("init").stdout.decode()
        assert "signing key created" in out and "7 generated" in out, out
    b.allow = allow_for([a])
    for i in (a, b, evil):
        i.now = T0
        i.write_conf()
        i.serve_bundle()
        i.start(T0)
    yield {"a": a, "b": b, "evil": evil, "tmp": tmp}
    for i in (a, b, evil):
        i.close()


def send_a_to_b(w, subject):
    a = w["a"]
    before = len(a.sink.messages())
    r = a.submit("alice@a.test", ["bob@b.test"], message(subject))
    assert r["bob@b.test"][0] == 250, r
    msgs = a.sink.messages()
    assert len(msgs) == before + 1
    return msgs[-1]


def test_a_to_b_sealed_opened_verified(world):
    a, b = world["a"], world["b"]
    sealed = send_a_to_b(world, "first")
    world["captured"] = sealed
    # on the wire: nothing of the message in clear, the marker for b.test
    assert MARKER not in sealed and b"first" not in sealed
    assert b"Sealgate-Domain: v=1; from=a.test; to=b.test" in sealed
    assert b"authEnveloped-data" in sealed
    assert "PINNED signing key" in a.gw.log()
    assert b.inject("alice@a.test", "bob@b.test", sealed)[0] == 250
    got = b.sink.messages()[-1]
    assert MARKER in got and b"Subject: first" in got
    assert re.search(rb"Authentication-Results: b\.test;\r\n\tdomsec=pass \(signing key \w+, "
                     rb"decrypted with key \w+\) header\.d=a\.test", got), got[:800]
    assert b"Sealgate-Domain" not in got
    assert "PINNED signing key" in b.gw.log()


def test_one_copy_per_domain_and_missing_domain(world):
    """bob@b.test (treatment domain) and carol@c.test (e2e, no key: the
    rule's missing=domain uses c.test's domain key) in one transaction:
    two copies, each bound to its own domain, each opened by b."""
    a, b = world["a"], world["b"]
    before = len(a.sink.messages())
    r = a.submit("alice@a.test", ["bob@b.test", "carol@c.test"], message("two domains"))
    assert r["bob@b.test"][0] == 250 and r["carol@c.test"][0] == 250, r
    copies = a.sink.messages()[before:]
    assert len(copies) == 2
    by_to = {re.search(rb"to=([a-z.]+)", c).group(1).decode(): c for c in copies}
    assert set(by_to) == {"b.test", "c.test"}
    for dom, user in (("b.test", "bob"), ("c.test", "carol")):
        assert b.inject("alice@a.test", f"{user}@{dom}", by_to[dom])[0] == 250
        assert b"Subject: two domains" in b.sink.messages()[-1]


def test_openssl_cms_reads_it(world, tmp_path):
    """Interop: openssl cms decrypts with b's short-lived key and verifies
    with a's signing certificate; the binding is inside the signed data."""
    b, a = world["b"], world["a"]
    current = [f for f, (state, priv) in b.key_rows().items() if state == "current"]
    assert len(current) == 1
    out = b.cli("key", current[0]).stdout.decode()
    epoch = re.search(r"# epoch key \(PKCS#8 passphrase\): (\w+)", out).group(1)
    cert = out[:out.index("-----END CERTIFICATE-----") + 25] + "\n"
    enc_key = out[out.index("-----BEGIN ENCRYPTED PRIVATE KEY-----"):]
    (tmp_path / "cert.pem").write_text(cert)
    (tmp_path / "enc.pem").write_text(enc_key)
    subprocess.run(["openssl", "pkey", "-in", tmp_path / "enc.pem", "-passin", f"pass:{epoch}",
                    "-out", tmp_path / "key.pem"], check=True, capture_output=True)
    world["key0"] = (current[0], (tmp_path / "key.pem").read_bytes(), epoch)
    (tmp_path / "sealed.eml").write_bytes(world["captured"])
    r = subprocess.run(["openssl", "cms", "-decrypt", "-in", tmp_path / "sealed.eml",
                        "-recip", tmp_path / "cert.pem", "-inkey", tmp_path / "key.pem",
                        "-out", tmp_path / "signed.eml"], capture_output=True)
    assert r.returncode == 0, r.stderr
    a.cli("export", str(tmp_path / "pub"))
    bundle = (tmp_path / "pub" / ".well-known" / "sealgate" / "domain-keys").read_text()
    (tmp_path / "a-sign.pem").write_text(bundle[:bundle.index("-----END CERTIFICATE-----") + 25] + "\n")
    # the SignedData carries no certificate (doc/domain.md): the verifier
    # brings the sender domain's pinned one
    r = subprocess.run(["openssl", "cms", "-verify", "-in", tmp_path / "signed.eml", "-noverify",
                        "-out", "/dev/null"], capture_output=True)
    assert r.returncode != 0 and b"signer certificate not found" in r.stderr, r.stderr
    r = subprocess.run(["openssl", "cms", "-verify", "-in", tmp_path / "signed.eml",
                        "-certfile", tmp_path / "a-sign.pem", "-CAfile", tmp_path / "a-sign.pem",
                        "-attime", str(T0), "-out", tmp_path / "content.eml"],
                       capture_output=True)
    assert r.returncode == 0 and b"Verification successful" in r.stderr, r.stderr
    content = (tmp_path / "content.eml").read_bytes()
    assert b"Sealgate-Domain-Binding: v=1; from=a.test; to=b.test" in content
    assert MARKER in content
    # and a certificate that is not a's does not verify it
    r = subprocess.run(["openssl", "cms", "-verify", "-in", tmp_path / "signed.eml",
                        "-certfile", tmp_path / "cert.pem", "-CAfile", tmp_path / "cert.pem",
                        "-attime", str(T0), "-out", "/dev/null"], capture_output=True)
    assert r.returncode != 0


def test_tampered_rejected(world):
    code, text = world["b"].inject("alice@a.test", "bob@b.test", body_b64_tamper(world["captured"]))
    assert code == 554 and "5.7.5" in text and "tampered" in text, text


def test_replayed_to_wrong_domain_rejected(world):
    """b also serves c.test with the same keys: the copy sealed for b.test
    decrypts there, but the binding says b.test."""
    code, text = world["b"].inject("alice@a.test", "carol@c.test", world["captured"])
    assert code == 554 and "5.7.1" in text and "bound to another domain" in text, text


def test_unpinned_signer_rejected(world):
    evil, b = world["evil"], world["b"]
    r = evil.submit("mallory@a.test", ["bob@b.test"], message("forged"))
    assert r["bob@b.test"][0] == 250, r
    forged = evil.sink.messages()[-1]
    code, text = b.inject("mallory@a.test", "bob@b.test", forged)
    assert code == 554 and "5.7.8" in text and "pinned" in text, text
    assert all(b"forged" not in m for m in b.sink.messages())


def files_under(root):
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            if os.path.isfile(p):
                yield p


def secret_rows(state, fpr):
    db = sqlite3.connect(f"file:{state}/sealgate.db?mode=ro", uri=True)
    try:
        return [r[0] for r in db.execute("SELECT blob FROM private_keys WHERE fingerprint = ?", (fpr,))]
    finally:
        db.close()


def test_grace_then_destruction(world):
    a, b = world["a"], world["b"]
    fpr0, key_pem, epoch = world["key0"]
    # window 0 ended 4 days ago: within the 5-day grace the delayed copy opens
    for i in (a, b):
        i.start(T0 + 5 * DAY)
    assert b.key_rows()[fpr0] == ("grace", "present")
    assert b.inject("alice@a.test", "bob@b.test", world["captured"])[0] == 250
    assert MARKER in b.sink.messages()[-1]
    fresh = send_a_to_b(world, "day five")
    assert b.inject("alice@a.test", "bob@b.test", fresh)[0] == 250

    blobs = secret_rows(b.state, fpr0)
    assert len(blobs) == 2  # the key under its epoch key, the epoch key under the master key
    der = subprocess.run(["openssl", "pkey", "-outform", "DER"], input=key_pem,
                         capture_output=True, check=True).stdout
    scalar = subprocess.run(["openssl", "pkey", "-noout", "-text"], input=key_pem,
                            capture_output=True, check=True).stdout.decode()
    priv_hex = "".join(re.search(r"priv:\s*([0-9a-f:\s]+?)pub:", scalar, re.S).group(1).split()).replace(":", "")
    needles = blobs + [der, bytes.fromhex(priv_hex)[-32:], key_pem, epoch.encode(),
                       base64.b64encode(blobs[0])[:40]]

    # the search can find them: before destruction the sealed rows are on disk
    assert any(blobs[0] in open(p, "rb").read() and blobs[1] in open(p, "rb").read()
               for p in files_under(b.state))

    # window 0 + grace is over: rotation at start destroys the key
    for i in (a, b):
        i.start(T0 + 6 * DAY + 3600)
    assert f"destroyed short-lived key {fpr0}" in b.gw.log()
    assert fpr0 not in b.key_rows()
    assert b.cli("key", fpr0, check=False).returncode == 2
    code, text = b.inject("alice@a.test", "bob@b.test", world["captured"])
    assert code == 554 and "5.7.4" in text and "destroyed" in text, text
    # mail sealed with the current key still flows
    fresh = send_a_to_b(world, "day six")
    assert b.inject("alice@a.test", "bob@b.test", fresh)[0] == 250
    assert b"Subject: day six" in b.sink.messages()[-1]
    # the key bytes are nowhere on disk: database, -wal, -shm, the whole state dir
    names = list(files_under(b.state))
    assert any(n.endswith("sealgate.db") for n in names)
    for path in names:
        data = open(path, "rb").read()
        for needle in needles:
            assert needle not in data, f"key material left in {path}"
    assert secret_rows(b.state, fpr0) == []
