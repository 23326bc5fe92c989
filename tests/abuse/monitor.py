"""The abuse harness's observer, in a process of its own so that an attacker busy in the driver
cannot delay it: it samples the server's memory and runs the bystander, a well-behaved client
whose service must not suffer from the attack.

usage: monitor.py PORT SERVER_PID CHANNEL      (started by abuse.py, not by hand)

- Sampler: every 100 ms, VmRSS, VmHWM and Threads from /proc/PID/status and the count of open
  file descriptors of the server.
- Bystander (Python `websockets`, no compression, no client keepalive): a /ws subscriber on
  CHANNEL; a /ws publisher that publishes {"n", "t"} to CHANNEL every 100 ms (t: CLOCK_MONOTONIC,
  the same clock in every process, so the subscriber measures the delivery latency); an /echo
  client with one round trip every 100 ms. A reply or echo missing after BYSTANDER_TIMEOUT
  seconds counts as lost.

stdin, one command a line: `start` (the attack begins), `end` (the attacker is gone),
`report` (stop, print the figures as one JSON line, exit). End of stdin = exit.
stdout: `ready` once the bystander is steady (or `failed WHY`), then the report.
"""

import asyncio
import json
import os
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

BYSTANDER_TIMEOUT = 5.0   # seconds for a publish reply or an echo
PERIOD = 0.1              # seconds between two publishes, between two echoes
SAMPLE_EVERY = 0.1        # seconds between two memory samples


# --- memory -----------------------------------------------------------------------------------------

def read_status(pid):
    """(VmRSS KiB, VmHWM KiB, threads, open fds), or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    kib = lambda key: int(fields.get(key, "0 kB").split()[0])
    return kib("VmRSS"), kib("VmHWM"), int(fields.get("Threads", "0")), fds


class Sampler:
    def __init__(self, pid):
        self.pid = pid
        self.samples = []      # (seconds since start, phase, rss KiB, fds)
        self.hwm = 0
        self.threads_peak = 0
        self.phase = "before"
        self.at_start = None   # the last sample before `start`
        self.exited_at = None
        self.t0 = time.monotonic()

    def sample(self):
        status = read_status(self.pid)
        if status is None:
            if self.exited_at is None:
                self.exited_at = time.monotonic() - self.t0
            return None
        rss, hwm, threads, fds = status
        self.hwm = max(self.hwm, hwm)
        self.threads_peak = max(self.threads_peak, threads)
        self.samples.append((time.monotonic() - self.t0, self.phase, rss, fds))
        return rss

    def mark(self, phase):
        if phase == "attack":
            self.sample()
            self.at_start = self.samples[-1] if self.samples else None
        self.phase = phase

    async def run(self):
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_EVERY)

    def report(self):
        self.sample()
        during = [s for s in self.samples if s[1] != "before"]
        before = self.at_start or (self.samples[0] if self.samples else None)
        peak = max(during, key=lambda s: s[2]) if during else None
        mib = lambda kib: round(kib / 1024, 1)
        return {
            "rss_before_mb": mib(before[2]) if before else None,
            "rss_peak_mb": mib(peak[2]) if peak else None,
            "rss_peak_at_s": round(peak[0] - (before[0] if before else 0), 1) if peak else None,
            "rss_hwm_mb": mib(self.hwm),
            "rss_after_mb": mib(self.samples[-1][2]) if self.samples and self.exited_at is None else None,
            "fds_before": before[3] if before else None,
            "fds_peak": max((s[3] for s in during), default=None),
            "threads_peak": self.threads_peak,
            "samples": len(self.samples),
            "server_exited": self.exited_at is not None,
        }


# --- the bystander ----------------------------------------------------------------------------------

class Bystander:
    def __init__(self, port, channel):
        self.base = f"ws://127.0.0.1:{port}"
        self.channel = channel
        self.sent = {}            # publish id -> monotonic time sent
        self.acked = set()        # offsets of `published` replies
        self.answered = set()     # publish ids answered (published or error)
        self.errors = []          # error replies to publishes
        self.received = []        # offsets received by the subscriber, in order
        self.worst_latency = 0.0
        self.echo_count = 0
        self.echo_lost = 0
        self.echo_worst = 0.0
        self.disconnects = []     # "sub: 1006 …", while the bystander was supposed to run
        self.publishing = True
        self.stopping = False
        self.tasks = []

    async def open(self, path):
        return await connect(self.base + path, compression=None, ping_interval=None,
                             proxy=None, open_timeout=BYSTANDER_TIMEOUT, close_timeout=2,
                             max_size=1 << 20)

    async def start(self):
        self.sub = await self.open("/ws")
        await self.expect(self.sub, "authenticated")
        await self.sub.send(json.dumps({"type": "subscribe", "channel": self.channel, "id": 0}))
        await self.expect(self.sub, "subscribed")
        self.pub = await self.open("/ws")
        await self.expect(self.pub, "authenticated")
        self.echo = await self.open("/echo")
        self.tasks = [asyncio.create_task(c) for c in
                      (self.subscriber(), self.publisher(), self.publish_replies(), self.echoer())]
        deadline = time.monotonic() + 10
        while len(self.received) < 3 or self.echo_count < 3:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not steady after 10 s: {len(self.received)} messages, "
                                   f"{self.echo_count} echoes, {self.disconnects}")
            await asyncio.sleep(0.05)

    async def expect(self, ws, kind):
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), BYSTANDER_TIMEOUT))
            if msg.get("type") == kind:
                return msg

    def closed(self, who, err):
        if not self.stopping:
            rcvd = getattr(err, "rcvd", None)
            code = rcvd.code if rcvd else "no close frame"
            self.disconnects.append(f"{who}: {code}")

    async def subscriber(self):
        try:
            async for raw in self.sub:
                msg = json.loads(raw)
                if msg.get("type") != "message" or msg.get("channel") != self.channel:
                    continue
                self.received.append(msg["offset"])
                latency = time.monotonic() - msg["data"]["t"]
                self.worst_latency = max(self.worst_latency, latency)
        except ConnectionClosed as err:
            self.closed("subscriber", err)

    async def publisher(self):
        n, t0 = 0, time.monotonic()
        try:
            while self.publishing:
                n += 1
                now = time.monotonic()
                msg = {"type": "publish", "channel": self.channel, "data": {"n": n, "t": now}, "id": n}
                self.sent[n] = now
                await asyncio.wait_for(self.pub.send(json.dumps(msg)), BYSTANDER_TIMEOUT)
                await asyncio.sleep(max(0.0, t0 + n * PERIOD - time.monotonic()))
        except ConnectionClosed as err:
            self.closed("publisher", err)
        except asyncio.TimeoutError:
            self.disconnects.append(f"publisher: a send blocked for {BYSTANDER_TIMEOUT:g}s")

    async def publish_replies(self):
        try:
            async for raw in self.pub:
                msg = json.loads(raw)
                if msg.get("type") == "published":
                    self.acked.add(msg["offset"])
                    self.answered.add(msg.get("id"))
                elif msg.get("type") == "error":
                    self.errors.append(msg.get("code"))
                    self.answered.add(msg.get("id"))
        except ConnectionClosed as err:
            self.closed("publisher", err)

    async def echoer(self):
        k, t0 = 0, time.monotonic()
        try:
            while not self.stopping:
                k += 1
                token = f"e{k}"
                sent = time.monotonic()
                await asyncio.wait_for(self.echo.send(token), BYSTANDER_TIMEOUT)
                try:
                    while await asyncio.wait_for(self.echo.recv(), BYSTANDER_TIMEOUT) != token:
                        pass
                    self.echo_count += 1
                    self.echo_worst = max(self.echo_worst, time.monotonic() - sent)
                except asyncio.TimeoutError:
                    self.echo_lost += 1
                await asyncio.sleep(max(0.0, t0 + k * PERIOD - time.monotonic()))
        except ConnectionClosed as err:
            self.closed("echo", err)
        except asyncio.TimeoutError:
            self.disconnects.append(f"echo: a send blocked for {BYSTANDER_TIMEOUT:g}s")

    async def stop(self):
        """Stops publishing, waits (bounded) for what is in flight, closes; the figures."""
        self.publishing = False
        deadline = time.monotonic() + BYSTANDER_TIMEOUT
        while time.monotonic() < deadline:
            caught_up = not self.acked or (self.received and self.received[-1] >= max(self.acked))
            if len(self.answered) >= len(self.sent) and caught_up:
                break
            await asyncio.sleep(0.05)
        self.stopping = True
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for ws in (self.sub, self.pub, self.echo):
            try:
                await asyncio.wait_for(ws.close(), 2)
            except Exception:
                pass
        return self.figures()

    def figures(self):
        received = set(self.received)
        top = max(self.acked | received, default=0)
        lost = sum(1 for offset in range(1, top + 1) if offset not in received)
        order = sum(1 for a, b in zip(self.received, self.received[1:]) if b != a + 1)
        return {
            "published": len(self.sent),
            "acked": len(self.acked),
            "unanswered": len(self.sent) - len(self.answered),
            "publish_errors": self.errors[:5],
            "received": len(self.received),
            "lost": lost,
            "out_of_order": order,
            "worst_latency_ms": round(self.worst_latency * 1000, 1),
            "echoes": self.echo_count,
            "echo_lost": self.echo_lost,
            "echo_worst_ms": round(self.echo_worst * 1000, 1),
            "disconnects": self.disconnects,
        }


# --- main -------------------------------------------------------------------------------------------

async def commands():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        yield line.decode().strip() if line else None
        if not line:
            return


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(port, pid, channel):
    sampler = Sampler(pid)
    sampling = asyncio.create_task(sampler.run())
    bystander = Bystander(port, channel)
    try:
        await asyncio.wait_for(bystander.start(), 20)
    except Exception as err:
        say(f"failed {type(err).__name__}: {err}")
        return
    say("ready")
    async for command in commands():
        if command == "start":
            sampler.mark("attack")
        elif command == "end":
            sampler.mark("after")
        elif command == "report" or command is None:
            figures = await bystander.stop()
            sampling.cancel()
            figures.update(sampler.report())
            say(json.dumps(figures))
            return


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
