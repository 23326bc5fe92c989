"""Interop test SERVER on Python `websockets` (asyncio API). Spec: tests/interop/README.md.

usage: py_server.py 127.0.0.1:PORT

Prints "listening" once it accepts connections; runs until killed (SIGTERM/SIGINT).
Paths: /echo, /echo-fragmented, /close?code=N&reason=R, /reject; anything else gets HTTP 404.
"""

import asyncio
import signal
import sys
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

MAX_MESSAGE = 32 * 1024 * 1024  # the spec's largest message
FRAGMENT = 1000  # /echo-fragmented: at most this many payload bytes per frame
SUPPORTED = ("chat.v2", "chat.v1")
TIMEOUT = 10


def select_subprotocol(connection, offered):
    # The FIRST protocol in the client's offer that we support; none if there is none.
    for proto in offered:
        if proto in SUPPORTED:
            return proto
    return None


def process_request(connection, request):
    path = urlsplit(request.path).path
    if path == "/reject":
        return connection.respond(HTTPStatus.FORBIDDEN, "forbidden\n")
    if path not in ("/echo", "/echo-fragmented", "/close"):
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
    return None


async def echo(ws):
    async for msg in ws:
        if msg == "ping-me":
            waiter = await ws.ping(b"srv")
            await asyncio.wait_for(waiter, TIMEOUT)
            await ws.send("pong-received")
        else:
            await ws.send(msg)


def chunks(data):
    return [data[i : i + FRAGMENT] for i in range(0, len(data), FRAGMENT)]


async def echo_fragmented(ws):
    async for msg in ws:
        is_text = isinstance(msg, str)
        data = msg.encode() if is_text else msg
        if not data:
            await ws.send(msg)  # an empty message goes back as a single empty frame
            continue
        # Split on byte boundaries, even inside a UTF-8 sequence: RFC 6455 5.6 only requires
        # the reassembled text message to be valid UTF-8.
        await ws.send(chunks(data), text=is_text)


async def close_with(ws):
    query = parse_qs(urlsplit(ws.request.path).query, keep_blank_values=True)
    code = int(query.get("code", ["1000"])[0])
    reason = query.get("reason", [""])[0]
    await ws.close(code, reason)


async def handler(ws):
    path = urlsplit(ws.request.path).path
    try:
        if path == "/echo":
            await echo(ws)
        elif path == "/echo-fragmented":
            await echo_fragmented(ws)
        elif path == "/close":
            await close_with(ws)
    except (ConnectionClosed, asyncio.TimeoutError):
        pass


async def main(addr):
    host, _, port = addr.rpartition(":")
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.cancel)
    async with serve(
        handler,
        host,
        int(port),
        select_subprotocol=select_subprotocol,
        process_request=process_request,
        compression="deflate",  # the default, spelled out: the spec's servers negotiate permessage-deflate
        max_size=MAX_MESSAGE,
        max_queue=None,
        ping_interval=None,  # no keepalive pings: the only server ping is the "ping-me" one
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    ):
        print("listening", flush=True)
        try:
            await stop
        except asyncio.CancelledError:
            pass


if __name__ == "__main__":
    if len(sys.argv) != 2 or ":" not in sys.argv[1]:
        sys.exit("usage: py_server.py 127.0.0.1:PORT")
    asyncio.run(main(sys.argv[1]))
