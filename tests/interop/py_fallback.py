"""External-client test of the HTTP fallback transports (docs/protocol.md, "Fallback
transports: SSE, long-polling and `/rpc`"): `GET /sse`, `GET /poll` and `POST /rpc`, read with
Python `httpx` (the event stream parsed here, line by line) and with `curl -N`.

usage: py_fallback.py http://127.0.0.1:PORT [CHECK...]
env:   RIPPLE_API_KEY       the server's HTTP API key (messages are also published through
                            POST /api/publish)
       FALLBACK_JWT_URL     http://127.0.0.1:PORT of a second server, in JWT mode (checks
                            `jwt_*`; they fail when it is not set)
       FALLBACK_JWT_SECRET  that server's JWT secret (tokens are signed here, HS256)

The main checks are the ones issue 9 asks for: an SSE stream (one channel, then two) is dropped
while messages are in flight, more are published through the API and /rpc while it is away,
and the stream is opened again with `Last-Event-ID` = the last `id:` it saw: every message must
arrive exactly once and in order (consecutive offsets), with `subscribed` saying
`recovered: true`. The same for a long-polling loop that stops polling for a while and resumes
with its last cursor. Further checks: a cursor with a wrong epoch (`recovered: false`), held
and idle polls, presence of an SSE client, the heartbeat comment (about 15 s), the error
statuses and bodies (anonymous server and JWT server), a token expiring under an open stream
(`error`, then `close` 4002), and curl as a second client. Prints "ok NAME" or "FAIL NAME: why"
per check, then "N passed, N failed". Exit 0 only if every check passed; 2 for a usage error.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import sys
import time

import httpx

TIMEOUT = 10          # seconds for one step (an event, a reply)
CHECK_TIMEOUT = 90    # seconds for one whole check
END = object()        # queued by an SSE reader when its stream has ended
OPEN_STREAMS = set()  # SSE streams being read; dropped after every check, passed or failed


class CheckFailed(Exception):
    pass


def expect(cond, why):
    if not cond:
        raise CheckFailed(why)


def fresh_channel(name):
    return f"py:{name}:{secrets.token_hex(4)}"


# --- cursors and tokens --------------------------------------------------------------------------

def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_cursor(triples):
    """The documented cursor: unpadded base64url of the JSON array of [channel, epoch, offset]."""
    return b64url(json.dumps(triples, separators=(",", ":")).encode())


def read_cursor(cursor):
    """{channel: (epoch, offset)} from a cursor (clients need not do this; the checks read it
    to verify that every `id:` and poll cursor says where the client is)."""
    expect(isinstance(cursor, str) and cursor, f"expected a cursor, got {cursor!r}")
    expect(re.fullmatch(r"[A-Za-z0-9_-]+", cursor) is not None, f"cursor {cursor!r} is not unpadded base64url")
    try:
        triples = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as exc:
        raise CheckFailed(f"cursor {cursor!r} does not decode: {exc}") from None
    expect(isinstance(triples, list) and all(isinstance(t, list) and len(t) == 3 for t in triples),
           f"cursor {cursor!r} is not an array of [channel, epoch, offset]: {triples!r}")
    return {channel: (epoch, offset) for channel, epoch, offset in triples}


def jwt_token(secret, sub, channels, expires_in=600):
    """An HS256 JWT as the server accepts it (sub, exp, channels)."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": sub, "exp": int(time.time()) + expires_in, "channels": channels}
    signing_input = header + "." + b64url(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


# --- the event-stream format -----------------------------------------------------------------------

class SseEvent:
    def __init__(self, event, data_lines, event_id, last_id):
        self.event = event            # the `event:` field ("message" when absent, as the spec says)
        self.data_lines = data_lines  # every `data:` line of the event
        self.id = event_id            # this event's own `id:` field, None if it had none
        self.last_id = last_id        # the stream's last event id once this event is read (what
                                      # EventSource resends); the parser's own may be further on
        self.data = "\n".join(data_lines)

    def json(self):
        try:
            return json.loads(self.data)
        except ValueError:
            raise CheckFailed(f"event {self.event!r}: data is not JSON: {self.data!r}") from None

    def __repr__(self):
        return f"<event {self.event} id={self.id} data={self.data}>"


class SseParser:
    """The text/event-stream format (HTML Living Standard, "Server-sent events"), fed one line at
    a time without its line ending. Returns an SseEvent when a blank line ends one that has data.
    Comments (`: …`) and `retry:` are recorded."""

    def __init__(self):
        self.last_id = ""
        self.retry = None
        self.comments = []
        self._reset()

    def _reset(self):
        self._event = None
        self._data = []
        self._id = None

    def feed(self, line):
        if line == "":
            event = None
            if self._data:
                event = SseEvent(self._event or "message", self._data, self._id, self.last_id)
            self._reset()
            return event
        if line.startswith(":"):
            self.comments.append(line[1:].lstrip(" "))
            return None
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id":
            if "\0" not in value:
                self._id = value
                self.last_id = value
        elif field == "retry":
            if value.isdigit():
                self.retry = int(value)
        return None                   # other fields are ignored, as the spec says


# --- the server ------------------------------------------------------------------------------

def check_error_reply(response, status, code, what):
    """An HTTP error answer (read in full): the status and the protocol's error object as the
    JSON body. Returns the object."""
    body = response.content
    expect(response.status_code == status,
           f"{what}: expected HTTP {status} {code}, got {response.status_code} {body[:300]!r}")
    try:
        reply = json.loads(body)
    except ValueError:
        raise CheckFailed(f"{what}: HTTP {status} body is not JSON: {body[:300]!r}") from None
    expect(isinstance(reply, dict) and reply.get("type") == "error" and reply.get("code") == code
           and isinstance(reply.get("message"), str),
           f"{what}: expected {{\"type\":\"error\",\"code\":\"{code}\",\"message\":…}}, got {reply}")
    return reply


class Server:
    def __init__(self, base, api_key=""):
        self.base = base
        self.api_key = api_key
        self.http = httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(TIMEOUT, read=40))
        self.rpc_ids = 0

    async def aclose(self):
        await self.http.aclose()

    async def api_publish(self, channel, data):
        """POST /api/publish (Bearer API key); returns the JSON answer."""
        expect(self.api_key, "RIPPLE_API_KEY is not set: cannot use the HTTP API")
        r = await self.http.post("/api/publish", json={"channel": channel, "data": data},
                                 headers={"Authorization": f"Bearer {self.api_key}"})
        expect(r.status_code == 200, f"POST /api/publish: HTTP {r.status_code} {r.text[:300]!r}")
        return r.json()

    async def rpc(self, command, token=None, params=None, headers=None, content=None):
        """POST /rpc with `command` as the body; returns the httpx response."""
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        headers.setdefault("Content-Type", "text/plain")
        if content is None:
            content = json.dumps(command)
        return await self.http.post("/rpc", content=content, params=params, headers=headers)

    async def rpc_publish(self, channel, data, token=None, params=None):
        self.rpc_ids += 1
        rid = self.rpc_ids
        r = await self.rpc({"type": "publish", "channel": channel, "data": data, "id": rid},
                           token=token, params=params)
        expect(r.status_code == 200, f"POST /rpc publish: HTTP {r.status_code} {r.text[:300]!r}")
        reply = r.json()
        expect(reply.get("type") == "published" and reply.get("id") == rid and reply.get("channel") == channel,
               f"POST /rpc publish (id {rid}): expected published, got {reply}")
        return reply

    async def publish(self, channel, n, offset=None, epoch=None):
        """Publishes {"n": n}: odd n through POST /api/publish, even n through POST /rpc. With
        `offset`, checks that the publication got it (and the epoch, when given)."""
        if n % 2:
            answer = await self.api_publish(channel, {"n": n})
        else:
            answer = await self.rpc_publish(channel, {"n": n})
        if offset is not None:
            expect(answer.get("offset") == offset, f"publish n={n}: expected offset {offset}, got {answer}")
        if epoch is not None:
            expect(answer.get("epoch") == epoch, f"publish n={n}: expected epoch {epoch}, got {answer}")
        return answer

    async def poll(self, params, status=200):
        """GET /poll; returns (reply, seconds it took). Checks the reply's shape."""
        t0 = time.monotonic()
        r = await self.http.get("/poll", params=params, timeout=httpx.Timeout(TIMEOUT, read=40))
        elapsed = time.monotonic() - t0
        expect(r.status_code == status,
               f"GET /poll {params}: expected HTTP {status}, got {r.status_code} {r.text[:300]!r}")
        reply = r.json()
        expect(isinstance(reply.get("cursor"), str) and isinstance(reply.get("channels"), list)
               and isinstance(reply.get("messages"), list), f"GET /poll {params}: not a poll reply: {reply}")
        for m in reply["messages"]:
            expect(m.get("type") == "message", f"GET /poll: a non-message in messages: {m}")
        return reply, elapsed


# --- SSE streams ---------------------------------------------------------------------------------

class SseStream:
    """One GET /sse read by httpx in a task that queues the events; `drop()` cancels the task,
    which closes the connection."""

    def __init__(self, server, channels, cursor=None, last_event_id=None, token=None, headers=None):
        params = [("channel", c) for c in channels]
        if cursor is not None:
            params.append(("cursor", cursor))
        if token is not None:
            params.append(("token", token))
        self.headers = dict(headers or {})
        self.headers.setdefault("Accept", "text/event-stream")
        if last_event_id is not None:
            self.headers["Last-Event-ID"] = last_event_id
        self.server = server
        self.params = params
        self.channels = list(channels)
        self.parser = SseParser()
        self.queue = asyncio.Queue()
        self.pending = []             # events read ahead by subscribed_all, checked already
        self.opened = asyncio.Event()
        self.response = None
        self.body = b""
        self.error = None
        self.task = None
        self.client = None
        self.user = None

    async def start(self):
        """Starts reading; returns the HTTP status."""
        self.task = asyncio.create_task(self._read())
        OPEN_STREAMS.add(self)
        try:
            await asyncio.wait_for(self.opened.wait(), TIMEOUT)
        except TimeoutError:
            await self.drop()
            raise CheckFailed(f"GET /sse {self.params}: no response headers within {TIMEOUT}s") from None
        if self.response is None:
            raise CheckFailed(f"GET /sse {self.params}: {type(self.error).__name__}: {self.error}")
        return self.response.status_code

    async def _read(self):
        try:
            async with self.server.http.stream("GET", "/sse", params=self.params, headers=self.headers) as r:
                self.response = r
                if r.status_code != 200:
                    self.body = await r.aread()
                    return
                self.opened.set()
                async for line in r.aiter_lines():
                    event = self.parser.feed(line)
                    if event is not None:
                        self.queue.put_nowait(event)
        except Exception as exc:  # noqa: BLE001 (reported by next_event)
            self.error = exc
        finally:
            self.opened.set()
            self.queue.put_nowait(END)

    async def drop(self):
        OPEN_STREAMS.discard(self)
        if self.task is not None and not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass

    async def open(self):
        """start() and expect 200, text/event-stream and the `authenticated` event."""
        status = await self.start()
        expect(status == 200, f"GET /sse {self.params}: expected 200, got {status} {self.body[:300]!r}")
        ctype = self.response.headers.get("content-type", "")
        expect(ctype.split(";")[0].strip() == "text/event-stream", f"GET /sse: Content-Type {ctype!r}")
        hello = await self.next_event()
        expect(hello.event == "authenticated", f"expected the authenticated event first, got {hello}")
        self.client = hello.json().get("client")
        self.user = hello.json().get("user")
        expect(isinstance(self.client, str) and re.fullmatch(r"[0-9a-f]{16}", self.client),
               f"authenticated: client is not 16 hex digits: {hello}")
        return self

    async def next_event(self, timeout=TIMEOUT, ending=False):
        """The next event, checked (one data line, JSON whose type is the `event:` field).
        `error` and `close` events fail the check unless `ending`; so does the end of the
        stream, which with `ending` is returned as END."""
        if self.pending:
            return self.pending.pop(0)
        try:
            event = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            raise CheckFailed(f"GET /sse: no event within {timeout}s") from None
        if event is END:
            self.queue.put_nowait(END)
            if ending and self.error is None:
                return END
            raise CheckFailed(f"GET /sse: the stream ended ({type(self.error).__name__ if self.error else 'closed'}"
                              f"{': ' + str(self.error) if self.error else ''})")
        expect(len(event.data_lines) == 1, f"event {event.event}: expected one data line, got {event.data_lines}")
        payload = event.json()
        expect(isinstance(payload, dict) and payload.get("type") == event.event,
               f"event: field {event.event!r} is not the JSON's type: {event.data}")
        expect(ending or event.event not in ("error", "close"), f"unexpected {event}")
        return event

    async def next_push(self):
        """The next `message` (join/leave skipped) as (event, JSON)."""
        while True:
            event = await self.next_event()
            if event.event == "message":
                return event, event.json()
            expect(event.event in ("join", "leave"), f"expected a message event, got {event}")

    async def subscribed(self, channel):
        event = await self.next_event()
        expect(event.event == "subscribed", f"expected subscribed for {channel}, got {event}")
        reply = event.json()
        expect(reply.get("channel") == channel, f"expected subscribed for {channel}, got {reply}")
        expect(event.id, f"subscribed without id: {event}")
        read_cursor(event.id)
        return event, reply

    async def subscribed_all(self):
        """The `subscribed` events of every channel, in the order of the channel parameters;
        returns their (event, JSON) pairs. Pushes of a channel whose `subscribed` came already
        may come in between (its recovered messages); they are kept for next_push."""
        subs, ahead = [], []
        while len(subs) < len(self.channels):
            event = await self.next_event()
            if event.event != "subscribed":
                done = [s["channel"] for _, s in subs]
                expect(event.event in ("message", "join", "leave") and event.json().get("channel") in done,
                       f"expected subscribed for {self.channels[len(subs)]}, got {event}")
                ahead.append(event)
                continue
            reply = event.json()
            expect(reply.get("channel") == self.channels[len(subs)],
                   f"expected subscribed for {self.channels[len(subs)]} (order of the channel parameters),"
                   f" got {reply}")
            expect(event.id, f"subscribed without id: {event}")
            read_cursor(event.id)
            subs.append((event, reply))
        self.pending = ahead + self.pending
        return subs

    async def expect_messages(self, expected, epochs):
        """Reads message events until every channel of `expected` ({channel: [n, …]}, the data
        {"n": n} at offset n) got its list, in order and once; returns the last event. Fails at
        the first message that is not the next expected one of its channel."""
        want = {c: list(ns) for c, ns in expected.items()}
        last = None
        while any(want.values()):
            event, m = await self.next_push()
            channel = m.get("channel")
            expect(channel in want, f"message on an unexpected channel: {m}")
            expect(want[channel], f"extra message (duplicate?) on {channel}: {m}")
            n = want[channel].pop(0)
            expect(m.get("offset") == n and m.get("data") == {"n": n} and m.get("epoch") == epochs[channel]
                   and isinstance(m.get("ts"), int),
                   f"expected offset {n} data {{'n': {n}}} on {channel}, got {m}")
            expect(event.id, f"message event without id: {event}")
            position = read_cursor(event.id)
            expect(position.get(channel) == (epochs[channel], n),
                   f"id of the message at offset {n} does not say so: {read_cursor(event.id)}")
            expect(set(position) == set(self.channels),
                   f"id should cover the stream's channels {self.channels}: {position}")
            last = event
        return last


async def sse_marker(server, stream, channels, epochs, next_n):
    """No duplicate left: publish one more message per channel; each must be the next one."""
    for channel in channels:
        await server.publish(channel, next_n[channel], offset=next_n[channel])
    await stream.expect_messages({c: [next_n[c]] for c in channels}, epochs)


# --- checks ------------------------------------------------------------------------------------

async def check_sse_resume(server):
    """One channel: drop the stream with messages in flight, publish 10 more while away (API and
    /rpc), reconnect with Last-Event-ID: 7..20 exactly once, in order, then live ones."""
    channel = fresh_channel("sse")
    stream = await SseStream(server, [channel]).open()
    expect(stream.parser.retry is not None, "no `retry:` field before the first events")
    event, sub = await stream.subscribed(channel)
    expect(sub.get("offset") == 0 and sub.get("recovered") is True
           and re.fullmatch(r"[0-9a-f]{16}", sub.get("epoch", "")), f"first subscribed: {sub}")
    epoch = sub["epoch"]
    expect(read_cursor(event.id) == {channel: (epoch, 0)}, f"subscribed id {read_cursor(event.id)}")
    epochs = {channel: epoch}
    for n in range(1, 11):
        await server.publish(channel, n, offset=n, epoch=epoch)
    last = await stream.expect_messages({channel: range(1, 7)}, epochs)
    expect(last.last_id == last.id, "last event id is not the last message's id")
    await stream.drop()              # 7..10 were in flight

    for n in range(11, 21):
        await server.publish(channel, n, offset=n, epoch=epoch)

    stream = await SseStream(server, [channel], last_event_id=last.last_id).open()
    _, sub = await stream.subscribed(channel)
    expect(sub.get("recovered") is True and sub.get("epoch") == epoch and sub.get("offset") == 20,
           f"expected subscribed recovered: true, epoch {epoch}, offset 20, got {sub}")
    await stream.expect_messages({channel: range(7, 21)}, epochs)
    for n in range(21, 24):
        await server.publish(channel, n, offset=n)
    await stream.expect_messages({channel: range(21, 24)}, epochs)
    await sse_marker(server, stream, [channel], epochs, {channel: 24})
    await stream.drop()


async def check_sse_multi_channel(server):
    """One stream on two channels, resumed with one Last-Event-ID."""
    a, b = fresh_channel("sse-a"), fresh_channel("sse-b")
    for n in (1, 2):
        await server.publish(a, n, offset=n)
    stream = await SseStream(server, [a, b]).open()
    (_, sub_a), (_, sub_b) = await stream.subscribed_all()
    expect(sub_a.get("offset") == 2 and sub_a.get("recovered") is True, f"{sub_a}")
    expect(sub_b.get("offset") == 0 and sub_b.get("recovered") is True, f"{sub_b}")
    epochs = {a: sub_a["epoch"], b: sub_b["epoch"]}
    for n in range(3, 9):
        await server.publish(a, n, offset=n)
    for n in range(1, 7):
        await server.publish(b, n, offset=n)
    # Read all of a's and b's up to 5 and 4 (order between channels is free), then drop.
    want = {a: list(range(3, 9)), b: list(range(1, 7))}
    got = {a: 0, b: 0}
    last = None
    while got[a] < 5 or got[b] < 4:
        event, m = await stream.next_push()
        ch = m.get("channel")
        expect(ch in want and want[ch] and m.get("offset") == want[ch][0],
               f"expected offset {want.get(ch)} on {ch}, got {m}")
        want[ch].pop(0)
        got[ch] = m["offset"]
        position = read_cursor(event.id)
        expect(position.get(ch) == (epochs[ch], m["offset"]) and set(position) == {a, b},
               f"message id {position} for {m}")
        last = event
    await stream.drop()
    resume = read_cursor(last.last_id)
    expect(resume == {a: (epochs[a], got[a]), b: (epochs[b], got[b])}, f"last id {resume}, read up to {got}")

    for n in range(9, 15):
        await server.publish(a, n, offset=n)
    for n in range(7, 12):
        await server.publish(b, n, offset=n)

    stream = await SseStream(server, [a, b], last_event_id=last.last_id).open()
    (_, sub_a), (_, sub_b) = await stream.subscribed_all()
    expect(sub_a.get("recovered") is True and sub_a.get("offset") == 14, f"expected a recovered at 14: {sub_a}")
    expect(sub_b.get("recovered") is True and sub_b.get("offset") == 11, f"expected b recovered at 11: {sub_b}")
    await stream.expect_messages({a: range(resume[a][1] + 1, 15), b: range(resume[b][1] + 1, 12)}, epochs)
    await sse_marker(server, stream, [a, b], epochs, {a: 15, b: 12})
    await stream.drop()


async def check_sse_resume_during_replay(server):
    """The `subscribed` id of a recovered stream must not skip the replay: a client that drops
    right after `subscribed` and resumes from its id still gets every missed message."""
    channel = fresh_channel("sse-replay")
    stream = await SseStream(server, [channel]).open()
    _, sub = await stream.subscribed(channel)
    epochs = {channel: sub["epoch"]}
    for n in range(1, 4):
        await server.publish(channel, n, offset=n)
    last = await stream.expect_messages({channel: range(1, 4)}, epochs)
    await stream.drop()
    for n in range(4, 14):
        await server.publish(channel, n, offset=n)
    stream = await SseStream(server, [channel], last_event_id=last.last_id).open()
    event, sub = await stream.subscribed(channel)
    expect(sub.get("recovered") is True, f"{sub}")
    await stream.drop()
    stream = await SseStream(server, [channel], last_event_id=event.last_id).open()
    _, sub = await stream.subscribed(channel)
    expect(sub.get("recovered") is True, f"resumed from the subscribed id {read_cursor(event.id)}: {sub}")
    await stream.expect_messages({channel: range(4, 14)}, epochs)
    await sse_marker(server, stream, [channel], epochs, {channel: 14})
    await stream.drop()


async def check_sse_wrong_epoch(server):
    """A cursor with another epoch: subscribed says recovered: false, nothing is replayed."""
    channel = fresh_channel("sse-epoch")
    for n in range(1, 4):
        await server.publish(channel, n, offset=n)
    cursor = make_cursor([[channel, "0000000000000000", 3]])
    for how, stream in (("?cursor=", SseStream(server, [channel], cursor=cursor)),
                        ("Last-Event-ID", SseStream(server, [channel], last_event_id=cursor))):
        await stream.open()
        _, sub = await stream.subscribed(channel)
        n = 4 if how == "?cursor=" else 5
        expect(sub.get("recovered") is False and sub.get("offset") == n - 1 and sub.get("epoch") != "0000000000000000",
               f"cursor with a wrong epoch via {how}: expected recovered: false at offset {n - 1}, got {sub}")
        await server.publish(channel, n, offset=n)
        await stream.expect_messages({channel: [n]}, {channel: sub["epoch"]})
        await stream.drop()


async def check_sse_last_event_id_wins(server):
    """Last-Event-ID wins over ?cursor=."""
    channel = fresh_channel("sse-wins")
    answer = None
    for n in range(1, 6):
        answer = await server.publish(channel, n, offset=n)
    epoch = answer["epoch"]
    good = make_cursor([[channel, epoch, 2]])
    bad = make_cursor([[channel, "0000000000000000", 4]])
    stream = await SseStream(server, [channel], cursor=bad, last_event_id=good).open()
    _, sub = await stream.subscribed(channel)
    expect(sub.get("recovered") is True,
           f"Last-Event-ID (epoch ok, offset 2) should win over ?cursor= (wrong epoch): {sub}")
    await stream.expect_messages({channel: range(3, 6)}, {channel: epoch})
    await sse_marker(server, stream, [channel], {channel: epoch}, {channel: 6})
    await stream.drop()


async def check_sse_presence(server):
    """An SSE client is a subscriber: listed by presence (/rpc), others get its join."""
    channel = fresh_channel("sse-presence")
    first = await SseStream(server, [channel]).open()
    await first.subscribed(channel)
    r = await server.rpc({"type": "presence", "channel": channel, "id": 3})
    expect(r.status_code == 200, f"/rpc presence: HTTP {r.status_code} {r.text[:300]!r}")
    reply = r.json()
    expect(reply.get("type") == "presence" and reply.get("id") == 3
           and [c.get("client") for c in reply.get("clients", [])] == [first.client],
           f"/rpc presence: expected the SSE client {first.client}, got {reply}")
    second = await SseStream(server, [channel]).open()
    await second.subscribed(channel)
    join = await first.next_event()
    expect(join.event == "join" and join.json().get("client") == second.client
           and join.json().get("channel") == channel, f"expected join of {second.client}, got {join}")
    await second.drop()
    await first.drop()


async def check_sse_heartbeat(server):
    """An idle stream gets the `: heartbeat` comment (every sse_heartbeat_secs, default 15)."""
    channel = fresh_channel("sse-heartbeat")
    stream = await SseStream(server, [channel]).open()
    await stream.subscribed(channel)
    t0 = time.monotonic()
    while "heartbeat" not in stream.parser.comments:
        expect(stream.task is not None and not stream.task.done(), f"the stream ended: {stream.error}")
        expect(time.monotonic() - t0 < 20, f"no `: heartbeat` comment within 20s (comments: {stream.parser.comments})")
        await asyncio.sleep(0.2)
    expect(stream.pending == [] and stream.queue.empty(),
           f"an idle stream sent events: {stream.pending or stream.queue}")
    await stream.drop()


async def poll_collect(server, channel, epoch, cursor, last_offset, until, seen):
    """Polls from `cursor` until the offset `until` has arrived; appends the messages to `seen`;
    returns the last cursor. Checks each reply."""
    for _ in range(200):
        if last_offset >= until:
            return cursor
        reply, _ = await server.poll([("cursor", cursor), ("timeout", "5")])
        state = reply["channels"]
        expect(len(state) == 1 and state[0].get("channel") == channel and state[0].get("recovered") is True
               and state[0].get("epoch") == epoch, f"poll from {read_cursor(cursor)}: channels {state}")
        for m in reply["messages"]:
            expect(m.get("channel") == channel and m.get("epoch") == epoch and m.get("offset") == last_offset + 1,
                   f"poll: expected offset {last_offset + 1}, got {m}")
            last_offset = m["offset"]
            seen.append(m)
        expect(state[0].get("offset") == last_offset, f"poll: channels[].offset should be {last_offset}: {state}")
        expect(read_cursor(reply["cursor"]) == {channel: (epoch, last_offset)},
               f"poll: cursor {read_cursor(reply['cursor'])} should be at {last_offset}")
        cursor = reply["cursor"]
    raise CheckFailed(f"polling did not reach offset {until} in 200 polls (at {last_offset})")


async def check_poll_resume(server):
    """timeout=0 to learn the cursor, a polling loop while another task publishes, a pause while
    more is published, resume with the last cursor: every message once, in order."""
    channel = fresh_channel("poll")
    seed = await server.publish(channel, 1, offset=1)   # history, so the channel keeps its epoch
    epoch = seed["epoch"]
    reply, elapsed = await server.poll([("channel", channel), ("timeout", "0")])
    expect(elapsed < 3, f"timeout=0 took {elapsed:.1f}s")
    expect(reply["messages"] == [], f"timeout=0 without cursor starts from now: {reply}")
    expect(reply["channels"] == [{"channel": channel, "epoch": epoch, "offset": 1, "recovered": True}],
           f"timeout=0: channels {reply['channels']}")
    expect(read_cursor(reply["cursor"]) == {channel: (epoch, 1)}, f"cursor {read_cursor(reply['cursor'])}")
    cursor, seen = reply["cursor"], []

    async def publish_range(first, last):
        for n in range(first, last + 1):
            await server.publish(channel, n, offset=n)
            await asyncio.sleep(0.02)

    publisher = asyncio.create_task(publish_range(2, 16))
    cursor = await poll_collect(server, channel, epoch, cursor, 1, 16, seen)
    await asyncio.wait_for(publisher, TIMEOUT)
    # Away: nothing polls while 17..31 are published.
    await publish_range(17, 31)
    await asyncio.sleep(0.5)
    publisher = asyncio.create_task(publish_range(32, 46))
    cursor = await poll_collect(server, channel, epoch, cursor, 16, 46, seen)
    await asyncio.wait_for(publisher, TIMEOUT)
    offsets = [m["offset"] for m in seen]
    expect(offsets == list(range(2, 47)), f"offsets received: {offsets}")
    expect([m["data"] for m in seen] == [{"n": n} for n in range(2, 47)], "data differs from what was published")
    reply, _ = await server.poll([("cursor", cursor), ("timeout", "0")])
    expect(reply["messages"] == [] and reply["channels"][0].get("offset") == 46,
           f"nothing more after 46: {reply}")


async def check_poll_held_returns_on_publish(server):
    channel = fresh_channel("poll-held")
    await server.publish(channel, 1, offset=1)
    reply, _ = await server.poll([("channel", channel), ("timeout", "0")])
    held = asyncio.create_task(server.poll([("cursor", reply["cursor"]), ("timeout", "20")]))
    try:
        await asyncio.sleep(1.0)
        if held.done():
            outcome = held.exception() or held.result()
            raise CheckFailed(f"a poll with nothing new (timeout=20) returned within 1s: {outcome}")
        t0 = time.monotonic()
        await server.publish(channel, 2, offset=2)
        try:
            reply, _ = await asyncio.wait_for(asyncio.shield(held), TIMEOUT)
        except TimeoutError:
            raise CheckFailed(f"the held poll did not return within {TIMEOUT}s of the publication") from None
    finally:
        held.cancel()
    waited = time.monotonic() - t0
    expect(waited < 3, f"the held poll returned {waited:.1f}s after the publication (timeout 20)")
    expect([m.get("offset") for m in reply["messages"]] == [2] and reply["messages"][0].get("data") == {"n": 2},
           f"held poll: expected the message at offset 2, got {reply}")


async def check_poll_idle_timeout(server):
    channel = fresh_channel("poll-idle")
    answer = await server.publish(channel, 1, offset=1)
    reply, _ = await server.poll([("channel", channel), ("timeout", "0")])
    cursor = reply["cursor"]
    reply, elapsed = await server.poll([("cursor", cursor), ("timeout", "1")])
    expect(0.8 <= elapsed <= 4, f"an idle poll with timeout=1 took {elapsed:.2f}s")
    expect(reply["messages"] == [] and reply["channels"][0].get("offset") == 1, f"idle poll: {reply}")
    expect(read_cursor(reply["cursor"]) == {channel: (answer["epoch"], 1)},
           f"idle poll cursor {read_cursor(reply['cursor'])}")


async def check_poll_since_and_not_recovered(server):
    """since=EPOCH:OFFSET recovers; a cursor with a wrong epoch answers at once, recovered false."""
    channel = fresh_channel("poll-since")
    answer = None
    for n in range(1, 4):
        answer = await server.publish(channel, n, offset=n)
    epoch = answer["epoch"]
    reply, _ = await server.poll([("channel", channel), ("since", f"{epoch}:1"), ("timeout", "0")])
    expect([m.get("offset") for m in reply["messages"]] == [2, 3] and reply["channels"][0].get("recovered") is True,
           f"since={epoch}:1: expected offsets 2, 3, got {reply}")
    bad = make_cursor([[channel, "0000000000000000", 3]])
    reply, elapsed = await server.poll([("cursor", bad), ("timeout", "10")])
    expect(elapsed < 3, f"a recovered: false reply should come at once, took {elapsed:.1f}s")
    state = reply["channels"]
    expect(len(state) == 1 and state[0].get("recovered") is False and reply["messages"] == [],
           f"wrong epoch: expected recovered: false and no messages, got {reply}")
    await server.publish(channel, 4, offset=4)
    reply, _ = await server.poll([("cursor", reply["cursor"]), ("timeout", "5")])
    expect([m.get("offset") for m in reply["messages"]] == [4] and reply["channels"][0].get("recovered") is True,
           f"after recovered: false, the next poll gets the new message only: {reply}")


async def check_errors(server):
    """Anonymous server: invalid cursors, bad channels, /rpc refusals and sizes."""
    channel = fresh_channel("errors")
    long_names = [[f"{channel}:{i}:{'x' * 180}", "0000000000000000", 0] for i in range(100)]
    bad_cursors = {
        "not base64url": "!!!",
        "not JSON": b64url(b"not json"),
        "not an array": b64url(b'{"a":1}'),
        "offset not an integer": make_cursor([[channel, "0000000000000000", "x"]]),
        "longer than 16 KiB": make_cursor(long_names),
        "129 channels": make_cursor([[f"{channel}:{i}", "0000000000000000", 0] for i in range(129)]),
    }
    for what, bad in bad_cursors.items():
        r = await server.http.get("/poll", params={"cursor": bad, "timeout": "0"})
        check_error_reply(r, 400, "invalid_cursor", f"GET /poll, cursor {what}")
    stream = SseStream(server, [channel], cursor="!!!")
    expect(await stream.start() == 400, f"GET /sse?cursor=!!!: HTTP {stream.response.status_code}")
    check_error_reply(stream.response, 400, "invalid_cursor", "GET /sse?cursor=!!!")
    stream = SseStream(server, [channel], last_event_id=bad_cursors["not JSON"])
    expect(await stream.start() == 400, f"GET /sse with a bad Last-Event-ID: HTTP {stream.response.status_code}")
    check_error_reply(stream.response, 400, "invalid_cursor", "GET /sse, Last-Event-ID not a cursor")

    stream = SseStream(server, ["has space"])
    expect(await stream.start() == 400, "GET /sse?channel=has space")
    check_error_reply(stream.response, 400, "invalid_channel", "GET /sse?channel=has space")
    r = await server.http.get("/poll", params={"channel": "has space", "timeout": "0"})
    check_error_reply(r, 400, "invalid_channel", "GET /poll?channel=has space")

    for kind in ("subscribe", "unsubscribe", "auth"):
        r = await server.rpc({"type": kind, "channel": channel, "token": "x", "id": 1})
        check_error_reply(r, 400, "bad_request", f"POST /rpc {kind}")
    r = await server.rpc(None, content="{not json")
    check_error_reply(r, 400, "bad_request", "POST /rpc with a body that is not JSON")
    r = await server.rpc({"type": "dance"})
    check_error_reply(r, 400, "unknown_type", "POST /rpc dance")
    r = await server.rpc({"type": "publish", "channel": channel})
    check_error_reply(r, 400, "invalid_field", "POST /rpc publish without data")
    r = await server.rpc({"type": "publish", "channel": channel, "data": "x" * 70000})
    check_error_reply(r, 413, "too_large", "POST /rpc with a 70 kB body")

    r = await server.rpc({"type": "ping", "id": 9})
    expect(r.status_code == 200 and r.json() == {"type": "pong", "id": 9},
           f"POST /rpc ping: {r.status_code} {r.text!r}")
    published = await server.rpc_publish(channel, {"k": 1})
    r = await server.rpc({"type": "history", "channel": channel, "id": 10},
                         headers={"Content-Type": "application/json"})
    reply = r.json()
    expect(r.status_code == 200 and reply.get("type") == "history" and reply.get("id") == 10
           and [m.get("data") for m in reply.get("messages", [])] == [{"k": 1}]
           and reply.get("offset") == published["offset"],
           f"POST /rpc history: {r.status_code} {reply}")


async def check_jwt_errors(_server):
    """JWT server: 401 without or with a bad token, 403 for a channel the token does not allow
    (/sse, /poll, /rpc publish), 400 for /rpc subscribe; and a token that works."""
    base, secret = os.environ.get("FALLBACK_JWT_URL", ""), os.environ.get("FALLBACK_JWT_SECRET", "")
    expect(base and secret, "FALLBACK_JWT_URL and FALLBACK_JWT_SECRET are not set: no JWT-mode server to test")
    server = Server(base.rstrip("/"))
    try:
        room, admin = f"room:{secrets.token_hex(4)}", f"admin:{secrets.token_hex(4)}"
        token = jwt_token(secret, "alice", ["room:*"])

        stream = SseStream(server, [room])
        expect(await stream.start() == 401, f"GET /sse without token: HTTP {stream.response.status_code}")
        check_error_reply(stream.response, 401, "unauthorized", "GET /sse without token")
        r = await server.http.get("/poll", params={"channel": room, "timeout": "0"})
        check_error_reply(r, 401, "unauthorized", "GET /poll without token")
        r = await server.rpc({"type": "publish", "channel": room, "data": 1})
        check_error_reply(r, 401, "unauthorized", "POST /rpc publish without token")
        stream = SseStream(server, [room], token=jwt_token("not-the-secret", "alice", ["room:*"]))
        expect(await stream.start() == 401, f"GET /sse, wrongly signed token: HTTP {stream.response.status_code}")
        check_error_reply(stream.response, 401, "invalid_token", "GET /sse, wrongly signed token")
        r = await server.http.get("/poll", params={"channel": room, "timeout": "0",
                                                   "token": jwt_token(secret, "alice", ["room:*"], expires_in=-60)})
        check_error_reply(r, 401, "token_expired", "GET /poll, expired token")

        stream = SseStream(server, [admin], token=token)
        expect(await stream.start() == 403, f"GET /sse on {admin}: HTTP {stream.response.status_code}")
        check_error_reply(stream.response, 403, "forbidden", f"GET /sse on {admin}")
        stream = SseStream(server, [room, admin], headers={"Authorization": f"Bearer {token}"})
        expect(await stream.start() == 403, f"GET /sse on {room} and {admin}: HTTP {stream.response.status_code}")
        check_error_reply(stream.response, 403, "forbidden", f"GET /sse on {room} and {admin}")
        r = await server.http.get("/poll", params={"channel": admin, "timeout": "0", "token": token})
        check_error_reply(r, 403, "forbidden", f"GET /poll on {admin}")
        r = await server.rpc({"type": "publish", "channel": admin, "data": 1, "id": 4}, token=token)
        reply = check_error_reply(r, 403, "forbidden", f"POST /rpc publish on {admin}")
        expect(reply.get("id") == 4, f"the error should carry the command's id 4: {reply}")
        r = await server.rpc({"type": "subscribe", "channel": room}, token=token)
        check_error_reply(r, 400, "bad_request", "POST /rpc subscribe with a good token")

        # The same token works: SSE with it in the header, publish with it in the query.
        stream = await SseStream(server, [room], headers={"Authorization": f"Bearer {token}"}).open()
        expect(stream.user == "alice", f"authenticated should carry user alice, got {stream.user!r}")
        _, sub = await stream.subscribed(room)
        published = await server.rpc_publish(room, {"n": 1}, params={"token": token})
        _, m = await stream.next_push()
        expect(m.get("offset") == published["offset"] and m.get("from") == "alice" and m.get("data") == {"n": 1},
               f"expected the message from alice, got {m}")
        await stream.drop()
        reply, _ = await server.poll([("channel", room), ("timeout", "0"), ("token", token)])
        expect(reply["channels"][0].get("offset") == published["offset"], f"poll with token: {reply}")
    finally:
        await server.aclose()


async def check_jwt_sse_token_expiry(_server):
    """A stream whose token expires: an `error` event token_expired, a `close` event 4002, then
    the end of the stream."""
    base, secret = os.environ.get("FALLBACK_JWT_URL", ""), os.environ.get("FALLBACK_JWT_SECRET", "")
    expect(base and secret, "FALLBACK_JWT_URL and FALLBACK_JWT_SECRET are not set: no JWT-mode server to test")
    server = Server(base.rstrip("/"))
    try:
        room = f"room:{secrets.token_hex(4)}"
        stream = await SseStream(server, [room], token=jwt_token(secret, "bob", ["room:*"], expires_in=2)).open()
        expect(stream.user == "bob", f"authenticated should carry user bob, got {stream.user!r}")
        await stream.subscribed(room)
        t0 = time.monotonic()
        error = await stream.next_event(timeout=6, ending=True)
        expect(error is not END and error.event == "error" and error.json().get("code") == "token_expired",
               f"expected an error event token_expired, got {error}")
        waited = time.monotonic() - t0
        expect(waited < 4, f"token_expired came {waited:.1f}s after subscribing (the token expired within 2s)")
        close = await stream.next_event(ending=True)
        expect(close is not END and close.event == "close" and close.json().get("code") == 4002,
               f"expected a close event with code 4002, got {close}")
        end = await stream.next_event(ending=True)
        expect(end is END, f"expected the end of the stream after close, got {end}")
    finally:
        await server.aclose()


async def check_curl_sse(server):
    """curl -N reads the stream (a second client that is not ours), then resumes with
    Last-Event-ID from what it read."""
    curl = shutil.which("curl")
    expect(curl, "curl is not installed")
    channel = fresh_channel("curl")

    async def read_events(extra, count, publish_from):
        url = f"{server.base}/sse?channel={channel}"
        proc = await asyncio.create_subprocess_exec(
            curl, "-sS", "-N", "--max-time", str(3 * TIMEOUT), "-H", "Accept: text/event-stream", *extra, url,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        parser, events = SseParser(), []
        try:
            published = False
            while len(events) < count:
                try:
                    raw = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
                except TimeoutError:
                    raise CheckFailed(f"curl: no line within {TIMEOUT}s; events so far {events}") from None
                if not raw:
                    err = (await proc.stderr.read()).decode(errors="replace")
                    status = await proc.wait()
                    raise CheckFailed(f"curl ended (status {status}): {err.strip()}; events so far {events}")
                event = parser.feed(raw.decode().rstrip("\r\n"))
                if event is None:
                    continue
                events.append(event)
                if event.event == "subscribed" and not published and publish_from:
                    for n in publish_from:
                        await server.publish(channel, n, offset=n)
                    published = True
            return events
        finally:
            if proc.returncode is None:
                try:
                    proc.terminate()
                except ProcessLookupError:
                    pass
            await proc.wait()

    events = await read_events([], 4, [1, 2])
    expect([e.event for e in events] == ["authenticated", "subscribed", "message", "message"],
           f"curl: expected authenticated, subscribed, 2 messages; got {events}")
    expect([e.json().get("data") for e in events[2:]] == [{"n": 1}, {"n": 2}], f"curl: {events[2:]}")
    await server.publish(channel, 3, offset=3)
    events = await read_events(["-H", f"Last-Event-ID: {events[-1].last_id}"], 3, [])
    sub, m = events[1].json(), events[2].json()
    expect(sub.get("recovered") is True and m.get("offset") == 3 and m.get("data") == {"n": 3},
           f"curl with Last-Event-ID: expected recovered and offset 3, got {events}")


CHECKS = {
    "sse_resume": check_sse_resume,
    "sse_multi_channel": check_sse_multi_channel,
    "sse_resume_during_replay": check_sse_resume_during_replay,
    "sse_wrong_epoch": check_sse_wrong_epoch,
    "sse_last_event_id_wins": check_sse_last_event_id_wins,
    "sse_presence": check_sse_presence,
    "sse_heartbeat": check_sse_heartbeat,
    "poll_resume": check_poll_resume,
    "poll_held_returns_on_publish": check_poll_held_returns_on_publish,
    "poll_idle_timeout": check_poll_idle_timeout,
    "poll_since_and_not_recovered": check_poll_since_and_not_recovered,
    "errors": check_errors,
    "jwt_errors": check_jwt_errors,
    "jwt_sse_token_expiry": check_jwt_sse_token_expiry,
    "curl_sse": check_curl_sse,
}


async def main(argv):
    if len(argv) < 2 or not argv[1].startswith("http://"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    names = argv[2:] or list(CHECKS)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        print(f"unknown checks: {unknown}; known: {list(CHECKS)}", file=sys.stderr)
        return 2
    server = Server(argv[1].rstrip("/"), os.environ.get("RIPPLE_API_KEY", ""))
    passed = failed = 0
    try:
        for name in names:
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(CHECKS[name](server), CHECK_TIMEOUT)
            except TimeoutError as exc:
                failed += 1
                late = time.monotonic() - t0 >= CHECK_TIMEOUT
                why = f"did not finish within {CHECK_TIMEOUT}s" if late else f"TimeoutError: {exc}"
                print(f"FAIL {name}: {why}", flush=True)
            except Exception as exc:  # noqa: BLE001 (every failure is reported and counted)
                failed += 1
                print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
            else:
                passed += 1
                print(f"ok {name}", flush=True)
            for stream in list(OPEN_STREAMS):
                await stream.drop()
    finally:
        await server.aclose()
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv)))
