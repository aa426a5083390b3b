"""The look-up chain in the mail path: `sealgate serve` with a policy that
says encrypt, recipients whose keys are only on a (local, counting) WKD
server. Sealed to the fetched key and gpg decrypts; the second message is
served from the cache (no second fetch at the server); a hung directory
gives the configured missing-key treatment with a reason naming the
look-up failure; local keys win over directory keys."""
import os
import re
import shutil
import time

import pytest

import pgphelp
from conftest import SEALGATE_BIN, free_port
from gateway_harness import Gateway, Sink
from keys_helpers import gpg, gpg_genkey, gpg_kill, wkd_hash
from lookup_peers import SilentServer, WkdServer
from policy_helpers import MARKER, lmtp_send, message, sealgate

DOMAIN = "example.test"
RULES = "to=*@defer.test e2e missing=defer\n* e2e\n"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    t = tmp_path_factory.mktemp("lookup-policy-keys")
    out = {"home": str(t / "gpg")}
    for who in ("dana", "lena"):
        out[who + "_fpr"] = gpg_genkey(out["home"], f"{who} <{who}@{DOMAIN}>")
        r = gpg(out["home"], "--export", f"{who}@{DOMAIN}")
        assert r.returncode == 0 and r.stdout
        out[who] = r.stdout
    # lena also has a second key of her own, only in the local store.
    out["home2"] = str(t / "gpg2")
    out["lena_local_fpr"] = gpg_genkey(out["home2"], f"lena <lena@{DOMAIN}>")
    out["lena_local"] = os.path.join(str(t), "lena-local.pub")
    with open(out["lena_local"], "wb") as f:
        f.write(gpg(out["home2"], "--export", f"lena@{DOMAIN}").stdout)
    yield out
    gpg_kill(out["home"])
    gpg_kill(out["home2"])


def adv_path(addr):
    return f"/.well-known/openpgpkey/{DOMAIN}/hu/{wkd_hash(addr)}"


class Env:
    def __init__(self, tmp, wkd_port, budget="10s"):
        self.tmp = tmp
        self.sink = Sink(os.path.join(tmp, "relay"))
        rules = os.path.join(tmp, "policy.rules")
        with open(rules, "w") as f:
            f.write(RULES)
        self.port = free_port()
        extra = (f"submission_listen = 127.0.0.1:{self.port}\npolicy_file = {rules}\n"
                 f"lookup_order = wkd\nlookup_budget = {budget}\n"
                 f"wkd_allow_hosts = openpgpkey.{DOMAIN}=127.0.0.1:{wkd_port}\n")
        os.makedirs(os.path.join(tmp, "state"), mode=0o700, exist_ok=True)
        self.state = os.path.join(tmp, "state")
        self.extra = extra
        self.gw = None

    def start(self):
        self.gw = Gateway(SEALGATE_BIN, self.tmp, self.sink.port, self.extra)
        return self

    def stop(self):
        code = self.gw.stop() if self.gw else 0
        self.sink.stop()
        log = self.gw.log() if self.gw else ""
        assert code == 0, log[-3000:]
        assert "ERROR: AddressSanitizer" not in log and "runtime error" not in log


@pytest.fixture
def wkd():
    s = WkdServer()
    yield s
    s.stop()


def for_rcpt(sink, rcpt):
    return [m for e, m in zip(sink.envelopes(), sink.messages()) if f"<{rcpt}>" in e]


def test_sealed_to_wkd_key_then_cached(wkd, keys, tmp_path):
    addr = f"dana@{DOMAIN}"
    wkd.keys[adv_path(addr)] = keys["dana"]
    e = Env(str(tmp_path), wkd.port).start()
    try:
        assert lmtp_send(e.port, "alice@a.test", [addr], message())[addr][0] == 250
        assert wkd.count(adv_path(addr)) == 1
        # The second message: the cache answers, the directory is not asked.
        assert lmtp_send(e.port, "alice@a.test", [addr], message("again"))[addr][0] == 250
        assert wkd.count(adv_path(addr)) == 1
        log = e.gw.log()
    finally:
        e.stop()
    msgs = for_rcpt(e.sink, addr)
    assert len(msgs) == 2
    for m in msgs:
        assert MARKER not in m and b"multipart/encrypted" in m
        r = pgphelp.gpg(keys["home"], "--status-fd", "2", "--decrypt",
                        inp=pgphelp.encrypted_payload(m), check=False)
        assert r.returncode == 0 and MARKER in r.stdout, r.stderr
    assert re.search(rf"to=<{addr}>.*treatment=e2e, key={keys['dana_fpr']}", log), log[-2000:]


def test_cache_survives_restart(wkd, keys, tmp_path):
    """The cache rows are in the store: a restarted gateway does not fetch."""
    addr = f"dana@{DOMAIN}"
    wkd.keys[adv_path(addr)] = keys["dana"]
    for n in (1, 2):
        e = Env(str(tmp_path / f"run{n}"), wkd.port)
        if n == 2:
            shutil.rmtree(e.state)
            shutil.copytree(str(tmp_path / "run1" / "state"), e.state)
        e.start()
        try:
            assert lmtp_send(e.port, "alice@a.test", [addr], message())[addr][0] == 250
        finally:
            e.stop()
        assert wkd.count(adv_path(addr)) == 1


def test_not_found_is_missing_key(wkd, keys, tmp_path):
    e = Env(str(tmp_path), wkd.port).start()
    try:
        rcpts = [f"nobody@{DOMAIN}"]
        got = lmtp_send(e.port, "alice@a.test", rcpts, message())
    finally:
        e.stop()
    code, text = got[rcpts[0]]
    assert code == 554 and f"no key for nobody@{DOMAIN}" in text, text
    assert not e.sink.messages()


@pytest.mark.parametrize("rcpt,code", [(f"dana@{DOMAIN}", 554), ("dana@defer.test", 451)])
def test_directory_down(keys, tmp_path, rcpt, code):
    """A hung WKD host: the look-up ends within lookup_budget, and the
    rule's missing-key treatment applies with the failure as its reason."""
    silent = SilentServer()
    e = Env(str(tmp_path), silent.port, budget="1s")
    dom = rcpt.split("@")[1]
    e.extra = e.extra.replace(f"openpgpkey.{DOMAIN}=", f"openpgpkey.{dom}=")
    e.start()
    try:
        t0 = time.monotonic()
        got = lmtp_send(e.port, "alice@a.test", [rcpt], message())
        took = time.monotonic() - t0
    finally:
        e.stop()
        silent.stop()
    c, text = got[rcpt]
    assert c == code, got
    assert f"no key for {rcpt}" in text and "wkd" in text and "Timeout" in text, text
    assert MARKER not in b"".join(e.sink.messages())
    assert took < 30, took    # a hang guard, not a timing claim (budget 1 s)


def test_local_key_wins_over_directory(wkd, keys, tmp_path):
    addr = f"lena@{DOMAIN}"
    wkd.keys[adv_path(addr)] = keys["lena"]
    e = Env(str(tmp_path), wkd.port)
    r = sealgate("key", "import", "--state-dir", e.state, keys["lena_local"])
    assert r.returncode == 0, r.stderr
    e.start()
    try:
        assert lmtp_send(e.port, "alice@a.test", [addr], message())[addr][0] == 250
        log = e.gw.log()
    finally:
        e.stop()
    assert wkd.count(adv_path(addr)) == 0
    assert f"key={keys['lena_local_fpr']}" in log
    m = for_rcpt(e.sink, addr)[0]
    r = pgphelp.gpg(keys["home2"], "--decrypt", inp=pgphelp.encrypted_payload(m), check=False)
    assert r.returncode == 0 and MARKER in r.stdout
