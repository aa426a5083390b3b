#!/usr/bin/python3
"""What per-message encryption filters (Zeyple, gpg-mailgate) do, as a
baseline for bench/policy.sh: for each message one gpg process encrypts
and signs it, then the result goes to the next hop over SMTP. CONC
messages at a time, like smtp-source -s.
usage: zeyple-style.py GNUPGHOME SENDER RCPT SINK_PORT MESSAGES CONC SIZE
Prints messages/s."""
import concurrent.futures
import smtplib
import subprocess
import sys
import time


def one(home, sender, rcpt, port, body):
    enc = subprocess.run(["gpg", "--homedir", home, "--batch", "--yes", "--trust-model", "always",
                          "--pinentry-mode", "loopback", "--passphrase", "", "--armor",
                          "--compress-algo", "none", "-u", sender, "-r", rcpt, "--sign",
                          "--encrypt"], input=body, capture_output=True, check=True).stdout
    msg = (b"From: <" + sender.encode() + b">\r\nTo: <" + rcpt.encode() +
           b">\r\nSubject: ...\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n"
           b"--b\r\nContent-Type: application/octet-stream\r\n\r\n" +
           enc.replace(b"\n", b"\r\n") + b"\r\n--b--\r\n")
    with smtplib.SMTP("127.0.0.1", port) as s:
        s.sendmail(sender, [rcpt], msg)


def main():
    home, sender, rcpt, port, n, conc, size = sys.argv[1:8]
    n, conc, size = int(n), int(conc), int(size)
    body = (b"From: <" + sender.encode() + b">\r\nTo: <" + rcpt.encode() + b">\r\nSubject: bench\r\n\r\n" +
            b"x" * 76 + b"\r\n") * max(1, size // 78)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(conc) as pool:
        for f in [pool.submit(one, home, sender, rcpt, int(port), body) for _ in range(n)]:
            f.result()
    print(f"{n / (time.monotonic() - t0):.1f}")


if __name__ == "__main__":
    main()
