"""Interop test CLIENT on Python `websockets` (asyncio API). Spec: tests/interop/README.md.

usage: py_client.py ws://127.0.0.1:PORT [CHECK...]

Runs every check (or only the named ones) against the server at the base URL, one connection
per check, each bounded by a timeout. Prints "ok NAME" or "FAIL NAME: why" per check, then
"N passed, N failed". Exit 0 only if every check passed.
"""

import asyncio
import random
import sys
import time

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

MAX_MESSAGE = 32 * 1024 * 1024
TIMEOUT = 10
BIG_TIMEOUT = 60
UNICODE = "héllo ✓"
# 2500 bytes of UTF-8 whose 1000-byte frame boundaries fall inside a two-byte "é".
FRAGMENTED_TEXT = "a" + "é" * 1249 + "z"
# The compression check's messages: highly compressible, 65 534 and 102 400 bytes.
COMPRESSIBLE_TEXT = "ripple " * 9362
COMPRESSIBLE_BINARY = bytes([1, 2, 3, 4]) * 25600


class CheckFailed(Exception):
    pass


def expect(cond, why):
    if not cond:
        raise CheckFailed(why)


def describe(value):
    if isinstance(value, (bytes, bytearray)):
        return f"binary({len(value)} bytes)" if len(value) > 40 else f"binary {bytes(value)!r}"
    if isinstance(value, str):
        return f"text({len(value)} chars)" if len(value) > 40 else f"text {value!r}"
    return repr(value)


class CountingConnection(ClientConnection):
    """A client connection that counts the bytes read from its socket (frames as sent)."""

    bytes_read = 0

    def data_received(self, data):
        self.bytes_read += len(data)
        super().data_received(data)


def open_ws(base, path, **kwargs):
    kwargs.setdefault("max_size", MAX_MESSAGE)
    return connect(base + path, open_timeout=TIMEOUT, close_timeout=TIMEOUT,
                   ping_interval=None, **kwargs)


async def round_trip(base, message, path="/echo"):
    async with open_ws(base, path) as ws:
        await ws.send(message)
        reply = await ws.recv()
    expect_echo(message, reply)


def expect_echo(message, reply):
    expect(type(reply) is type(message), f"sent {describe(message)}, got {describe(reply)}")
    if reply != message:
        first = next((i for i, (a, b) in enumerate(zip(reply, message)) if a != b),
                     min(len(reply), len(message)))
        raise CheckFailed(f"sent {describe(message)}, got {describe(reply)}; first difference at index {first}")


async def check_text(base):
    await round_trip(base, UNICODE)


async def check_binary(base):
    await round_trip(base, bytes(range(256)))


async def check_empty_text(base):
    await round_trip(base, "")


async def check_empty_binary(base):
    await round_trip(base, b"")


async def check_large_binary(base):
    await round_trip(base, random.Random(6455).randbytes(16 * 1024 * 1024))


async def check_fragmented_reply(base):
    expect(len(FRAGMENTED_TEXT.encode()) == 2500, "test message is not 2500 bytes")
    await round_trip(base, FRAGMENTED_TEXT, "/echo-fragmented")


async def check_fragmented_send(base):
    parts = ["frag", "men", "ted ✓"]
    async with open_ws(base, "/echo") as ws:
        await ws.send(parts)  # an iterable of str: one text message in three frames (+ a final empty one)
        reply = await ws.recv()
    expect(reply == "".join(parts), f"sent {parts} as fragments, got {describe(reply)}")


async def check_client_ping(base):
    async with open_ws(base, "/echo") as ws:
        waiter = await ws.ping(b"cli")
        await waiter  # resolves when a pong with payload b"cli" arrives


async def check_server_ping(base):
    async with open_ws(base, "/echo") as ws:
        await ws.send("ping-me")  # the library answers the server's ping "srv" by itself
        reply = await ws.recv()
    expect(reply == "pong-received", f"expected text 'pong-received', got {describe(reply)}")


async def check_server_close(base):
    async with open_ws(base, "/close?code=4001&reason=bye%20now") as ws:
        try:
            msg = await ws.recv()
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
        else:
            raise CheckFailed(f"expected a close, got {describe(msg)}")
    expect(rcvd is not None, "connection dropped without a close frame")
    expect((rcvd.code, rcvd.reason) == (4001, "bye now"),
           f"expected close 4001 'bye now', got {rcvd.code} {rcvd.reason!r}")


async def check_client_close(base):
    async with open_ws(base, "/echo") as ws:
        await ws.close(1000, "done")
        expect(ws.protocol.close_rcvd is not None, "no close frame came back")
        expect(ws.close_code == 1000, f"server answered the close with code {ws.close_code}")


async def check_subprotocol_first(base):
    async with open_ws(base, "/echo", subprotocols=["chat.v1", "chat.v2"]) as ws:
        got = ws.subprotocol
    expect(got == "chat.v1", f"offered ['chat.v1', 'chat.v2'], server selected {got!r}")


async def check_subprotocol_none(base):
    async with open_ws(base, "/echo", subprotocols=["nope"]) as ws:
        got = ws.subprotocol
    expect(got is None, f"offered ['nope'], server selected {got!r}")


async def check_reject(base):
    try:
        async with open_ws(base, "/reject"):
            pass
    except InvalidStatus as exc:
        status = exc.response.status_code
        body = (exc.response.body or b"").rstrip(b"\r\n")
        expect(status == 403, f"expected HTTP 403, got {status}")
        expect(body == b"forbidden", f"expected body 'forbidden', got {body!r}")
        return
    raise CheckFailed("the handshake was accepted")


async def check_compression(base):
    async with open_ws(base, "/echo", compression="deflate", create_connection=CountingConnection) as ws:
        answer = ws.response.headers.get("Sec-WebSocket-Extensions")
        negotiated = [ext.name for ext in ws.protocol.extensions]
        expect("permessage-deflate" in negotiated,
               f"permessage-deflate not negotiated (Sec-WebSocket-Extensions: {answer!r})")
        before = ws.bytes_read
        for message in (COMPRESSIBLE_TEXT, COMPRESSIBLE_BINARY):
            await ws.send(message)
            expect_echo(message, await ws.recv())
        wire = ws.bytes_read - before
    plain = len(COMPRESSIBLE_TEXT) + len(COMPRESSIBLE_BINARY)
    expect(wire < plain // 4, f"the echoes were not compressed: {wire} bytes on the wire for "
           f"{plain} bytes of messages (Sec-WebSocket-Extensions: {answer!r})")


CHECKS = [
    ("text_roundtrip", check_text, TIMEOUT),
    ("binary_roundtrip", check_binary, TIMEOUT),
    ("empty_text", check_empty_text, TIMEOUT),
    ("empty_binary", check_empty_binary, TIMEOUT),
    ("large_binary_16mib", check_large_binary, BIG_TIMEOUT),
    ("fragmented_reply", check_fragmented_reply, TIMEOUT),
    ("fragmented_send", check_fragmented_send, TIMEOUT),
    ("client_ping", check_client_ping, TIMEOUT),
    ("server_ping", check_server_ping, TIMEOUT),
    ("server_close_code", check_server_close, TIMEOUT),
    ("client_close", check_client_close, TIMEOUT),
    ("subprotocol_first_offered", check_subprotocol_first, TIMEOUT),
    ("subprotocol_none", check_subprotocol_none, TIMEOUT),
    ("rejected_handshake", check_reject, TIMEOUT),
    ("compression", check_compression, TIMEOUT),
]


async def main(base, only):
    unknown = set(only) - {name for name, _, _ in CHECKS}
    if unknown:
        print(f"unknown check(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    passed = failed = 0
    for name, fn, limit in CHECKS:
        if only and name not in only:
            continue
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(fn(base), limit)
        except asyncio.TimeoutError:
            why = f"timed out after {limit}s"
        except CheckFailed as exc:
            why = str(exc)
        except Exception as exc:  # any library error is a failed check, not a crash
            why = f"{type(exc).__name__}: {exc}"
        else:
            why = None
        if why is None:
            passed += 1
            print(f"ok {name}", flush=True)
        else:
            failed += 1
            print(f"FAIL {name}: {why} ({time.monotonic() - t0:.1f}s)", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) < 2 or not sys.argv[1].startswith("ws://"):
        sys.exit("usage: py_client.py ws://127.0.0.1:PORT [CHECK...]")
    sys.exit(asyncio.run(main(sys.argv[1].rstrip("/"), sys.argv[2:])))
