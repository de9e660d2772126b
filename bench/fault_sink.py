#!/usr/bin/env python3
"""A small SMTP sink for bench/faults.sh (stdlib only, loopback only).

    python3 bench/fault_sink.py --port 2525 --log rcpts.log \
        [--delay 1.0] [--control ctl]

- Every accepted message (the final dot answered 250) appends one line per
  recipient to --log, written and flushed *before* the 250 goes out: a
  message counts as delivered once the sink took it, whether or not the
  client lived to read the reply. `sort | uniq -c` on the log gives the
  messages per recipient.
- --delay S: wait S seconds before answering each message's final dot (a
  slow relay; other sessions go on meanwhile).
- --control FILE: while FILE exists, its first line is the answer to every
  MAIL FROM (e.g. "550 5.7.1 sender not authorized"); RCPT and DATA of that
  transaction are then answered 503 / 554 as a real server would.
  Refused MAIL commands are counted in --log + ".refused" (one line each).
- Offers PIPELINING and 8BITMIME; commands are read line by line, so
  pipelined groups need nothing special.
"""
import argparse
import asyncio
import os
import signal
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--control", default=None)
    args = ap.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("fault_sink: loopback only")

    log = open(args.log, "a", buffering=1 << 16)
    refused_log = open(args.log + ".refused", "a", buffering=1 << 12)
    stats = {"sessions": 0, "accepted": 0, "refused_mail": 0}

    def mail_reply() -> bytes:
        if args.control and os.path.exists(args.control):
            try:
                with open(args.control, "rb") as f:
                    line = f.readline().strip()
                if line:
                    return line + b"\r\n"
            except OSError:
                pass
        return b"250 2.1.0 Ok\r\n"

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats["sessions"] += 1
        sender_ok = False
        rcpts: list[bytes] = []
        out: list[bytes] = []
        say = out.append

        def flush() -> None:
            if out:
                writer.write(b"".join(out))
                out.clear()

        try:
            say(b"220 fault-sink ESMTP\r\n")
            while True:
                # Answer only once the client has sent nothing more: the
                # replies to a pipelined group leave in one write.
                if not reader._buffer:  # noqa: SLF001 (stdlib StreamReader)
                    flush()
                    await writer.drain()
                line = await reader.readline()
                if not line:
                    break
                verb = line[:4].upper()
                if verb in (b"EHLO", b"LHLO"):
                    sender_ok, rcpts = False, []
                    say(b"250-fault-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n")
                elif verb == b"HELO":
                    sender_ok, rcpts = False, []
                    say(b"250 fault-sink\r\n")
                elif verb == b"MAIL":
                    reply = mail_reply()
                    rcpts = []
                    sender_ok = reply.startswith(b"2")
                    if not sender_ok:
                        stats["refused_mail"] += 1
                        refused_log.write(f"{time.time():.3f}\n")
                        refused_log.flush()
                    say(reply)
                elif verb == b"RCPT":
                    if not sender_ok:
                        say(b"503 5.5.1 Error: need MAIL command\r\n")
                        continue
                    addr = line.split(b":", 1)[1].strip() if b":" in line else b""
                    addr = addr.split(b" ")[0].strip(b"<>").lower()
                    rcpts.append(addr)
                    say(b"250 2.1.5 Ok\r\n")
                elif verb == b"DATA":
                    if not sender_ok or not rcpts:
                        say(b"554 5.5.1 Error: no valid recipients\r\n")
                        continue
                    say(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    flush()
                    await writer.drain()
                    # Every message has headers, so the data never starts
                    # with the dot line.
                    await reader.readuntil(b"\r\n.\r\n")
                    if args.delay > 0:
                        await asyncio.sleep(args.delay)
                    for r in rcpts:
                        log.write(r.decode("ascii", "replace") + "\n")
                    log.flush()
                    stats["accepted"] += 1
                    sender_ok, rcpts = False, []
                    say(b"250 2.0.0 Ok: queued\r\n")
                elif verb == b"RSET":
                    sender_ok, rcpts = False, []
                    say(b"250 2.0.0 Ok\r\n")
                elif verb == b"NOOP":
                    say(b"250 2.0.0 Ok\r\n")
                elif verb == b"QUIT":
                    say(b"221 2.0.0 Bye\r\n")
                    flush()
                    await writer.drain()
                    break
                else:
                    say(b"502 5.5.2 Error: command not recognized\r\n")
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(
            session, args.host, args.port, limit=1 << 24, backlog=256, reuse_address=True
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with server:
            await stop.wait()
        log.flush()
        print(f"fault_sink: {stats}", file=sys.stderr)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
