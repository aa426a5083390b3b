#!/usr/bin/python3
"""A recording next hop for `make run` and the tests: an SMTP (or LMTP)
server on 127.0.0.1 that stores every message it accepts, exactly as
received after dot-unstuffing, as DIR/NNNN.eml plus DIR/NNNN.env (the
envelope), and answers "250 2.0.0 Ok: queued as NNNN".

usage: record-sink.py [--lmtp] [--port-file FILE] [--stall SECONDS] PORT DIR
PORT 0 picks a free port (written to --port-file).

For tests, a recipient's local part chooses a misbehaviour:
  reject5-*  RCPT gets 550 5.1.1        defer4-*  RCPT gets 450 4.2.0
  data5-*    DATA ends with 554 5.6.0   data4-*   DATA ends with 451 4.3.0
  stall-*    the reply to DATA's end comes after --stall seconds
  drop-*     the connection is closed after DATA's end, unanswered
(LMTP: data5/data4 apply to that recipient alone.) Messages answered with
anything but 2xx are not stored."""
import argparse
import asyncio
import itertools
import os
import sys

counter = itertools.count(1)


class Session:
    def __init__(self, reader, writer, outdir, lmtp, stall):
        self.r, self.w, self.outdir, self.lmtp, self.stall = reader, writer, outdir, lmtp, stall
        self.reset()

    def reset(self):
        self.mail_from, self.rcpts = None, []

    async def reply(self, line):
        self.w.write(line.encode() + b"\r\n")
        await self.w.drain()

    async def run(self):
        await self.reply("220 record-sink ESMTP")
        while True:
            line = await self.r.readline()
            if not line:
                return
            cmd = line.decode("utf-8", "replace").rstrip("\r\n")
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "LHLO"):
                self.w.write(b"250-record-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                             b"250-SMTPUTF8\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n")
                await self.w.drain()
            elif verb == "HELO":
                await self.reply("250 record-sink")
            elif verb == "MAIL":
                self.reset()
                self.mail_from = cmd[5:].strip()
                await self.reply("250 2.1.0 Ok")
            elif verb == "RCPT":
                rc = cmd[5:].strip()
                local = rc.split(":", 1)[-1].strip().lstrip("<").split("@")[0]
                if local.startswith("reject5-"):
                    await self.reply("550 5.1.1 <%s>: Recipient address rejected" % local)
                elif local.startswith("defer4-"):
                    await self.reply("450 4.2.0 <%s>: Recipient address temporarily rejected" % local)
                else:
                    self.rcpts.append(rc)
                    await self.reply("250 2.1.5 Ok")
            elif verb == "DATA":
                if not self.rcpts:
                    await self.reply("503 5.5.1 Error: need RCPT command")
                    continue
                await self.reply("354 End data with <CR><LF>.<CR><LF>")
                body = bytearray()
                while True:
                    l = await self.r.readline()
                    if not l:
                        return
                    if l == b".\r\n":
                        break
                    if l.startswith(b"."):
                        l = l[1:]
                    body += l
                locals_ = [r.split(":", 1)[-1].strip().lstrip("<").split("@")[0] for r in self.rcpts]
                if any(l.startswith("drop-") for l in locals_):
                    return
                if any(l.startswith("stall-") for l in locals_):
                    await asyncio.sleep(self.stall)
                if not self.lmtp and any(l.startswith(("data5-", "data4-")) for l in locals_):
                    bad5 = any(l.startswith("data5-") for l in locals_)
                    await self.reply("554 5.6.0 Error: message content rejected" if bad5
                                     else "451 4.3.0 Error: queue file write error")
                    self.reset()
                    continue
                n = next(counter)
                name = os.path.join(self.outdir, "%04d" % n)
                with open(name + ".eml.tmp", "wb") as f:
                    f.write(body)
                    f.flush()
                    os.fsync(f.fileno())
                with open(name + ".env", "w") as f:
                    f.write("MAIL " + self.mail_from + "\n")
                    for rc in self.rcpts:
                        f.write("RCPT " + rc + "\n")
                os.rename(name + ".eml.tmp", name + ".eml")
                if self.lmtp:
                    for l in locals_:
                        if l.startswith("data5-"):
                            await self.reply("554 5.6.0 <%s>: message content rejected" % l)
                        elif l.startswith("data4-"):
                            await self.reply("451 4.3.0 <%s>: temporary failure" % l)
                        else:
                            await self.reply("250 2.0.0 <%s> Ok: queued as %04d" % (l, n))
                else:
                    await self.reply("250 2.0.0 Ok: queued as %04d" % n)
                self.reset()
            elif verb == "RSET":
                self.reset()
                await self.reply("250 2.0.0 Ok")
            elif verb == "NOOP" or verb == "XFORWARD":
                await self.reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                await self.reply("221 2.0.0 Bye")
                return
            else:
                await self.reply("502 5.5.2 Error: command not recognized")


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lmtp", action="store_true")
    ap.add_argument("--port-file")
    ap.add_argument("--stall", type=float, default=30.0)
    ap.add_argument("port", type=int)
    ap.add_argument("dir")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)

    async def handle(reader, writer):
        try:
            await Session(reader, writer, a.dir, a.lmtp, a.stall).run()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", a.port, limit=1 << 26)
    port = server.sockets[0].getsockname()[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.rename(a.port_file + ".tmp", a.port_file)
    print("record-sink: listening on 127.0.0.1:%d, writing to %s" % (port, a.dir),
          file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
