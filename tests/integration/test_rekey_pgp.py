"""sealgate rekey-msg on PGP/MIME: messages made by gpg, sq and sealgate
seal for an old key plus another recipient are re-keyed; then gpg holding
only the new key decrypts, the old key decrypts nothing, the other
recipient still does, and the SEIPD packet is byte-identical."""
import os
import subprocess

import pytest

from conftest import SEALGATE_BIN, run
from pgphelp import fingerprint, gpg, kill_agent, pgp_mime
from rekeyhelp import dearmor, packets, pkesk_keyids

# name -> (uid, algo, passphrase); RSA keys get a separate encryption subkey
KEYS = {
    "oldcv": ("Old Cv <oldcv@r.test>", "future-default", "old cv pass"),
    "oldrsa": ("Old Rsa <oldrsa@r.test>", "rsa2048", ""),
    "newcv": ("New Cv <newcv@r.test>", "future-default", ""),
    "newrsa": ("New Rsa <newrsa@r.test>", "rsa2048", ""),
    "other": ("Other <other@r.test>", "future-default", ""),
}
BODY = b"Content-Type: text/plain; charset=utf-8\r\n\r\nre-key me \xc3\xa9\r\n" + b"x" * 3000 + b"\r\n"
HEAD = b"From: a@r.test\r\nTo: oldcv@r.test\r\nSubject: ...\r\nMessage-ID: <1@r.test>\r\n"


def addr(name):
    return KEYS[name][0].split("<")[1].rstrip(">")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("rekey")
    master = str(d / "master")
    os.makedirs(master, mode=0o700)
    files, homes = {}, {}
    for name, (uid, algo, pw) in KEYS.items():
        if algo.startswith("rsa"):
            gpg(master, "--passphrase", pw, "--quick-gen-key", uid, algo, "sign,cert", "never")
            gpg(master, "--passphrase", pw, "--quick-add-key", fingerprint(master, uid), algo, "encr", "never")
        else:
            gpg(master, "--passphrase", pw, "--quick-gen-key", uid, algo, "default", "never")
        for ext, args in (("pub", ["--export"]), ("sec", ["--passphrase", pw, "--export-secret-keys"])):
            p = str(d / f"{name}.{ext}")
            with open(p, "wb") as f:
                f.write(gpg(master, "--armor", *args, addr(name)).stdout)
            files[f"{name}.{ext}"] = p
        if pw:
            files[f"{name}.pass"] = str(d / f"{name}.pass")
            with open(files[f"{name}.pass"], "w") as f:
                f.write(pw + "\n")
        # a home holding only this key's secret, to decrypt with
        h = str(d / f"home-{name}")
        os.makedirs(h, mode=0o700)
        gpg(h, "--passphrase", pw, "--import", files[f"{name}.sec"])
        homes[name] = h
    yield {"dir": d, "files": files, "homes": homes, "master": master}
    for h in [master, *homes.values()]:
        kill_agent(h)


def encrypt(env, tool, recips, stdin=False):
    """Armored ciphertext of BODY for recips (names), made by tool."""
    f, d = env["files"], env["dir"]
    if tool == "gpg":
        args = ["--trust-model", "always", "--armor", "-e"]
        for r in recips:
            args += ["-r", addr(r)]
        return gpg(env["master"], *args, inp=BODY).stdout
    if tool == "gpg-hidden":  # wildcard key ids (RFC 4880 s5.1)
        args = ["--trust-model", "always", "--armor", "--throw-keyids", "-e"]
        for r in recips:
            args += ["-r", addr(r)]
        return gpg(env["master"], *args, inp=BODY).stdout
    if tool == "sq":
        args = ["sq", "encrypt"]
        for r in recips:
            args += ["--recipient-cert", f[f"{r}.pub"]]
        res = run(args, input=BODY)
        assert res.returncode == 0, res.stderr
        return res.stdout
    raise AssertionError(tool)


def sealgate_seal(env, recips):
    args = [SEALGATE_BIN, "seal"]
    for r in recips:
        args += ["--to", addr(r), "--key", env["files"][f"{r}.pub"]]
    msg = HEAD + b"MIME-Version: 1.0\r\n" + BODY
    res = run(args, input=msg)
    assert res.returncode == 0, res.stderr
    return res.stdout


def rekey(env, msg, old, new, extra=()):
    f = env["files"]
    args = [SEALGATE_BIN, "rekey-msg", "--old-key", f[f"{old}.sec"], "--new-key", f[f"{new}.pub"], *extra]
    if f"{old}.pass" in f:
        args += ["--passphrase-file", f[f"{old}.pass"]]
    return run(args, input=msg)


def decrypts(env, who, msg, anonymous=False):
    _, _, b = dearmor(msg)
    pw = KEYS[who][2]
    r = gpg(env["homes"][who], "--passphrase", pw, "--decrypt", inp=b, check=False)
    # with anonymous recipients gpg exits 2 even when it decrypted (a
    # wildcard PKESK that was not its own failed): judge by the plaintext
    return (anonymous or r.returncode == 0) and b"re-key me" in r.stdout


def check_rekeyed(env, before, after, old, new, anonymous=False):
    s0, e0, bin0 = dearmor(before)
    s1, e1, bin1 = dearmor(after)
    # every byte outside the armored block unchanged
    assert before[:s0] == after[:s1]
    assert before[e0:] == after[e1:]
    p0, p1 = packets(bin0), packets(bin1)
    seipd0 = [raw for tag, raw, _ in p0 if tag in (9, 18, 20)]
    seipd1 = [raw for tag, raw, _ in p1 if tag in (9, 18, 20)]
    assert len(seipd0) == 1 and seipd0 == seipd1, "encrypted data packet changed"
    # other recipients' PKESKs byte-identical, the old one gone
    pk0 = [raw for tag, raw, _ in p0 if tag == 1]
    pk1 = [raw for tag, raw, _ in p1 if tag == 1]
    assert len(pk1) == len(pk0)
    assert sum(1 for r in pk0 if r not in pk1) == 1
    assert decrypts(env, new, after, anonymous), "new key cannot decrypt"
    assert not decrypts(env, old, after, anonymous), "old key still decrypts"
    assert decrypts(env, old, before, anonymous)


COMBOS = [("oldcv", "newcv"), ("oldcv", "newrsa"), ("oldrsa", "newcv"), ("oldrsa", "newrsa")]


@pytest.mark.parametrize("tool,old,new", [("gpg", o, n) for o, n in COMBOS] +
                         [("sq", "oldcv", "newrsa"), ("sq", "oldrsa", "newcv")])
def test_rekey_peer_message(env, tool, old, new):
    msg = pgp_mime(HEAD, encrypt(env, tool, [old, "other"]))
    r = rekey(env, msg, old, new)
    assert r.returncode == 0, r.stderr
    check_rekeyed(env, msg, r.stdout, old, new)
    assert decrypts(env, "other", r.stdout), "other recipient lost"
    ids = pkesk_keyids(packets(dearmor(r.stdout)[2]))
    assert fingerprint(env["master"], addr(new))[-16:] not in ids  # subkey, not primary
    assert len(ids) == 2


@pytest.mark.parametrize("old,new", [("oldcv", "newcv"), ("oldrsa", "newrsa")])
def test_rekey_sealgate_sealed(env, old, new):
    msg = sealgate_seal(env, [old, "other"])
    r = rekey(env, msg, old, new)
    assert r.returncode == 0, r.stderr
    check_rekeyed(env, msg, r.stdout, old, new)
    assert decrypts(env, "other", r.stdout)
    u = run([SEALGATE_BIN, "unseal", "--key", env["files"][f"{new}.sec"],
             *(["--passphrase-file", env["files"][f"{new}.pass"]] if f"{new}.pass" in env["files"] else [])],
            input=r.stdout)
    assert u.returncode == 0, u.stderr
    assert b"re-key me" in u.stdout


def test_partial_lengths_and_lf(env):
    """gpg reading a pipe frames SEIPD in partial lengths; LF line ends."""
    big = BODY + os.urandom(200000).hex().encode()
    res = subprocess.run(["gpg", "--homedir", env["master"], "--batch", "--trust-model", "always",
                          "--armor", "--compress-algo", "none", "-e", "-r", addr("oldcv"), "-r", addr("other")],
                         input=big, capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr
    msg = pgp_mime(HEAD, res.stdout).replace(b"\r\n", b"\n")
    assert any(p for tag, _, p in packets(dearmor(msg)[2]) if tag == 18), "expected partial lengths"
    r = rekey(env, msg, "oldcv", "newcv")
    assert r.returncode == 0, r.stderr
    check_rekeyed(env, msg, r.stdout, "oldcv", "newcv")
    assert b"\r\n" not in r.stdout


def test_wildcard_recipient(env):
    msg = pgp_mime(HEAD, encrypt(env, "gpg-hidden", ["oldcv", "other"]))
    assert pkesk_keyids(packets(dearmor(msg)[2])) == ["0" * 16] * 2
    r = rekey(env, msg, "oldcv", "newcv")
    assert r.returncode == 0, r.stderr
    # still anonymous: the new PKESK has a wildcard key id as well
    assert pkesk_keyids(packets(dearmor(r.stdout)[2])) == ["0" * 16] * 2
    check_rekeyed(env, msg, r.stdout, "oldcv", "newcv", anonymous=True)
    assert decrypts(env, "other", r.stdout, anonymous=True)


def test_not_a_recipient_is_skipped_unchanged(env):
    msg = pgp_mime(HEAD, encrypt(env, "gpg", ["other"]))
    r = rekey(env, msg, "oldcv", "newcv")
    assert r.returncode == 11, r.stderr
    assert r.stdout == msg
    assert b"not a recipient" in r.stderr


def test_plain_message_is_skipped(env):
    msg = HEAD + b"\r\nhello\r\n"
    r = rekey(env, msg, "oldcv", "newcv")
    assert r.returncode == 11 and r.stdout == msg


def test_wrong_passphrase(env):
    f = env["files"]
    pw = str(env["dir"] / "wrong.pass")
    with open(pw, "w") as fh:
        fh.write("not it\n")
    msg = pgp_mime(HEAD, encrypt(env, "gpg", ["oldcv"]))
    r = run([SEALGATE_BIN, "rekey-msg", "--old-key", f["oldcv.sec"], "--new-key", f["newcv.pub"],
             "--passphrase-file", pw], input=msg)
    assert r.returncode == 3
    assert b"wrong passphrase" in r.stderr
    assert r.stdout == b""


def test_truncated_message_fails_cleanly(env):
    arm = encrypt(env, "gpg", ["oldcv"])
    s, e, b = dearmor(arm)
    cut = b[:len(b) - 10]
    import base64
    bad = b"-----BEGIN PGP MESSAGE-----\n\n" + base64.encodebytes(cut) + b"-----END PGP MESSAGE-----\n"
    r = rekey(env, pgp_mime(HEAD, bad), "oldcv", "newcv")
    assert r.returncode == 65, r.stderr
    assert b"truncated" in r.stderr
    assert r.stdout == b""
