"""Test PKI for the S/MIME integration tests: certificates made with the
openssl CLI (req -x509, ca for back-dated ones) and gpgsm homes."""
import base64
import os
import subprocess

EXT = ("subjectAltName=email:{email}", "extendedKeyUsage=emailProtection",
       "basicConstraints=CA:FALSE")


def sh(args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 60)
    r = subprocess.run(args, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
    return r


class Ident:
    """One certificate with its key: .crt (cert only), .pem (cert + key), .p12."""

    def __init__(self, d, name, email):
        self.name, self.email = name, email
        self.key = os.path.join(d, name + ".key")
        self.crt = os.path.join(d, name + ".crt")
        self.pem = os.path.join(d, name + ".pem")
        self.p12 = os.path.join(d, name + ".p12")          # legacy PBEs, for gpgsm
        self.p12aes = os.path.join(d, name + "-aes.p12")   # OpenSSL 3 default (AES, PBKDF2)

    def finish(self):
        with open(self.pem, "wb") as out:
            for f in (self.crt, self.key):
                with open(f, "rb") as src:
                    out.write(src.read())
        # legacy PBEs: gpgsm 2.2 cannot read OpenSSL 3's AES/PBKDF2 PKCS#12
        sh(["openssl", "pkcs12", "-export", "-legacy", "-in", self.crt, "-inkey", self.key,
            "-out", self.p12, "-passout", "pass:pw"])
        sh(["openssl", "pkcs12", "-export", "-in", self.crt, "-inkey", self.key,
            "-out", self.p12aes, "-passout", "pass:pw"])
        return self

    def sha1(self):
        out = sh(["openssl", "x509", "-in", self.crt, "-noout", "-fingerprint", "-sha1"]).stdout
        return out.decode().strip().split("=", 1)[1]


def keyopts(alg):
    if alg == "rsa":
        return ["-newkey", "rsa:2048"]
    if alg == "ec":
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    return ["-newkey", alg]


def usage(alg):
    enc = "keyAgreement" if alg == "ec" else "keyEncipherment"
    return f"keyUsage=digitalSignature,nonRepudiation,{enc}"


def self_signed(d, name, email, alg, eku=True):
    """openssl req -x509 with emailAddress in the subject and a SAN email."""
    i = Ident(d, name, email)
    exts = [e.format(email=email) for e in EXT if eku or "extendedKeyUsage" not in e]
    exts.append(usage(alg))
    args = ["openssl", "req", "-x509", *keyopts(alg), "-nodes", "-keyout", i.key, "-out", i.crt,
            "-days", "30", "-subj", f"/CN={name}/emailAddress={email}"]
    for e in exts:
        args += ["-addext", e]
    sh(args)
    return i.finish()


def make_ca(d, name):
    """A self-signed CA (RSA, so that gpgsm 2.2 can check what it issues)."""
    i = Ident(d, name, None)
    sh(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", i.key,
        "-out", i.crt, "-days", "30", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    return i


def issued(d, name, email, alg, ca):
    """A leaf issued by ca (chain building: the leaf alone is not trusted)."""
    i = Ident(d, name, email)
    csr = os.path.join(d, name + ".csr")
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("\n".join(e.format(email=email) for e in EXT) + "\n" + usage(alg) + "\n")
    sh(["openssl", "req", "-new", *keyopts(alg), "-nodes", "-keyout", i.key, "-out", csr,
        "-subj", f"/CN={name}/emailAddress={email}"])
    sh(["openssl", "x509", "-req", "-in", csr, "-CA", ca.crt, "-CAkey", ca.key,
        "-CAcreateserial", "-days", "30", "-sha256", "-extfile", ext, "-out", i.crt])
    return i.finish()


def back_dated(d, name, email, alg, start, end):
    """A self-signed certificate valid only from start to end (YYYYMMDDHHMMSSZ),
    through `openssl ca`, since req -x509 cannot set dates in the past."""
    i = Ident(d, name, email)
    cad = os.path.join(d, name + "-ca")
    os.makedirs(cad, exist_ok=True)
    open(os.path.join(cad, "index.txt"), "w").close()
    with open(os.path.join(cad, "serial"), "w") as f:
        f.write("1000\n")
    cfg = os.path.join(cad, "ca.cnf")
    with open(cfg, "w") as f:
        f.write(f"""[ca]
default_ca = d
[d]
database = {cad}/index.txt
new_certs_dir = {cad}
serial = {cad}/serial
default_md = sha256
policy = p
x509_extensions = ext
[p]
commonName = supplied
emailAddress = optional
[ext]
subjectAltName = email:{email}
extendedKeyUsage = emailProtection
basicConstraints = CA:FALSE
{usage(alg).replace('=', ' = ', 1)}
""")
    csr = os.path.join(cad, "req.csr")
    sh(["openssl", "req", "-new", *keyopts(alg), "-nodes", "-keyout", i.key, "-out", csr,
        "-subj", f"/CN={name}/emailAddress={email}"])
    sh(["openssl", "ca", "-batch", "-config", cfg, "-selfsign", "-keyfile", i.key, "-in", csr,
        "-out", i.crt, "-startdate", start, "-enddate", end, "-notext"])
    return i.finish()


def split_message(data):
    """(header block with its final CRLF, body) of a CRLF message."""
    head, _, body = data.partition(b"\r\n\r\n")
    return head + b"\r\n", body


def header_fields(head):
    """Unfolded (name, raw field) pairs in order."""
    fields = []
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + b"\r\n" + line)
        else:
            fields.append((line.split(b":", 1)[0].decode().lower(), line))
    return fields


def field(data, name):
    head, _ = split_message(data)
    for n, raw in header_fields(head):
        if n == name.lower():
            return raw.split(b":", 1)[1].strip().decode()
    return None


def der_of(msg):
    """The DER inside a pkcs7-mime message's base64 body."""
    _, body = split_message(msg)
    return base64.b64decode(b"".join(body.split()))


def gcm_tag_end(der):
    """Where the GCM tag of AuthEnvelopedData ends: at the end of DER; before
    the three end-of-contents pairs of CMS_STREAM's indefinite-length BER."""
    return len(der) - 6 if der[1] == 0x80 else len(der)


def with_der(msg, der):
    """msg with its base64 body replaced by der."""
    head, _ = split_message(msg)
    b = base64.b64encode(der)
    lines = [b[i:i + 76] for i in range(0, len(b), 76)]
    return head + b"\r\n" + b"\r\n".join(lines) + b"\r\n"


def gpgsm_home(d, idents_with_secret, trusted):
    """A GNUPGHOME for gpgsm with the PKCS#12 files imported and the given
    self-signed certificates trusted as roots."""
    home = os.path.join(d, "gnupg")
    os.makedirs(home, mode=0o700, exist_ok=True)
    with open(os.path.join(home, "gpgsm.conf"), "w") as f:
        f.write("disable-crl-checks\ndisable-policy-checks\nno-common-certs-import\n")
    with open(os.path.join(home, "gpg-agent.conf"), "w") as f:
        f.write("allow-loopback-pinentry\n")
    with open(os.path.join(home, "trustlist.txt"), "w") as f:
        for i in trusted:
            f.write(f"{i.sha1()} S\n")
    env = dict(os.environ, GNUPGHOME=home)
    # start the agent before the first import: autostart can time out on a
    # loaded machine
    sh(["gpgconf", "--homedir", home, "--launch", "gpg-agent"], env=env)
    for i in idents_with_secret:
        sh(["gpgsm", "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "0",
            "--import", i.p12], input=b"pw\n", env=env)
    for i in trusted:
        sh(["gpgsm", "--batch", "--import", i.crt], env=env)
    return home, env


class CrlAuthority:
    """An `openssl ca` database beside a CA from make_ca(), to revoke
    certificates and publish CRLs (RFC 5280 s5)."""

    def __init__(self, d, ca):
        self.ca = ca
        self.dir = os.path.join(d, "crl-" + os.path.basename(ca.crt))
        os.makedirs(self.dir, exist_ok=True)
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "crlnumber"), "w") as f:
            f.write("01\n")
        self.cnf = os.path.join(self.dir, "ca.cnf")
        with open(self.cnf, "w") as f:
            f.write(f"""[ca]
default_ca = d
[d]
database = {self.dir}/index.txt
crlnumber = {self.dir}/crlnumber
default_md = sha256
default_crl_days = 30
""")

    def _ca(self, *args):
        sh(["openssl", "ca", "-batch", "-config", self.cnf, "-keyfile", self.ca.key,
            "-cert", self.ca.crt, *args])

    def revoke(self, ident):
        self._ca("-revoke", ident.crt, "-crl_reason", "keyCompromise")

    def crl(self, out, der=False):
        """Write the current CRL (PEM, or DER) to out."""
        self._ca("-gencrl", "-out", out)
        if der:
            sh(["openssl", "crl", "-in", out, "-outform", "DER", "-out", out])
        return out
