#!/usr/bin/env python3
"""A TCP proxy that can take a server away, for bench/faults.sh (stdlib only).

    python3 bench/fault_proxy.py --port 6432 --target 127.0.0.1:5432 --cut-seconds 12

Forwards every connection on 127.0.0.1:PORT to TARGET. On SIGUSR1 it cuts:
every open connection is reset (both sides), the listening socket is
closed so new connections are refused, and after --cut-seconds it listens
again. Each cut and reopening is printed to stderr with the time.
"""
import argparse
import asyncio
import signal
import socket
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--target", required=True, help="host:port")
    ap.add_argument("--cut-seconds", type=float, default=12.0)
    args = ap.parse_args()
    thost, tport = args.target.rsplit(":", 1)
    if thost not in ("127.0.0.1", "localhost"):
        sys.exit("fault_proxy: loopback only")

    live: set[asyncio.StreamWriter] = set()
    state: dict = {"server": None, "cutting": False}

    def say(msg: str) -> None:
        print(f"fault_proxy {time.time():.3f}: {msg}", file=sys.stderr, flush=True)

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await src.read(1 << 16)
                if not data:
                    break
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.transport.abort() if state["cutting"] else dst.close()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if state["cutting"]:
            writer.transport.abort()
            return
        try:
            ureader, uwriter = await asyncio.open_connection(thost, int(tport))
        except OSError:
            writer.transport.abort()
            return
        for w in (writer, uwriter):
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            live.add(w)
        try:
            await asyncio.gather(pump(reader, uwriter), pump(ureader, writer))
        finally:
            live.discard(writer)
            live.discard(uwriter)

    async def listen() -> None:
        state["server"] = await asyncio.start_server(
            client, "127.0.0.1", args.port, reuse_address=True, backlog=256
        )

    async def cut() -> None:
        if state["cutting"]:
            return
        state["cutting"] = True
        state["server"].close()
        n = len(live)
        for w in list(live):
            w.transport.abort()
        live.clear()
        say(f"cut: {n // 2} connections reset, refusing new ones for {args.cut_seconds} s")
        await asyncio.sleep(args.cut_seconds)
        await listen()
        state["cutting"] = False
        say("listening again")

    async def run() -> None:
        await listen()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, lambda: asyncio.ensure_future(cut()))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        say(f"forwarding 127.0.0.1:{args.port} to {args.target}")
        await stop.wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()
