#!/usr/bin/env python3
"""A recording SMTP sink for the Postfix tests: stores each message's DATA
bytes exactly (dot-unstuffed, RFC 5321 4.5.2) and its envelope, one file pair
per message, so that tests can compare bytes. Usage: sink_recorder.py PORT DIR"""
import asyncio
import itertools
import json
import os
import sys

MAX_MESSAGE = 128 * 1024 * 1024
_seq = itertools.count(1)


def unstuff(data):
    """DATA bytes without the transparency dots (data ends with CRLF)."""
    if data.startswith(b".."):
        data = data[1:]
    return data.replace(b"\r\n..", b"\r\n.")


async def read_data(reader):
    first = await reader.readline()
    if first == b".\r\n":
        return b""
    if first.endswith(b"\r\n.\r\n"):
        return first[:-3]
    rest = await reader.readuntil(b"\r\n.\r\n")
    return first + rest[:-3]


def store(outdir, env, data):
    n = next(_seq)
    base = os.path.join(outdir, f"{os.getpid()}-{n:06d}")
    with open(base + ".tmp", "wb") as f:
        f.write(data)
    with open(base + ".json", "w") as f:
        json.dump(env, f)
    # The .eml appears last and complete: a test that sees it can read both.
    os.rename(base + ".tmp", base + ".eml")
    return f"S{os.getpid():X}N{n:06d}"


async def session(reader, writer, outdir):
    async def reply(line):
        writer.write(line.encode() + b"\r\n")
        await writer.drain()

    env = {"from": None, "rcpts": [], "helo": None}
    await reply("220 sink.test ESMTP recorder")
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            cmd = line.decode("utf-8", "replace").rstrip("\r\n")
            verb = cmd[:4].upper()
            if verb in ("EHLO", "HELO"):
                env["helo"] = cmd[5:]
                await reply("250-sink.test\r\n250-PIPELINING\r\n250-SIZE 134217728\r\n"
                            "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 SMTPUTF8")
            elif verb == "MAIL":
                env["from"], env["rcpts"] = cmd[10:], []
                await reply("250 2.1.0 Ok")
            elif verb == "RCPT":
                env["rcpts"].append(cmd[8:])
                await reply("250 2.1.5 Ok")
            elif verb == "DATA":
                await reply("354 End data with <CR><LF>.<CR><LF>")
                data = unstuff(await read_data(reader))
                qid = store(outdir, env, data)
                await reply(f"250 2.0.0 Ok: queued as {qid}")
            elif verb == "RSET":
                env["from"], env["rcpts"] = None, []
                await reply("250 2.0.0 Ok")
            elif verb == "NOOP":
                await reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                await reply("221 2.0.0 Bye")
                break
            else:
                await reply("502 5.5.2 Error: command not recognized")
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main():
    port, outdir = int(sys.argv[1]), sys.argv[2]
    server = await asyncio.start_server(lambda r, w: session(r, w, outdir),
                                        "127.0.0.1", port, limit=MAX_MESSAGE)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
