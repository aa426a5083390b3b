"""`sealgate policy test`: the rule (file:line), the treatment and the
outcome given the store's keys; the key look-up's cases (usable, expired,
revoked, wrong user ID, both kinds, preference); exit codes."""
import os
import re

import pytest

from policy_helpers import Keys, sealgate

RULES = """# cli test
to=*@t.test tls-only
to=*@nd.test e2e missing=defer
to=frank@f.test subject=[smime] e2e prefer=smime
header="X-Sealgate-Encrypt: yes" e2e
to=*@p.test pass
to=*@np.test e2e missing=pass
to=*@nt.test e2e missing=tls-only
* e2e
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("cli"))
    k = Keys(tmp)
    state = os.path.join(tmp, "state")
    k.populate(state)
    rules = os.path.join(tmp, "policy.rules")
    with open(rules, "w") as f:
        f.write(RULES)
    k.state, k.rules = state, rules
    yield k
    k.stop()


def ptest(env, *args, rules=None, extra=()):
    return sealgate("policy", "test", "--state-dir", env.state, "--rules", rules or env.rules,
                    *extra, *args)


def test_usable_pgp_key(env):
    r = ptest(env, "--from", "alice@a.test", "--to", "bob@b.test")
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert f"rule: {env.rules}:9" in out and "treatment: e2e" in out
    assert f"encrypt (OpenPGP) to key {env.fpr['bob']}" in out


@pytest.mark.parametrize("rcpt,reason", [
    ("dave@d.test", r"dave@d\.test: key {dave} expired on \d{{4}}-\d\d-\d\d"),
    ("erin@e.test", r"erin@e\.test: key {erin} .*revoked"),
    ("wrong@w.test", r"wrong@w\.test: key {mallory} does not carry this address"),
    ("nobody@n.test", r"no key for nobody@n\.test"),
])
def test_unusable_keys_named(env, rcpt, reason):
    r = ptest(env, "--from", "alice@a.test", "--to", rcpt)
    out = r.stdout.decode()
    assert r.returncode == 2, out
    assert re.search("reason: " + reason.format(**env.fpr), out), out
    assert "refused: 554 5.7.1 Encryption required by policy: " in out
    assert "General error" not in out


def test_smime_only_recipient(env):
    r = ptest(env, "--from", "alice@a.test", "--to", "carol@c.test")
    assert r.returncode == 0
    assert f"encrypt (S/MIME) to key {env.x509_fpr(env.carol)}" in r.stdout.decode()


def test_preference(env):
    # frank has both kinds: OpenPGP unless the rule or the config prefers S/MIME
    out = ptest(env, "--from", "a@a.test", "--to", "frank@f.test").stdout.decode()
    assert f"encrypt (OpenPGP) to key {env.fpr['frank']}" in out
    out = ptest(env, "--from", "a@a.test", "--to", "frank@f.test", "--subject", "x [smime]").stdout.decode()
    assert f"rule: {env.rules}:4" in out and "(S/MIME)" in out
    conf = os.path.join(os.path.dirname(env.rules), "prefer.conf")
    with open(conf, "w") as f:
        f.write("policy_key_preference = smime\n")
    out = ptest(env, "--from", "a@a.test", "--to", "frank@f.test", extra=("-c", conf)).stdout.decode()
    assert f"encrypt (S/MIME) to key {env.x509_fpr(env.frank_x509)}" in out


def test_several_recipients_and_flags(env):
    r = ptest(env, "--from", "alice@a.test", "--to", "x@t.test", "--to", "y@nd.test",
              "--to", "z@p.test", "--header", "X-Other: 1")
    out = r.stdout.decode()
    assert r.returncode == 2
    blocks = out.split("to=<")[1:]
    assert "relay_tls_only" in blocks[0]
    assert "refused: 451 4.7.1" in blocks[1] and f"{env.rules}:3" in blocks[1]
    assert "relay, unchanged" in blocks[2]
    out = ptest(env, "--from", "a@a.test", "--to", "z@p.test", "--header",
                "X-Sealgate-Encrypt: yes").stdout.decode()
    assert f"rule: {env.rules}:5" in out


def test_no_rules_default(env, tmp_path):
    empty = tmp_path / "empty.rules"
    empty.write_text("# nothing\n")
    r = ptest(env, "--from", "a@a.test", "--to", "nobody@n.test", rules=str(empty))
    assert r.returncode == 0 and "none matched (policy_default)" in r.stdout.decode()


def test_exit_codes(env, tmp_path):
    bad = tmp_path / "bad.rules"
    bad.write_text("* pass\nto=x e2e missing=sometimes\n")
    r = ptest(env, "--from", "a@a.test", "--to", "b@b.test", rules=str(bad))
    assert r.returncode == 78
    assert f"{bad}:2: missing: 'sometimes' is not one of" in r.stderr.decode()
    assert sealgate("policy", "test", "--to", "b@b.test").returncode == 64  # no --from
    assert sealgate("policy", "frobnicate").returncode == 64
    assert sealgate("policy", "--help").returncode == 0


def test_missing_fallbacks(env):
    out = ptest(env, "--from", "a@a.test", "--to", "x@np.test", "--to", "x@nt.test").stdout.decode()
    np_, nt = out.split("to=<")[1:]
    assert "treatment: e2e -> pass (missing key)" in np_ and "reason: no key for x@np.test" in np_
    assert "outcome: relay, unchanged" in np_
    assert "treatment: e2e -> tls-only (missing key)" in nt and "relay_tls_only" in nt


def test_sign_line(env, tmp_path):
    rules = tmp_path / "sign.rules"
    rules.write_text("* pass sign=yes\n")
    out = ptest(env, "--from", "bob@b.test", "--to", "x@y.test", rules=str(rules)).stdout.decode()
    # no master key configured: nothing can be signed, and it says why
    assert "sign: no (no master key configured)" in out
