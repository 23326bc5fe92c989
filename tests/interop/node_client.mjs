// Interop test CLIENT on Node `ws` 8.x. Spec: tests/interop/README.md.
//
// usage: node node_client.mjs ws://127.0.0.1:PORT [CHECK...]
//
// Runs every check (or only the named ones) against the server at the base URL, one connection
// per check, each bounded by a timeout. Prints "ok NAME" or "FAIL NAME: why" per check, then
// "N passed, N failed". Exit 0 only if every check passed.
import { createHash, randomBytes } from 'node:crypto';
import WebSocket from 'ws';

const MAX_MESSAGE = 32 * 1024 * 1024;
const TIMEOUT_MS = 10_000;
const BIG_TIMEOUT_MS = 60_000;
const UNICODE = 'héllo ✓';
// 2500 bytes of UTF-8 whose 1000-byte frame boundaries fall inside a two-byte "é".
const FRAGMENTED_TEXT = `a${'é'.repeat(1249)}z`;
// The compression check's messages: highly compressible, 65 534 and 102 400 bytes.
const COMPRESSIBLE_TEXT = 'ripple '.repeat(9362);
const COMPRESSIBLE_BINARY = Buffer.from(Array.from({ length: 25600 * 4 }, (_, i) => (i % 4) + 1));

class CheckFailed extends Error {}
function expect(cond, why) {
  if (!cond) throw new CheckFailed(why);
}

function describe(data, isBinary) {
  if (data === undefined) return 'nothing';
  if (isBinary) return data.length > 40 ? `binary(${data.length} bytes)` : `binary <${data.toString('hex')}>`;
  const s = data.toString();
  return s.length > 40 ? `text(${s.length} chars)` : `text ${JSON.stringify(s)}`;
}

// A connection that queues events so a check can await them in order. Every open connection
// is closed (terminated) when its check ends, passed or not.
class Conn {
  constructor(url, protocols) {
    this.events = [];
    this.waiters = [];
    this.ws = new WebSocket(url, protocols, { maxPayload: MAX_MESSAGE, handshakeTimeout: TIMEOUT_MS });
    const push = (ev) => {
      const w = this.waiters.findIndex((x) => x.kinds.includes(ev.kind));
      if (w >= 0) this.waiters.splice(w, 1)[0].resolve(ev);
      else this.events.push(ev);
    };
    this.ws.on('upgrade', (res) => {
      this.socket = res.socket; // its bytesRead counts frames as they came over the wire
      push({ kind: 'upgrade', headers: res.headers });
    });
    this.ws.on('open', () => push({ kind: 'open' }));
    this.ws.on('message', (data, isBinary) => push({ kind: 'message', data, isBinary }));
    this.ws.on('pong', (data) => push({ kind: 'pong', data }));
    this.ws.on('close', (code, reason) => push({ kind: 'close', code, reason: reason.toString() }));
    this.ws.on('error', (err) => push({ kind: 'error', err }));
    this.ws.on('unexpected-response', (req, res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        push({ kind: 'http', status: res.statusCode, body: Buffer.concat(chunks).toString() });
        req.destroy();
      });
    });
  }

  // Next event of one of `kinds`; an 'error' (or an unexpected 'close') fails the check.
  next(...kinds) {
    const want = [...kinds, 'error', 'close'];
    const i = this.events.findIndex((e) => want.includes(e.kind));
    const got = i >= 0 ? Promise.resolve(this.events.splice(i, 1)[0])
      : new Promise((resolve) => this.waiters.push({ kinds: want, resolve }));
    return got.then((ev) => {
      if (kinds.includes(ev.kind)) return ev;
      if (ev.kind === 'error') throw new CheckFailed(`${ev.err.message}`);
      throw new CheckFailed(`connection closed (${ev.code} ${JSON.stringify(ev.reason)}) while waiting for ${kinds.join('/')}`);
    });
  }

  async opened() {
    await this.next('open');
    return this;
  }

  async message() {
    return this.next('message');
  }

  terminate() {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
  }
}

const conns = [];
function open(base, path, protocols) {
  const c = new Conn(base + path, protocols);
  conns.push(c);
  return c;
}

async function roundTrip(base, payload, isBinary, path = '/echo') {
  const c = await open(base, path).opened();
  await echoed(c, payload, isBinary);
  c.ws.close(1000);
}

async function echoed(c, payload, isBinary) {
  c.ws.send(payload, { binary: isBinary });
  const { data, isBinary: gotBinary } = await c.message();
  const want = Buffer.from(payload);
  expect(gotBinary === isBinary, `sent ${describe(want, isBinary)}, got ${describe(data, gotBinary)}`);
  if (!data.equals(want)) {
    let i = 0;
    while (i < data.length && i < want.length && data[i] === want[i]) i++;
    throw new CheckFailed(`sent ${describe(want, isBinary)}, got ${describe(data, gotBinary)}; first difference at byte ${i}`);
  }
}

// ws offers permessage-deflate by default; the server must accept it and compress its echoes.
async function compression(base) {
  const c = open(base, '/echo');
  const { headers } = await c.next('upgrade');
  await c.opened();
  const answer = JSON.stringify(headers['sec-websocket-extensions'] ?? null);
  const names = (c.ws.extensions || '').split(',').map((e) => e.split(';')[0].trim());
  expect(names.includes('permessage-deflate'), `permessage-deflate not negotiated (Sec-WebSocket-Extensions: ${answer})`);
  const before = c.socket.bytesRead;
  await echoed(c, COMPRESSIBLE_TEXT, false);
  await echoed(c, COMPRESSIBLE_BINARY, true);
  const wire = c.socket.bytesRead - before;
  const plain = Buffer.byteLength(COMPRESSIBLE_TEXT) + COMPRESSIBLE_BINARY.length;
  expect(wire < plain / 4, `the echoes were not compressed: ${wire} bytes on the wire for ${plain} bytes of messages (Sec-WebSocket-Extensions: ${answer})`);
  c.ws.close(1000);
}

const CHECKS = [
  ['text_roundtrip', TIMEOUT_MS, (b) => roundTrip(b, UNICODE, false)],
  ['binary_roundtrip', TIMEOUT_MS, (b) => roundTrip(b, Buffer.from([...Array(256).keys()]), true)],
  ['empty_text', TIMEOUT_MS, (b) => roundTrip(b, '', false)],
  ['empty_binary', TIMEOUT_MS, (b) => roundTrip(b, Buffer.alloc(0), true)],
  ['large_binary_16mib', BIG_TIMEOUT_MS, (b) => roundTrip(b, randomBytes(16 * 1024 * 1024), true)],
  ['fragmented_reply', TIMEOUT_MS, (b) => {
    expect(Buffer.byteLength(FRAGMENTED_TEXT) === 2500, 'test message is not 2500 bytes');
    return roundTrip(b, FRAGMENTED_TEXT, false, '/echo-fragmented');
  }],
  ['fragmented_send', TIMEOUT_MS, async (b) => {
    const c = await open(b, '/echo').opened();
    const parts = ['frag', 'men', 'ted ✓'];
    parts.forEach((p, i) => c.ws.send(p, { fin: i === parts.length - 1 })); // one text message, three frames
    const { data, isBinary } = await c.message();
    expect(!isBinary && data.toString() === parts.join(''), `sent ${JSON.stringify(parts)} as fragments, got ${describe(data, isBinary)}`);
    c.ws.close(1000);
  }],
  ['client_ping', TIMEOUT_MS, async (b) => {
    const c = await open(b, '/echo').opened();
    c.ws.ping('cli');
    const { data } = await c.next('pong');
    expect(data.toString() === 'cli', `pong payload ${JSON.stringify(data.toString())}, expected "cli"`);
    c.ws.close(1000);
  }],
  ['server_ping', TIMEOUT_MS, async (b) => {
    const c = await open(b, '/echo').opened();
    c.ws.send('ping-me'); // ws answers the server's ping "srv" by itself (autoPong)
    const { data, isBinary } = await c.message();
    expect(!isBinary && data.toString() === 'pong-received', `expected text "pong-received", got ${describe(data, isBinary)}`);
    c.ws.close(1000);
  }],
  ['server_close_code', TIMEOUT_MS, async (b) => {
    const c = await open(b, '/close?code=4001&reason=bye%20now').opened();
    const ev = await c.next('close', 'message');
    expect(ev.kind === 'close', `expected a close, got ${describe(ev.data, ev.isBinary)}`);
    expect(ev.code === 4001 && ev.reason === 'bye now', `expected close 4001 "bye now", got ${ev.code} ${JSON.stringify(ev.reason)}`);
  }],
  ['client_close', TIMEOUT_MS, async (b) => {
    const c = await open(b, '/echo').opened();
    c.ws.close(1000, 'done');
    const ev = await c.next('close');
    // 'close' is emitted with the code from the server's close frame (1005 if there was none,
    // 1006 if the connection dropped without one).
    expect(ev.code === 1000, `server answered the close with code ${ev.code}`);
  }],
  ['subprotocol_first_offered', TIMEOUT_MS, async (b) => {
    const c = await open(b, '/echo', ['chat.v1', 'chat.v2']).opened();
    expect(c.ws.protocol === 'chat.v1', `offered ["chat.v1","chat.v2"], server selected ${JSON.stringify(c.ws.protocol)}`);
    c.ws.close(1000);
  }],
  ['subprotocol_none', TIMEOUT_MS, async (b) => {
    // ws itself fails a handshake whose 101 names no subprotocol when one was offered ("Server
    // sent no subprotocol"), which RFC 6455 4.1 allows; so judge the server's 101 response.
    const c = open(b, '/echo', ['nope']);
    const ev = await c.next('upgrade');
    const got = ev.headers['sec-websocket-protocol'];
    expect(got === undefined, `offered ["nope"], server selected ${JSON.stringify(got)}`);
  }],
  ['rejected_handshake', TIMEOUT_MS, async (b) => {
    const c = open(b, '/reject');
    const ev = await c.next('http', 'open');
    expect(ev.kind === 'http', 'the handshake was accepted');
    expect(ev.status === 403, `expected HTTP 403, got ${ev.status}`);
    expect(ev.body.replace(/\r?\n$/, '') === 'forbidden', `expected body "forbidden", got ${JSON.stringify(ev.body)}`);
  }],
  ['compression', TIMEOUT_MS, compression],
];

function withTimeout(promise, ms) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CheckFailed(`timed out after ${ms / 1000}s`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

async function main() {
  const base = (process.argv[2] || '').replace(/\/+$/, '');
  const only = process.argv.slice(3);
  if (!base.startsWith('ws://')) {
    console.error('usage: node node_client.mjs ws://127.0.0.1:PORT [CHECK...]');
    return 2;
  }
  const unknown = only.filter((n) => !CHECKS.some(([name]) => name === n));
  if (unknown.length) {
    console.error(`unknown check(s): ${unknown.join(', ')}`);
    return 2;
  }
  let passed = 0;
  let failed = 0;
  for (const [name, ms, fn] of CHECKS) {
    if (only.length && !only.includes(name)) continue;
    const t0 = Date.now();
    try {
      await withTimeout(fn(base), ms);
      passed++;
      console.log(`ok ${name}`);
    } catch (err) {
      failed++;
      const why = err instanceof CheckFailed ? err.message : `${err.name}: ${err.message}`;
      console.log(`FAIL ${name}: ${why} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
    } finally {
      // Let a closing handshake in progress finish, but never wait long for it.
      const closed = conns.filter((c) => c.ws.readyState === WebSocket.CLOSING)
        .map((c) => new Promise((r) => c.ws.once('close', r)));
      let timer;
      await Promise.race([Promise.all(closed), new Promise((r) => { timer = setTimeout(r, 1000); })]);
      clearTimeout(timer);
      conns.splice(0).forEach((c) => c.terminate());
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

process.exitCode = await main();
