"""sealgate key: import/list/show/export/delete/generate against keys made by
GnuPG, the errors for corrupt, expired, revoked and mismatched keys, and the
master key (file mode, wrong key, tampered rows)."""
import os
import re
import sqlite3
import stat

import pytest

from keys_helpers import gpg, gpg_genkey, gpg_kill, sealgate, wkd_hash


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """GnuPG-made keys: alice (good), exp (expired), rev (revoked), sign-only."""
    t = tmp_path_factory.mktemp("gpgkeys")
    home = str(t / "gnupg")
    out = {}
    out["alice_fpr"] = gpg_genkey(home, "Alice <Alice@Example.test>")
    out["alice"] = gpg(home, "--export", "alice@example.test").stdout
    out["alice_armored"] = gpg(home, "--export", "--armor", "alice@example.test").stdout
    out["alice_secret"] = gpg(home, "--pinentry-mode", "loopback", "--passphrase", "",
                              "--export-secret-keys", "alice@example.test").stdout
    # Expired: made "in 2020" with a one-day lifetime.
    r = gpg(home, "--faked-system-time", "20200101T000000!", "--pinentry-mode", "loopback",
            "--passphrase", "", "--quick-gen-key", "<exp@example.test>", "future-default",
            "default", "1d")
    assert r.returncode == 0, r.stderr
    out["expired"] = gpg(home, "--export", "exp@example.test").stdout
    # Revoked: import the revocation certificate GnuPG wrote at generation.
    rev_fpr = gpg_genkey(home, "<rev@example.test>")
    rev = open(os.path.join(home, "openpgp-revocs.d", rev_fpr + ".rev")).read()
    rev = rev.replace(":-----BEGIN PGP PUBLIC KEY BLOCK", "-----BEGIN PGP PUBLIC KEY BLOCK")
    r = gpg(home, "--import", input=rev.encode())
    assert r.returncode == 0, r.stderr
    out["revoked"] = gpg(home, "--export", "rev@example.test").stdout
    gpg_kill(home)
    return out


@pytest.fixture
def env(tmp_path, sealgate_bin):
    """A state dir and a master key outside it."""
    state = tmp_path / "state"
    mk = tmp_path / "secrets" / "master.key"
    mk.parent.mkdir(mode=0o700)
    r = sealgate(sealgate_bin, "init-master", "--master-key", str(mk))
    assert r.returncode == 0, r.stderr

    def k(*args, **kw):
        return sealgate(sealgate_bin, *args, "--state-dir", str(state), **kw)
    k.state, k.mk, k.tmp = state, mk, tmp_path
    return k


def write(tmp, name, data):
    p = tmp / name
    p.write_bytes(data)
    return str(p)


def test_import_list_show_export_delete(env, keys, tmp_path):
    r = env("import", write(tmp_path, "alice.pgp", keys["alice"]))
    assert r.returncode == 0, r.stderr
    assert keys["alice_fpr"] in r.stdout
    # The state dir and database are private.
    assert stat.S_IMODE(os.stat(env.state).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(env.state / "sealgate.db").st_mode) == 0o600

    r = env("list")
    assert r.returncode == 0
    header, row = r.stdout.splitlines()[:2]
    assert header.split() == ["ADDRESS", "TYPE", "FINGERPRINT", "EXPIRES", "SOURCE", "TRUST"]
    assert row.split() == ["alice@example.test", "pgp", keys["alice_fpr"], "never", "import",
                           "configured"]

    r = env("show", "ALICE@example.test")
    assert r.returncode == 0, r.stderr
    assert f"fingerprint: {keys['alice_fpr']}" in r.stdout
    # The WKD path uses GnuPG's own hash of the local part.
    assert f"/hu/{wkd_hash('alice@example.test')}" in r.stdout

    # Export gives back the public key GnuPG made (no secret parts).
    r = env("export", "alice@example.test", text=False)
    assert r.returncode == 0
    home = str(tmp_path / "check")
    os.makedirs(home, mode=0o700)
    g = gpg(home, "--import", input=r.stdout)
    assert g.returncode == 0, g.stderr
    cols = gpg(home, "--with-colons", "--list-keys", text=True).stdout
    assert keys["alice_fpr"] in cols
    assert gpg(home, "--list-secret-keys", text=True).stdout.strip() == ""
    gpg_kill(home)

    r = env("delete", "alice@example.test")
    assert r.returncode == 0 and "deleted" in r.stdout
    r = env("show", "alice@example.test")
    assert r.returncode == 1
    assert "no key for alice@example.test" in r.stderr
    assert len(env("list").stdout.splitlines()) == 1


def test_import_armored_from_stdin(env, keys):
    r = env("import", "-", input=keys["alice_armored"].decode())
    assert r.returncode == 0, r.stderr
    assert keys["alice_fpr"] in env("list").stdout


@pytest.mark.parametrize("name,data,code,message", [
    ("corrupt", lambda k: k["alice"][:60], 65, "corrupt.key"),
    ("garbage", lambda k: os.urandom(300), 65, "garbage.key"),
    ("empty", lambda k: b"", 65, "empty input"),
    ("expired", lambda k: k["expired"], 65, "expired"),
    ("revoked", lambda k: k["revoked"], 65, "revoked"),
])
def test_bad_keys_named(env, keys, tmp_path, name, data, code, message):
    r = env("import", write(tmp_path, f"{name}.key", data(keys)))
    assert r.returncode == code, (r.stdout, r.stderr)
    assert message in r.stderr
    assert len(env("list").stdout.splitlines()) == 1     # nothing stored


def test_user_id_mismatch(env, keys, tmp_path):
    r = env("import", write(tmp_path, "a.pgp", keys["alice"]), "--addr", "bob@example.test")
    assert r.returncode == 65
    assert "user ID mismatch" in r.stderr and "bob@example.test" in r.stderr


def test_secret_part_only_when_asked(env, keys, tmp_path):
    path = write(tmp_path, "alice.sec", keys["alice_secret"])
    r = env("import", path)
    assert r.returncode == 0, r.stderr
    assert "secret key not stored" in r.stderr
    db = sqlite3.connect(env.state / "sealgate.db")
    assert db.execute("select count(*) from private_keys").fetchone()[0] == 0
    r = env("import", path, "--with-secret", "--master-key", str(env.mk))
    assert r.returncode == 0, r.stderr
    (blob,) = db.execute("select blob from private_keys").fetchone()
    assert blob[:4] == b"SGMK"
    # The public row holds no secret packet (tag 5 old/new format).
    (pub,) = db.execute("select data from user_keys").fetchone()
    assert pub[0] in (0x98, 0x99, 0xc6) and keys["alice_secret"][:200] not in pub
    # Round trip through the master key.
    r = env("export", "alice@example.test", "--secret", "--master-key", str(env.mk), text=False)
    assert r.returncode == 0
    assert r.stdout == keys["alice_secret"] or len(r.stdout) > len(pub)
    db.close()


def test_generate_and_master_key_errors(env, tmp_path, sealgate_bin):
    # No master key: refused before generating anything.
    r = env("generate", "bob@example.test")
    assert r.returncode == 78 and "no master key" in r.stderr
    r = env("generate", "Bob@Example.test", "--type", "ed25519", "--master-key", str(env.mk))
    assert r.returncode == 0, r.stderr
    fpr = re.search(r"[0-9A-F]{40}", r.stdout).group(0)
    r = env("generate", "carol@example.test", "--type", "rsa3072", "--master-key", str(env.mk))
    assert r.returncode == 0, r.stderr
    assert "RSA 3072" in r.stdout
    out = env("list").stdout
    assert "bob@example.test" in out and "carol@example.test" in out and "generate" in out
    # GnuPG reads the generated public key, with the user ID we asked for.
    home = str(tmp_path / "g")
    os.makedirs(home, mode=0o700)
    pub = env("export", "bob@example.test", text=False).stdout
    assert gpg(home, "--import", input=pub).returncode == 0
    cols = gpg(home, "--with-colons", "--list-keys", text=True).stdout
    assert fpr in cols and "<bob@example.test>" in cols and "\nsub:" in cols
    # The sealed secret opens with the right master key, and GnuPG takes it.
    sec = env("export", "bob@example.test", "--secret", "--master-key", str(env.mk), text=False)
    assert sec.returncode == 0, sec.stderr
    assert gpg(home, "--import", input=sec.stdout).returncode == 0
    assert fpr in gpg(home, "--with-colons", "--list-secret-keys", text=True).stdout
    gpg_kill(home)

    # A different master key: a clear error, no output.
    other = tmp_path / "secrets" / "other.key"
    assert sealgate(sealgate_bin, "init-master", "--master-key", str(other)).returncode == 0
    r = env("export", "bob@example.test", "--secret", "--master-key", str(other))
    assert r.returncode == 1 and "wrong master key" in r.stderr and r.stdout == ""
    # A tampered row: refused.
    db = sqlite3.connect(env.state / "sealgate.db")
    (blob,) = db.execute("select blob from private_keys where owner='bob@example.test'").fetchone()
    bad = bytearray(blob)
    bad[-20] ^= 1
    db.execute("update private_keys set blob=? where owner='bob@example.test'", (bytes(bad),))
    db.commit()
    r = env("export", "bob@example.test", "--secret", "--master-key", str(env.mk))
    assert r.returncode == 1 and "integrity check failed" in r.stderr
    # Carol's blob moved into Bob's row: refused too (AAD binds the row).
    (cblob,) = db.execute(
        "select blob from private_keys where owner='carol@example.test'").fetchone()
    db.execute("update private_keys set blob=? where owner='bob@example.test'", (cblob,))
    db.commit()
    db.close()
    r = env("export", "bob@example.test", "--secret", "--master-key", str(env.mk))
    assert r.returncode == 1 and "integrity check failed" in r.stderr
    # A master key file others can read: refused.
    os.chmod(env.mk, 0o644)
    r = env("generate", "dave@example.test", "--master-key", str(env.mk))
    assert r.returncode == 78 and "0644" in r.stderr and "refusing" in r.stderr
    os.chmod(env.mk, 0o600)
    # A master key inside the state dir: refused.
    inside = env.state / "master.key"
    assert sealgate(sealgate_bin, "init-master", "--master-key", str(inside)).returncode == 0
    r = env("generate", "dave@example.test", "--master-key", str(inside))
    assert r.returncode == 78 and "inside state_dir" in r.stderr


def test_master_passphrase(env, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("correct horse battery staple\n")
    r = env("generate", "erin@example.test", "--master-passphrase-file", str(pw))
    assert r.returncode == 0, r.stderr
    r = env("export", "erin@example.test", "--secret", "--master-passphrase-file", str(pw),
            text=False)
    assert r.returncode == 0 and len(r.stdout) > 100
    pw.write_text("wrong\n")
    r = env("export", "erin@example.test", "--secret", "--master-passphrase-file", str(pw))
    assert r.returncode == 1 and "wrong master key" in r.stderr


def test_config_file_and_usage(env, tmp_path, sealgate_bin):
    cfg = tmp_path / "sealgate.conf"
    cfg.write_text(f"state_dir = {tmp_path / 'other'}\nmaster_key_file = {env.mk}\n")
    r = sealgate(sealgate_bin, "generate", "frank@example.test", "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "other" / "sealgate.db").exists()
    cfg.write_text("store = nosuch:x\n")
    r = sealgate(sealgate_bin, "list", "-c", str(cfg))
    assert r.returncode == 1 and "unknown store" in r.stderr
    cfg.write_text("wkd_listen = nowhere\n")
    r = sealgate(sealgate_bin, "list", "-c", str(cfg))
    assert r.returncode == 78 and f"{cfg}:1:" in r.stderr
    assert sealgate(sealgate_bin, "frob").returncode == 64
    assert sealgate(sealgate_bin, "show").returncode == 64
    r = sealgate(sealgate_bin, "--help")
    assert r.returncode == 0 and "export-wkd" in r.stdout
    r = env("generate", "x@example.test", "--smime", "--type", "rsa1024", "--master-key",
            str(env.mk))
    assert r.returncode == 64 and "S/MIME keys are rsa3072 or p256" in r.stderr
