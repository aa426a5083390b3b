"""sealgate seal/unseal with OpenPGP against real peers (gpg, sq, rnp):
interop both ways, byte-exactness of the encrypted entity, header
protection, and one exit code + one stderr line per failure class."""
import email
import email.policy
import os
import re
import subprocess

import pytest

from pgphelp import (KEYS, armor, dearmor, encrypted_payload, field_name, gpg, header_fields, kill_agent,
                     make_keys, multipart_parts, part_body, pgp_mime, pgp_signed, sealgate, split_message)

PEERS = ["gpg", "sq", "rnp"]

ORIG_HEADERS = (b"From: Alice <alice@a.test>\r\nTo: Bob <bob@b.test>\r\nCc: carol@c.test\r\n"
                b"Subject: Quarterly numbers\r\n  (draft)\r\nDate: Mon, 05 Jan 2026 10:00:00 +0000\r\n"
                b"Message-ID: <q1@a.test>\r\nX-Mailer: test\r\nMIME-Version: 1.0\r\n")
PLAIN_8BIT = (ORIG_HEADERS + b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
              b"Gr\xc3\xbc\xc3\x9fe, \xe2\x82\xac 100\r\nFrom the start of a line\r\n" + b"x" * 1200 + b"\r\n")
HTML_ATTACH = (ORIG_HEADERS +
               b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n--outer\r\n'
               b'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n--alt\r\n'
               b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
               b"caf=E9\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>caf\xc3\xa9</p>\r\n--alt--\r\n"
               b"\r\n--outer\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n"
               b"Content-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
               b"JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSPj4Kc3RyZWFtCg==\r\n--outer--\r\n")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("pgpkeys")
    home = str(d / "gnupg")
    make_keys(home, str(d))
    k = {"dir": str(d), "home": home}
    for name in KEYS:
        k[name + ".pub"] = str(d / (name + ".pub"))
        k[name + ".sec"] = str(d / (name + ".sec"))
    k["carol.pass"] = str(d / "carol.pass")
    yield k
    kill_agent(home)


def content_fields(msg):
    return [f for f in header_fields(split_message(msg)[0]) if field_name(f).startswith(b"content-")]


def check_inner_exact(orig, inner):
    """The encrypted entity: the original content fields byte for byte (the
    protected-headers marker appended to Content-Type), the protected
    fields byte for byte, then the original body byte for byte."""
    ohdr, obody = split_message(orig)
    ihdr, ibody = split_message(inner)
    assert ibody == obody
    ifields = header_fields(ihdr)
    for f in content_fields(orig):
        if field_name(f) == b"content-type":
            assert f[:-2] + b'; protected-headers="v1"\r\n' in ifields
        else:
            assert f in ifields
    for f in header_fields(ohdr):
        if field_name(f) in (b"subject", b"from", b"to", b"cc", b"date", b"message-id"):
            assert f in ifields, f


def check_outer(orig, sealed, subject=b"..."):
    """Every non-content outer field kept in order and folding; Subject neutral."""
    want = [f for f in header_fields(split_message(orig)[0]) if not field_name(f).startswith(b"content-")]
    want = [b"Subject: " + subject + b"\r\n" if field_name(f) == b"subject" else f for f in want]
    got = [f for f in header_fields(split_message(sealed)[0]) if not field_name(f).startswith(b"content-")]
    assert got == want


# ---- peers ----

def peer_decrypt(peer, keys, tmp, armored, signer=None):
    """Decrypt with bob's key; returns (plaintext, signature_ok)."""
    ct = os.path.join(tmp, "ct.asc")
    out = os.path.join(tmp, "pt")
    open(ct, "wb").write(armored)
    if os.path.exists(out):
        os.unlink(out)
    if peer == "gpg":
        r = subprocess.run(["gpg", "--homedir", keys["home"], "--batch", "--yes", "--status-fd", "2",
                            "-o", out, "-d", ct], capture_output=True, timeout=60)
        ok = b"[GNUPG:] GOODSIG" in r.stderr
    elif peer == "sq":
        args = ["sq", "decrypt", "--recipient-key", keys["bob.sec"], "-o", out, ct]
        if signer:
            args[2:2] = ["--signer-cert", keys[signer + ".pub"]]
        r = subprocess.run(args, capture_output=True, timeout=60)
        ok = b"1 good signature" in r.stderr
    else:
        kr = os.path.join(tmp, "kr.asc")
        with open(kr, "wb") as f:
            f.write(open(keys["bob.sec"], "rb").read())
            if signer:
                f.write(open(keys[signer + ".pub"], "rb").read())
        r = subprocess.run(["rnp", "--keyfile", kr, "-d", ct, "--output", out], capture_output=True, timeout=60)
        ok = b"Signature(s) verified successfully" in r.stderr + r.stdout
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return open(out, "rb").read(), ok


def peer_encrypt(peer, keys, tmp, data, sign=False):
    """Encrypt data to bob (signed by alice); returns armored text."""
    pt = os.path.join(tmp, "in.bin")
    out = os.path.join(tmp, "enc.asc")
    open(pt, "wb").write(data)
    if os.path.exists(out):
        os.unlink(out)
    if peer == "gpg":
        args = ["gpg", "--homedir", keys["home"], "--batch", "--yes", "--trust-model", "always", "--armor",
                "-r", "bob@b.test", "-o", out]
        if sign:
            args += ["-u", "alice@a.test", "-s"]
        r = subprocess.run(args + ["-e", pt], capture_output=True, timeout=60)
    elif peer == "sq":
        args = ["sq", "encrypt", "--recipient-cert", keys["bob.pub"], "-o", out]
        if sign:
            args += ["--signer-key", keys["alice.sec"]]
        r = subprocess.run(args + [pt], capture_output=True, timeout=60)
    else:
        kr = os.path.join(tmp, "kr.asc")
        with open(kr, "wb") as f:
            f.write(open(keys["bob.pub"], "rb").read() + open(keys["alice.sec"], "rb").read())
        args = ["rnp", "--keyfile", kr, "-e", "-r", "bob@b.test", "--armor", pt, "--output", out]
        if sign:
            args += ["-s", "-u", "alice@a.test"]
        r = subprocess.run(args, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return open(out, "rb").read()


def peer_sign_detached(peer, keys, tmp, data):
    pt = os.path.join(tmp, "tosign")
    out = os.path.join(tmp, "sig.asc")
    open(pt, "wb").write(data)
    if os.path.exists(out):
        os.unlink(out)
    if peer == "gpg":
        r = subprocess.run(["gpg", "--homedir", keys["home"], "--batch", "--yes", "--armor", "--digest-algo",
                            "SHA256", "-u", "alice@a.test", "-o", out, "--detach-sign", pt],
                           capture_output=True, timeout=60)
    elif peer == "sq":
        r = subprocess.run(["sq", "sign", "--detached", "--signer-key", keys["alice.sec"], "-o", out, pt],
                           capture_output=True, timeout=60)
    else:
        r = subprocess.run(["rnp", "--keyfile", keys["alice.sec"], "--sign", "--detach", "--armor", "--hash",
                            "SHA256", pt, "--output", out], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return open(out, "rb").read()


def peer_verify_detached(peer, keys, tmp, data, sig):
    pt = os.path.join(tmp, "signed")
    sf = os.path.join(tmp, "signed.asc")
    open(pt, "wb").write(data)
    open(sf, "wb").write(sig)
    if peer == "gpg":
        r = subprocess.run(["gpg", "--homedir", keys["home"], "--batch", "--status-fd", "2", "--verify", sf, pt],
                           capture_output=True, timeout=60)
        return r.returncode == 0 and b"[GNUPG:] GOODSIG" in r.stderr
    if peer == "sq":
        r = subprocess.run(["sq", "verify", "--signer-cert", keys["alice.pub"], "--detached", sf, pt],
                           capture_output=True, timeout=60)
        return r.returncode == 0
    r = subprocess.run(["rnp", "--keyfile", keys["alice.pub"], "-v", sf, "--source", pt],
                       capture_output=True, timeout=60)
    return r.returncode == 0


# ---- sealgate → peer ----

@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("msg", [PLAIN_8BIT, HTML_ATTACH], ids=["8bit", "html+attachment"])
def test_encrypt_only_peer_decrypts_exact(keys, tmp_path, peer, msg):
    r = sealgate("seal", "--to", "bob@b.test", "--to", "carol@c.test", "--key", keys["bob.pub"],
                 "--key", keys["carol.pub"], inp=msg)
    assert r.returncode == 0, r.stderr
    check_outer(msg, r.stdout)
    plain, _ = peer_decrypt(peer, keys, str(tmp_path), encrypted_payload(r.stdout))
    check_inner_exact(msg, plain)


@pytest.mark.parametrize("peer", PEERS)
def test_sign_and_encrypt_peer_verifies(keys, tmp_path, peer):
    r = sealgate("seal", "--to", "bob@b.test", "--sign-as", "alice@a.test", "--key", keys["bob.pub"],
                 "--key", keys["alice.sec"], "--subject", "[sealed]", inp=PLAIN_8BIT)
    assert r.returncode == 0, r.stderr
    check_outer(PLAIN_8BIT, r.stdout, b"[sealed]")
    plain, sig_ok = peer_decrypt(peer, keys, str(tmp_path), encrypted_payload(r.stdout), signer="alice")
    assert sig_ok
    check_inner_exact(PLAIN_8BIT, plain)


def leaves(msg):
    m = email.message_from_bytes(msg, policy=email.policy.compat32)
    return [(p.get_content_type(), p.get_payload(decode=True)) for p in m.walk() if not p.is_multipart()]


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("msg", [PLAIN_8BIT, HTML_ATTACH], ids=["8bit", "html+attachment"])
def test_sign_only_peer_verifies(keys, tmp_path, peer, msg):
    r = sealgate("seal", "--sign-as", "alice@a.test", "--key", keys["alice.sec"], inp=msg)
    assert r.returncode == 0, r.stderr
    hdr, _ = split_message(r.stdout)
    assert re.search(rb'multipart/signed; micalg=pgp-sha256;\s+protocol="application/pgp-signature"', hdr)
    signed, sig = multipart_parts(r.stdout)
    # RFC 3156 s3/s5: canonical CRLF, 7 bit.
    assert all(b < 0x80 for b in signed)
    assert b"\n" not in signed.replace(b"\r\n", b"")
    assert max(len(line) for line in signed.split(b"\r\n")) <= 998
    assert peer_verify_detached(peer, keys, str(tmp_path), signed, part_body(sig))
    # Decoded content identical.
    assert leaves(signed) == leaves(msg)


# ---- peer → sealgate ----

@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("sign", [False, True], ids=["encrypt", "sign+encrypt"])
def test_peer_encrypts_sealgate_unseals(keys, tmp_path, peer, sign):
    inner = (b'Content-Type: text/plain; charset=utf-8; protected-headers="v1"\r\n'
             b"Subject: The real subject\r\n\r\nfrom " + peer.encode() + b" \xc3\xa9\r\n")
    msg = pgp_mime(b"From: alice@a.test\r\nTo: bob@b.test\r\nSubject: ...\r\n",
                   peer_encrypt(peer, keys, str(tmp_path), inner, sign))
    r = sealgate("unseal", "--key", keys["bob.sec"], "--verify-key", keys["alice.pub"], inp=msg)
    assert r.returncode == 0, r.stderr
    assert b"Subject: The real subject\r\n" in r.stdout
    assert b"Subject: ...\r\n" not in r.stdout
    assert r.stdout.endswith(b"\r\n\r\nfrom " + peer.encode() + b" \xc3\xa9\r\n")
    assert b"authenticated: yes" in r.stderr
    assert (b"signature: valid" if sign else b"signature: none") in r.stderr


def test_rfc3156_6_1_signed_then_encrypted(keys, tmp_path):
    """A peer's multipart/signed inside multipart/encrypted (RFC 3156 s6.1)."""
    entity = (b'Content-Type: text/plain; charset=utf-8; protected-headers="v1"\r\nSubject: nested\r\n\r\n'
              b"inner text\r\n")
    signed = pgp_signed(b"", entity, peer_sign_detached("gpg", keys, str(tmp_path), entity))
    msg = pgp_mime(b"From: alice@a.test\r\nSubject: ...\r\n", peer_encrypt("gpg", keys, str(tmp_path), signed))
    r = sealgate("unseal", "--key", keys["bob.sec"], "--verify-key", keys["alice.pub"], inp=msg)
    assert r.returncode == 0, r.stderr
    assert b"signature: valid" in r.stderr
    assert b"Subject: nested\r\n" in r.stdout
    assert r.stdout.endswith(b"\r\n\r\ninner text\r\n")


def test_inline_pgp_unseal(keys, tmp_path):
    armored = peer_encrypt("gpg", keys, str(tmp_path), b"inline secret\n", sign=True)
    msg = b"Subject: inline\r\nContent-Type: text/plain\r\n\r\nHello,\r\n" + armored.replace(b"\n", b"\r\n")
    r = sealgate("unseal", "--key", keys["bob.sec"], "--verify-key", keys["alice.pub"], inp=msg)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Subject: inline\r\nContent-Type: text/plain\r\n\r\nHello,\r\ninline secret\n\r\n"
    assert b"signature: valid" in r.stderr


def test_base64_encoded_ciphertext_part(keys, tmp_path):
    """RFC 3156 s4 lets the octet-stream part carry any transfer encoding."""
    import base64
    armored = peer_encrypt("gpg", keys, str(tmp_path), b"Content-Type: text/plain\r\n\r\nb64 part\r\n")
    msg = pgp_mime(b"Subject: x\r\n", armored)
    b64 = base64.encodebytes(armored.replace(b"\n", b"\r\n")).replace(b"\n", b"\r\n")
    msg = msg.replace(b'name="encrypted.asc"\r\n\r\n' + armored.replace(b"\n", b"\r\n"),
                      b'name="encrypted.asc"\r\nContent-Transfer-Encoding: base64\r\n\r\n' + b64)
    assert b"Content-Transfer-Encoding: base64" in msg
    r = sealgate("unseal", "--key", keys["bob.sec"], inp=msg)
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith(b"\r\n\r\nb64 part\r\n")


@pytest.mark.parametrize("peer", PEERS)
def test_peer_signs_sealgate_verifies(keys, tmp_path, peer):
    entity = b"Content-Type: text/plain; charset=us-ascii\r\n\r\nsigned by " + peer.encode() + b"\r\n"
    msg = pgp_signed(b"From: alice@a.test\r\nSubject: s\r\n", entity,
                     peer_sign_detached(peer, keys, str(tmp_path), entity))
    r = sealgate("unseal", "--verify-key", keys["alice.pub"], inp=msg)
    assert r.returncode == 0, r.stderr
    assert b"signature: valid" in r.stderr
    assert r.stdout == msg
    # The same signature over changed content is bad: exit 9, no output.
    bad = msg.replace(b"signed by", b"signed bz")
    r = sealgate("unseal", "--verify-key", keys["alice.pub"], inp=bad)
    assert r.returncode == 9, r.stderr
    assert r.stdout == b""


# ---- round trips through sealgate alone ----

@pytest.mark.parametrize("msg", [PLAIN_8BIT, HTML_ATTACH], ids=["8bit", "html+attachment"])
def test_roundtrip_restores_message(keys, msg):
    r = sealgate("seal", "--to", "bob@b.test", "--sign-as", "alice@a.test", "--key", keys["bob.pub"],
                 "--key", keys["alice.sec"], inp=msg)
    assert r.returncode == 0, r.stderr
    u = sealgate("unseal", "--key", keys["bob.sec"], "--verify-key", keys["alice.pub"], inp=r.stdout)
    assert u.returncode == 0, u.stderr
    assert u.stdout == msg
    assert re.match(rb"sealgate unseal: encrypted: yes; decrypted with: [0-9A-F]{40}; authenticated: yes; "
                    rb"signature: valid by [0-9A-F]{40}\n$", u.stderr), u.stderr


def test_passphrase_key(keys):
    r = sealgate("seal", "--to", "carol@c.test", "--key", keys["carol.pub"], inp=PLAIN_8BIT)
    assert r.returncode == 0, r.stderr
    u = sealgate("unseal", "--key", keys["carol.sec"], "--passphrase-file", keys["carol.pass"], inp=r.stdout)
    assert u.returncode == 0, u.stderr
    assert u.stdout == PLAIN_8BIT
    u = sealgate("unseal", "--key", keys["carol.sec"], inp=r.stdout)
    assert u.returncode == 3, u.stderr
    assert b"passphrase" in u.stderr


def test_passphrase_signer(keys, tmp_path):
    args = ["seal", "--to", "bob@b.test", "--sign-as", "carol@c.test", "--key", keys["bob.pub"],
            "--key", keys["carol.sec"]]
    r = sealgate(*args, inp=PLAIN_8BIT)
    assert r.returncode == 3, r.stderr
    assert "passphrase" in one_line(r.stderr)
    assert r.stdout == b""
    r = sealgate(*args, "--passphrase-file", keys["carol.pass"], inp=PLAIN_8BIT)
    assert r.returncode == 0, r.stderr
    plain, sig_ok = peer_decrypt("gpg", keys, str(tmp_path), encrypted_payload(r.stdout))
    assert sig_ok
    check_inner_exact(PLAIN_8BIT, plain)


def test_lf_input_becomes_crlf(keys):
    r = sealgate("seal", "--to", "bob@b.test", "--key", keys["bob.pub"],
                 inp=PLAIN_8BIT.replace(b"\r\n", b"\n"))
    assert r.returncode == 0, r.stderr
    u = sealgate("unseal", "--key", keys["bob.sec"], inp=r.stdout)
    assert u.stdout == PLAIN_8BIT


# ---- already sealed input ----

ALREADY = {
    "pgp-mime": b'Subject: x\r\nContent-Type: multipart/encrypted; protocol="application/pgp-encrypted"; '
                b'boundary="b"\r\n\r\n--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n'
                b"--b\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n--b--\r\n",
    "inline": b"Subject: x\r\n\r\nHi,\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQEM\r\n-----END PGP MESSAGE-----\r\n",
    "smime": b"Subject: x\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQA=\r\n",
    "smime-auth": b"Subject: x\r\nContent-Type: application/pkcs7-mime; smime-type=authEnveloped-data\r\n\r\nMA==\r\n",
    "x-pkcs7": b"Subject: x\r\nContent-Type: application/x-pkcs7-mime; name=smime.p7m\r\n\r\nMA==\r\n",
}


@pytest.mark.parametrize("name", sorted(ALREADY))
def test_already_encrypted_passes_unchanged(keys, name):
    r = sealgate("seal", "--to", "bob@b.test", "--sign-as", "alice@a.test", "--key", keys["bob.pub"],
                 "--key", keys["alice.sec"], inp=ALREADY[name])
    assert r.returncode == 0, r.stderr
    assert r.stdout == ALREADY[name]
    assert b"already encrypted" in r.stderr


def test_signed_input_encrypted_around_untouched(keys, tmp_path):
    entity = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nsign\xc3\xa9d\r\n"
    signed = pgp_signed(b"From: alice@a.test\r\nTo: bob@b.test\r\nSubject: signed\r\n", entity,
                        peer_sign_detached("gpg", keys, str(tmp_path), entity))
    r = sealgate("seal", "--to", "bob@b.test", "--sign-as", "alice@a.test", "--key", keys["bob.pub"],
                 "--key", keys["alice.sec"], inp=signed)
    assert r.returncode == 0, r.stderr
    plain, sig_ok = peer_decrypt("gpg", keys, str(tmp_path), encrypted_payload(r.stdout))
    assert not sig_ok  # not re-signed
    assert split_message(plain)[1] == split_message(signed)[1]  # signed body bytes untouched
    u = sealgate("unseal", "--key", keys["bob.sec"], "--verify-key", keys["alice.pub"], inp=r.stdout)
    assert u.returncode == 0, u.stderr
    assert b"signature: valid" in u.stderr


# ---- failures: one exit code and one line each ----

def sealed_to_bob(keys, sign=False):
    args = ["seal", "--to", "bob@b.test", "--key", keys["bob.pub"]]
    if sign:
        args += ["--sign-as", "alice@a.test", "--key", keys["alice.sec"]]
    r = sealgate(*args, inp=PLAIN_8BIT)
    assert r.returncode == 0, r.stderr
    return r.stdout


def one_line(stderr):
    lines = stderr.decode().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_tampered_ciphertext(keys):
    sealed = sealed_to_bob(keys)
    ct = encrypted_payload(sealed)
    binary = bytearray(dearmor(ct))
    binary[-30] ^= 0x01  # inside the SEIPD packet: MDC must catch it
    bad = sealed.replace(ct, armor(bytes(binary)))
    r = sealgate("unseal", "--key", keys["bob.sec"], inp=bad)
    assert r.returncode == 7, r.stderr
    assert "integrity" in one_line(r.stderr)
    assert r.stdout == b""


def test_wrong_key(keys):
    r = sealgate("unseal", "--key", keys["mallory.sec"], inp=sealed_to_bob(keys))
    assert r.returncode == 6, r.stderr
    assert "not encrypted to any of the given keys" in one_line(r.stderr)
    assert r.stdout == b""


def test_no_secret_key_to_decrypt(keys):
    r = sealgate("unseal", "--verify-key", keys["alice.pub"], inp=sealed_to_bob(keys))
    assert r.returncode == 2, r.stderr
    assert "no OpenPGP secret key" in one_line(r.stderr)
    assert r.stdout == b""


def test_no_key_for_recipient(keys):
    r = sealgate("seal", "--to", "zed@z.test", "--key", keys["bob.pub"], inp=PLAIN_8BIT)
    assert r.returncode == 2
    assert one_line(r.stderr) == ("sealgate seal: recipient zed@z.test: no OpenPGP key "
                                  "(none among the --key files, none in the key store)")
    assert r.stdout == b""


def test_expired_recipient(keys):
    r = sealgate("seal", "--to", "dave@d.test", "--key", keys["dave.pub"], inp=PLAIN_8BIT)
    assert r.returncode == 4
    assert one_line(r.stderr) == "sealgate seal: recipient dave@d.test: key expired on 2020-01-02"
    assert r.stdout == b""


def test_revoked_recipient(keys):
    r = sealgate("seal", "--to", "erin@e.test", "--key", keys["erin.pub"], inp=PLAIN_8BIT)
    assert r.returncode == 5
    assert one_line(r.stderr).startswith("sealgate seal: recipient erin@e.test: key revoked")
    assert r.stdout == b""


@pytest.mark.parametrize("name", ["dave", "erin"])
def test_decrypt_with_own_expired_or_revoked_key(keys, tmp_path, name):
    """Mail encrypted before expiry/revocation still opens, with a warning."""
    if name == "dave":
        open(tmp_path / "in", "wb").write(b"Content-Type: text/plain\r\n\r\nold mail\r\n")
        gpg(keys["home"], "--faked-system-time", "20200101T120000!", "--trust-model", "always", "--armor",
            "-r", "dave@d.test", "-o", str(tmp_path / "ct"), "-e", str(tmp_path / "in"))
        ct = open(tmp_path / "ct", "rb").read()
    else:
        ct = open(os.path.join(keys["dir"], "erin.old.asc"), "rb").read()
    msg = pgp_mime(b"Subject: old\r\n", ct)
    r = sealgate("unseal", "--key", keys[name + ".sec"], inp=msg)
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith(b"old mail\r\n")
    assert re.search(rb"warning: .*(expired|revoked)", r.stderr), r.stderr


def test_unknown_signer(keys):
    r = sealgate("unseal", "--key", keys["bob.sec"], inp=sealed_to_bob(keys, sign=True))
    assert r.returncode == 8, r.stderr
    assert b"signature: unknown signer" in r.stderr


def test_signer_key_revoked_or_expired(keys, tmp_path):
    entity = b"Content-Type: text/plain\r\n\r\nold signed\r\n"
    open(tmp_path / "e", "wb").write(entity)
    gpg(keys["home"], "--faked-system-time", "20200101T120000!", "--armor", "--digest-algo", "SHA256",
        "-u", "dave@d.test", "-o", str(tmp_path / "s"), "--detach-sign", str(tmp_path / "e"))
    msg = pgp_signed(b"Subject: s\r\n", entity, open(tmp_path / "s", "rb").read())
    r = sealgate("unseal", "--verify-key", keys["dave.pub"], inp=msg)
    assert r.returncode == 4, r.stderr
    assert b"signer key expired" in r.stderr


def test_signer_key_revoked(keys):
    """Signed before erin's key was revoked: the signature is no longer trusted."""
    entity = open(os.path.join(keys["dir"], "erin.old"), "rb").read()
    msg = pgp_signed(b"Subject: s\r\n", entity, open(os.path.join(keys["dir"], "erin.old.sig"), "rb").read())
    r = sealgate("unseal", "--verify-key", keys["erin.pub"], inp=msg)
    assert r.returncode == 5, r.stderr
    assert b"signer key revoked" in r.stderr


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_input(keys, cut):
    sealed = sealed_to_bob(keys)
    r = sealgate("unseal", "--key", keys["bob.sec"], inp=sealed[:int(len(sealed) * cut)])
    assert r.returncode == 65, r.stderr
    one_line(r.stderr)
    assert r.stdout == b""


def test_garbage_ciphertext_is_malformed(keys):
    msg = pgp_mime(b"Subject: x\r\n", b"-----BEGIN PGP MESSAGE-----\r\n\r\nnot base64 at all!!\r\n"
                   b"-----END PGP MESSAGE-----\r\n")
    r = sealgate("unseal", "--key", keys["bob.sec"], inp=msg)
    assert r.returncode == 65, r.stderr
    one_line(r.stderr)
    assert r.stdout == b""


def test_bad_key_file(keys, tmp_path):
    p = tmp_path / "junk.asc"
    p.write_bytes(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnonsense\n-----END PGP PUBLIC KEY BLOCK-----\n")
    r = sealgate("seal", "--to", "bob@b.test", "--key", str(p), inp=PLAIN_8BIT)
    assert r.returncode == 3, r.stderr
    assert "v6" in one_line(r.stderr)


def test_usage(keys):
    r = sealgate("seal", inp=b"")
    assert r.returncode == 64
    r = sealgate("unseal", "--bogus", inp=b"")
    assert r.returncode == 64
    r = sealgate("help")
    assert b"seal" in r.stdout and b"unseal" in r.stdout
