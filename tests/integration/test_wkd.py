"""Web Key Directory: the tree `key export-wkd` writes and the paths
`key serve-wkd` answers, checked with GnuPG's own hash (gpg-wks-client), its
own WKD look-up (gpg --locate-keys through dirmngr, PEERS.md 4a) and curl."""
import os
import shutil
import socket
import subprocess
import sys
import urllib.request

import pytest

from conftest import SEALGATE_BIN, free_port, wait_port
from keys_helpers import (CONNECT_PROXY, WKS_CLIENT, Daemon, gpg, gpg_genkey, gpg_kill,
                          make_tls, sealgate, wkd_hash)

ADDRS = ["alice@example.test", "Bob.Smith@example.test", "carol@other.test"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A store with three GnuPG-made keys in two domains."""
    sealgate_bin = SEALGATE_BIN
    t = tmp_path_factory.mktemp("wkd")
    home = str(t / "gnupg")
    state = t / "state"
    fprs = {}
    for a in ADDRS:
        fprs[a.lower()] = gpg_genkey(home, f"<{a}>")
        data = gpg(home, "--export", a).stdout
        r = sealgate(sealgate_bin, "import", "-", "--state-dir", str(state), input=data,
                     text=False)
        assert r.returncode == 0, r.stderr
    gpg_kill(home)
    return {"tmp": t, "state": state, "fprs": fprs, "bin": sealgate_bin}


def fpr_of(data, tmp, name):
    home = str(tmp / f"imp-{name}")
    os.makedirs(home, mode=0o700, exist_ok=True)
    r = gpg(home, "--import", input=data)
    assert r.returncode == 0, r.stderr
    out = gpg(home, "--with-colons", "--list-keys", text=True).stdout
    gpg_kill(home)
    shutil.rmtree(home)
    return [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr")]


def test_export_tree_matches_gnupg(world):
    out = world["tmp"] / "www"
    r = sealgate(world["bin"], "export-wkd", str(out), "--state-dir", str(world["state"]),
                 "--submission-address", "key-submission@example.test")
    assert r.returncode == 0, r.stderr
    base = out / ".well-known" / "openpgpkey"
    assert (base / "policy").exists() and (base / "example.test" / "policy").exists()
    assert (base / "example.test" / "submission-address").read_text() == \
        "key-submission@example.test\n"
    for a in ADDRS:
        h = wkd_hash(a)
        domain = a.split("@")[1]
        adv = base / domain / "hu" / h
        direct = base / "hu" / h
        assert adv.exists(), f"advanced path for {a}"
        assert direct.read_bytes() == adv.read_bytes()
        fprs = fpr_of(adv.read_bytes(), world["tmp"], h)
        assert world["fprs"][a.lower()] in fprs
    # Keys of one domain are not published under another.
    assert not (base / "other.test" / "hu" / wkd_hash("alice@example.test")).exists()


def http_get(port, path, method="GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def raw_request(port, data):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(data)
    buf = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    s.close()
    return buf.split(b"\r\n", 1)[0]


@pytest.fixture
def http_server(world):
    port = free_port()
    d = Daemon([world["bin"], "key", "serve-wkd", "--state-dir", str(world["state"]),
                "--listen", f"127.0.0.1:{port}", "--domains", "example.test other.test",
                "--submission-address", "key-submission@example.test"],
               str(world["tmp"]), f"http-{port}", port)
    wait_port(port, proc=d.proc)
    yield d
    assert d.stop() == 0, d.stderr()


def test_http_paths(world, http_server):
    port = http_server.port
    for a in ADDRS:
        h = wkd_hash(a)
        domain = a.split("@")[1]
        local = a.split("@")[0]
        st, ctype, body = http_get(port, f"/.well-known/openpgpkey/{domain}/hu/{h}?l={local}")
        assert (st, ctype) == (200, "application/octet-stream")
        assert world["fprs"][a.lower()] in fpr_of(body, world["tmp"], "h" + h)
        st, _, body2 = http_get(port, f"/.well-known/openpgpkey/hu/{h}")
        assert st == 200 and body2 == body
        st, _, head = http_get(port, f"/.well-known/openpgpkey/{domain}/hu/{h}", "HEAD")
        assert st == 200 and head == b""
    st, _, body = http_get(port, "/.well-known/openpgpkey/policy")
    assert st == 200
    st, _, body = http_get(port, "/.well-known/openpgpkey/example.test/submission-address")
    assert (st, body) == (200, b"key-submission@example.test\n")
    unknown = wkd_hash("nobody@example.test")
    for path in (f"/.well-known/openpgpkey/hu/{unknown}",
                 f"/.well-known/openpgpkey/example.test/hu/{unknown}",
                 f"/.well-known/openpgpkey/not-served.test/hu/{wkd_hash('alice@x')}",
                 f"/.well-known/openpgpkey/other.test/hu/{wkd_hash('alice@x')}",
                 "/", "/index.html", "/.well-known/openpgpkey/"):
        assert http_get(port, path)[0] == 404, path
    st, _, _ = http_get(port, "/.well-known/openpgpkey/policy", "POST")
    assert st == 405
    st, _, _ = http_get(port, "/.well-known/openpgpkey/policy", "DELETE")
    assert st == 405


@pytest.mark.parametrize("target", [
    b"/.well-known/openpgpkey/../../../etc/passwd",
    b"/.well-known/openpgpkey/hu/../../../../etc/passwd",
    b"/.well-known/openpgpkey/%2e%2e/%2e%2e/etc/passwd",
    b"/.well-known/openpgpkey/example.test%2fhu/x",
    b"/.well-known/openpgpkey/policy%00.txt",
    b"/.well-known/openpgpkey//hu/x",
    b"/.well-known/openpgpkey/" + b"a" * 3000 + b"/policy",
], ids=["dotdot", "hu-dotdot", "pct-dotdot", "pct-slash", "pct-nul", "empty-seg", "long"])
def test_hostile_paths(http_server, target):
    line = raw_request(http_server.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n"
                       b"Connection: close\r\n\r\n")
    assert line.split()[1] in (b"400", b"404", b"414"), line
    # And the server is still there.
    assert http_get(http_server.port, "/.well-known/openpgpkey/policy")[0] == 200


def test_https_curl_then_gpg_import(world, tmp_path):
    """PEERS.md's fallback: curl the advanced URL over HTTPS, gpg --import."""
    ca, crt, key = make_tls(str(tmp_path))
    port = free_port()
    d = Daemon([world["bin"], "key", "serve-wkd", "--state-dir", str(world["state"]),
                "--listen", f"127.0.0.1:{port}", "--tls-cert", crt, "--tls-key", key],
               str(tmp_path), "https", port)
    try:
        wait_port(port, proc=d.proc)
        url = subprocess.run([WKS_CLIENT, "--print-wkd-url", "alice@example.test"],
                             capture_output=True, text=True, check=True).stdout.strip()
        assert url.startswith("https://openpgpkey.example.test/.well-known/openpgpkey/")
        r = subprocess.run(["curl", "-sSf", "--connect-to",
                            f"openpgpkey.example.test:443:127.0.0.1:{port}", "--cacert", ca, url],
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert world["fprs"]["alice@example.test"] in fpr_of(r.stdout, tmp_path, "curl")
        # Plain HTTP to the HTTPS port gets no key.
        r = subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/.well-known/openpgpkey/policy"],
                           capture_output=True, timeout=30)
        assert b"HTTP/1.1 200" not in r.stdout
    finally:
        assert d.stop() == 0, d.stderr()


def test_gnupg_locate_keys(world, tmp_path):
    """gpg --locate-keys --auto-key-locate clear,wkd against serve-wkd over
    HTTPS: a private mount namespace shows dirmngr a CA bundle with our test
    CA (and a resolv.conf without a server); names go via a CONNECT proxy."""
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("no mount namespaces here")
    ca, crt, key = make_tls(str(tmp_path))
    with open(tmp_path / "ca-bundle.crt", "wb") as f:
        f.write(open("/etc/ssl/certs/ca-certificates.crt", "rb").read())
        f.write(open(ca, "rb").read())
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    (tmp_path / "connect_proxy.py").write_text(CONNECT_PROXY)
    hport, pport = free_port(), free_port()
    srv = Daemon([world["bin"], "key", "serve-wkd", "--state-dir", str(world["state"]),
                  "--listen", f"127.0.0.1:{hport}", "--tls-cert", crt, "--tls-key", key],
                 str(tmp_path), "https", hport)
    proxy = Daemon([sys.executable, str(tmp_path / "connect_proxy.py"), str(pport), str(hport)],
                   str(tmp_path), "proxy", pport)
    client = tmp_path / "client"
    client.mkdir(mode=0o700)
    (client / "dirmngr.conf").write_text(
        f"log-file {tmp_path}/dirmngr.log\nverbose\nhttp-proxy http://127.0.0.1:{pport}\n")
    try:
        wait_port(hport, proc=srv.proc)
        wait_port(pport, proc=proxy.proc)
        script = ('set -e; mount --bind "$1/ca-bundle.crt" /etc/ssl/certs/ca-certificates.crt; '
                  'mount --bind "$1/resolv.conf" /etc/resolv.conf; rc=0; '
                  'gpg --homedir "$1/client" --batch --auto-key-locate clear,wkd '
                  '--locate-keys bob.smith@example.test || rc=$?; '
                  'gpgconf --homedir "$1/client" --kill dirmngr; '
                  'gpgconf --homedir "$1/client" --kill gpg-agent; exit $rc')
        r = subprocess.run(["unshare", "-m", "bash", "-c", script, "_", str(tmp_path)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr + open(tmp_path / "dirmngr.log").read()
        out = gpg(str(client), "--with-colons", "--list-keys", text=True).stdout
        assert world["fprs"]["bob.smith@example.test"] in out
        # dirmngr really went through our proxy to our server.
        assert "CONNECT" in proxy.stderr()
    finally:
        proxy.stop()
        assert srv.stop() == 0, srv.stderr()
