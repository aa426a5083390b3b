"""Keys and checks shared by the rekey tests: a gpg key pair exported to
files with its encryption subkey's id, and the SEIPD packets of a message
(the bytes re-keying must never change)."""
import os

from pgphelp import gpg
from rekeyhelp import dearmor, packets

def enc_keyid(home, keyfile):
    """Key id of the (sub)key in keyfile that can encrypt (gpg's own reading:
    usage field of --with-colons)."""
    out = gpg(home, "--with-colons", "--import-options", "show-only", "--import",
              keyfile).stdout.decode()
    for line in out.splitlines():
        f = line.split(":")
        if f[0] in ("pub", "sec", "sub", "ssb") and "e" in f[11]:
            return f[4]
    raise AssertionError("no encryption key in " + keyfile)


def gpg_keypair(home, uid, tmp, name, algo="future-default", usage="default"):
    """Generate uid in home; {"pub", "sec": file paths, "id": subkey id}."""
    gpg(home, "--passphrase", "", "--quick-gen-key", uid, algo, usage, "never")
    out = {}
    for ext, args in (("pub", ["--export"]), ("sec", ["--export-secret-keys"])):
        p = os.path.join(tmp, f"{name}.{ext}")
        with open(p, "wb") as f:
            f.write(gpg(home, "--armor", *args, uid).stdout)
        out[ext] = p
    out["id"] = enc_keyid(home, out["pub"])
    return out


def seipd(data):
    """The raw SEIPD packets of an armored message."""
    return [raw for tag, raw, _ in packets(dearmor(data)[2]) if tag == 18]
