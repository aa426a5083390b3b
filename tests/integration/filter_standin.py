#!/usr/bin/env python3
"""A stand-in for `sealgate serve` with the same config file and contract
(answer 250 only after the next hop took the message; XFORWARD passed on), so
that the Postfix side of the integration can be proven without the gateway.
Usage: filter_standin.py serve -c CONFIG [--listen A:P] [--lmtp A:P] [--relay H:P]"""
import asyncio
import itertools
import os
import re
import secrets
import signal
import sys
import time

MAX_MESSAGE = 128 * 1024 * 1024
XF_ATTRS = ("NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE")
_seq = itertools.count(1)
BUSY = [0]  # transactions between DATA and its reply; SIGTERM waits for them


def log(msg):
    ts = time.strftime("%b %d %H:%M:%S")
    print(f"{ts} standin/serve[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


def parse_config(path):
    conf = {}
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if "=" not in line:
                sys.exit(f"{path}:{n}: expected 'key = value'")
            k, v = line.split("=", 1)
            conf[k.strip()] = v.strip()
    return conf


def parse_args(argv):
    if len(argv) < 1 or argv[0] != "serve":
        sys.exit("usage: filter_standin.py serve -c CONFIG [--listen A] [--lmtp A] [--relay A]")
    conf, i = {}, 1
    over = {"--listen": "listen", "--lmtp": "lmtp_listen", "--relay": "relay"}
    pending = {}
    while i < len(argv):
        if argv[i] == "-c":
            conf = parse_config(argv[i + 1])
        elif argv[i] in over:
            pending[over[argv[i]]] = argv[i + 1]
        else:
            sys.exit(f"unknown argument {argv[i]}")
        i += 2
    conf.update(pending)
    return conf


def hostport(s):
    host, port = s.rsplit(":", 1)
    return host.strip("[]"), int(port)


def queue_id():
    return f"{int(time.time()) & 0xFFFFF:05X}{next(_seq) & 0xFFF:03X}{secrets.randbelow(16**2):02X}"


class Txn:
    def __init__(self):
        self.mail_from, self.mail_params, self.rcpts = None, "", []
        self.qid = queue_id()


async def read_reply(reader):
    """One (multi-line) reply: (code, text)."""
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            return 421, "4.4.2 connection lost"
        s = line.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(s[4:])
        if len(s) < 4 or s[3] != "-":
            return int(s[:3]), "\n".join(lines)


def stuff(data):
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


async def relay(conf, txn, xf, data):
    """Send to the next hop. One (code, text) per recipient, queued-as id."""
    host, port = hostport(conf["relay"])
    lmtp = conf.get("relay_protocol", "smtp") == "lmtp"
    n = len(txn.rcpts)
    try:
        reader, writer = await asyncio.open_connection(host, port, limit=MAX_MESSAGE)
    except OSError as e:
        return [(451, f"4.4.1 {host}:{port}: connect: {e.strerror}")] * n, None
    try:
        async def cmd(line):
            writer.write(line.encode() + b"\r\n")
            await writer.drain()
            return await read_reply(reader)

        code, text = await read_reply(reader)
        if code != 220:
            return [(451, f"4.4.2 {host}:{port}: greeting: {code} {text}")] * n, None
        code, caps = await cmd(("LHLO " if lmtp else "EHLO ") + conf.get("hostname", "standin.test"))
        if code != 250:
            return [(451, f"4.4.2 {host}:{port}: EHLO: {code} {caps}")] * n, None
        capl = [c.upper() for c in caps.split("\n")]
        if conf.get("xforward", "yes") == "yes" and any(c.startswith("XFORWARD") for c in capl) and xf:
            attrs = " ".join(f"{k}={v}" for k, v in xf.items())
            code, text = await cmd("XFORWARD " + attrs)
            if code != 250:
                return [(451, f"4.4.2 XFORWARD: {code} {text}")] * n, None
        params = ""
        m = re.search(r"BODY=\S+", txn.mail_params, re.I)
        if m and "8BITMIME" in capl:
            params = " " + m.group(0)
        code, text = await cmd(f"MAIL FROM:<{txn.mail_from}>{params}")
        if code != 250:
            return [(code, text)] * n, None
        results, accepted = [], 0
        for r in txn.rcpts:
            code, text = await cmd(f"RCPT TO:<{r}>")
            results.append((code, text) if code >= 300 else None)
            accepted += code < 300
        if accepted == 0:
            await cmd("RSET")
            return results, None
        code, text = await cmd("DATA")
        if code != 354:
            return [x or (code, text) for x in results], None
        writer.write(stuff(data) + b".\r\n")
        await writer.drain()
        queued = None
        for i, x in enumerate(results):
            if x is None:
                code, text = await read_reply(reader)
                results[i] = (code, text)
                m = re.search(r"queued as (\S+)", text)
                if m and code == 250:
                    queued = m.group(1)
                if not lmtp:
                    results = [r or (code, text) for r in results]
                    break
        writer.write(b"QUIT\r\n")
        return results, queued
    except (OSError, asyncio.IncompleteReadError) as e:
        return [(451, f"4.4.2 {host}:{port}: lost connection: {e}")] * n, None
    finally:
        writer.close()


class Session:
    def __init__(self, conf, lmtp, reader, writer):
        self.conf, self.lmtp, self.reader, self.writer = conf, lmtp, reader, writer
        self.xf, self.txn = {}, None

    async def reply(self, line):
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()

    async def read_data(self):
        first = await self.reader.readline()
        if first == b".\r\n":
            return b""
        rest = b"" if first.endswith(b"\r\n.\r\n") else await self.reader.readuntil(b"\r\n.\r\n")
        data = (first + rest)[:-3]
        if data.startswith(b".."):
            data = data[1:]
        return data.replace(b"\r\n..", b"\r\n.")

    async def do_data(self):
        txn = self.txn
        await self.reply("354 End data with <CR><LF>.<CR><LF>")
        data = await self.read_data()
        log(f"{txn.qid}: from=<{txn.mail_from}>, size={len(data)}, nrcpt={len(txn.rcpts)}, "
            f"orig_queue_id={self.xf.get('IDENT', 'none')}, orig_client={self.xf.get('ADDR', 'none')}")
        results, queued = await relay(self.conf, txn, self.xf, data)
        for r, (code, text) in zip(txn.rcpts, results):
            status = "sent" if code < 300 else ("deferred" if code < 500 else "bounced")
            log(f"{txn.qid}: to=<{r}>, relay={self.conf['relay']}, status={status} ({code} {text})")
        if self.lmtp:
            for code, text in results:
                await self.reply(f"{code} {text}" if code >= 300 else f"250 2.0.0 {txn.qid} Ok")
        else:
            code, text = results[0]
            await self.reply(f"{code} {text}" if code >= 300 else f"250 2.0.0 Ok: queued as {txn.qid}")
        self.txn = None

    async def run(self):
        await self.reply("220 standin.test ESMTP sealgate stand-in")
        while True:
            line = await self.reader.readline()
            if not line:
                return
            cmd = line.decode("utf-8", "replace").rstrip("\r\n")
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "LHLO", "HELO"):
                await self.reply("250-standin.test\r\n250-PIPELINING\r\n250-SIZE 134217728\r\n"
                                 "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
                                 "250 XFORWARD " + " ".join(XF_ATTRS))
            elif verb == "XFORWARD":
                for kv in cmd.split()[1:]:
                    k, _, v = kv.partition("=")
                    self.xf[k.upper()] = v
                await self.reply("250 2.0.0 Ok")
            elif verb == "MAIL":
                self.txn = Txn()
                m = re.match(r"MAIL FROM:\s*<([^>]*)>\s*(.*)", cmd, re.I)
                self.txn.mail_from, self.txn.mail_params = m.group(1), m.group(2)
                await self.reply("250 2.1.0 Ok")
            elif verb == "RCPT":
                m = re.match(r"RCPT TO:\s*<([^>]*)>", cmd, re.I)
                self.txn.rcpts.append(m.group(1))
                await self.reply("250 2.1.5 Ok")
            elif verb == "DATA":
                BUSY[0] += 1
                try:
                    await self.do_data()
                finally:
                    BUSY[0] -= 1
            elif verb == "RSET":
                self.txn = None
                await self.reply("250 2.0.0 Ok")
            elif verb == "NOOP":
                await self.reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                await self.reply("221 2.0.0 Bye")
                return
            else:
                await self.reply("502 5.5.2 Error: command not recognized")


async def main(conf):
    servers = []

    def handler(lmtp):
        async def h(reader, writer):
            try:
                await Session(conf, lmtp, reader, writer).run()
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                pass
            finally:
                writer.close()
        return h

    for key, lmtp in (("listen", False), ("lmtp_listen", True)):
        if conf.get(key):
            host, port = hostport(conf[key])
            servers.append(await asyncio.start_server(handler(lmtp), host, port, limit=MAX_MESSAGE))
            log(f"listening on {conf[key]} ({'lmtp' if lmtp else 'smtp'})")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for s in servers:
        s.close()
    deadline = time.monotonic() + 60
    while BUSY[0] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    log("stopped")


if __name__ == "__main__":
    asyncio.run(main(parse_args(sys.argv[1:])))
