"""Property test: random MIME trees (nesting, charsets, 8 bit, base64/QP,
long lines) survive seal -> unseal. Encrypt+sign restores the message byte
for byte; sign-only keeps every leaf's decoded content and verifies."""
import base64
import email
import email.policy
import quopri
import random

import pytest

from pgphelp import kill_agent, make_keys, multipart_parts, part_body, sealgate

SEED = 20260105
N_TREES = 50

WORDS = ["mail", "gateway", "Grüße", "café", "naïve", "€uro", "日本語", "ok", "From", "a=b", "--x", "."]


def text(rng, eight_bit, long_lines):
    lines = []
    for _ in range(rng.randint(0, 8)):
        n = rng.randint(0, 30) if not long_lines or rng.random() < 0.7 else rng.randint(200, 400)
        words = [rng.choice(WORDS) if eight_bit else rng.choice(["mail", "ok", "From", "a=b", "."])
                 for _ in range(n)]
        lines.append(" ".join(words))
    return "\r\n".join(lines) + ("\r\n" if rng.random() < 0.8 else "")


def leaf(rng):
    ctype = rng.choice(["text/plain", "text/html", "application/octet-stream", "text/csv"])
    cte = rng.choice(["7bit", "8bit", "quoted-printable", "base64", None])
    charset = rng.choice(["utf-8", "iso-8859-1", "us-ascii"])
    if ctype == "application/octet-stream":
        raw = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
        cte = "base64"
    else:
        t = text(rng, cte in ("8bit", "quoted-printable", "base64"), cte in ("8bit", "base64"))
        raw = t.encode("utf-8" if charset != "iso-8859-1" else "latin-1", errors="replace")
        if charset == "us-ascii" and cte in ("8bit", "quoted-printable", "base64"):
            charset = "utf-8"
            raw = t.encode("utf-8")
    if cte == "base64":
        b = base64.encodebytes(raw).replace(b"\n", b"\r\n")
    elif cte == "quoted-printable":
        b = quopri.encodestring(raw.replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")
    else:
        b = raw
    hdr = f"Content-Type: {ctype}" + (f"; charset={charset}" if ctype.startswith("text/") else "") + "\r\n"
    if cte is not None:
        hdr += f"Content-Transfer-Encoding: {cte}\r\n"
    if rng.random() < 0.3:
        hdr += f'Content-Disposition: attachment; filename="f{rng.randint(0, 99)}.bin"\r\n'
    return hdr.encode(), b


def tree(rng, depth):
    if depth >= 3 or rng.random() < 0.4:
        return leaf(rng)
    sub = rng.choice(["mixed", "alternative", "related"])
    bnd = f"b{depth}_{rng.randint(0, 10**9)}"
    body = b"preamble\r\n" if rng.random() < 0.3 else b""
    for _ in range(rng.randint(1, 3)):
        h, b = tree(rng, depth + 1)
        body += b"--" + bnd.encode() + b"\r\n" + h + b"\r\n" + b + b"\r\n"
    body += b"--" + bnd.encode() + b"--\r\n"
    hdr = f'Content-Type: multipart/{sub};\r\n boundary="{bnd}"\r\n'.encode()
    return hdr, body


def message(rng, i):
    h, b = tree(rng, 0)
    subj = rng.choice(["hello", "=?utf-8?q?Gr=C3=BC=C3=9Fe?=", "long subject " * 3 + "\r\n folded"])
    top = (f"From: Alice <alice@a.test>\r\nTo: bob@b.test\r\nSubject: {subj} {i}\r\n"
           f"Date: Mon, 05 Jan 2026 10:00:{i % 60:02d} +0000\r\nMessage-ID: <p{i}@a.test>\r\n"
           "MIME-Version: 1.0\r\n").encode()
    return top + h + b"\r\n" + b


def leaves(msg):
    m = email.message_from_bytes(msg, policy=email.policy.compat32)
    return [(p.get_content_type(), p.get_payload(decode=True)) for p in m.walk() if not p.is_multipart()]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("propkeys")
    home = str(d / "gnupg")
    make_keys(home, str(d), names=["alice", "bob"])
    yield {n: str(d / n) for n in ["alice.pub", "alice.sec", "bob.pub", "bob.sec"]}
    kill_agent(home)


MESSAGES = [message(random.Random(SEED + i), i) for i in range(N_TREES)]


@pytest.mark.parametrize("i", range(N_TREES))
def test_random_tree_roundtrip(keys, i):
    msg = MESSAGES[i]
    r = sealgate("seal", "--to", "bob@b.test", "--sign-as", "alice@a.test", "--key", keys["bob.pub"],
                 "--key", keys["alice.sec"], inp=msg)
    assert r.returncode == 0, r.stderr
    u = sealgate("unseal", "--key", keys["bob.sec"], "--verify-key", keys["alice.pub"], inp=r.stdout)
    assert u.returncode == 0, u.stderr
    assert u.stdout == msg

    if i % 2:  # sign-only on half the trees keeps the file fast under ASan
        return
    s = sealgate("seal", "--sign-as", "alice@a.test", "--key", keys["alice.sec"], inp=msg)
    assert s.returncode == 0, s.stderr
    signed = multipart_parts(s.stdout)[0]
    assert all(c < 0x80 for c in signed)
    assert leaves(signed) == leaves(msg)
    assert b"-----BEGIN PGP SIGNATURE-----" in part_body(multipart_parts(s.stdout)[1])
    if i % 10 == 0:  # verifying every tree adds time, not coverage
        v = sealgate("unseal", "--verify-key", keys["alice.pub"], inp=s.stdout)
        assert v.returncode == 0, v.stderr
        assert b"signature: valid" in v.stderr
