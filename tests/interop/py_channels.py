"""External-peer test of the /ws channel protocol (docs/protocol.md) on Python `websockets`.

usage: py_channels.py ws://127.0.0.1:PORT [CHECK...]
env:   RIPPLE_API_KEY  the server's HTTP API key (the recovery check publishes through the API too)

The main check is the one issue 5 asks for: a client subscribes, a second connection publishes,
the first disconnects, more messages are published (over WebSocket and over the HTTP API), the
first reconnects with `since` = the last {epoch, offset} it saw and must get every missed
message exactly once, in order, then live ones. The other checks cover the greeting, ids,
errors and an unrecoverable `since`. Prints "ok NAME" or "FAIL NAME: why" per check, then
"N passed, N failed". Exit 0 only if every check passed.
"""

import asyncio
import json
import os
import secrets
import sys
import urllib.error
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

TIMEOUT = 10
PUSHES = ("message", "join", "leave")


class CheckFailed(Exception):
    pass


def expect(cond, why):
    if not cond:
        raise CheckFailed(why)


class Channels:
    """One /ws connection speaking JSON; replies are matched by id, pushes kept in order."""

    def __init__(self, ws):
        self.ws = ws
        self.pending = []
        self.next_id = 1
        self.client = None

    @classmethod
    async def open(cls, base):
        ws = await connect(base + "/ws", open_timeout=TIMEOUT, close_timeout=TIMEOUT, ping_interval=None)
        conn = cls(ws)
        hello = await conn.recv()
        expect(hello.get("type") == "authenticated", f"expected the authenticated greeting, got {hello}")
        conn.client = hello.get("client")
        return conn

    async def recv(self):
        if self.pending:
            return self.pending.pop(0)
        return await self.recv_socket()

    async def recv_socket(self):
        try:
            text = await asyncio.wait_for(self.ws.recv(), TIMEOUT)
        except TimeoutError:
            raise CheckFailed(f"no message within {TIMEOUT}s") from None
        expect(isinstance(text, str), f"expected a text frame, got {text!r}")
        return json.loads(text)

    async def send(self, command):
        await self.ws.send(json.dumps(command))

    async def request(self, command):
        """Sends `command` with a fresh id; returns the reply with that id (pushes that come
        first are kept for recv)."""
        command = dict(command, id=self.next_id)
        self.next_id += 1
        await self.send(command)
        while True:
            message = await self.recv_socket()
            if message.get("id") == command["id"]:
                return message
            expect(message.get("type") in PUSHES, f"expected the reply to {command}, got {message}")
            self.pending.append(message)

    async def subscribe(self, channel, since=None):
        command = {"type": "subscribe", "channel": channel}
        if since is not None:
            command["since"] = since
        reply = await self.request(command)
        expect(reply.get("type") == "subscribed", f"subscribe {channel}: {reply}")
        return reply

    async def publish(self, channel, data):
        reply = await self.request({"type": "publish", "channel": channel, "data": data})
        expect(reply.get("type") == "published", f"publish to {channel}: {reply}")
        return reply

    async def next_message(self):
        """The next `message` push (join/leave pushes are skipped)."""
        while True:
            message = await self.recv()
            if message.get("type") == "message":
                return message
            expect(message.get("type") in ("join", "leave"), f"expected a message push, got {message}")

    async def expect_nothing_more(self):
        """A ping's pong is the next reply: nothing else (no duplicate) was queued before it."""
        pong = await self.request({"type": "ping"})
        expect(pong.get("type") == "pong", f"expected pong, got {pong}")
        leftovers = [m for m in self.pending if m.get("type") == "message"]
        expect(not leftovers, f"unexpected extra messages: {leftovers}")

    async def close(self):
        await self.ws.close()


def http_base(ws_base):
    return "http" + ws_base[len("ws"):]


def api_publish(base, channel, data):
    """POST /api/publish with the key from RIPPLE_API_KEY; returns the JSON answer."""
    key = os.environ.get("RIPPLE_API_KEY", "")
    expect(key, "RIPPLE_API_KEY is not set: cannot use the HTTP API")
    body = json.dumps({"channel": channel, "data": data}).encode()
    request = urllib.request.Request(http_base(base) + "/api/publish", data=body, method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            expect(response.status == 200, f"POST /api/publish: HTTP {response.status}")
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        raise CheckFailed(f"POST /api/publish: HTTP {err.code} {err.read()!r}") from None


def fresh_channel(name):
    return f"py:{name}:{secrets.token_hex(4)}"


def check_message(message, channel, epoch, offset, data):
    expect(message.get("channel") == channel, f"wrong channel in {message}")
    expect(message.get("epoch") == epoch, f"wrong epoch in {message} (expected {epoch})")
    expect(message.get("offset") == offset, f"expected offset {offset}, got {message}")
    expect(message.get("data") == data, f"expected data {data!r}, got {message}")
    expect(isinstance(message.get("ts"), int), f"no ts in {message}")


# --- checks ------------------------------------------------------------------------------------

async def check_greeting(base):
    a = await Channels.open(base)
    b = await Channels.open(base)
    expect(isinstance(a.client, str) and a.client, f"no client id: {a.client!r}")
    expect(a.client != b.client, "two connections got the same client id")
    pong = await a.request({"type": "ping"})
    expect(pong == {"type": "pong", "id": 1}, f"expected pong with id 1, got {pong}")
    await a.close()
    await b.close()


async def check_errors(base):
    a = await Channels.open(base)
    await a.ws.send("{not json")
    reply = await a.recv()
    expect(reply.get("type") == "error" and reply.get("code") == "bad_request", f"bad JSON: {reply}")
    reply = await a.request({"type": "dance"})
    expect(reply.get("code") == "unknown_type", f"unknown type: {reply}")
    reply = await a.request({"type": "publish", "channel": "c"})
    expect(reply.get("code") == "invalid_field", f"missing data: {reply}")
    reply = await a.request({"type": "subscribe", "channel": "has space"})
    expect(reply.get("code") == "invalid_channel", f"invalid channel: {reply}")
    await a.close()


async def check_recover_after_disconnect(base):
    channel = fresh_channel("recover")
    subscriber = await Channels.open(base)
    publisher = await Channels.open(base)
    subscribed = await subscriber.subscribe(channel)
    expect(subscribed.get("offset") == 0 and subscribed.get("recovered") is True, f"{subscribed}")
    epoch = subscribed["epoch"]

    # Live: five messages while connected.
    for n in range(1, 6):
        published = await publisher.publish(channel, {"n": n})
        expect(published.get("offset") == n and published.get("epoch") == epoch, f"{published}")
    last = None
    for n in range(1, 6):
        last = await subscriber.next_message()
        check_message(last, channel, epoch, n, {"n": n})
    since = {"epoch": last["epoch"], "offset": last["offset"]}
    await subscriber.close()

    # Missed: five over WebSocket, five over the HTTP API.
    for n in range(6, 11):
        await publisher.publish(channel, {"n": n})
    for n in range(11, 16):
        answer = await asyncio.to_thread(api_publish, base, channel, {"n": n})
        expect(answer == {"channel": channel, "epoch": epoch, "offset": n}, f"API publish: {answer}")

    # Back, with `since`: every missed message once, in order, then live ones.
    subscriber = await Channels.open(base)
    recovered = await subscriber.subscribe(channel, since=since)
    expect(recovered.get("recovered") is True, f"expected recovered: true, got {recovered}")
    expect(recovered.get("epoch") == epoch and recovered.get("offset") == 15, f"{recovered}")
    for n in range(6, 16):
        check_message(await subscriber.next_message(), channel, epoch, n, {"n": n})
    for n in range(16, 19):
        await publisher.publish(channel, {"n": n})
    for n in range(16, 19):
        check_message(await subscriber.next_message(), channel, epoch, n, {"n": n})
    await subscriber.expect_nothing_more()
    await subscriber.close()
    await publisher.close()


async def check_recover_with_concurrent_publisher(base):
    """A publisher keeps publishing while the client reconnects with `since`: the offsets it
    then receives must be exactly consecutive up to the last one published."""
    channel = fresh_channel("concurrent")
    total = 300
    publisher = await Channels.open(base)
    first = await publisher.publish(channel, 1)
    epoch = first["epoch"]
    reached = asyncio.Event()

    async def publish_rest():
        for n in range(2, total + 1):
            await publisher.publish(channel, n)
            if n == 100:
                reached.set()

    publishing = asyncio.create_task(publish_rest())
    await asyncio.wait_for(reached.wait(), TIMEOUT)
    subscriber = await Channels.open(base)
    recovered = await subscriber.subscribe(channel, since={"epoch": epoch, "offset": 50})
    expect(recovered.get("recovered") is True, f"{recovered}")
    for n in range(51, total + 1):
        check_message(await subscriber.next_message(), channel, epoch, n, n)
    await asyncio.wait_for(publishing, TIMEOUT)
    await subscriber.expect_nothing_more()
    await subscriber.close()
    await publisher.close()


async def check_wrong_epoch_is_not_recovered(base):
    channel = fresh_channel("epoch")
    a = await Channels.open(base)
    await a.publish(channel, "x")
    reply = await a.subscribe(channel, since={"epoch": "not-the-epoch", "offset": 0})
    expect(reply.get("recovered") is False, f"expected recovered: false, got {reply}")
    await a.expect_nothing_more()
    await a.close()


async def check_anonymous_auth(base):
    # In anonymous mode an `auth` message is answered with `authenticated`, whatever the token.
    a = await Channels.open(base)
    reply = await a.request({"type": "auth", "token": "whatever"})
    expect(reply.get("type") == "authenticated" and reply.get("client") == a.client, f"{reply}")
    await a.close()


CHECKS = {
    "greeting": check_greeting,
    "errors": check_errors,
    "recover_after_disconnect": check_recover_after_disconnect,
    "recover_with_concurrent_publisher": check_recover_with_concurrent_publisher,
    "wrong_epoch_is_not_recovered": check_wrong_epoch_is_not_recovered,
    "anonymous_auth": check_anonymous_auth,
}


async def main(argv):
    if len(argv) < 2 or not argv[1].startswith("ws://"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    base = argv[1].rstrip("/")
    names = argv[2:] or list(CHECKS)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        print(f"unknown checks: {unknown}; known: {list(CHECKS)}", file=sys.stderr)
        return 2
    passed = failed = 0
    for name in names:
        try:
            await asyncio.wait_for(CHECKS[name](base), 6 * TIMEOUT)
        except (CheckFailed, ConnectionClosed, OSError, TimeoutError, ValueError) as exc:
            failed += 1
            print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
        else:
            passed += 1
            print(f"ok {name}", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv)))
