"""The inbound listener checks S/MIME signers against the configured CRLs
(smime_revocation, smime_crl_files, smime_crl_dir; RFC 5280 s5): a test CA
made with `openssl ca` revokes one of two signers, both sign with
`openssl cms -sign`, and the sink reads the Authentication-Results field
(RFC 8601, smime per RFC 7281) that sealgate wrote: policy for the revoked
signer, pass for the other; with smime_revocation = off the revoked signer
passes (so the check is really what tells them apart); require without a
CRL from the signer's issuer passes nobody (smime=temperror: the status
could not be checked)."""
import os
import re
import shutil
import threading
from contextlib import contextmanager

import pytest

import smime_pki as pki
from gateway_harness import Gateway, Raw, Sink

AUTHSERV = "mx.example.test"
GOOD, BAD = "good@d.test", "bad@d.test"


@pytest.fixture(scope="module")
def p(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))

    class P:
        dir = d
        ca = pki.make_ca(d, "InboundCA")
        other_ca = pki.make_ca(d, "OtherCA")
        good = pki.issued(d, "good", GOOD, "rsa", ca)
        bad = pki.issued(d, "bad", BAD, "ec", ca)
        auth = pki.CrlAuthority(d, ca)
    P.auth.revoke(P.bad)
    P.crl = P.auth.crl(os.path.join(d, "ca.crl"))
    # the same CRL as DER, alone in a directory, for smime_crl_dir
    P.crl_dir = os.path.join(d, "crldir")
    os.makedirs(P.crl_dir)
    P.auth.crl(os.path.join(P.crl_dir, "ca.crl"), der=True)
    # a CRL, but not from the signers' issuer
    P.other_crl = pki.CrlAuthority(d, P.other_ca).crl(os.path.join(d, "other.crl"))
    yield P
    shutil.rmtree(d, ignore_errors=True)


def openssl_signed(p, ident, n=0):
    """A multipart/signed message made by openssl cms (not by sealgate),
    From the signer's address, CRLF line ends."""
    d = os.path.join(p.dir, f"msg-{ident.name}-{n}")
    os.makedirs(d, exist_ok=True)
    src, out = os.path.join(d, "body"), os.path.join(d, "signed.eml")
    with open(src, "wb") as f:
        f.write(b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
                b"Signed words number %d.\r\n" % n)
    pki.sh(["openssl", "cms", "-sign", "-in", src, "-signer", ident.crt, "-inkey", ident.key,
            "-md", "sha256", "-out", out])
    with open(out, "rb") as f:
        # the signed part is canonical (CRLF) already; openssl ends the
        # base64 lines of the signature with LF alone
        signed = f.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert b"multipart/signed" in signed
    return (f"From: <{ident.email}>\r\nTo: <local@here.test>\r\n"
            f"Subject: revocation {n}\r\nMessage-ID: <rev{n}.{ident.name}@d.test>\r\n").encode() + signed


@contextmanager
def gateway(tmp_path, extra):
    sink = Sink(str(tmp_path))
    gw = None
    try:
        gw = Gateway(os.environ.get("SEALGATE_BIN"), str(tmp_path), sink.port,
                     f"authserv_id = {AUTHSERV}\n" + extra)
        gw.sink = sink
        yield gw
    finally:
        code = gw.stop() if gw is not None else 0
        sink.stop()
    log = gw.log()
    assert code == 0, log
    assert "ERROR: AddressSanitizer" not in log and "runtime error" not in log, log


def anchored(p, *lines):
    return f"smime_trust_anchors = {p.ca.crt}\n" + "".join(l + "\n" for l in lines)


def send(gw, msg):
    c = Raw(gw.smtp_port)
    try:
        assert c.reply()[0] == 220
        c.cmd("EHLO outside.test")
        assert c.cmd("MAIL FROM:<x@outside.test>")[0] == 250
        assert c.cmd("RCPT TO:<local@here.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(msg + b".\r\n")
        r = c.reply()
        c.cmd("QUIT")
    finally:
        c.close()
    assert r[0] == 250, r


def results(gw):
    """{Message-ID: the one Authentication-Results field of ours} from the sink."""
    out = {}
    for m in gw.sink.messages():
        head = m.split(b"\r\n\r\n", 1)[0].decode()
        ars = re.findall(r"^Authentication-Results:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*", head, re.M | re.I)
        mid = re.search(r"^Message-ID: <([^>]*)>", head, re.M | re.I).group(1)
        assert len(ars) == 1 and ars[0].startswith(f"Authentication-Results: {AUTHSERV};"), ars
        out[mid] = re.sub(r"\r\n[ \t]+", " ", ars[0])
    return out


def one_each(p, gw):
    """Send one message from each signer; their fields (good, bad)."""
    send(gw, openssl_signed(p, p.good))
    send(gw, openssl_signed(p, p.bad))
    r = results(gw)
    assert len(r) == 2, r
    return r["rev0.good@d.test"], r["rev0.bad@d.test"]


def test_crl_mode_revoked_signer_is_policy(p, tmp_path):
    with gateway(tmp_path, anchored(p, "smime_revocation = crl", f"smime_crl_files = {p.crl}")) as gw:
        good, bad = one_each(p, gw)
        assert "smime=pass" in good and f"header.from={GOOD}" in good, good
        assert "smime=policy (signer key revoked)" in bad and f"header.from={BAD}" in bad, bad
        log = gw.log()
    assert re.search(rf"verify: from=<{re.escape(BAD)}>, method=smime, result=policy "
                     r"\(signer key revoked\); signer certificate: certificate revoked", log), log
    assert re.search(rf"verify: from=<{re.escape(GOOD)}>, method=smime, result=pass", log), log


def test_revocation_off_passes_the_revoked_signer(p, tmp_path):
    """The same CRL configured, checking off: the revoked signer passes,
    so the test above fails if the CRLs are not consulted."""
    with gateway(tmp_path, anchored(p, "smime_revocation = off", f"smime_crl_files = {p.crl}")) as gw:
        good, bad = one_each(p, gw)
    assert "smime=pass" in good, good
    assert "smime=pass" in bad and f"header.from={BAD}" in bad and "revoked" not in bad, bad


def test_require_with_crl_dir(p, tmp_path):
    """require with the issuer's CRL (DER, from smime_crl_dir): the
    unrevoked signer passes, the revoked one does not."""
    with gateway(tmp_path, anchored(p, "smime_revocation = require", f"smime_crl_dir = {p.crl_dir}")) as gw:
        good, bad = one_each(p, gw)
    assert "smime=pass" in good, good
    assert "smime=policy (signer key revoked)" in bad, bad


@pytest.mark.parametrize("crls", ["", "smime_crl_files = {other}"])
def test_require_without_issuer_crl_passes_nobody(p, tmp_path, crls):
    """require, and no CRL from the signers' issuer (none at all, or only
    another CA's): neither signer passes, and neither is called revoked."""
    with gateway(tmp_path, anchored(p, "smime_revocation = require",
                                    crls.format(other=p.other_crl))) as gw:
        good, bad = one_each(p, gw)
        log = gw.log()
    for ar in (good, bad):
        assert "smime=" in ar and "smime=pass" not in ar and "revoked" not in ar, ar
        # RFC 7281 s3 / RFC 8601: a check that could not be made is a
        # transient error, with the reason, not neutral
        assert "smime=temperror (signer revocation status unknown: no current CRL)" in ar, ar
    # the log says why: no CRL from the issuer
    for who in (GOOD, BAD):
        assert re.search(rf"verify: from=<{re.escape(who)}>, method=smime, result=\w+ \([^)]*\); "
                         r"signer certificate: unable to get certificate CRL", log), log


def test_crl_mode_without_issuer_crl_is_soft(p, tmp_path):
    """crl (soft): only another CA's CRL is held, so nothing says revoked."""
    with gateway(tmp_path, anchored(p, "smime_revocation = crl", f"smime_crl_files = {p.other_crl}")) as gw:
        good, bad = one_each(p, gw)
    assert "smime=pass" in good and "smime=pass" in bad, (good, bad)


def test_concurrent_verifications_share_the_crls(p, tmp_path):
    """Worker threads verify at once against the one loaded CRL set: each
    message still gets its own signer's result."""
    msgs = [(openssl_signed(p, who, n), who) for n in range(1, 5) for who in (p.good, p.bad)]
    with gateway(tmp_path, anchored(p, "smime_revocation = crl", f"smime_crl_files = {p.crl}")) as gw:
        errors = []

        def worker(batch):
            try:
                for m, _ in batch:
                    send(gw, m)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
        threads = [threading.Thread(target=worker, args=(msgs[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        r = results(gw)
    assert len(r) == len(msgs), r
    for n in range(1, 5):
        assert "smime=pass" in r[f"rev{n}.good@d.test"], r
        assert "smime=policy (signer key revoked)" in r[f"rev{n}.bad@d.test"], r
