"""A scripted, recording SMTP/LMTP next hop for the relay tests: speaks the
raw protocol so that a test can make it refuse, stall or drop at any step,
and records every byte, command and connection it saw."""
import select
import socket
import socketserver
import threading
import time


class Conn:
    """What one connection saw."""

    def __init__(self):
        self.commands = []      # command lines (without CRLF)
        self.batches = []       # index of the recv() each command came in
        self.early = []         # commands after which more input arrived before our reply
        self.messages = []      # raw DATA bodies as received (still dot-stuffed), "." line excluded
        self.incomplete = None  # raw DATA bytes when the connection ended before "."
        self.closed = False


class Peer:
    """Options (attributes) a test may change before the client connects:
    greeting, caps (EHLO keywords), lmtp, reply(cmd, arg, conn_index,
    txn_index) -> reply, None for the default or "DROP" to close, rcpt_reply(addr),
    dot_replies(accepted_rcpts) -> list of replies, stall_on (verb whose
    reply never comes), drop_on (verb after which we close without
    replying), drop_in_data (close after this many DATA bytes),
    slow_data (seconds to wait after 354 before reading), lockstep_check
    (look for input that arrives before we reply)."""

    def __init__(self, caps=None, lmtp=False):
        self.greeting = "220 peer.test ESMTP"
        self.caps = caps if caps is not None else [
            "PIPELINING", "SIZE 100000000", "8BITMIME", "ENHANCEDSTATUSCODES", "DSN"]
        self.lmtp = lmtp
        self.reply = lambda cmd, arg, ci, ti: None
        self.rcpt_reply = lambda addr: "250 2.1.5 Ok"
        self.dot_replies = None
        self.stall_on = None
        self.drop_on = None
        self.drop_in_data = None
        self.slow_data = 0
        self.lockstep_check = False
        self.conns = []
        self.lock = threading.Lock()
        self.queue_seq = 0
        peer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                peer._session(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    @property
    def hostport(self):
        return f"127.0.0.1:{self.port}"

    def wait_closed(self, n, timeout=5.0):
        """Wait until n connections have ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if sum(c.closed for c in self.conns) >= n:
                    return True
            time.sleep(0.02)
        return False

    # ---- the session ----

    def _session(self, sock):
        rec = Conn()
        with self.lock:
            self.conns.append(rec)
            ci = len(self.conns) - 1
        io = _LineIO(sock)
        try:
            self._dialogue(sock, io, rec, ci)
        except (ConnectionError, OSError, _Closed):
            pass
        finally:
            rec.closed = True
            try:
                sock.close()
            except OSError:
                pass

    def _send(self, sock, reply):
        lines = reply.split("\n")
        out = ""
        for i, l in enumerate(lines):
            code, text = l[:3], l[4:]
            sep = " " if i == len(lines) - 1 else "-"
            out += f"{code}{sep}{text}\r\n"
        sock.sendall(out.encode())

    def _dialogue(self, sock, io, rec, ci):
        if self.greeting.startswith("RAW:"):
            sock.sendall(self.greeting[4:].encode())
            return
        self._send(sock, self.greeting)
        if not self.greeting.startswith("220"):
            return
        txn = 0
        accepted = []
        while True:
            line, batch = io.readline()
            rec.commands.append(line.decode("utf-8", "replace"))
            rec.batches.append(batch)
            verb, _, arg = line.decode("utf-8", "replace").partition(" ")
            verb = verb.upper()
            if verb in ("MAIL", "RCPT"):
                verb = verb + " " + arg.split(":", 1)[0].upper()
            if self.lockstep_check and not io.buffered():
                r, _, _ = select.select([sock], [], [], 0.15)
                # Readable may also mean closed (after QUIT): only data counts.
                if r and sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                    rec.early.append(verb)
            if self.stall_on == verb:
                time.sleep(30)
                return
            if self.drop_on == verb:
                return
            custom = self.reply(verb, arg, ci, txn)
            if custom == "DROP":
                return
            if custom is not None:
                self._send(sock, custom)
                if custom.startswith("421"):
                    return
                if verb == "DATA" and custom.startswith("354"):
                    self._data(sock, io, rec, accepted)
                    txn += 1
                    accepted = []
                continue
            if verb in ("EHLO", "LHLO", "HELO"):
                self._send(sock, "\n".join(["250 peer.test"] + ["250 " + c for c in self.caps]))
            elif verb == "MAIL FROM":
                accepted = []
                self._send(sock, "250 2.1.0 Ok")
            elif verb == "RCPT TO":
                addr = arg.split(":", 1)[1].split(">")[0].lstrip("<")
                r = self.rcpt_reply(addr)
                if r.startswith("2"):
                    accepted.append(addr)
                self._send(sock, r)
            elif verb == "DATA":
                if not accepted:
                    self._send(sock, "554 5.5.1 Error: no valid recipients")
                    continue
                self._send(sock, "354 End data with <CR><LF>.<CR><LF>")
                self._data(sock, io, rec, accepted)
                txn += 1
                accepted = []
            elif verb == "RSET":
                accepted = []
                self._send(sock, "250 2.0.0 Ok")
            elif verb == "QUIT":
                self._send(sock, "221 2.0.0 Bye")
                return
            elif verb == "XFORWARD":
                self._send(sock, "250 2.0.0 Ok")
            else:
                self._send(sock, "502 5.5.2 Error: command not recognized")

    def _data(self, sock, io, rec, accepted):
        if self.slow_data:
            time.sleep(self.slow_data)
        raw = bytearray()
        while True:
            if self.drop_in_data is not None and len(raw) >= self.drop_in_data:
                rec.incomplete = bytes(raw)
                raise _Closed()
            try:
                line = io.readraw()
            except _Closed:
                rec.incomplete = bytes(raw)
                raise
            if line == b".\r\n":
                break
            raw += line
        rec.messages.append(bytes(raw))
        if self.stall_on == "DOT":
            time.sleep(30)
            raise _Closed()
        if self.drop_on == "DOT":
            raise _Closed()
        with self.lock:
            self.queue_seq += 1
            qid = f"Q{self.queue_seq:04d}X"
        if self.dot_replies is not None:
            replies = self.dot_replies(accepted)
        elif self.lmtp:
            replies = [f"250 2.0.0 <{a}> {qid} Saved" for a in accepted]
        else:
            replies = [f"250 2.0.0 Ok: queued as {qid}"]
        for r in replies:
            self._send(sock, r)


class _Closed(Exception):
    pass


class _LineIO:
    """Line reader that remembers which recv() each line's end arrived in."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.pos = 0
        self.nrecv = 0

    def buffered(self):
        return len(self.buf) > self.pos

    def _fill(self):
        d = self.sock.recv(1 << 20)
        if not d:
            raise _Closed()
        self.nrecv += 1
        self.buf = self.buf[self.pos:] + d
        self.pos = 0

    def readraw(self):
        while True:
            i = self.buf.find(b"\n", self.pos)
            if i >= 0:
                break
            self._fill()
        line = self.buf[self.pos:i + 1]
        self.pos = i + 1
        return line

    def readline(self):
        line = self.readraw()
        return line.rstrip(b"\r\n"), self.nrecv


def unstuff(raw):
    """RFC 5321 4.5.2 transparency, undone: what the next hop stores."""
    out = []
    for line in raw.split(b"\r\n"):
        out.append(line[1:] if line.startswith(b".") else line)
    return b"\r\n".join(out)
