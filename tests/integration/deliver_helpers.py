"""Helpers for the delivery (at rest) tests: sealgate with a deliver
listener, users' keys made by sealgate itself (OpenPGP) or openssl
(S/MIME), decryption with the real tools (gpg, openssl cms), and a real
Dovecot (imap + lmtp) in a temp dir per ../shared/PEERS.md section 1."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from conftest import free_port, run, wait_port


class DeliverGateway:
    """sealgate serve with only a deliver listener (LMTP)."""

    def __init__(self, bin, tmp, extra="", name="gw"):
        self.bin, self.tmp = bin, tmp
        self.port = free_port()
        self.state = os.path.join(tmp, "state")
        self.conf = os.path.join(tmp, name + ".conf")
        with open(self.conf, "w") as f:
            f.write(f"hostname = gw.example.test\nstate_dir = {self.state}\nlisten =\n"
                    f"deliver_listen = 127.0.0.1:{self.port}\n" + extra)
        self.logpath = os.path.join(tmp, name + ".log")
        self.proc = None

    def start(self):
        self.logf = open(self.logpath, "wb")
        self.proc = subprocess.Popen([self.bin, "serve", "-c", self.conf], stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        wait_port(self.port, proc=self.proc)
        deadline = time.monotonic() + 10
        while " started: " not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("sealgate did not start:\n" + self.log())
            time.sleep(0.02)
        return self

    def log(self):
        return open(self.logpath, "rb").read().decode("utf-8", "replace")

    def stop(self, timeout=20):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.logf.close()
        return self.proc.returncode if self.proc is not None else None


def sealgate_ok(bin, *args):
    r = run([bin, *args])
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout.decode()


def pgp_user(bin, tmp, state, addr):
    """Generate addr's key in the store at state (master key outside it);
    return (secret key file, fingerprint)."""
    mk = os.path.join(tmp, "master.key")
    if not os.path.exists(mk):
        sealgate_ok(bin, "key", "init-master", "--master-key", mk)
    out = sealgate_ok(bin, "key", "generate", addr, "--state-dir", state, "--master-key", mk)
    fpr = re.search(r"([0-9A-F]{40})", out).group(1)
    sec = os.path.join(tmp, addr + ".sec")
    r = run([bin, "key", "export", addr, "--secret", "--state-dir", state, "--master-key", mk])
    assert r.returncode == 0, r.stderr
    with open(sec, "wb") as f:
        f.write(r.stdout)
    return sec, fpr


def smime_user(bin, tmp, state, addr):
    """A self-signed RSA certificate for addr (openssl), imported into the
    store; return (cert file, key file)."""
    crt, key = os.path.join(tmp, addr + ".crt"), os.path.join(tmp, addr + ".key")
    r = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
             crt, "-days", "30", "-subj", f"/CN=user/emailAddress={addr}",
             "-addext", f"subjectAltName=email:{addr}",
             "-addext", "extendedKeyUsage=emailProtection",
             "-addext", "keyUsage=digitalSignature,keyEncipherment"])
    assert r.returncode == 0, r.stderr
    sealgate_ok(bin, "key", "import", crt, "--addr", addr, "--state-dir", state)
    return crt, key


def gpg_decrypt(sec, sealed):
    """Decrypt a PGP/MIME message with gpg holding only sec; the plaintext."""
    m = re.search(rb"-----BEGIN PGP MESSAGE-----.*?-----END PGP MESSAGE-----", sealed, re.S)
    assert m, "no armored OpenPGP message in:\n" + sealed[:400].decode(errors="replace")
    home = tempfile.mkdtemp(prefix="/tmp/gd.")
    try:
        g = ["gpg", "--homedir", home, "--batch", "--yes", "--pinentry-mode", "loopback"]
        r = subprocess.run(g + ["--import", sec], capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        r = subprocess.run(g + ["--decrypt"], input=m.group(0), capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True,
                       timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def cms_decrypt(crt, key, sealed, tmp):
    """Decrypt an S/MIME message with openssl cms; the plaintext."""
    path = os.path.join(tmp, "cms-in.eml")
    with open(path, "wb") as f:
        f.write(sealed)
    r = run(["openssl", "cms", "-decrypt", "-in", path, "-recip", crt, "-inkey", key])
    assert r.returncode == 0, r.stderr
    return r.stdout


def outer_headers(msg):
    msg = msg.replace(b"\r\n", b"\n")
    return msg.split(b"\n\n", 1)[0]


def maildir_files(d):
    out = []
    for sub in ("new", "cur"):
        p = os.path.join(d, sub)
        if os.path.isdir(p):
            out += [os.path.join(p, n) for n in sorted(os.listdir(p)) if not n.startswith(".")]
    return out


class Dovecot:
    """Dovecot 2.3 imap + lmtp on run-time ports; users are passwd-file
    entries with uid nobody (PEERS.md: uid 0 cannot log in)."""

    def __init__(self, users):
        self.t = tempfile.mkdtemp(prefix="/tmp/dovecot-sg.")
        os.chmod(self.t, 0o755)
        self.imap_port, self.lmtp_port = free_port(), free_port()
        for d in ("run", "state"):
            os.makedirs(os.path.join(self.t, d))
        with open(os.path.join(self.t, "users"), "w") as f:
            for u in users:
                os.makedirs(os.path.join(self.t, "Maildir", u, "new"))
                f.write(f"{u}:{{PLAIN}}secret:65534:65534::{self.t}/home/{u}::\n")
        subprocess.run(["chown", "-R", "nobody:nogroup", os.path.join(self.t, "Maildir")],
                       check=True)
        self.conf = os.path.join(self.t, "dovecot.conf")
        T = self.t
        with open(self.conf, "w") as f:
            f.write(f"""base_dir = {T}/run
state_dir = {T}/state
instance_name = dovecot-sg-{os.path.basename(T)}
log_path = /dev/stderr
info_log_path = /dev/stderr
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %Ln
mail_location = maildir:{T}/Maildir/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {T}/users
}}
userdb {{
  driver = passwd-file
  args = {T}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
""")
        self.logf = open(os.path.join(T, "dovecot.log"), "wb")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.conf], stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        wait_port(self.imap_port, proc=self.proc)
        wait_port(self.lmtp_port, proc=self.proc)

    def log(self):
        return open(os.path.join(self.t, "dovecot.log"), "rb").read().decode("utf-8", "replace")

    def stop(self):
        subprocess.run(["dovecot", "-c", self.conf, "stop"], capture_output=True, timeout=30)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()
        shutil.rmtree(self.t, ignore_errors=True)
