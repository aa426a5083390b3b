"""Helpers for the OpenPGP seal/unseal tests: keys made with gpg in a temp
GNUPGHOME, exported to files; PGP/MIME built and taken apart by hand so
that byte-exactness is checked on the raw bytes."""
import base64
import os
import re
import shutil
import subprocess

from conftest import SEALGATE_BIN, run

# Keys: name -> (uid, algo, expiry, passphrase)
KEYS = {
    "alice": ("Alice <alice@a.test>", "future-default", "never", ""),
    "bob": ("Bob <bob@b.test>", "rsa2048", "never", ""),
    "carol": ("Carol <carol@c.test>", "future-default", "never", "carol secret pass"),
    "dave": ("Dave <dave@d.test>", "future-default", "expired", ""),
    "erin": ("Erin <erin@e.test>", "future-default", "never", ""),
    "mallory": ("Mallory <mallory@m.test>", "future-default", "never", ""),
}


def gpg(home, *args, inp=None, check=True):
    r = subprocess.run(["gpg", "--homedir", home, "--batch", "--yes", "--pinentry-mode", "loopback",
                        *args], input=inp, capture_output=True, timeout=60)
    if check and r.returncode != 0:
        raise RuntimeError(f"gpg {args}: {r.stderr.decode(errors='replace')}")
    return r


def fingerprint(home, uid):
    out = gpg(home, "--with-colons", "--list-keys", uid).stdout.decode()
    return re.search(r"^fpr:+([0-9A-F]+):", out, re.M).group(1)


def make_keys(home, keydir, names=None):
    """Generate the KEYS in gpg home and export NAME.pub / NAME.sec (and
    NAME.pass) into keydir. dave is expired (made in the past with
    --faked-system-time), erin revoked."""
    os.makedirs(home, mode=0o700, exist_ok=True)
    for name, (uid, algo, expiry, pw) in KEYS.items():
        if names is not None and name not in names:
            continue
        extra = []
        if expiry == "expired":
            extra = ["--faked-system-time", "20200101T000000!"]
        exp = "1d" if expiry == "expired" else expiry
        if algo == "rsa2048":
            gpg(home, *extra, "--passphrase", pw, "--quick-gen-key", uid, "rsa2048", "sign,cert", exp)
            fpr = fingerprint(home, uid)
            gpg(home, *extra, "--passphrase", pw, "--quick-add-key", fpr, "rsa2048", "encr", exp)
        else:
            gpg(home, *extra, "--passphrase", pw, "--quick-gen-key", uid, algo, "default", exp)
        addr = uid.split("<")[1].rstrip(">")
        pub = gpg(home, "--armor", "--export", addr).stdout
        sec = gpg(home, "--passphrase", pw, "--armor", "--export-secret-keys", addr).stdout
        with open(os.path.join(keydir, name + ".pub"), "wb") as f:
            f.write(pub)
        with open(os.path.join(keydir, name + ".sec"), "wb") as f:
            f.write(sec)
        if pw:
            with open(os.path.join(keydir, name + ".pass"), "w") as f:
                f.write(pw + "\n")
    if names is not None and "erin" not in names:
        return
    # Mail encrypted to erin while her key was still good, then revoke it
    # with the certificate gpg made at generation time.
    oldmail = os.path.join(keydir, "erin.old")
    with open(oldmail, "wb") as f:
        f.write(b"Content-Type: text/plain\r\n\r\nold mail\r\n")
    gpg(home, "--trust-model", "always", "--armor", "-r", "erin@e.test", "-o", oldmail + ".asc", "-e", oldmail)
    gpg(home, "--armor", "--digest-algo", "SHA256", "-u", "erin@e.test", "-o", oldmail + ".sig",
        "--detach-sign", oldmail)
    fpr = fingerprint(home, "erin@e.test")
    rev = open(os.path.join(home, "openpgp-revocs.d", fpr + ".rev"), "rb").read()
    rev = rev.replace(b":-----BEGIN PGP PUBLIC KEY BLOCK", b"-----BEGIN PGP PUBLIC KEY BLOCK")
    gpg(home, "--import", inp=rev)
    for ext, args in (("pub", ["--armor", "--export"]), ("sec", ["--armor", "--export-secret-keys"])):
        with open(os.path.join(keydir, "erin." + ext), "wb") as f:
            f.write(gpg(home, *args, "erin@e.test").stdout)


def kill_agent(home):
    subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True, timeout=30)


def sealgate(*args, inp=b""):
    return run([SEALGATE_BIN, *args], input=inp)


# ---- MIME by hand, on bytes ----

def split_message(msg):
    """(header block incl. last CRLF, body) at the first empty line."""
    i = msg.find(b"\r\n\r\n")
    assert i >= 0, "no header/body separator"
    return msg[:i + 2], msg[i + 4:]


def header_fields(hdr):
    """Raw fields (with folding and CRLF) in order."""
    fields = []
    for line in hdr.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line + b"\r\n"
        else:
            fields.append(line + b"\r\n")
    return fields


def field_name(f):
    return f.split(b":", 1)[0].strip().lower()


def boundary_of(hdr):
    m = re.search(rb'boundary="?([^";\r\n]+)"?', hdr, re.I)
    assert m, "no boundary"
    return m.group(1)


def multipart_parts(msg):
    """Raw parts of a top-level multipart (RFC 2046: the CRLF before a
    delimiter belongs to it)."""
    hdr, body = split_message(msg)
    b = boundary_of(hdr)
    pieces = re.split(rb"(?:^|\r\n)--" + re.escape(b) + rb"(?:--)?[ \t]*\r\n?", body)
    return [p for p in pieces[1:-1]]


def part_body(part):
    return split_message(part)[1]


def encrypted_payload(sealed):
    parts = multipart_parts(sealed)
    assert len(parts) == 2, parts
    assert b"application/pgp-encrypted" in parts[0]
    assert b"application/octet-stream" in parts[1]
    return part_body(parts[1])


def pgp_mime(outer_headers, armored):
    """A PGP/MIME message (RFC 3156 s4) around armored ciphertext."""
    b = b"peer-boundary-42"
    return (outer_headers +
            b'MIME-Version: 1.0\r\nContent-Type: multipart/encrypted; protocol="application/pgp-encrypted";'
            b' boundary="' + b + b'"\r\n\r\n--' + b +
            b"\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--" + b +
            b'\r\nContent-Type: application/octet-stream; name="encrypted.asc"\r\n\r\n' +
            armored.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n--" + b + b"--\r\n")


def pgp_signed(outer_headers, entity, armored_sig):
    b = b"peer-signed-42"
    return (outer_headers +
            b'MIME-Version: 1.0\r\nContent-Type: multipart/signed; micalg=pgp-sha256;'
            b' protocol="application/pgp-signature"; boundary="' + b + b'"\r\n\r\n--' + b + b"\r\n" +
            entity + b"\r\n--" + b + b'\r\nContent-Type: application/pgp-signature\r\n\r\n' +
            armored_sig.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n--" + b + b"--\r\n")


def crc24(data):
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def dearmor(armored):
    lines = armored.replace(b"\r\n", b"\n").split(b"\n")
    start = lines.index(b"") + 1
    data = []
    for line in lines[start:]:
        if line.startswith(b"=") or line.startswith(b"-----END"):
            break
        data.append(line)
    return base64.b64decode(b"".join(data))


def armor(binary, kind=b"MESSAGE"):
    b64 = base64.b64encode(binary)
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    crc = base64.b64encode(crc24(binary).to_bytes(3, "big"))
    return (b"-----BEGIN PGP " + kind + b"-----\r\n\r\n" + b"\r\n".join(lines) + b"\r\n=" + crc +
            b"\r\n-----END PGP " + kind + b"-----\r\n")


def have(tool):
    return shutil.which(tool) is not None
