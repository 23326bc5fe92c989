"""Hostile clients against a real `ripple serve`: each attack runs against a fresh server on
127.0.0.1 while a bystander (monitor.py, its own process) uses the same server, and is judged
PASS or FAIL against its bound.

usage: abuse.py --binary PATH [--quick] [--only N[,N…]]… [--out DIR]
                [--max-rss-mb MB] [--abort-rss-mb MB] [--max-latency-ms MS]
                [--shutdown-timeout SECS]

Per attack it prints the server's RSS before / peak / after (sampled every 100 ms by the
monitor; the kernel's VmHWM beside it), the bystander's lost messages and worst latencies, what
the attacker got, and PASS or FAIL with the reasons. The bystander's latency is judged only
with --max-latency-ms (0, the default: reported, not judged). Last line: "N passed, N failed"; exit 1
when an attack failed, 2 for a usage or setup error.

env ABUSE_SERVER_ARGS: extra `ripple serve` flags for every server (split on whitespace), to
try a setting against the attacks (e.g. "--publish-rate 100").

Every attack is bounded in count and in time (a budget per attack, after which it is cancelled
and fails), and is cancelled as well when the server's RSS passes --abort-rss-mb (the machine is
shared: an unbounded server must not take it down). Servers are started here and stopped here,
by PID, also on failure; their PIDs are written to OUT/pids for the calling script's trap.
"""

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import attacks  # noqa: E402
import wire  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
READY_SECS = 30        # a server must listen within this
SETTLE = {"full": 5.0, "quick": 3.0}   # seconds between the attacker leaving and "after"


# --- servers ----------------------------------------------------------------------------------------

def free_port():
    import socket
    for _ in range(200):
        port = random.randint(20000, 32767)
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port on 127.0.0.1")


def server_env():
    """The servers' environment, the same whatever the caller's shell: no RIPPLE_* settings
    (the flags and ripple.toml say everything), RUST_BACKTRACE=0 (a panic's symbolized backtrace
    alone costs some 140 MB of RSS with debug info, which would be charged to the attack) and
    RUST_LOG=info unless ABUSE_RUST_LOG says otherwise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RIPPLE_", "RUST_"))}
    env["RUST_BACKTRACE"] = "0"
    env["RUST_LOG"] = os.environ.get("ABUSE_RUST_LOG", "info")
    return env


class Server:
    """One `ripple serve` process that this driver started."""

    def __init__(self, run, name, args):
        self.run = run
        self.name = name
        self.args = args
        self.port = free_port()
        self.proc = None
        self.log = os.path.join(run.out, f"{name}.log")

    @property
    def pid(self):
        return self.proc.pid

    async def start(self):
        config = os.path.join(self.run.out, "ripple.toml")
        argv = [self.run.binary, "serve", "--bind", f"127.0.0.1:{self.port}", "--config", config,
                *self.args, *self.run.server_args]
        log = open(self.log, "wb")
        self.proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env=server_env())
        log.close()
        self.run.started(self)
        deadline = time.monotonic() + READY_SECS
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                break
            try:
                conn = await wire.connect(self.port, timeout=1)
                conn.close()
                return self
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.1)
        tail = open(self.log, errors="replace").read()[-2000:]
        raise RuntimeError(f"server {' '.join(argv)} did not listen within {READY_SECS}s:\n{tail}")

    def alive(self):
        return self.proc is not None and self.proc.returncode is None

    async def terminate(self, wait):
        """SIGTERM, then the seconds it took to exit, or None if it had not exited after `wait`
        seconds (it is then killed)."""
        if not self.alive():
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), wait)
            return time.monotonic() - t0
        except asyncio.TimeoutError:
            await self.kill()
            return None

    async def kill(self):
        if self.alive():
            self.proc.kill()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                pass


# --- the monitor process ----------------------------------------------------------------------------

class Monitor:
    def __init__(self, run, server):
        self.run = run
        self.server = server
        self.proc = None
        self.figures = None

    async def start(self):
        channel = f"bystander:{secrets.token_hex(4)}"
        err = open(os.path.join(self.run.out, f"{self.server.name}.monitor.log"), "wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, os.path.join(HERE, "monitor.py"), str(self.server.port),
            str(self.server.pid), channel,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err)
        err.close()
        self.run.children.append(self.proc)
        line = await self.readline(40)
        if line != "ready":
            raise RuntimeError(f"the bystander did not start: {line or 'no answer within 40s'}")

    async def readline(self, timeout):
        try:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except asyncio.TimeoutError:
            return None
        return raw.decode().strip()

    def tell(self, command):
        if self.proc and self.proc.returncode is None:
            self.proc.stdin.write(command.encode() + b"\n")

    async def report(self):
        """The monitor's figures (once; later calls return the same)."""
        if self.figures is not None:
            return self.figures
        self.tell("report")
        line = await self.readline(20)
        try:
            self.figures = json.loads(line) if line else {"error": "no report within 20s"}
        except json.JSONDecodeError:
            self.figures = {"error": f"bad report: {line[:200]}"}
        await self.stop()
        return self.figures

    async def stop(self):
        if self.proc and self.proc.returncode is None:
            self.proc.kill()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                pass


# --- one attack -------------------------------------------------------------------------------------

class Ctx:
    """What an attack function gets: the server, its parameters, and where its findings go."""

    def __init__(self, run, number, server, monitor):
        self.run = run
        self.number = number
        self.server = server
        self.monitor = monitor
        self.p = attacks.PARAMS[number][run.mode]
        self.api_key = run.api_key
        self.lines = []      # what the attacker got, printed as is
        self.checks = []     # (ok, text)
        self.conns = []      # every socket the attack opened: closed when it ends
        self.extra = []      # other servers the attack started
        self.monitor_done = False
        self.server_stopped_by_attack = False   # attack 7 stops the server itself
        self.progress = {}   # figures updated as the attack goes: shown if it is cancelled

    @property
    def port(self):
        return self.server.port

    @property
    def auth(self):
        return {"Authorization": f"Bearer {self.api_key}"}

    def got(self, line):
        self.lines.append(line)
        print(f"   attacker: {line}", flush=True)

    def check(self, ok, text):
        self.checks.append((bool(ok), text))

    def track(self, conn):
        self.conns.append(conn)
        return conn

    def close_all(self):
        for conn in self.conns:
            try:
                conn.close(reset=True)
            except OSError:
                pass
        self.conns.clear()

    async def extra_server(self, name, args):
        server = Server(self.run, f"{self.server.name}-{name}", args)
        self.extra.append(server)
        return await server.start()

    async def finish_monitor(self):
        """Ends the bystander's window now (before an attack stops the server itself)."""
        if self.monitor and not self.monitor_done:
            self.monitor.tell("end")
            self.monitor_done = True
            await self.monitor.report()


class Run:
    def __init__(self, args):
        self.binary = args.binary
        self.mode = "quick" if args.quick else "full"
        self.out = args.out
        self.max_rss = args.max_rss_mb
        self.abort_rss = args.abort_rss_mb
        self.max_latency = args.max_latency_ms
        self.shutdown_timeout = args.shutdown_timeout
        self.server_args = os.environ.get("ABUSE_SERVER_ARGS", "").split()
        self.api_key = f"abuse-{secrets.token_hex(8)}"
        self.results = []      # one dict per attack, written to results.json
        self.servers = []
        self.children = []     # every process started here: killed on SIGTERM/SIGINT
        self.pidfile = os.path.join(self.out, "pids")
        open(self.pidfile, "w").close()
        with open(os.path.join(self.out, "ripple.toml"), "w") as f:
            f.write(f"shutdown_timeout_secs = {self.shutdown_timeout}\n")

    def started(self, server):
        self.servers.append(server)
        self.children.append(server.proc)
        with open(self.pidfile, "a") as f:
            f.write(f"{server.pid}\n")

    def on_signal(self, signum):
        """Killed from outside (the script's timeout or trap, Ctrl-C): kill what we started."""
        for proc in self.children:
            if proc.returncode is None:
                try:
                    proc.kill()
                except ProcessLookupError:
                    pass
        print(f"abuse: stopped by signal {signum}; every process started here was killed",
              flush=True)
        os._exit(128 + signum)

    async def stop_all(self):
        for server in self.servers:
            await server.kill()


async def rss_watchdog(pid, cap_mb):
    """Returns when the server's RSS passes cap_mb (the figure then), never otherwise."""
    while True:
        rss = rss_mb(pid)
        if rss is not None and rss > cap_mb:
            return rss
        await asyncio.sleep(0.1)


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def healthz(port, timeout=3.0):
    t0 = time.monotonic()
    outcome = await wire.http_outcome(port, "GET", "/healthz", timeout=timeout)
    return outcome[0] == "status" and outcome[1] == 200, time.monotonic() - t0, outcome


async def run_attack(run, number):
    name, title, fn = attacks.ATTACKS[number]
    budget = attacks.PARAMS[number][run.mode]["budget"]
    print(f"\n== attack {number}: {name} — {title}", flush=True)
    print(f"   {run.mode} form: {attacks.PARAMS[number][run.mode]}", flush=True)
    t0 = time.monotonic()
    server = await Server(run, f"attack{number}", ["--api-key", run.api_key]).start()
    monitor = Monitor(run, server)
    ctx = None
    try:
        await monitor.start()
        ctx = Ctx(run, number, server, monitor)
        monitor.tell("start")
        t_attack = time.monotonic()
        attack = asyncio.create_task(fn(ctx))
        watchdog = asyncio.create_task(rss_watchdog(server.pid, run.abort_rss))
        done, _ = await asyncio.wait({attack, watchdog}, timeout=budget,
                                     return_when=asyncio.FIRST_COMPLETED)
        if attack not in done:
            attack.cancel()
            secs = time.monotonic() - t_attack
            why = (f"the server's RSS passed the abort cap ({watchdog.result():.0f} MB > "
                   f"{run.abort_rss:g} MB) {secs:.1f}s into the attack" if watchdog in done else
                   f"the attack did not finish within its budget of {budget}s")
            ctx.check(False, f"aborted: {why}")
            ctx.got(f"when cancelled: {ctx.progress or 'nothing recorded yet'}")
        watchdog.cancel()
        await asyncio.gather(attack, watchdog, return_exceptions=True)
        if attack.done() and not attack.cancelled() and attack.exception():
            err = attack.exception()
            ctx.check(False, f"the attack raised {type(err).__name__}: {err}")
            with open(os.path.join(run.out, f"attack{number}.trace"), "w") as trace:
                traceback.print_exception(err, file=trace)
        ctx.close_all()
        if not ctx.monitor_done:
            monitor.tell("end")
            await asyncio.sleep(SETTLE[run.mode])
            ctx.monitor_done = True
        if server.alive() and not ctx.server_stopped_by_attack:
            ok, secs, outcome = await healthz(server.port)
            ctx.check(ok, f"the server still answers /healthz ({wire.describe(outcome)}, {secs:.2f}s)")
        elif not ctx.server_stopped_by_attack:
            ctx.check(False, f"the server died (exit status {server.proc.returncode})")
        figures = await monitor.report()
    finally:
        if ctx:
            ctx.close_all()
            for extra in ctx.extra:
                await extra.kill()
        await monitor.stop()
        await server.kill()
    return verdict(run, number, ctx, figures, time.monotonic() - t0)


def verdict(run, number, ctx, f, secs):
    """Prints the figures and the checks; True when the attack passed."""
    checks = list(ctx.checks)
    if "error" in f:
        checks.append((False, f"monitor: {f['error']}"))
        f = {}
    else:
        peak = max(f.get("rss_peak_mb") or 0, f.get("rss_hwm_mb") or 0)
        after = f["rss_after_mb"] if f.get("rss_after_mb") is not None else "exited"
        print(f"   server RSS MB: before {f.get('rss_before_mb')}, peak {f.get('rss_peak_mb')} "
              f"({f.get('rss_peak_at_s')}s into the attack; VmHWM {f.get('rss_hwm_mb')}), "
              f"after {after}; fds {f.get('fds_before')} -> peak {f.get('fds_peak')}; "
              f"threads peak {f.get('threads_peak')}")
        print(f"   bystander: lost {f['lost']} (published {f['published']}, acknowledged "
              f"{f['acked']}, received {f['received']}, unanswered {f['unanswered']}), worst "
              f"latency {f['worst_latency_ms']} ms; echo {f['echoes']} round trips, worst "
              f"{f['echo_worst_ms']} ms, {f['echo_lost']} lost"
              + (f"; publish errors {f['publish_errors']}" if f["publish_errors"] else "")
              + (f"; disconnected: {', '.join(f['disconnects'])}" if f["disconnects"] else ""))
        checks.insert(0, (peak < run.max_rss, f"peak RSS {peak:.1f} MB < {run.max_rss:g} MB"))
        harmed = f["lost"] + f["unanswered"] + f["echo_lost"] + f["out_of_order"]
        checks.insert(1, (harmed == 0 and not f["disconnects"],
                          f"bystander unharmed: lost {f['lost']}, unanswered {f['unanswered']}, "
                          f"echo lost {f['echo_lost']}, out of order {f['out_of_order']}, "
                          f"disconnects {len(f['disconnects'])}"))
        if run.max_latency:
            worst = max(f["worst_latency_ms"], f["echo_worst_ms"])
            checks.insert(2, (worst < run.max_latency,
                              f"bystander's worst latency {worst} ms < {run.max_latency:g} ms"))
    passed = all(ok for ok, _ in checks)
    for ok, text in checks:
        print(f"   {'ok  ' if ok else 'FAIL'} {text}")
    print(f"== attack {number}: {'PASS' if passed else 'FAIL'} ({secs:.1f}s)", flush=True)
    run.results.append({"attack": number, "name": attacks.ATTACKS[number][0], "passed": passed,
                        "seconds": round(secs, 1), "figures": f, "attacker": ctx.lines,
                        "checks": [{"ok": ok, "text": text} for ok, text in checks]})
    return passed


# --- main -------------------------------------------------------------------------------------------

def raise_fd_limit(want=65536):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def selection(only):
    chosen = []
    for item in only or []:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit() or int(part) not in attacks.ATTACKS:
                sys.exit(f"abuse: --only {part}: attacks are {', '.join(map(str, attacks.ATTACKS))}")
            chosen.append(int(part))
    return sorted(set(chosen)) or list(attacks.ATTACKS)


async def main(args):
    run = Run(args)
    run.fd_limit = raise_fd_limit()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, run.on_signal, signum)
    numbers = selection(args.only)
    print(f"abuse: {run.mode} form, attacks {', '.join(map(str, numbers))}; server {run.binary}; "
          f"bounds: peak RSS < {run.max_rss:g} MB (abort at {run.abort_rss:g} MB), bystander lost 0"
          + (f", bystander latency < {run.max_latency:g} ms; " if run.max_latency else "; ") +
          f"shutdown_timeout_secs {run.shutdown_timeout}; open files limit {run.fd_limit}"
          + (f"; extra server flags: {' '.join(run.server_args)}" if run.server_args else ""),
          flush=True)
    passed = failed = 0
    t0 = time.monotonic()
    try:
        for number in numbers:
            try:
                ok = await run_attack(run, number)
            except Exception as err:
                print(f"   FAIL the harness could not run the attack: {type(err).__name__}: {err}")
                print(f"== attack {number}: FAIL", flush=True)
                ok = False
            passed += ok
            failed += not ok
    finally:
        await run.stop_all()
        with open(os.path.join(run.out, "results.json"), "w") as f:
            json.dump({"mode": run.mode, "results": run.results}, f, indent=1)
    print(f"\nabuse: {time.monotonic() - t0:.0f}s; logs and results.json in {run.out}")
    for r in run.results:
        print(f"  attack {r['attack']} {r['name']:<24} {'PASS' if r['passed'] else 'FAIL'} "
              f"{r['seconds']:>6.1f}s")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True, help="the ripple binary")
    ap.add_argument("--quick", action="store_true", help="smaller counts (CI)")
    ap.add_argument("--only", action="append", help="attack numbers (repeatable, or 1,3)")
    ap.add_argument("--out", default="out/abuse", help="logs and results.json")
    ap.add_argument("--max-rss-mb", type=float, default=float(os.environ.get("ABUSE_MAX_RSS_MB", 150)))
    ap.add_argument("--abort-rss-mb", type=float,
                    default=float(os.environ.get("ABUSE_ABORT_RSS_MB", 1024)))
    ap.add_argument("--max-latency-ms", type=float,
                    default=float(os.environ.get("ABUSE_MAX_LATENCY_MS", 0)))
    ap.add_argument("--shutdown-timeout", type=int,
                    default=int(os.environ.get("ABUSE_SHUTDOWN_TIMEOUT", 5)))
    args = ap.parse_args()
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"abuse: {args.binary} is not an executable")
    os.makedirs(args.out, exist_ok=True)
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
