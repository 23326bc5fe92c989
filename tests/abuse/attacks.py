"""The attacks of the abuse harness (abuse.py runs them). Each is an `async def f(ctx)` that
opens its sockets through `ctx.track` (closed when it ends, also when cancelled), reports what
the attacker got with `ctx.got` and its own expectations with `ctx.check`. The driver adds the
common ones: peak RSS, the bystander, the server still answering /healthz.

Counts and time bounds per form ("full" as in the issue, "quick" for CI) are in PARAMS; every
wait has a timeout, and the driver cancels an attack that outlives its budget.
"""

import asyncio
import collections
import json
import os
import secrets
import signal
import time

import wire
from wire import CONT, PING, TEXT, WsClosed, deadline_in, left

PARAMS = {
    1: {"full": {"messages": 100, "rpc": 300, "poll": 100, "hold": 10, "budget": 120},
        "quick": {"messages": 100, "rpc": 60, "poll": 20, "hold": 4, "budget": 60}},
    2: {"full": {"publishes": 5000, "pairs": 200_000, "secs": 60, "budget": 180},
        "quick": {"publishes": 2500, "pairs": 50_000, "secs": 12, "budget": 60}},
    3: {"full": {"conns": 8, "secs": 20, "budget": 90},
        "quick": {"conns": 4, "secs": 6, "budget": 45}},
    4: {"full": {"conns": 2000, "secs": 40, "interval": 2.0, "exit_wait": 20, "budget": 180},
        "quick": {"conns": 300, "secs": 10, "interval": 2.0, "exit_wait": 10, "budget": 75}},
    5: {"full": {"messages": 100, "budget": 90},
        "quick": {"messages": 100, "budget": 60}},
    6: {"full": {"depth": 129, "budget": 30},
        "quick": {"depth": 129, "budget": 30}},
    7: {"full": {"subs": 1000, "publishers": 4, "pace": 0.02, "lead": 1.0, "burst": 300,
                 "rounds": 3, "budget": 150},
        "quick": {"subs": 200, "publishers": 4, "pace": 0.02, "lead": 0.5, "burst": 150,
                  "rounds": 3, "budget": 75}},
    8: {"full": {"secs": 20, "max_frames": 50_000_000, "budget": 90},
        "quick": {"secs": 5, "max_frames": 10_000_000, "budget": 45}},
}

BIG = '"' + "x" * (60 * 1024) + '"'   # a 60 KiB JSON string: under max_message_size (64 KiB)
UNREAD_RCVBUF = 4096                  # receive buffer of a client that never reads


# --- helpers ----------------------------------------------------------------------------------------

async def bounded(factories, limit=100):
    """Runs coroutine factories, at most `limit` at once: results, or the exception each raised."""
    sem = asyncio.Semaphore(limit)

    async def one(factory):
        async with sem:
            try:
                return await factory()
            except Exception as err:
                return err

    return await asyncio.gather(*(one(f) for f in factories))


def failures(results):
    errors = collections.Counter(f"{type(r).__name__}: {r}"[:80] for r in results
                                 if isinstance(r, Exception))
    return dict(errors)


async def api_publish(ctx, channel, data_json, timeout=10.0):
    body = '{"channel":%s,"data":%s}' % (json.dumps(channel), data_json)
    headers = {**ctx.auth, "Content-Type": "application/json"}
    status, _, answer = await wire.http(ctx.port, "POST", "/api/publish", headers, body, timeout)
    if status != 200:
        raise RuntimeError(f"POST /api/publish: HTTP {status} {answer[:200]!r}")
    return json.loads(answer)


async def fill(ctx, channel, count):
    """Publishes `count` 60 KiB messages through the API: (epoch, last offset)."""
    reply = None
    for _ in range(count):
        reply = await api_publish(ctx, channel, BIG)
    return reply["epoch"], reply["offset"]


async def metric(ctx, name):
    outcome = await wire.http_outcome(ctx.port, "GET", "/metrics", timeout=5)
    if outcome[0] != "status" or outcome[1] != 200:
        return wire.describe(outcome)
    for line in outcome[2].decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def rate(count, secs):
    return f"{count / secs:,.0f}/s" if secs > 0 else "-"


# --- 1. unread answers ------------------------------------------------------------------------------

async def unread_answers(ctx):
    """Large answers to clients that never read them: /rpc history and /poll with since."""
    p = ctx.p
    epoch, top = await fill(ctx, "big", p["messages"])
    ctx.got(f"channel big filled: {top} messages of {len(BIG):,} bytes (epoch {epoch})")
    rpc = wire.http_request_bytes("POST", "/rpc", {"Content-Type": "application/json"},
                                  '{"type":"history","channel":"big"}')
    poll = wire.http_request_bytes("GET", f"/poll?channel=big&since={epoch}:0")

    async def unread(request, label):
        conn = ctx.track(await wire.connect(ctx.port, rcvbuf=UNREAD_RCVBUF, timeout=5))
        await conn.send(request, 5)
        ctx.progress[label] = ctx.progress.get(label, 0) + 1
        return conn

    t0 = time.monotonic()
    rpcs = await bounded([lambda: unread(rpc, "/rpc requests sent")] * p["rpc"], 50)
    polls = await bounded([lambda: unread(poll, "/poll requests sent")] * p["poll"], 50)
    ctx.got(f"{p['rpc']} POST /rpc history + {p['poll']} GET /poll since {epoch}:0 sent in "
            f"{time.monotonic() - t0:.1f}s, never read; holding them {p['hold']}s")
    await asyncio.sleep(p["hold"])
    for label, results in (("/rpc", rpcs), ("/poll", polls)):
        conns = [r for r in results if isinstance(r, wire.Conn)]
        seen = await asyncio.gather(*(c.peek_line(0.5) for c in conns))
        ctx.got(f"{label}: {len(conns)} connected, first line of the answer after {p['hold']}s: "
                f"{dict(collections.Counter(seen))}"
                + (f"; failed to send: {failures(results)}" if len(conns) < len(results) else ""))


# --- 2. publishing without a cap --------------------------------------------------------------------

async def read_replies(ws, counts, deadline, want):
    """Counts replies by type (errors by code) until `want()` is true, the deadline, or the
    close; the close code (None when open)."""
    try:
        while not want():
            msg = await ws.recv_json(deadline)
            kind = msg.get("type")
            counts[f"error {msg.get('code')}" if kind == "error" else kind] += 1
    except WsClosed as closed:
        return closed.code if closed.code is not None else "TCP ended"
    except asyncio.TimeoutError:
        pass
    return None


async def publish_flood(ctx):
    """One anonymous client: 60 KiB publishes, each to a new channel; then subscribe/unsubscribe
    pairs on fresh channel names."""
    p = ctx.p
    tag = secrets.token_hex(3)
    ws = ctx.track(await wire.ws_channels(ctx.port))
    counts = collections.Counter()
    sent = 0
    done_sending = False
    deadline = deadline_in(p["secs"])
    reader = asyncio.create_task(read_replies(
        ws, counts, deadline, lambda: done_sending and sum(counts.values()) >= sent))
    t0 = time.monotonic()
    try:
        for i in range(p["publishes"]):
            if reader.done():
                break
            msg = '{"type":"publish","channel":"flood:%s:%d","id":%d,"data":%s}' % (tag, i, i, BIG)
            await ws.send(wire.frame(TEXT, msg), left(deadline))
            sent += 1
            ctx.progress["publishes sent"] = sent
            ctx.progress["replies"] = dict(counts)
    except (asyncio.TimeoutError, OSError) as err:
        ctx.got(f"publish flood: sending stopped: {type(err).__name__} {err}")
    secs = time.monotonic() - t0
    done_sending = True
    closed = await reader
    channels = await metric(ctx, "ripple_channels")
    ctx.got(f"publish flood: {sent} of {p['publishes']} publishes of {len(BIG):,} bytes (one new "
            f"channel each) sent in {secs:.1f}s ({rate(sent, secs)}); replies {dict(counts)}; "
            f"connection {'closed ' + str(closed) if closed else 'open'}; "
            f"ripple_channels {channels}")
    ws.close()

    ws = ctx.track(await wire.ws_channels(ctx.port))
    counts = collections.Counter()
    pairs = 0
    done_sending = False
    deadline = deadline_in(p["secs"])
    reader = asyncio.create_task(read_replies(
        ws, counts, deadline, lambda: done_sending and sum(counts.values()) >= 2 * pairs))
    t0 = time.monotonic()
    batch = 256
    try:
        while pairs < p["pairs"] and not reader.done():
            while 2 * pairs - sum(counts.values()) > 4096 and not reader.done():
                left(deadline)
                await asyncio.sleep(0.005)
            n = min(batch, p["pairs"] - pairs)
            frames = []
            for i in range(pairs, pairs + n):
                channel = f"churn:{tag}:{i}"
                frames.append(wire.text({"type": "subscribe", "channel": channel, "id": 2 * i}))
                frames.append(wire.text({"type": "unsubscribe", "channel": channel, "id": 2 * i + 1}))
            await ws.send(b"".join(frames), left(deadline))
            pairs += n
            ctx.progress["pairs sent"] = pairs
            ctx.progress["churn replies"] = dict(counts)
    except (asyncio.TimeoutError, OSError) as err:
        ctx.got(f"churn: sending stopped: {type(err).__name__} {err}")
    secs = time.monotonic() - t0
    done_sending = True
    closed = await reader
    channels = await metric(ctx, "ripple_channels")
    ctx.got(f"churn: {pairs} of {p['pairs']} subscribe/unsubscribe pairs (fresh channel names) "
            f"sent in {secs:.1f}s ({rate(pairs, secs)}); replies {dict(counts)}; connection "
            f"{'closed ' + str(closed) if closed else 'open'}; ripple_channels {channels}")


# --- 3. pongs ---------------------------------------------------------------------------------------

async def pong_flood(ctx):
    """Pings as fast as possible from clients that never read the pongs (and one that reads
    4 KiB every 5 s)."""
    p = ctx.p
    batch_pings = 256
    batch = b"".join(wire.frame(PING, b"p" * 125) for _ in range(batch_pings))
    flooders = [ctx.track(await wire.ws_channels(ctx.port, rcvbuf=UNREAD_RCVBUF))
                for _ in range(p["conns"])]
    slow = ctx.track(await wire.ws_channels(ctx.port, rcvbuf=UNREAD_RCVBUF))
    deadline = deadline_in(p["secs"])
    t0 = time.monotonic()
    ctx.progress["connections"] = len(flooders) + 1

    async def flood(ws):
        sent, blocked, ended = 0, 0.0, None
        while time.monotonic() < deadline:
            t = time.monotonic()
            try:
                await ws.send(batch, left(deadline))
            except asyncio.TimeoutError:
                blocked += time.monotonic() - t
                break
            except OSError as err:
                ended = f"{type(err).__name__} after {time.monotonic() - t0:.1f}s"
                break
            sent += batch_pings
            ctx.progress["pings sent"] = ctx.progress.get("pings sent", 0) + batch_pings
            if time.monotonic() - t > 0.5:
                blocked += time.monotonic() - t
        return sent, blocked, ended

    async def read_slowly(ws):
        got, ended = 0, None
        while True:
            try:
                await asyncio.sleep(min(5.0, left(deadline)))
                remaining = left(deadline)
                chunk = await asyncio.wait_for(
                    ws.conn.loop.sock_recv(ws.conn.sock, 4096), remaining)
            except asyncio.TimeoutError:
                return got, ended
            except OSError as err:
                return got, f"{type(err).__name__} after {time.monotonic() - t0:.1f}s"
            if not chunk:
                return got, f"EOF after {time.monotonic() - t0:.1f}s"
            got += len(chunk)

    results = await asyncio.gather(*(flood(ws) for ws in flooders), flood(slow), read_slowly(slow))
    secs = time.monotonic() - t0
    total = sum(r[0] for r in results[:-2])
    ended = [r[2] for r in results[:-2] if r[2]]
    blocked = sum(r[1] for r in results[:-2])
    ctx.got(f"{p['conns']} never-reading clients: {total:,} pings of 125 bytes sent in "
            f"{secs:.1f}s ({rate(total, secs)}); sends blocked {blocked:.1f}s in all (server "
            f"not reading); connections ended by the server: {len(ended)} {ended[:3]}")
    slow_sent, slow_blocked, slow_end = results[-2]
    read, read_end = results[-1]
    ctx.got(f"the client reading 4 KiB every 5 s: {slow_sent:,} pings sent, blocked "
            f"{slow_blocked:.1f}s, {read:,} bytes read; "
            f"{slow_end or read_end or 'still open at the end'}")


# --- 4. slowloris -----------------------------------------------------------------------------------

async def slowloris(ctx):
    """Connections that send a request header one byte every few seconds; /healthz must still
    answer. Then: SIGTERM with one partial header open must not delay the exit."""
    p = ctx.p
    n = min(p["conns"], max(50, ctx.run.fd_limit - 200))   # per process: ours and the server's
    if n < p["conns"]:
        ctx.got(f"open files limit {ctx.run.fd_limit}: {n} connections instead of {p['conns']}")
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"

    async def open_one():
        conn = ctx.track(await wire.connect(ctx.port, rcvbuf=UNREAD_RCVBUF, timeout=10))
        await conn.send(head, 5)
        ctx.progress["slow connections"] = ctx.progress.get("slow connections", 0) + 1
        return conn

    t0 = time.monotonic()
    results = await bounded([open_one] * n, 100)
    conns = [r for r in results if isinstance(r, wire.Conn)]
    ctx.got(f"{len(conns)} of {n} connections open in {time.monotonic() - t0:.1f}s, each sent "
            f"{head!r}" + (f"; failed: {failures(results)}" if len(conns) < n else ""))
    open_conns = {id(c): c for c in conns}
    closed_at = []
    probes = []           # (ok, seconds, outcome)
    mid = {}
    deadline = deadline_in(p["secs"])
    t0 = time.monotonic()

    async def trickle():
        byte = 0
        while time.monotonic() < deadline:
            ch = b"X-Slow: "[byte] if byte < 8 else ord("a")
            for key, conn in list(open_conns.items()):
                try:
                    conn.send_nowait(bytes([ch]))
                except OSError:
                    closed_at.append(time.monotonic() - t0)
                    del open_conns[key]
            byte += 1
            await asyncio.sleep(min(p["interval"], max(0.0, deadline - time.monotonic())))

    async def probe():
        while time.monotonic() < deadline:
            t = time.monotonic()
            outcome = await wire.http_outcome(ctx.port, "GET", "/healthz", timeout=3)
            probes.append((outcome[0] == "status" and outcome[1] == 200, time.monotonic() - t,
                           outcome))
            ctx.progress["healthz probes ok"] = f"{sum(1 for x in probes if x[0])}/{len(probes)}"
            if not mid and time.monotonic() - t0 > p["secs"] / 2:
                mid["connections"] = await metric(ctx, "ripple_connections")
                try:
                    ws, status, _ = await wire.ws_open(ctx.port, "/ws", timeout=3)
                    mid["ws"] = status
                    if ws:
                        ws.close()
                except (OSError, asyncio.TimeoutError, ValueError, wire.Closed) as err:
                    mid["ws"] = f"{type(err).__name__}"
            await asyncio.sleep(max(0.0, t + 1.0 - time.monotonic()))

    await asyncio.gather(trickle(), probe())
    # A connection the server closed is noticed on the next byte sent to it.
    for key, conn in list(open_conns.items()):
        try:
            conn.send_nowait(b"a")
        except OSError:
            closed_at.append(time.monotonic() - t0)
            del open_conns[key]
    good = sum(1 for ok, _, _ in probes if ok)
    worst = max((s for _, s, _ in probes), default=0)
    bad = collections.Counter(wire.describe(o) for ok, _, o in probes if not ok)
    ctx.got(f"slowloris for {p['secs']}s (a byte every {p['interval']:g}s): /healthz probes "
            f"{good}/{len(probes)} answered 200, worst {worst:.2f}s"
            + (f", failures {dict(bad)}" if bad else ""))
    ctx.got(f"while it ran: ripple_connections {mid.get('connections')} (the bystander holds 3 "
            f"WebSockets), a new /ws handshake got "
            f"{mid.get('ws')}; slow connections closed by the server: {len(closed_at)}"
            + (f" (first after {min(closed_at):.1f}s)" if closed_at else "")
            + f", still open at the end: {len(open_conns)}")
    ctx.check(probes and good == len(probes),
              f"/healthz answered while the slowloris ran: {good}/{len(probes)}")
    ctx.close_all()

    # SIGTERM with one partial header open: a server of its own, nothing else connected.
    bound = ctx.run.shutdown_timeout + 2
    server = await ctx.extra_server("shutdown", ["--api-key", ctx.api_key])
    partial = ctx.track(await wire.connect(server.port, timeout=5))
    await partial.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-a", 5)
    await asyncio.sleep(0.5)
    wait = max(bound + 1, p["exit_wait"])
    secs = await server.terminate(wait)
    seen = await partial.peek_line(1)
    shown = f"exited after {secs:.2f}s" if secs is not None else f"did not exit within {wait}s (killed)"
    ctx.got(f"SIGTERM with one partial header open (shutdown_timeout_secs "
            f"{ctx.run.shutdown_timeout}): {shown}; the partial connection saw {seen}")
    ctx.check(secs is not None and secs <= bound,
              f"exit within shutdown_timeout_secs + 2 = {bound}s after SIGTERM: {shown}")


# --- 5. recovery larger than the queue ----------------------------------------------------------------

async def recover(ctx, channel, epoch, since, top):
    """Subscribes with since and reads everything: (subscribed reply, offsets, close)."""
    ws = ctx.track(await wire.ws_channels(ctx.port))
    await ws.send_json({"type": "subscribe", "channel": channel,
                        "since": {"epoch": epoch, "offset": since}, "id": 1})
    reply, offsets, closed = None, [], None
    deadline = deadline_in(30)
    try:
        while len(offsets) < top - since:
            quiet = min(deadline, deadline_in(5))
            msg = await ws.recv_json(quiet)
            if msg.get("id") == 1:
                reply = msg
            elif msg.get("type") == "message" and msg.get("channel") == channel:
                offsets.append(msg["offset"])
    except WsClosed as err:
        closed = err.code if err.code is not None else "TCP ended"
    except asyncio.TimeoutError:
        pass
    if closed is None:
        try:   # anything queued behind the last message (a close frame)?
            await ws.recv_json(deadline_in(0.5))
        except WsClosed as err:
            closed = err.code if err.code is not None else "TCP ended"
        except (asyncio.TimeoutError, ValueError):
            pass
    ws.close()
    return reply, offsets, closed


async def recovery(ctx):
    """Recovery of more bytes than client_queue_bytes: every missed message must arrive."""
    p = ctx.p
    channel = f"recover:{secrets.token_hex(4)}"
    epoch, top = await fill(ctx, channel, p["messages"])
    ctx.got(f"{channel}: {top} messages of {len(BIG):,} bytes published (epoch {epoch}), "
            f"{top * len(BIG) / 1048576:.1f} MiB in history")
    for since in (0, 80):
        reply, offsets, closed = await recover(ctx, channel, epoch, since, top)
        want = list(range(since + 1, top + 1))
        recovered = reply.get("recovered") if reply else None
        span = f"offsets {offsets[0]}..{offsets[-1]}" if offsets else "nothing"
        ctx.got(f"subscribe since {epoch}:{since}: reply "
                f"{reply.get('type') if reply else 'none'} recovered={recovered}, received "
                f"{len(offsets)} of {len(want)} missed messages ({span}), "
                f"{'closed ' + str(closed) if closed else 'connection open'}")
        ctx.check(recovered is True and offsets == want and not closed,
                  f"since offset {since}: recovered:true and all {len(want)} missed messages "
                  f"in order (got recovered={recovered}, {len(offsets)} messages"
                  f"{', closed ' + str(closed) if closed else ''})")


# --- 6. deep JSON -----------------------------------------------------------------------------------

async def deep_json(ctx):
    """A publish nested deeper than serde_json re-reads; then its channel's history."""
    p = ctx.p
    channel = f"deep:{secrets.token_hex(4)}"
    data = "[" * p["depth"] + "]" * p["depth"]
    ws = ctx.track(await wire.ws_channels(ctx.port))
    command = '{"type":"publish","channel":"%s","data":%s,"id":1}' % (channel, data)
    await ws.send(wire.frame(TEXT, command))
    try:
        reply, _ = await wire.wait_reply(ws, 1, deadline_in(5))
        answer = reply.get("type") + (f" {reply.get('code')}" if reply.get("code") else "")
    except WsClosed as err:
        reply, answer = None, f"closed {err.code}"
    except asyncio.TimeoutError:
        reply, answer = None, "no reply within 5s"
    ctx.got(f"publish of {len(data)} bytes nested {p['depth']} deep on /ws: {answer}")
    still_open = False
    if not ws.closed:
        try:
            await ws.send_json({"type": "ping", "id": 2})
            pong, _ = await wire.wait_reply(ws, 2, deadline_in(5))
            still_open = pong.get("type") == "pong"
        except (WsClosed, asyncio.TimeoutError, OSError):
            pass
    ctx.got(f"the publisher's connection afterwards: {'open (pong)' if still_open else 'gone'}")
    ctx.check(reply is not None and reply.get("type") == "error",
              f"the publish is refused with an error reply (got: {answer})")
    ctx.check(still_open, "the publisher's connection stays open")

    outcome = await wire.http_outcome(ctx.port, "GET", f"/api/channels/{channel}/history",
                                      ctx.auth, timeout=5)
    ctx.got(f"GET /api/channels/{channel}/history: {wire.describe(outcome)}"
            + (f" {outcome[2][:120]!r}" if outcome[0] == "status" else ""))
    ctx.check(outcome[0] == "status" and outcome[1] == 200,
              f"the API history is answered, connection not dropped ({wire.describe(outcome)})")
    other = ctx.track(await wire.ws_channels(ctx.port))
    await other.send_json({"type": "history", "channel": channel, "id": 3})
    try:
        reply, _ = await wire.wait_reply(other, 3, deadline_in(5))
        shown = f"{reply.get('type')} with {len(reply.get('messages', []))} messages"
    except WsClosed as err:
        shown = f"closed {err.code}"
    except asyncio.TimeoutError:
        shown = "no reply within 5s"
    ctx.got(f"history command on /ws for that channel: {shown}")


# --- 7. shutdown vs publish -------------------------------------------------------------------------

class Subscriber:
    def __init__(self, ws):
        self.ws = ws
        self.offsets = set()
        self.end = None

    async def read(self, channel, deadline):
        try:
            while True:
                msg = await self.ws.recv_json(deadline)
                if msg.get("type") == "message" and msg.get("channel") == channel:
                    self.offsets.add(msg["offset"])
        except WsClosed as err:
            self.end = err.code if err.code is not None else "no close frame"
        except asyncio.TimeoutError:
            self.end = "still open"
        except (OSError, ValueError) as err:
            self.end = type(err).__name__


async def shutdown_publish(ctx):
    """SIGTERM while the API publishes: every publish answered 200 must reach every subscriber
    before its close 1001. The race is narrow (publishes in flight when the SIGTERM comes), so
    it runs in rounds, each on a fresh server (the first is the one the bystander uses)."""
    p = ctx.p
    bound = ctx.run.shutdown_timeout + 2
    totals = collections.Counter()
    ends, exits = collections.Counter(), []
    for round_no in range(1, p["rounds"] + 1):
        if round_no == 1:
            server = ctx.server
        else:
            server = await ctx.extra_server(f"round{round_no}", ["--api-key", ctx.api_key])
        r = await shutdown_round(ctx, server, bound)
        ctx.close_all()
        ctx.got(f"round {round_no}: {r['subs']} subscribers; {r['acked']} publishes answered 200 ({r['late']} sent at or after "
                f"the SIGTERM; burst of {r['burst']}: {r['burst_outcomes']}); deliveries missing "
                f"{r['missing']} of {r['acked'] * r['subs']} ({r['subs_missing']} subscribers "
                f"missed one; the last acknowledged offset reached {r['reached_last']}); ends "
                f"{r['ends']}; exit {r['exit']}")
        for key in ("acked", "missing", "deliveries"):
            totals[key] += r[key]
        totals["rounds_missing"] += r["missing"] > 0
        ends.update(r["ends"])
        exits.append(r["exit_secs"])
    ctx.check(totals["acked"] and totals["missing"] == 0,
              f"every 200-acknowledged publish reached every subscriber: {totals['missing']} "
              f"deliveries missing of {totals['deliveries']} (in {totals['rounds_missing']} of "
              f"{p['rounds']} rounds)")
    ctx.check(set(ends) == {1001}, f"every subscriber closed with 1001: {dict(ends)}")
    slowest = None if None in exits else max(exits)
    ctx.check(slowest is not None and slowest <= bound,
              f"exit within shutdown_timeout_secs + 2 = {bound}s: slowest "
              + (f"{slowest:.2f}s" if slowest is not None else "did not exit (killed)"))


async def shutdown_round(ctx, server, bound):
    """Subscribers, paced publishers, then a burst of publishes written together on connections
    opened before, and SIGTERM right after. The figures of the round."""
    p = ctx.p
    port = server.port
    channel = f"shutdown:{secrets.token_hex(4)}"
    headers = {**ctx.auth, "Content-Type": "application/json"}

    async def subscribe():
        ws = ctx.track(await wire.ws_channels(port, timeout=10))
        await ws.send_json({"type": "subscribe", "channel": channel, "id": 1})
        reply, _ = await wire.wait_reply(ws, 1, deadline_in(10))
        if reply.get("type") != "subscribed":
            raise ValueError(f"subscribe: {reply}")
        ctx.progress["subscribers"] = ctx.progress.get("subscribers", 0) + 1
        return Subscriber(ws)

    results = await bounded([subscribe] * p["subs"], 100)
    subs = [r for r in results if isinstance(r, Subscriber)]
    if len(subs) < p["subs"]:
        ctx.got(f"only {len(subs)} of {p['subs']} subscribers: {failures(results)}")
    budget = deadline_in(ctx.run.shutdown_timeout + 30)
    readers = [asyncio.create_task(s.read(channel, budget)) for s in subs]
    acked = {}            # offset -> True if the publish was sent at or after the SIGTERM
    term = {}

    async def publisher(k):
        n, refused_since = 0, None
        while time.monotonic() < budget:
            n += 1
            t = time.monotonic()
            body = json.dumps({"channel": channel, "data": {"p": k, "n": n}})
            outcome = await wire.http_outcome(port, "POST", "/api/publish", headers, body, 5)
            if outcome[0] == "status" and outcome[1] == 200:
                acked[json.loads(outcome[2])["offset"]] = "at" in term and term["at"] <= t
                ctx.progress["publishes answered 200"] = len(acked)
            elif "at" in term:
                refused_since = refused_since or time.monotonic()
                if time.monotonic() - refused_since > 1.0:
                    return
            await asyncio.sleep(max(0.0, t + p["pace"] - time.monotonic()))

    async def burst_answer(conn):
        """The answer to a publish of the burst."""
        deadline = deadline_in(10)
        try:
            status, head = await wire.read_head(conn, deadline)
            answer = await conn.read_exact(int(head.get("content-length", 0)), deadline)
        except (asyncio.TimeoutError, wire.Closed, OSError, ValueError) as err:
            burst_outcomes[type(err).__name__] += 1
            return
        burst_outcomes[f"HTTP {status}"] += 1
        if status == 200:
            acked[json.loads(answer)["offset"]] = True

    publishers = [asyncio.create_task(publisher(k)) for k in range(p["publishers"])]
    await asyncio.sleep(p["lead"])
    burst = [ctx.track(r) for r in
             await bounded([lambda: wire.connect(port, timeout=5)] * p["burst"])
             if isinstance(r, wire.Conn)]
    burst_outcomes = collections.Counter()
    if server is ctx.server:
        await ctx.finish_monitor()
        ctx.server_stopped_by_attack = True
    for k, conn in enumerate(burst):
        body = json.dumps({"channel": channel, "data": {"burst": k}})
        conn.send_nowait(wire.http_request_bytes("POST", "/api/publish", headers, body))
    term["at"] = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    bursting = asyncio.gather(*(burst_answer(conn) for conn in burst))
    try:
        await asyncio.wait_for(server.proc.wait(), bound + 8)
        exit_secs = time.monotonic() - term["at"]
    except asyncio.TimeoutError:
        exit_secs = None
        await server.kill()
    await asyncio.gather(*publishers, bursting, return_exceptions=True)
    _, pending = await asyncio.wait(readers, timeout=5)
    for task in pending:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)

    missing = {s: set(acked) - s.offsets for s in subs}
    last = max(acked, default=None)
    return {
        "subs": len(subs),
        "acked": len(acked),
        "late": sum(1 for late in acked.values() if late),
        "burst": len(burst),
        "burst_outcomes": dict(burst_outcomes),
        "missing": sum(len(m) for m in missing.values()),
        "deliveries": len(acked) * len(subs),
        "subs_missing": sum(1 for m in missing.values() if m),
        "reached_last": f"{sum(1 for s in subs if last in s.offsets)}/{len(subs)}" if last else "-",
        "ends": dict(collections.Counter(s.end for s in subs)),
        "exit_secs": exit_secs,
        "exit": f"{exit_secs:.2f}s after SIGTERM" if exit_secs is not None else
                f"none within {bound + 8}s (killed)",
    }


# --- 8. small holes ---------------------------------------------------------------------------------

async def continuation_flood(ctx):
    """A fragmented message that never ends: empty continuation frames until the server closes
    (it should, with 1009), or the count or time bound."""
    p = ctx.p
    ws = ctx.track(await wire.ws_channels(ctx.port))
    key = os.urandom(4)
    batch_frames = 10_000
    batch = wire.frame(CONT, b"", fin=False, key=key) * batch_frames
    deadline = deadline_in(p["secs"])
    closed = {}

    async def watch():
        try:
            while True:
                await ws.recv(deadline_in(p["secs"] + 5))
        except WsClosed as err:
            closed["code"] = err.code if err.code is not None else "TCP ended, no close frame"
            closed["at"] = time.monotonic() - t0
        except asyncio.TimeoutError:
            pass

    t0 = time.monotonic()
    watcher = asyncio.create_task(watch())
    sent, why = 0, "time bound"
    try:
        await ws.send(wire.frame(TEXT, b"", fin=False, key=key))
        while sent < p["max_frames"] and not watcher.done():
            await ws.send(batch, left(deadline))
            sent += batch_frames
            ctx.progress["continuation frames sent"] = sent
        why = "the server closed" if watcher.done() else "count bound"
    except asyncio.TimeoutError:
        why = "time bound (or the server stopped reading)"
    except OSError as err:
        why = f"{type(err).__name__}"
    secs = time.monotonic() - t0
    try:
        await asyncio.wait_for(watcher, 3)
    except asyncio.TimeoutError:
        watcher.cancel()
    code = closed.get("code")
    ctx.got(f"empty continuation frames: {sent:,} sent in {secs:.1f}s ({rate(sent, secs)}), "
            f"stopped by {why}; server: "
            + (f"closed {code} after {closed['at']:.1f}s" if closed else "no close"))
    ctx.check(code == 1009, f"endless continuation frames closed with 1009 (got: {code or 'no close'})")
    ws.close()


async def small_holes(ctx):
    """Endless empty continuation frames; odd channel names in the API; /chat without a token
    on a server with a JWT secret."""
    await continuation_flood(ctx)
    for label, name in (("a 300-byte channel name", "a" * 300), ("a name with %00", "ab%00cd")):
        outcome = await wire.http_outcome(ctx.port, "GET", f"/api/channels/{name}/history",
                                          ctx.auth, timeout=5)
        ctx.got(f"GET /api/channels/<{label}>/history: {wire.describe(outcome)}")
        ctx.check(outcome[0] == "status" and outcome[1] == 400,
                  f"API history with {label}: 400 (got {wire.describe(outcome)})")

    server = await ctx.extra_server("jwt", ["--jwt-secret", f"abuse-{secrets.token_hex(8)}"])
    try:
        chat, status, body = await wire.ws_open(server.port, "/chat", timeout=5)
        shown = f"HTTP {status}" + (f" {body[:80]!r}" if body else "")
        if chat:
            chat.close()
    except (OSError, asyncio.TimeoutError, ValueError, wire.Closed) as err:
        status, shown = None, f"{type(err).__name__}: {err}"
    ctx.got(f"/chat without a token on a server with a JWT secret: {shown}")
    ctx.check(status == 401, f"/chat without a token on a JWT server: 401 (got {shown})")


ATTACKS = {
    1: ("unread answers", "POST /rpc history and GET /poll since=EPOCH:0 on a channel of 60 KiB "
        "messages, answers never read", unread_answers),
    2: ("publishing without a cap", "one anonymous client: 60 KiB publishes each to a new "
        "channel, then subscribe/unsubscribe pairs on fresh names", publish_flood),
    3: ("pongs", "pings as fast as possible, pongs never read (one client reads 4 KiB every 5 s)",
        pong_flood),
    4: ("slowloris", "connections sending a header byte every 2 s; then SIGTERM with one "
        "partial header open", slowloris),
    5: ("recovery > queue", "subscribe with since over 100 x 60 KiB of history", recovery),
    6: ("deep JSON", "a publish nested 129 deep, then its history", deep_json),
    7: ("shutdown vs publish", "SIGTERM while the API publishes to many subscribers",
        shutdown_publish),
    8: ("small holes", "endless empty continuations; 300-byte and %00 channel names in the API; "
        "/chat without a token on a JWT server", small_holes),
}
