// Headless Chromium's native WebSocket against Ripple's interop_server (tests/browser/README.md):
// permessage-deflate negotiated and really used in both directions, text and binary echoes, a
// clean close, and subprotocol selection.
//
// usage (from tests/browser, after `npm ci` and building the server):
//   node --test --test-reporter=./reporter.mjs --test-reporter-destination=stdout
// env: RIPPLE_INTEROP_SERVER  the server binary (default ../../target/release/examples/interop_server);
//                             it is started as `SERVER 127.0.0.1:PORT`
//      RIPPLE_CHROMIUM        the browser (default /usr/bin/chromium, Debian's package)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SERVER = process.env.RIPPLE_INTEROP_SERVER ||
  path.resolve(HERE, '../../target/release/examples/interop_server');
const CHROMIUM = process.env.RIPPLE_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const READY_MS = 30_000; // the server's "listening" line
const STEP_MS = 10_000; // one open, echo or close in the page
const TEST_MS = 60_000;
// The compressible messages of the interop suite's `compression` check: 65 534 + 102 400 bytes.
const COMPRESSIBLE_BYTES = 9362 * 'ripple '.length + 102_400;

let server; // { process, port, output }
let relay; // counting TCP relay in front of the server
let site; // the page's origin: http://127.0.0.1:PORT/ (Chromium's Local Network Access checks
// block a public origin such as about:blank from opening connections to 127.0.0.1)
let context; // Chromium (persistent context on a fresh user-data dir)
let userDataDir;
let page;
let cdpEvents = []; // what Chromium's network layer reported, for failure messages

before(async () => {
  server = await startServer();
  relay = await startRelay(server.port);
  site = await startSite();
  userDataDir = mkdtempSync(path.join(os.tmpdir(), 'ripple-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: READY_MS,
  });
  page = context.pages()[0] ?? await context.newPage();
  page.on('console', (msg) => cdpEvents.push(`console.${msg.type()}: ${msg.text()}`));
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  cdp.on('Network.webSocketWillSendHandshakeRequest', (e) =>
    cdpEvents.push(`handshake request: ${headerLines(e.request.headers)}`));
  cdp.on('Network.webSocketHandshakeResponseReceived', (e) =>
    cdpEvents.push(`handshake response: ${e.response.status} ${headerLines(e.response.headers)}`));
  cdp.on('Network.webSocketFrameError', (e) => cdpEvents.push(`frame error: ${e.errorMessage}`));
  await page.goto(site.url);
  await page.evaluate(installPageHelpers);
}, { timeout: 2 * READY_MS });

beforeEach(() => { cdpEvents = []; });

after(async () => {
  await context?.close().catch(() => {});
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  relay?.close();
  site?.close();
  await stopServer();
});

test('compression: permessage-deflate from Chromium, compressed both ways, clean close', { timeout: TEST_MS }, async (t) => {
  // Through the relay, which counts the bytes on the wire in each direction.
  const opened = await step('open', `ws://127.0.0.1:${relay.port}/echo`, []);
  assert.match(opened.extensions, /^permessage-deflate\b/, failure(`ws.extensions is ${JSON.stringify(opened.extensions)}`));
  for (const seen of cdpEvents.filter((e) => e.startsWith('handshake'))) t.diagnostic(seen);

  const before = { ...relay.counts };
  for (const name of ['compressibleText', 'compressibleBinary']) await echo(name);
  const up = relay.counts.toServer - before.toServer;
  const down = relay.counts.toBrowser - before.toBrowser;
  t.diagnostic(`compressible echoes: ${COMPRESSIBLE_BYTES} message bytes each way; on the wire ${up} to Ripple, ${down} back`);
  assert.ok(down < COMPRESSIBLE_BYTES / 4, failure(`Ripple's echoes were not compressed: ${down} bytes came back on the wire for ${COMPRESSIBLE_BYTES} bytes of messages`));
  assert.ok(up < COMPRESSIBLE_BYTES / 4, failure(`Chromium did not compress: ${up} bytes went to Ripple for ${COMPRESSIBLE_BYTES} bytes of messages`));

  for (const name of ['unicodeText', 'emptyText', 'randomBinary', 'emptyBinary']) await echo(name);

  const closed = await step('close', 1000, 'done');
  assert.equal(closed.code, 1000, failure(`close event code ${closed.code} (reason ${JSON.stringify(closed.reason)})`));
  assert.equal(closed.wasClean, true, failure('close event wasClean is false'));
});

test('subprotocol: Chromium offers chat.v1, chat.v2 and gets chat.v1', { timeout: TEST_MS }, async (t) => {
  const opened = await step('open', `ws://127.0.0.1:${server.port}/echo`, ['chat.v1', 'chat.v2']);
  assert.equal(opened.protocol, 'chat.v1', failure(`ws.protocol is ${JSON.stringify(opened.protocol)}`));
  assert.match(opened.extensions, /^permessage-deflate\b/, failure(`ws.extensions is ${JSON.stringify(opened.extensions)}`));
  await echo('unicodeText');
  const closed = await step('close', 1000, '');
  assert.equal(closed.code, 1000, failure(`close event code ${closed.code}`));
  assert.equal(closed.wasClean, true, failure('close event wasClean is false'));
});

// One echo of a message the page builds (see installPageHelpers), judged here.
async function echo(name) {
  const r = await step('echo', name);
  assert.ok(r.equal, failure(`${name}: sent ${r.sent}, got ${r.got}${r.firstDifference >= 0 ? `; first difference at ${r.firstDifference}` : ''}`));
}

// Runs window.ripple[op](...args) in the page; a rejection becomes a failure that shows what
// Chromium saw (handshake headers, frame errors, console) and what the server printed.
async function step(op, ...args) {
  try {
    const result = await page.evaluate(([op, args]) => window.ripple[op](...args), [op, args]);
    if (op === 'open') await handshakeSeen();
    return result;
  } catch (err) {
    throw new Error(failure(`${op}(${args.map((a) => JSON.stringify(a)).join(', ')}) failed: ${err.message.split('\n')[0]}`));
  }
}

// Chromium reports the handshake response over CDP shortly after `open`: wait up to 1 s for it.
async function handshakeSeen() {
  for (let i = 0; i < 20 && !cdpEvents.some((e) => e.startsWith('handshake response')); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
}

function failure(what) {
  const seen = cdpEvents.length ? `\nChromium saw:\n  ${cdpEvents.join('\n  ')}` : '';
  const said = server.output.trim() ? `\ninterop_server printed:\n  ${server.output.trim().split('\n').slice(-20).join('\n  ')}` : '';
  return `${what}${seen}${said}`;
}

function headerLines(headers) {
  const keep = /^(sec-websocket-(extensions|protocol|version)|upgrade|connection|origin)$/i;
  return Object.entries(headers).filter(([k]) => keep.test(k)).map(([k, v]) => `${k}: ${v}`).join('; ');
}

// --- in the page -------------------------------------------------------------------------------
// Defines window.ripple: open(url, protocols), echo(name), close(code, reason). One connection
// at a time; every step is bounded by STEP_MS.
function installPageHelpers() {
  const STEP_MS = 10_000;
  const MESSAGES = {
    compressibleText: () => 'ripple '.repeat(9362),
    unicodeText: () => 'héllo ✓ — ñandú, 日本語, emoji 🚀🎉',
    emptyText: () => '',
    compressibleBinary: () => Uint8Array.from({ length: 102_400 }, (_, i) => (i % 4) + 1).buffer,
    randomBinary: () => crypto.getRandomValues(new Uint8Array(65_536)).buffer,
    emptyBinary: () => new ArrayBuffer(0),
  };
  let ws = null;
  let inbox = [];
  let waiting = null;
  let closeEvent = null;
  let onClose = null;

  const bounded = (what, promise) => Promise.race([promise, new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`${what}: nothing after ${STEP_MS / 1000}s`)), STEP_MS))]);
  const describe = (m) => typeof m === 'string'
    ? `text(${new TextEncoder().encode(m).length} bytes)`
    : `binary(${m.byteLength} bytes)`;
  function firstDifference(a, b) {
    const x = typeof a === 'string' ? new TextEncoder().encode(a) : new Uint8Array(a);
    const y = typeof b === 'string' ? new TextEncoder().encode(b) : new Uint8Array(b);
    let i = 0;
    while (i < x.length && i < y.length && x[i] === y[i]) i++;
    return i === x.length && i === y.length ? -1 : i;
  }

  window.ripple = {
    open(url, protocols) {
      inbox = []; closeEvent = null;
      ws = new WebSocket(url, protocols);
      ws.binaryType = 'arraybuffer';
      ws.onmessage = (e) => (waiting ? waiting(e.data) : inbox.push(e.data));
      ws.onclose = (e) => {
        closeEvent = { code: e.code, reason: e.reason, wasClean: e.wasClean };
        onClose?.(closeEvent);
      };
      return bounded('open', new Promise((resolve, reject) => {
        ws.onopen = () => resolve({ extensions: ws.extensions, protocol: ws.protocol });
        ws.onerror = () => reject(new Error('error event before open'));
      }));
    },
    async echo(name) {
      const sent = MESSAGES[name]();
      ws.send(sent);
      const got = await bounded(`echo ${name}`, new Promise((resolve, reject) => {
        if (inbox.length) return resolve(inbox.shift());
        if (closeEvent) return reject(new Error(`closed (${closeEvent.code} ${closeEvent.reason})`));
        waiting = (data) => { waiting = null; resolve(data); };
        onClose = (c) => reject(new Error(`closed (${c.code} ${JSON.stringify(c.reason)}, wasClean ${c.wasClean}) before the echo`));
      })).finally(() => { waiting = null; onClose = null; });
      const sameKind = typeof got === typeof sent;
      const diff = sameKind ? firstDifference(sent, got) : 0;
      return { equal: sameKind && diff < 0, sent: describe(sent), got: describe(got), firstDifference: diff };
    },
    close(code, reason) {
      ws.close(code, reason);
      return bounded('close', new Promise((resolve) => {
        if (closeEvent) return resolve(closeEvent);
        onClose = resolve;
      }));
    },
  };
}

// --- the server and the relay -----------------------------------------------------------------

// Starts `SERVER 127.0.0.1:PORT` on a free port and waits for its "listening" line.
async function startServer() {
  const port = await freePort();
  const child = spawn(SERVER, [`127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const s = { process: child, port, output: '' };
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${SERVER} printed no "listening" within ${READY_MS / 1000}s`)), READY_MS);
    child.stdout.on('data', (d) => {
      s.output += d;
      if (/^listening$/m.test(s.output)) { clearTimeout(timer); resolve(); }
    });
    child.on('error', (err) => { clearTimeout(timer); reject(new Error(`cannot start ${SERVER}: ${err.message}`)); });
    child.on('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`${SERVER} exited (${code ?? sig}) before "listening":\n${s.output}`)); });
  });
  child.stderr.on('data', (d) => { s.output += d; });
  await ready;
  return s;
}

// SIGTERM, then SIGKILL after 5 s.
async function stopServer() {
  const child = server?.process;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
process.on('exit', () => {
  if (server?.process.exitCode === null && server.process.signalCode === null) server.process.kill('SIGKILL');
});

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

// An HTTP server on 127.0.0.1 with one empty page: the origin the page's WebSockets come from.
function startSite() {
  const srv = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><meta charset="utf-8"><title>ripple browser suite</title>\n');
  });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve({
      url: `http://127.0.0.1:${srv.address().port}/`,
      close() { srv.closeAllConnections(); srv.close(); },
    }));
  });
}

// A transparent TCP relay 127.0.0.1:(free port) -> 127.0.0.1:target that counts the bytes each
// way, so the test can tell compressed frames from plain ones.
function startRelay(target) {
  const counts = { toServer: 0, toBrowser: 0 };
  const sockets = new Set();
  const srv = net.createServer({ allowHalfOpen: true }, (browserSide) => {
    const serverSide = net.connect({ port: target, host: '127.0.0.1', allowHalfOpen: true });
    for (const s of [browserSide, serverSide]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => { browserSide.destroy(); serverSide.destroy(); });
    }
    browserSide.on('data', (d) => { counts.toServer += d.length; });
    serverSide.on('data', (d) => { counts.toBrowser += d.length; });
    browserSide.pipe(serverSide);
    serverSide.pipe(browserSide);
  });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve({
      port: srv.address().port,
      counts,
      close() { for (const s of sockets) s.destroy(); srv.close(); },
    }));
  });
}
