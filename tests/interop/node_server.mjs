// Interop test SERVER on Node `ws` 8.x. Spec: tests/interop/README.md.
//
// usage: node node_server.mjs 127.0.0.1:PORT
//
// Prints "listening" once it accepts connections; runs until killed (SIGTERM/SIGINT).
// Paths: /echo, /echo-fragmented, /close?code=N&reason=R, /reject; anything else gets HTTP 404.
import http from 'node:http';
import { WebSocketServer } from 'ws';

const MAX_MESSAGE = 32 * 1024 * 1024; // the spec's largest message
const FRAGMENT = 1000; // /echo-fragmented: at most this many payload bytes per frame
const SUPPORTED = ['chat.v2', 'chat.v1'];
const TIMEOUT_MS = 10_000;
const PATHS = new Set(['/echo', '/echo-fragmented', '/close']);

const addr = process.argv[2] || '';
const sep = addr.lastIndexOf(':');
if (sep < 0) {
  console.error('usage: node node_server.mjs 127.0.0.1:PORT');
  process.exit(2);
}
const host = addr.slice(0, sep);
const port = Number.parseInt(addr.slice(sep + 1), 10);

const wss = new WebSocketServer({
  noServer: true,
  maxPayload: MAX_MESSAGE,
  // The spec's servers negotiate permessage-deflate; threshold 0 compresses every message, even
  // an empty one (ws's default leaves messages under 1 KiB uncompressed).
  perMessageDeflate: { threshold: 0 },
  // The FIRST protocol in the client's offer that we support (a Set keeps the header's order).
  handleProtocols: (offered) => [...offered].find((p) => SUPPORTED.includes(p)) ?? false,
});

function refuse(socket, status, text) {
  const body = `${text}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: text/plain\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

const server = http.createServer((req, res) => {
  res.writeHead(426, { 'Content-Type': 'text/plain' }).end('websocket only\n');
});
server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => {});
  const url = new URL(req.url, 'ws://localhost');
  if (url.pathname === '/reject') return refuse(socket, 403, 'forbidden');
  if (!PATHS.has(url.pathname)) return refuse(socket, 404, 'not found');
  wss.handleUpgrade(req, socket, head, (ws) => serveConnection(ws, url));
});

function serveConnection(ws, url) {
  ws.on('error', () => {});
  if (url.pathname === '/echo') {
    ws.on('message', (data, isBinary) => {
      if (!isBinary && data.toString() === 'ping-me') return pingThenReport(ws);
      ws.send(data, { binary: isBinary });
    });
  } else if (url.pathname === '/echo-fragmented') {
    ws.on('message', (data, isBinary) => sendFragmented(ws, data, isBinary));
  } else if (url.pathname === '/close') {
    const code = Number.parseInt(url.searchParams.get('code') ?? '1000', 10);
    ws.close(code, url.searchParams.get('reason') ?? ''); // searchParams are URL-decoded
  }
}

// Ping with payload "srv"; once the matching pong arrives, send the text "pong-received".
function pingThenReport(ws) {
  const timer = setTimeout(() => ws.off('pong', onPong), TIMEOUT_MS);
  function onPong(payload) {
    if (payload.toString() !== 'srv') return;
    clearTimeout(timer);
    ws.off('pong', onPong);
    ws.send('pong-received');
  }
  ws.on('pong', onPong);
  ws.ping('srv');
}

// Frames of at most FRAGMENT bytes, split on byte boundaries (even inside a UTF-8 sequence:
// RFC 6455 5.6 only requires the whole text message to be valid). Empty: one empty frame.
function sendFragmented(ws, data, isBinary) {
  if (data.length === 0) return ws.send(data, { binary: isBinary });
  for (let off = 0; off < data.length; off += FRAGMENT) {
    const fin = off + FRAGMENT >= data.length;
    ws.send(data.subarray(off, off + FRAGMENT), { binary: isBinary, fin });
  }
}

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    for (const ws of wss.clients) ws.terminate();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
server.listen(port, host, () => console.log('listening'));
