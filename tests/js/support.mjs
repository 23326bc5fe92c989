// Helpers shared by the ripple.js unit tests (tests/js) and the browser tests (tests/browser):
// a real Ripple server in a child process, a TCP relay in front of it that a test can cut,
// refuse or silence, HS256 tokens, and the HTTP API. Node built-ins only.
//
// env: RIPPLE_SERVE  the server binary (default target/release/examples/serve, which
//                    scripts/browser.sh builds); started as `SERVE 127.0.0.1:PORT` with
//                    RIPPLE_API_KEY and, for JWT mode, RIPPLE_JWT_SECRET.
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '../..');
export const SERVE = process.env.RIPPLE_SERVE || path.join(ROOT, 'target/release/examples/serve');
export const API_KEY = 'test-api-key';
export const JWT_SECRET = 'test-jwt-secret';
const READY_MS = 30_000;

const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Starts the server on `port` (default: a free one) and waits for its `listening on` line.
 * @param {{port?: number, jwt?: boolean, apiKey?: string | null}} [options]
 */
export async function startServer(options = {}) {
  const port = options.port ?? await freePort();
  const env = { ...process.env, RIPPLE_API_KEY: options.apiKey === null ? '' : (options.apiKey ?? API_KEY) };
  env.RIPPLE_JWT_SECRET = options.jwt ? JWT_SECRET : '';
  const child = spawn(SERVE, [`127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'], env });
  running.add(child);
  const server = {
    port,
    options,
    process: child,
    output: '',
    url: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}/ws`,
    /** SIGTERM (the server closes every WebSocket with 1001), SIGKILL after 5 s. */
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
    /** Stops it and starts a new one on the same port (in-memory history is gone). */
    async restart() {
      await server.stop();
      return startServer({ ...options, port });
    },
  };
  child.on('exit', () => running.delete(child));
  child.stderr.on('data', (d) => { server.output = (server.output + d).slice(-20_000); });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${SERVE} printed no "listening on" within ${READY_MS / 1000}s`)), READY_MS);
    child.stdout.on('data', (d) => {
      server.output += d;
      if (/^listening on /m.test(server.output)) { clearTimeout(timer); resolve(); }
    });
    child.on('error', (err) => { clearTimeout(timer); reject(new Error(`cannot start ${SERVE}: ${err.message} (build it: cargo build --release -p ripple-server --example serve)`)); });
    child.on('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`${SERVE} exited (${code ?? sig}) before listening:\n${server.output}`)); });
  });
  return server;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/**
 * A TCP relay 127.0.0.1:(free port) → 127.0.0.1:target. `cut()` drops every connection (as a
 * network that went away), `refuse` turns new ones away, `freeze()` keeps the current
 * connections open but forwards nothing more on them (a peer that went silent: only a ping
 * deadline can tell); new connections work.
 */
export function startRelay(target) {
  const sockets = new Set();
  const relay = {
    port: 0,
    refuse: false,
    accepted: 0,
    frozen: new WeakSet(),
    freeze() {
      for (const s of sockets) relay.frozen.add(s);
    },
    cut() {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    close() {
      relay.cut();
      srv.close();
    },
  };
  const srv = net.createServer((client) => {
    if (relay.refuse) { client.destroy(); return; }
    relay.accepted += 1;
    const upstream = net.connect({ port: target, host: '127.0.0.1' });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => { sockets.delete(s); client.destroy(); upstream.destroy(); });
      s.on('error', () => {});
    }
    client.on('data', (d) => { if (!relay.frozen.has(client)) upstream.write(d); });
    upstream.on('data', (d) => { if (!relay.frozen.has(upstream)) client.write(d); });
  });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      relay.port = srv.address().port;
      relay.url = `http://127.0.0.1:${relay.port}`;
      relay.ws = `ws://127.0.0.1:${relay.port}/ws`;
      resolve(relay);
    });
  });
}

/** An HS256 JWT signed with the test servers' secret. */
export function mintToken({ sub, channels = ['*'], exp = Math.floor(Date.now() / 1000) + 3600 }) {
  const part = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const head = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub, channels, exp })}`;
  return `${head}.${createHmac('sha256', JWT_SECRET).update(head).digest('base64url')}`;
}

/** `POST /api/publish`; resolves with the JSON answer. */
export async function apiPublish(server, channel, data) {
  const res = await fetch(`${server.url}/api/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ channel, data }),
  });
  if (!res.ok) throw new Error(`POST /api/publish: ${res.status} ${await res.text()}`);
  return res.json();
}

/** Resolves when `predicate()` is true (polled every 20 ms); rejects after `ms` with `what`. */
export async function waitFor(predicate, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A small `EventSource` for Node (20 and 22 have none), on `fetch`, for ripple.js's `sse`
 * transport: named events with `data`, `id:` kept as `lastEventId` and sent back as
 * `Last-Event-ID` when it reconnects by itself (after `retry:` ms) once a stream it had ends;
 * CLOSED, with an `error` event, for an HTTP error or another content type. Enough of the HTML
 * standard's algorithm for these tests, not all of it (no `withCredentials`, no CORS).
 */
export class NodeEventSource extends EventTarget {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;
  readyState = NodeEventSource.CONNECTING;
  lastEventId = '';
  /** Every URL and Last-Event-ID this source connected with, for tests. */
  attempts = [];
  #retry = 2000;
  #controller = null;

  constructor(url) {
    super();
    this.url = String(url);
    this.#connect();
  }

  close() {
    this.readyState = NodeEventSource.CLOSED;
    this.#controller?.abort();
  }

  async #connect() {
    const controller = new AbortController();
    this.#controller = controller;
    const headers = { accept: 'text/event-stream', 'cache-control': 'no-store' };
    if (this.lastEventId) headers['last-event-id'] = this.lastEventId;
    this.attempts.push({ url: this.url, lastEventId: this.lastEventId });
    let res;
    try {
      res = await fetch(this.url, { headers, signal: controller.signal });
    } catch {
      this.#reconnect();
      return;
    }
    if (this.readyState === NodeEventSource.CLOSED) {
      res.body?.cancel().catch(() => {});
      return;
    }
    if (res.status !== 200 || !/^text\/event-stream/i.test(res.headers.get('content-type') ?? '')) {
      res.body?.cancel().catch(() => {});
      this.readyState = NodeEventSource.CLOSED;
      this.dispatchEvent(new Event('error'));
      return;
    }
    this.readyState = NodeEventSource.OPEN;
    this.dispatchEvent(new Event('open'));
    try {
      await this.#read(res.body);
    } catch {
      // the stream broke: reconnect as if it had ended
    }
    this.#reconnect();
  }

  #reconnect() {
    if (this.readyState === NodeEventSource.CLOSED) return;
    this.readyState = NodeEventSource.CONNECTING;
    this.dispatchEvent(new Event('error'));
    setTimeout(() => {
      if (this.readyState !== NodeEventSource.CLOSED) this.#connect();
    }, this.#retry);
  }

  async #read(body) {
    const decoder = new TextDecoder();
    let buffer = '';
    let type = '';
    let data = [];
    let id = this.lastEventId;
    for await (const chunk of body) {
      if (this.readyState === NodeEventSource.CLOSED) return;
      buffer += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, end).replace(/\r$/, '');
        buffer = buffer.slice(end + 1);
        if (line === '') {
          this.lastEventId = id;
          if (data.length > 0) {
            this.dispatchEvent(new MessageEvent(type || 'message', { data: data.join('\n'), lastEventId: id }));
          }
          type = '';
          data = [];
          if (this.readyState === NodeEventSource.CLOSED) return;
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') type = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id' && !value.includes('\0')) id = value;
        else if (field === 'retry' && /^\d+$/.test(value)) this.#retry = Number(value);
      }
    }
  }
}
