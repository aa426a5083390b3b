"""DNS key look-up with real DNSSEC, offline: a zone signed with
ldns-signzone, served by nsd on loopback, its KSK's DS as the trust anchor
(dns_trust_anchor_file), nsd as the forwarder (dns_resolver). OPENPGPKEY
(RFC 7929) and SMIMEA (RFC 8162) records: a validated answer gives the key
with trust "dnssec" (and mail is sealed to it); the same zone unsigned, or
with a broken signature, is refused."""
import os
import subprocess

import pytest

import pgphelp
import smime_pki
from conftest import SEALGATE_BIN
from dnssec_peer import RR_OPENPGPKEY, RR_SMIMEA, SignedZone, owner
from keys_helpers import gpg, gpg_genkey, gpg_kill
from policy_helpers import MARKER, lmtp_send, message
from test_lookup_policy import Env

ZONE = "keys-sg.org"     # not .test: unbound keeps RFC 6761 names local
PGP_ADDR, SMIME_ADDR = f"dina@{ZONE}", f"sam@{ZONE}"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    t = tmp_path_factory.mktemp("dnssec-keys")
    home = str(t / "gpg")
    out = {"home": home, "pgp_fpr": gpg_genkey(home, f"dina <{PGP_ADDR}>")}
    out["pgp"] = gpg(home, "--export", PGP_ADDR).stdout
    ident = smime_pki.self_signed(str(t), "sam", SMIME_ADDR, "ec")
    out["der"] = subprocess.run(["openssl", "x509", "-in", ident.crt, "-outform", "DER"],
                                capture_output=True, check=True, timeout=30).stdout
    fpr = subprocess.run(["openssl", "x509", "-in", ident.crt, "-noout", "-fingerprint",
                          "-sha256"], capture_output=True, text=True, check=True, timeout=30)
    out["x509_fpr"] = fpr.stdout.strip().split("=", 1)[1].replace(":", "")
    yield out
    gpg_kill(home)


def records(keys):
    # SMIMEA usage 3 (DANE-EE), selector 0 (full certificate), matching 0.
    return [(owner(PGP_ADDR, "_openpgpkey"), RR_OPENPGPKEY, keys["pgp"]),
            (owner(SMIME_ADDR, "_smimecert"), RR_SMIMEA, bytes([3, 0, 0]) + keys["der"])]


def dns_settings(zone):
    return {"lookup_order": "dns", "dns_trust_anchor_file": zone.anchor,
            "dns_resolver": f"127.0.0.1@{zone.port}"}


def lookup(tmp_path, zone, addr):
    args = [SEALGATE_BIN, "key-lookup", addr, "--state-dir", str(tmp_path), "--budget-ms", "10000"]
    for k, v in dns_settings(zone).items():
        args += ["--set", f"{k}={v}"]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@pytest.fixture
def signed(keys):
    z = SignedZone(ZONE, records(keys))
    yield z
    z.stop()


def test_signed_answers_found_with_dnssec_trust(signed, keys, tmp_path):
    r = lookup(tmp_path, signed, PGP_ADDR)
    assert r.returncode == 0, r.stderr
    assert f"pgp\tdns\tdnssec\t{keys['pgp_fpr']}\t" in r.stdout, r.stdout
    r = lookup(tmp_path, signed, SMIME_ADDR)
    assert r.returncode == 0, r.stderr
    assert f"x509\tdns\tdnssec\t{keys['x509_fpr']}\t" in r.stdout, r.stdout
    # A name the zone provably (NSEC) does not have: "none", not a failure.
    r = lookup(tmp_path, signed, f"nobody@{ZONE}")
    assert r.returncode == 2, r.stdout + r.stderr


def test_unsigned_zone_refused(keys, tmp_path):
    """The same records without signatures, the anchor still configured:
    the answer cannot be validated and is not used."""
    z = SignedZone(ZONE, records(keys), signed=False)
    try:
        r = lookup(tmp_path, z, PGP_ADDR)
    finally:
        z.stop()
    assert r.returncode != 0 and keys["pgp_fpr"] not in r.stdout
    assert "DNSSEC validation failed" in r.stderr, r.stderr


def test_broken_signature_refused(keys, tmp_path):
    name = owner(PGP_ADDR, "_openpgpkey")
    z = SignedZone(ZONE, records(keys), tamper=(name, ("OPENPGPKEY", "TYPE61")))
    try:
        r = lookup(tmp_path, z, PGP_ADDR)
        r2 = lookup(tmp_path / "other", z, SMIME_ADDR)
    finally:
        z.stop()
    assert r.returncode != 0 and keys["pgp_fpr"] not in r.stdout
    assert "DNSSEC validation failed (bogus answer)" in r.stderr, r.stderr
    # The untouched SMIMEA record of the same zone still validates: the
    # refusal above is the broken signature, not the set-up.
    assert r2.returncode == 0 and f"x509\tdns\tdnssec\t{keys['x509_fpr']}" in r2.stdout, r2.stderr


def test_mail_sealed_to_dnssec_key(signed, keys, tmp_path):
    e = Env(str(tmp_path), 1)
    e.extra = e.extra.replace("lookup_order = wkd\n", "") + "".join(
        f"{k} = {v}\n" for k, v in dns_settings(signed).items())
    e.start()
    try:
        got = lmtp_send(e.port, "alice@a.test", [PGP_ADDR], message())
        log = e.gw.log()
    finally:
        e.stop()
    assert got[PGP_ADDR][0] == 250, got
    m = e.sink.messages()[0]
    assert MARKER not in m
    r = pgphelp.gpg(keys["home"], "--decrypt", inp=pgphelp.encrypted_payload(m), check=False)
    assert r.returncode == 0 and MARKER in r.stdout
    assert f"key={keys['pgp_fpr']}" in log
