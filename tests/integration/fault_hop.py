#!/usr/bin/python3
"""A next hop that fails in the middle of DATA, for test_faults.py.

usage: fault_hop.py MODE PORTFILE DIR [SECONDS]
  close  after 354, read 8 KiB of the message, then close the connection
  stall  after 354, read nothing for SECONDS (the receive buffer is 4 KiB,
         so the sender's writes block), then read to the end and answer 250
         if, and only if, the final "." came
Each transaction leaves DIR/N.json: {"mode", "bytes", "dot", "acked"}. The
listening port (127.0.0.1, chosen by the kernel) is written to PORTFILE."""
import itertools
import json
import os
import socket
import sys
import threading
import time

counter = itertools.count(1)


def record(outdir, **kw):
    name = os.path.join(outdir, "%04d" % next(counter))
    with open(name + ".tmp", "w") as f:
        json.dump(kw, f)
    os.rename(name + ".tmp", name + ".json")


def session(c, mode, outdir, secs):
    f = c.makefile("rb")
    c.sendall(b"220 fault-hop ESMTP\r\n")
    while True:
        line = f.readline()
        if not line:
            return
        verb = line[:4].upper()
        if verb in (b"EHLO", b"HELO"):
            c.sendall(b"250 fault-hop\r\n")
        elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
            c.sendall(b"250 2.0.0 Ok\r\n")
        elif verb == b"QUIT":
            c.sendall(b"221 2.0.0 Bye\r\n")
            return
        elif verb == b"DATA":
            c.sendall(b"354 go ahead\r\n")
            break
        else:
            c.sendall(b"502 5.5.2 unknown\r\n")
    if mode == "close":
        got = f.read(8192) or b""
        record(outdir, mode=mode, bytes=len(got), dot=b"\r\n.\r\n" in got, acked=False)
        return
    time.sleep(secs)
    n, dot, tail = 0, False, b""
    while True:
        try:
            chunk = f.read1(65536)
        except OSError:  # reset by the sender
            break
        if not chunk:
            break
        n += len(chunk)
        tail = (tail + chunk)[-5:]
        if tail == b"\r\n.\r\n":
            dot = True
            break
    if dot:
        c.sendall(b"250 2.0.0 Ok: queued\r\n")
    record(outdir, mode=mode, bytes=n, dot=dot, acked=dot)


def main():
    mode, portfile, outdir = sys.argv[1:4]
    secs = float(sys.argv[4]) if len(sys.argv) > 4 else 5.0
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit it: a small window makes the sender block.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(s.getsockname()[1]))
    os.rename(portfile + ".tmp", portfile)

    def run(c):
        try:
            session(c, mode, outdir, secs)
        except OSError:
            pass
        finally:
            c.close()
    while True:
        c, _ = s.accept()
        threading.Thread(target=run, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()
