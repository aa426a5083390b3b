"""Helpers for the re-keying tests: an OpenPGP packet splitter and a BER
walker written independently of the C code, so that "the encrypted bytes
did not change" is checked by a second implementation."""
import base64
import re


def dearmor(text):
    """Binary of the first armored block in text (bytes); (start, end, bin)."""
    m = re.search(rb"^-----BEGIN PGP MESSAGE-----\r?\n(.*?)^-----END PGP MESSAGE-----\r?\n?",
                  text, re.S | re.M)
    assert m, "no armored PGP MESSAGE"
    lines = m.group(1).replace(b"\r", b"").split(b"\n")
    i = lines.index(b"")  # armor headers end at the empty line
    data = b"".join(l for l in lines[i + 1:] if l and not l.startswith(b"="))
    return m.start(), m.end(), base64.b64decode(data)


def _new_len(b, p):
    c = b[p]
    if c < 192:
        return c, p + 1, False
    if c < 224:
        return ((c - 192) << 8) + b[p + 1] + 192, p + 2, False
    if c < 255:
        return 1 << (c & 0x1f), p + 1, True
    return int.from_bytes(b[p + 1:p + 5], "big"), p + 5, False


def packets(b):
    """[(tag, raw bytes, partial)] of an OpenPGP packet stream."""
    out, p = [], 0
    while p < len(b):
        start, c = p, b[p]
        assert c & 0x80, f"bad packet octet at {p}"
        partial = False
        if c & 0x40:
            tag = c & 0x3f
            n, p, part = _new_len(b, p + 1)
            while part:
                partial = True
                p += n
                n, p, part = _new_len(b, p)
            p += n
        else:
            tag, lt = (c >> 2) & 0xf, c & 3
            if lt == 3:
                p = len(b)
            else:
                k = 1 << lt
                n = int.from_bytes(b[p + 1:p + 1 + k], "big")
                p += 1 + k + n
        assert p <= len(b), "truncated packet"
        out.append((tag, b[start:p], partial))
    return out


def pkesk_keyids(pkts):
    return [raw_body(raw)[1:9].hex().upper() for tag, raw, _ in pkts if tag == 1]


def raw_body(raw):
    c = raw[0]
    if c & 0x40:
        _, p, _ = _new_len(raw, 1)
        return raw[p:]
    lt = c & 3
    return raw[1 + (1 << lt):] if lt != 3 else raw[1:]


# ---- BER (CMS) ----

def tlv(b, p):
    """(tag, constructed, start of value, end of value or None, end)."""
    tag = b[p]
    cons = bool(tag & 0x20)
    p += 1
    l = b[p]
    p += 1
    if l == 0x80:  # indefinite: walk children to the end-of-contents
        q = p
        while b[q:q + 2] != b"\0\0":
            q = tlv(b, q)[4]
        return tag, cons, p, q, q + 2
    if l & 0x80:
        k = l & 0x7f
        l = int.from_bytes(b[p:p + k], "big")
        p += k
    return tag, cons, p, p + l, p + l


def children(b, start, end):
    out, p = [], start
    while p < end:
        t = tlv(b, p)
        out.append(t)
        p = t[4]
    return out


def octets(b, t):
    """Content octets of a (possibly constructed) string."""
    tag, cons, s, e, _ = t
    if not cons:
        return b[s:e]
    return b"".join(octets(b, c) for c in children(b, s, e))


def cms_encrypted_parts(der):
    """(content-encryption algorithm TLV bytes, encryptedContent octets, mac or b"")
    of EnvelopedData / AuthEnvelopedData."""
    ci = tlv(der, 0)
    oid, wrap = children(der, ci[2], ci[3])[:2]
    env = children(der, wrap[2], wrap[3])[0]
    items = children(der, env[2], env[3])
    i = next(k for k, t in enumerate(items) if t[0] == 0x31)  # recipientInfos SET
    eci = children(der, items[i + 1][2], items[i + 1][3])
    alg = der[eci[1][2]:eci[1][3]]
    content = octets(der, eci[2])
    mac = octets(der, items[-1]) if items[-1][0] == 0x04 else b""
    return alg, content, mac


def recipient_count(der):
    ci = tlv(der, 0)
    wrap = children(der, ci[2], ci[3])[1]
    env = children(der, wrap[2], wrap[3])[0]
    items = children(der, env[2], env[3])
    ris = next(t for t in items if t[0] == 0x31)
    return len(children(der, ris[2], ris[3]))
