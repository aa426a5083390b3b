"""Cold look-ups on loopback for bench/lookup.sh: sealgate's WKD (plain
HTTP to a local server via the test allow-list) and LDAP (a real slapd)
sources with no cache, and gpg --locate-keys (dirmngr, HTTPS through a
CONNECT proxy inside a private mount namespace, as in test_wkd.py).
usage: lookup_cold.py TMPDIR LOOKUP_BENCH N"""
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from conftest import free_port, wait_port  # noqa: E402
from keys_helpers import CONNECT_PROXY, Daemon, gpg, gpg_genkey, gpg_kill, make_tls, wkd_hash  # noqa: E402
from lookup_peers import Slapd, WkdServer  # noqa: E402

T, BENCH, N = sys.argv[1], sys.argv[2], int(sys.argv[3])
SG = os.environ["SEALGATE_BIN"]
ADDR = "alice@example.test"

home = os.path.join(T, "gpg-alice")
gpg_genkey(home, f"alice <{ADDR}>")
key = gpg(home, "--export", ADDR).stdout
gpg_kill(home)
with open(os.path.join(T, "alice.pgp"), "wb") as f:
    f.write(key)

wkd = WkdServer()
wkd.keys[f"/.well-known/openpgpkey/example.test/hu/{wkd_hash(ADDR)}"] = key
slapd = Slapd(f"""dn: cn=alice,ou=people,dc=example,dc=test
objectClass: inetOrgPerson
objectClass: pgpKeyInfo
cn: alice
sn: Example
mail: {ADDR}
pgpKey:< file://{T}/alice.pgp
""")
try:
    subprocess.run([BENCH, "cold", ADDR, str(N), "lookup_order=wkd",
                    f"wkd_allow_hosts=openpgpkey.example.test=127.0.0.1:{wkd.port}"], check=True)
    subprocess.run([BENCH, "cold", ADDR, str(N), "lookup_order=ldap", f"ldap_uri={slapd.uri}",
                    "ldap_base=dc=example,dc=test"], check=True)
    # The same through the CLI (process start, store open included).
    t = []
    for i in range(min(N, 20)):
        s = time.monotonic()
        subprocess.run([SG, "key-lookup", ADDR, "--state-dir", os.path.join(T, "cli"), "--no-cache",
                        "--set", "lookup_order=wkd", "--set",
                        f"wkd_allow_hosts=openpgpkey.example.test=127.0.0.1:{wkd.port}"],
                       check=True, capture_output=True)
        t.append((time.monotonic() - s) * 1000)
    print(f"{'sealgate key-lookup (CLI) wkd':28s} {len(t):8d} runs  median {statistics.median(t):8.1f} ms")
finally:
    wkd.stop()
    slapd.stop()

# gpg --locate-keys over WKD (HTTPS via dirmngr): the serve-wkd of this tree.
if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
    print("gpg --locate-keys: skipped (no mount namespaces)")
    sys.exit(0)
state = os.path.join(T, "state")
subprocess.run([SG, "key", "import", os.path.join(T, "alice.pgp"), "--state-dir", state],
               check=True, capture_output=True)
ca, crt, keyf = make_tls(T)
with open(os.path.join(T, "ca-bundle.crt"), "wb") as f:
    f.write(open("/etc/ssl/certs/ca-certificates.crt", "rb").read())
    f.write(open(ca, "rb").read())
with open(os.path.join(T, "resolv.conf"), "w") as f:
    f.write("nameserver 127.0.0.1\n")
with open(os.path.join(T, "connect_proxy.py"), "w") as f:
    f.write(CONNECT_PROXY)
hport, pport = free_port(), free_port()
srv = Daemon([SG, "key", "serve-wkd", "--state-dir", state, "--listen", f"127.0.0.1:{hport}",
              "--tls-cert", crt, "--tls-key", keyf], T, "https", hport)
proxy = Daemon([sys.executable, os.path.join(T, "connect_proxy.py"), str(pport), str(hport)], T,
               "proxy", pport)
try:
    wait_port(hport, proc=srv.proc)
    wait_port(pport, proc=proxy.proc)
    script = ('set -e; mount --bind "$1/ca-bundle.crt" /etc/ssl/certs/ca-certificates.crt; '
              'mount --bind "$1/resolv.conf" /etc/resolv.conf; '
              'for i in $(seq "$2"); do h="$1/g$i"; mkdir -m 700 "$h"; '
              'printf "http-proxy http://127.0.0.1:%s\\n" "$3" > "$h/dirmngr.conf"; '
              's=$(date +%s%N); gpg --homedir "$h" --batch --auto-key-locate clear,wkd '
              f'--locate-keys {ADDR} >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000 )); '
              'gpgconf --homedir "$h" --kill all; done')
    n = min(N, 10)
    r = subprocess.run(["unshare", "-m", "bash", "-c", script, "_", T, str(n), str(pport)],
                       capture_output=True, text=True, timeout=300, check=True)
    us = [int(x) / 1000 for x in r.stdout.split()]
    print(f"{'gpg --locate-keys (wkd)':28s} {len(us):8d} runs  median {statistics.median(us):8.1f} ms"
          "  (fresh homedir each: gpg + dirmngr start, HTTPS)")
finally:
    proxy.stop()
    srv.stop()
