"""Memory per connection of a real `ripple serve` under a connection flood, in three states:
TCP connections that sent nothing, `/ws` clients past their greeting, and `/ws` clients each
subscribed to one of 100 channels. Prints the server's RSS before and after each step and the
difference per connection; every client is opened by this process on 127.0.0.1.

usage: python3 tests/abuse/flood.py BINARY [--connections N]
"""

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402
from abuse import free_port, server_env  # noqa: E402

SETTLE = 2.0


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def settled_rss(pid):
    await asyncio.sleep(SETTLE)
    return rss_kib(pid)


async def in_batches(factories, batch=500):
    out = []
    for start in range(0, len(factories), batch):
        out.extend(await asyncio.gather(*(f() for f in factories[start:start + batch])))
    return out


async def subscribed(port, n):
    ws = await wire.ws_channels(port, timeout=30)
    await ws.send_json({"type": "subscribe", "channel": f"flood:{n % 100}", "id": 1})
    deadline = wire.deadline_in(30)
    await wire.wait_reply(ws, 1, deadline)
    return ws


async def start(binary, count):
    port = free_port()
    argv = [binary, "serve", "--bind", f"127.0.0.1:{port}", "--max-connections", str(count + 100)]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=server_env())
    for _ in range(100):
        try:
            (await wire.connect(port, timeout=1)).close()
            return proc, port
        except OSError:
            await asyncio.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not listen")


async def step(binary, count, name, factory):
    """One state on a fresh server (so that memory kept by the allocator from an earlier step
    does not hide this one's)."""
    proc, port = await start(binary, count)
    try:
        base = await settled_rss(proc.pid)
        t0 = time.monotonic()
        clients = await in_batches([lambda n=n: factory(port, n) for n in range(count)])
        rss = await settled_rss(proc.pid)
        per = (rss - base) / count
        print(f"flood: {name:32s} RSS {base / 1024:5.1f} -> {rss / 1024:6.1f} MiB"
              f" = {per:5.2f} KiB per connection ({time.monotonic() - t0:.1f}s)", flush=True)
        for client in clients:
            client.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def main(binary, count):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"flood: {count} connections from this process, each state on a fresh server")
    await step(binary, count, "TCP connected, nothing sent",
               lambda port, n: wire.connect(port, timeout=30))
    await step(binary, count, "/ws, past the greeting",
               lambda port, n: wire.ws_channels(port, timeout=30))
    await step(binary, count, "/ws, subscribed (100 channels)", subscribed)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--connections", type=int, default=10_000)
    args = parser.parse_args()
    asyncio.run(asyncio.wait_for(main(args.binary, args.connections), 600))
