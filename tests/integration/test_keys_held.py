"""Key-change hold (key_change = hold): a directory gives a different key
for a known address; the new key is held, `sealgate key list` shows it,
the old key stays in use (also for mail: gpg with the old key decrypts)
until `sealgate key approve ADDR FPR`; `key reject` drops it."""
import itertools
import os
import re
import subprocess
import time

import pytest

import pgphelp
from conftest import SEALGATE_BIN
from keys_helpers import Postgres, gpg, gpg_genkey, gpg_kill, wkd_hash
from lookup_peers import WkdServer
from policy_helpers import MARKER, lmtp_send, message
from test_lookup_policy import Env

DOMAIN = "example.test"
ADDR = f"carol@{DOMAIN}"
PATH = f"/.well-known/openpgpkey/{DOMAIN}/hu/"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    t = tmp_path_factory.mktemp("held-keys")
    out = {}
    for n in (1, 2):
        home = str(t / f"gpg{n}")
        out[f"fpr{n}"] = gpg_genkey(home, f"carol <{ADDR}>")
        out[f"key{n}"] = gpg(home, "--export", ADDR).stdout
        out[f"home{n}"] = home
    yield out
    for n in (1, 2):
        gpg_kill(out[f"home{n}"])


@pytest.fixture
def wkd():
    s = WkdServer()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def pg():
    server = Postgres().start()
    yield server
    server.stop()


def run(*args):
    return subprocess.run([SEALGATE_BIN, *args], capture_output=True, text=True, timeout=60)


STORE = []      # extra store arguments for every command ("--store", SPEC)
DB_SEQ = itertools.count()


def lookup(state, wkd, *extra):
    return run("key-lookup", ADDR, "--state-dir", str(state), *STORE, "--set", "lookup_order=wkd",
               "--set", f"wkd_allow_hosts=openpgpkey.{DOMAIN}=127.0.0.1:{wkd.port}",
               "--set", "key_change=hold", *extra)


def held_lines(state):
    r = run("key", "list", "--state-dir", str(state), *STORE)
    assert r.returncode == 0, r.stderr
    out = r.stdout.split("HELD for approval", 1)
    return out[1].splitlines()[3:] if len(out) == 2 else []


def hold_second_key(state, wkd, keys):
    path = PATH + wkd_hash(ADDR)
    wkd.keys[path] = keys["key1"]
    r = lookup(state, wkd)
    assert r.returncode == 0 and keys["fpr1"] in r.stdout, r.stderr
    assert held_lines(state) == []
    wkd.keys[path] = keys["key2"]
    r = lookup(state, wkd, "--no-cache")
    assert r.returncode == 0 and keys["fpr1"] in r.stdout and keys["fpr2"] not in r.stdout
    assert "KEY CHANGE" in r.stderr and "HELD" in r.stderr
    held = held_lines(state)
    assert len(held) == 1 and re.match(rf"{ADDR}\s+pgp\s+{keys['fpr2']}\s.*\swkd\s+wkd$",
                                       held[0]), held
    assert "(expired)" not in held[0]       # a fetch date is not an expiry


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    if request.param == "postgresql":
        server = request.getfixturevalue("pg")
        STORE[:] = ["--store", server.createdb(f"held{next(DB_SEQ)}")]
    yield request.param
    STORE[:] = []


def test_list_approve(wkd, keys, tmp_path, backend):
    hold_second_key(tmp_path, wkd, keys)
    # Not the held key's fingerprint: refused, nothing changes.
    r = run("key", "approve", ADDR, keys["fpr1"], "--state-dir", str(tmp_path), *STORE)
    assert r.returncode == 2 and "no held key" in r.stderr
    assert len(held_lines(tmp_path)) == 1
    r = run("key", "approve", ADDR.upper(), keys["fpr2"].lower(), "--state-dir", str(tmp_path),
            *STORE)
    assert r.returncode == 0, r.stderr
    assert held_lines(tmp_path) == []
    r = lookup(tmp_path, wkd)
    assert r.returncode == 0 and keys["fpr2"] in r.stdout and keys["fpr1"] not in r.stdout
    # A fetch that brings the approved key is no change any more.
    r = lookup(tmp_path, wkd, "--no-cache")
    assert keys["fpr2"] in r.stdout and "KEY CHANGE" not in r.stderr, r.stderr


def test_reject(wkd, keys, tmp_path, backend):
    hold_second_key(tmp_path, wkd, keys)
    r = run("key", "reject", ADDR, keys["fpr2"], "--state-dir", str(tmp_path), *STORE)
    assert r.returncode == 0, r.stderr
    assert held_lines(tmp_path) == []
    r = lookup(tmp_path, wkd)
    assert keys["fpr1"] in r.stdout and keys["fpr2"] not in r.stdout
    # The directory still serves it: held again, loudly.
    r = lookup(tmp_path, wkd, "--no-cache")
    assert keys["fpr1"] in r.stdout and "HELD" in r.stderr
    assert len(held_lines(tmp_path)) == 1


def decrypts(home, msg):
    r = pgphelp.gpg(home, "--decrypt", inp=pgphelp.encrypted_payload(msg), check=False)
    return r.returncode == 0 and MARKER in r.stdout


def test_mail_uses_old_key_until_approved(wkd, keys, tmp_path):
    """serve: sealed to the old key while the new one is held, to the new
    one after `key approve` (at the address's next fetch; TTL 1 s here)."""
    path = PATH + wkd_hash(ADDR)
    wkd.keys[path] = keys["key1"]
    e = Env(str(tmp_path), wkd.port)
    e.extra += "key_change = hold\nlookup_cache_ttl = 1s\n"
    e.start()
    sent = 0
    try:
        def send():
            nonlocal sent
            sent += 1
            assert lmtp_send(e.port, "alice@a.test", [ADDR], message(f"m{sent}"))[ADDR][0] == 250
            return e.sink.messages()[-1]
        assert decrypts(keys["home1"], send())
        wkd.keys[path] = keys["key2"]
        # Past the TTL the address is fetched again (refresh ahead or on
        # expiry) and the new key is held: mail still goes to the old one.
        for _ in range(100):
            if held_lines(tmp_path / "state"):
                break
            time.sleep(0.2)
            assert decrypts(keys["home1"], send())
        assert len(held_lines(tmp_path / "state")) == 1
        for _ in range(3):
            time.sleep(0.4)
            m = send()
            assert decrypts(keys["home1"], m) and not decrypts(keys["home2"], m)
        r = run("key", "approve", ADDR, keys["fpr2"], "--state-dir", str(tmp_path / "state"))
        assert r.returncode == 0, r.stderr
        # From the next fetch on, the approved key; never anything else.
        for _ in range(100):
            time.sleep(0.2)
            m = send()
            if decrypts(keys["home2"], m):
                break
            assert decrypts(keys["home1"], m)
        assert decrypts(keys["home2"], m) and not decrypts(keys["home1"], m)
        log = e.gw.log()
    finally:
        e.stop()
    assert "KEY CHANGE: carol@example.test" in log and "HELD" in log
