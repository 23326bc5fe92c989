// Unit tests for ripple.js (crates/ripple-server/web/ripple.js, the file the server embeds)
// in Node, against a real Ripple server (target/release/examples/serve) and, where a test needs
// to break the network, a TCP relay in front of it (support.mjs). No mock server.
//
// usage (from tests/js, after `npm ci` and building the server):
//   node --test --test-reporter=../browser/reporter.mjs --test-reporter-destination=stdout
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import {
  API_KEY, apiPublish, mintToken, sleep, startRelay, startServer, waitFor,
} from './support.mjs';
import {
  backoff, connect, jwtExpired, RippleError, websocketTransport,
} from '../../crates/ripple-server/web/ripple.js';

const TEST_MS = 30_000;
// Fast timings so the suite stays short; the logic is the same as with the defaults. These tests
// are about the client over /ws; transports.test.mjs runs it over /sse and /poll, and falls back.
const FAST = { WebSocket, transports: ['websocket'], minDelay: 50, maxDelay: 400, timeout: 3000 };

/** Every state event of a client, with the time it came. */
function record(client) {
  const events = [];
  client.on('state', (e) => events.push({ ...e, at: Date.now() }));
  const errors = [];
  client.on('error', (e) => errors.push(e));
  return { events, errors, states: () => events.map((e) => e.state) };
}

const connected = (client) => waitFor(() => client.state === 'connected', 'connected');

describe('backoff', () => {
  test('doubles from minDelay up to maxDelay, jittered in the upper half', () => {
    const opts = { minDelay: 100, maxDelay: 1000 };
    const ceilings = [100, 200, 400, 800, 1000, 1000, 1000];
    ceilings.forEach((ceiling, attempt) => {
      assert.equal(backoff(attempt, opts, () => 0), ceiling / 2, `attempt ${attempt}, random 0`);
      assert.equal(backoff(attempt, opts, () => 0.999999), ceiling, `attempt ${attempt}, random ~1`);
    });
    assert.equal(backoff(10_000, opts, () => 0.5), 750, 'huge attempt counts stay capped');
    const spread = new Set(Array.from({ length: 50 }, () => backoff(3, opts)));
    assert.ok(spread.size > 10, `jitter spreads clients: ${spread.size} distinct delays of 50`);
    for (const d of spread) assert.ok(d >= 400 && d <= 800, `delay ${d} within [400, 800]`);
  });

  test('defaults: first retry within 250-500 ms, never more than 20 s', () => {
    for (let i = 0; i < 20; i++) {
      const first = backoff(0);
      assert.ok(first >= 250 && first <= 500, `first retry ${first}`);
      assert.ok(backoff(40) <= 20_000);
    }
  });

  test('a client retries a refused server on that schedule, then resets after connecting', { timeout: TEST_MS }, async () => {
    const server = await startServer();
    const relay = await startRelay(server.port);
    relay.refuse = true;
    const client = connect(relay.ws, { ...FAST, minDelay: 80, maxDelay: 320 });
    const log = record(client);
    try {
      await waitFor(() => log.events.filter((e) => e.state === 'disconnected').length >= 5, '5 failed attempts');
      relay.refuse = false;
      await connected(client);
      const failures = log.events.filter((e) => e.state === 'disconnected');
      failures.slice(0, 5).forEach((e, attempt) => {
        const ceiling = Math.min(320, 80 * 2 ** attempt);
        assert.equal(e.willReconnect, true);
        assert.ok(e.delay >= ceiling / 2 && e.delay <= ceiling, `attempt ${attempt}: delay ${e.delay} in [${ceiling / 2}, ${ceiling}]`);
        const next = log.events.find((n) => n.at >= e.at && n.state === 'connecting');
        assert.ok(next.at - e.at >= e.delay - 5, `attempt ${attempt} waited ${next.at - e.at} ms of ${e.delay}`);
      });
      assert.deepEqual(log.events.filter((e) => e.state === 'connecting').slice(0, 6).map((e) => e.attempt), [0, 1, 2, 3, 4, 5]);
      assert.equal(client.attempt, 0, 'attempts reset once connected');
    } finally {
      client.close();
      relay.close();
      await server.stop();
    }
  });
});

describe('against a server', () => {
  let server;
  before(async () => { server = await startServer(); });
  after(async () => { await server?.stop(); });

  test('state events: connecting, connected, disconnected with the reason, and close() ends it', { timeout: TEST_MS }, async () => {
    const relay = await startRelay(server.port);
    const client = connect(relay.ws, FAST);
    const log = record(client);
    try {
      await connected(client);
      assert.match(client.clientId, /^[0-9a-f]{16}$/);
      relay.cut();
      await waitFor(() => log.states().filter((st) => st === 'connected').length === 2, 'a second connected');
      assert.deepEqual(log.states().slice(0, 5), ['connecting', 'connected', 'disconnected', 'connecting', 'connected']);
      const lost = log.events[2];
      assert.equal(lost.code, 1006, 'a dropped TCP connection is an abnormal close');
      assert.equal(lost.willReconnect, true);
      assert.equal(typeof lost.delay, 'number');
      client.close();
      const closed = log.events.at(-1);
      assert.equal(closed.state, 'disconnected');
      assert.equal(closed.willReconnect, false);
      assert.equal(closed.code, 1000);
      const count = log.events.length;
      await sleep(300);
      assert.equal(log.events.length, count, 'no reconnect after close()');
      assert.equal(relay.accepted, 2);
    } finally {
      client.close();
      relay.close();
    }
  });

  test('a server going away (1001) is reconnected to', { timeout: TEST_MS }, async () => {
    const other = await startServer();
    const client = connect(other.ws, FAST);
    const log = record(client);
    try {
      await connected(client);
      const restarted = await other.restart();
      await waitFor(() => log.states().filter((st) => st === 'connected').length === 2, 'reconnected after the restart');
      const lost = log.events.find((e) => e.state === 'disconnected');
      assert.equal(lost.code, 1001);
      assert.equal(lost.reason, 'server shutting down');
      await restarted.stop();
    } finally {
      client.close();
      await other.stop();
    }
  });

  test('recovery: 50 messages sent while disconnected arrive once, in order, marked recovery', { timeout: TEST_MS }, async () => {
    const relay = await startRelay(server.port);
    const channel = 'room:recovery';
    const reader = connect(relay.ws, FAST);
    const writer = connect(server.ws, FAST);
    const got = [];
    const sub = reader.subscribe(channel, { onMessage: (m) => got.push(m) });
    try {
      await sub.ready();
      await writer.publish(channel, { n: 0 });
      await waitFor(() => got.length === 1, 'the first message');
      assert.deepEqual(sub.position, { epoch: got[0].epoch, offset: 1 });

      relay.refuse = true;
      relay.cut();
      await waitFor(() => reader.state === 'disconnected', 'reader disconnected');
      for (let n = 1; n <= 50; n++) {
        if (n % 2) await writer.publish(channel, { n });
        else await apiPublish(server, channel, { n });
      }
      relay.refuse = false;
      await waitFor(() => got.length === 51, `51 messages (have ${got.length})`);
      await writer.publish(channel, { n: 51 });
      await waitFor(() => got.length === 52, 'the live message after recovery');
      await sleep(100);

      assert.deepEqual(got.map((m) => m.data.n), Array.from({ length: 52 }, (_, i) => i));
      assert.deepEqual(got.map((m) => m.offset), Array.from({ length: 52 }, (_, i) => i + 1));
      assert.deepEqual(got.map((m) => m.source), ['live', ...Array(50).fill('recovery'), 'live']);
      assert.equal(sub.stats.recovered, 50);
      assert.equal(sub.stats.gaps, 0);
      assert.equal(sub.stats.subscribes, 2);
      assert.deepEqual(sub.position, { epoch: got[0].epoch, offset: 52 });
    } finally {
      reader.close();
      writer.close();
      relay.close();
    }
  });

  test('duplicates are dropped by offset, whatever the transport delivers', { timeout: TEST_MS }, async () => {
    // A transport that hands every frame to the client twice, and after the resubscription
    // replays the messages of the previous connection: the server is real, the repetition is
    // the wire's.
    const seen = [];
    const doubling = (url, on) => {
      const replay = seen.slice();
      return websocketTransport(WebSocket)(url, {
        ...on,
        message: (text) => {
          const type = JSON.parse(text).type;
          if (type === 'message') seen.push(text);
          on.message(text);
          if (type === 'subscribed') replay.forEach((old) => on.message(old));
          else on.message(text);
        },
      });
    };
    const relay = await startRelay(server.port);
    const channel = 'room:duplicates';
    const client = connect(relay.ws, { ...FAST, transport: doubling });
    const got = [];
    const sub = client.subscribe(channel, { onMessage: (m) => got.push(m.data) });
    try {
      await sub.ready();
      for (let n = 1; n <= 10; n++) await client.publish(channel, n);
      await waitFor(() => got.length === 10, '10 messages');
      relay.cut();
      await waitFor(() => sub.stats.subscribes === 2 && client.state === 'connected', 'resubscribed');
      for (let n = 11; n <= 15; n++) await apiPublish(server, channel, n);
      await waitFor(() => got.length === 15, '15 messages');
      await sleep(100);
      assert.deepEqual(got, Array.from({ length: 15 }, (_, i) => i + 1));
      assert.equal(sub.stats.duplicates, 10 + 10 + 5, 'each doubled frame, and the 10 replayed after the reconnect');
    } finally {
      client.close();
      relay.close();
    }
  });

  test('recent: the last messages first, then live ones, each once', { timeout: TEST_MS }, async () => {
    const channel = 'room:recent';
    for (let n = 1; n <= 8; n++) await apiPublish(server, channel, n);
    const client = connect(server.ws, FAST);
    const got = [];
    const sub = client.subscribe(channel, { recent: 5, onMessage: (m) => got.push([m.data, m.source]) });
    try {
      await sub.ready();
      await apiPublish(server, channel, 9);
      await waitFor(() => got.length === 6, '6 messages');
      assert.deepEqual(got, [[4, 'history'], [5, 'history'], [6, 'history'], [7, 'history'], [8, 'history'], [9, 'live']]);
    } finally {
      client.close();
    }
  });

  test('recent over a history longer than one page (history_page_bytes): the last ones, each once', { timeout: TEST_MS }, async () => {
    const channel = 'room:recent-pages';
    const big = 'x'.repeat(60_000);
    for (let n = 1; n <= 10; n++) await apiPublish(server, channel, { n, big });
    const client = connect(server.ws, FAST);
    const got = [];
    const sub = client.subscribe(channel, { recent: 3, onMessage: (m) => got.push([m.data.n, m.source]) });
    try {
      const page = await client.history(channel);
      assert.equal(page.more, true, 'ten 60 KB messages do not fit a page of 256 KiB');
      assert.ok(page.messages.length >= 1 && page.messages.length < 10);
      await sub.ready();
      await apiPublish(server, channel, { n: 11 });
      await waitFor(() => got.length === 4, '4 messages');
      assert.deepEqual(got, [[8, 'history'], [9, 'history'], [10, 'history'], [11, 'live']]);
    } finally {
      client.close();
    }
  });

  test('a recovery older than the history is reported as a gap, never silently', { timeout: TEST_MS }, async () => {
    const relay = await startRelay(server.port);
    const channel = 'room:too-far';
    const client = connect(relay.ws, FAST);
    const gaps = [];
    const got = [];
    const sub = client.subscribe(channel, { onGap: (g) => gaps.push(g), onMessage: (m) => got.push(m.data) });
    try {
      await sub.ready();
      relay.refuse = true;
      relay.cut();
      for (let n = 1; n <= 105; n++) await apiPublish(server, channel, n); // history keeps 100
      relay.refuse = false;
      await waitFor(() => gaps.length === 1, 'a gap event');
      assert.equal(gaps[0].reason, 'expired');
      assert.equal(gaps[0].since.offset, 0);
      assert.equal(gaps[0].offset, 105);
      await apiPublish(server, channel, 106);
      await waitFor(() => got.length === 1, 'live messages after the gap');
      assert.deepEqual(got, [106]);
    } finally {
      client.close();
      relay.close();
    }
  });

  test('a connection that goes silent is detected by ping and replaced', { timeout: TEST_MS }, async () => {
    const relay = await startRelay(server.port);
    const client = connect(relay.ws, { ...FAST, pingInterval: 200, pongTimeout: 300 });
    const log = record(client);
    const pings = [];
    client.on('connected', () => pings.push(Date.now()));
    try {
      await connected(client);
      await sleep(500); // idle: pings are answered, the connection stays
      assert.deepEqual(log.states(), ['connecting', 'connected']);
      const frozeAt = Date.now();
      relay.freeze();
      await waitFor(() => log.states().filter((st) => st === 'connected').length === 2, 'a replacement connection');
      const lost = log.events.find((e) => e.state === 'disconnected');
      assert.match(lost.reason, /no answer to ping within 300 ms/);
      const tookMs = lost.at - frozeAt;
      assert.ok(tookMs >= 300 && tookMs < 1500, `declared dead after ${tookMs} ms (ping after 200 ms idle, 300 ms deadline)`);
    } finally {
      client.close();
      relay.close();
    }
  });

  test('commands: publish, presence, history, unsubscribe; errors carry the server code', { timeout: TEST_MS }, async () => {
    const a = connect(server.ws, FAST);
    const b = connect(server.ws, FAST);
    const channel = 'room:commands';
    const joins = [];
    const leaves = [];
    const subA = a.subscribe(channel, { onJoin: (j) => joins.push(j.client), onLeave: (l) => leaves.push(l.client) });
    try {
      await subA.ready();
      const subB = b.subscribe(channel);
      await subB.ready();
      await waitFor(() => joins.length === 1, 'a join');
      assert.deepEqual(joins, [b.clientId]);
      const members = (await subA.presence()).map((p) => p.client).sort();
      assert.deepEqual(members, [a.clientId, b.clientId].sort());
      const published = await subB.publish({ text: 'hi' });
      assert.equal(published.offset, 1);
      const page = await subA.history();
      assert.deepEqual(page.messages.map((m) => m.data), [{ text: 'hi' }]);
      await subB.unsubscribe();
      assert.equal(subB.state, 'unsubscribed');
      await waitFor(() => leaves.length === 1, 'a leave');
      assert.equal(b.getSubscription(channel), null);
      assert.throws(() => a.subscribe(channel), (err) => err instanceof RippleError && err.code === 'already_subscribed');
      await assert.rejects(a.publish('bad channel', 1), (err) => err.code === 'invalid_channel');
      const bad = a.subscribe('');
      await assert.rejects(bad.ready(), (err) => err.code === 'invalid_channel');
      assert.equal(bad.state, 'failed');
    } finally {
      a.close();
      b.close();
    }
  });

  test('a publish while disconnected waits for the connection; one past the timeout is rejected', { timeout: TEST_MS }, async () => {
    const relay = await startRelay(server.port);
    relay.refuse = true;
    const client = connect(relay.ws, { ...FAST, timeout: 1500 });
    try {
      const early = client.publish('room:queued', 'early');
      await sleep(300);
      relay.refuse = false;
      assert.equal((await early).offset, 1);
      relay.refuse = true;
      relay.cut();
      await waitFor(() => client.state !== 'connected', 'disconnected');
      await assert.rejects(client.publish('room:queued', 'late'), (err) => err.code === 'timeout');
    } finally {
      client.close();
      relay.close();
    }
  });
});

describe('JWT mode', () => {
  let server;
  before(async () => { server = await startServer({ jwt: true }); });
  after(async () => { await server?.stop(); });

  test('getToken is called again when the token expires; the subscription recovers', { timeout: TEST_MS }, async () => {
    const channel = 'room:expiring';
    const reasons = [];
    const client = connect(server.ws, {
      ...FAST,
      getToken: ({ reason }) => {
        reasons.push(reason);
        // 2 s tokens: the server closes the connection (4002) when each one expires.
        return mintToken({ sub: 'alice', channels: ['room:*'], exp: Math.floor(Date.now() / 1000) + 2 });
      },
    });
    const log = record(client);
    const got = [];
    const sub = client.subscribe(channel, { onMessage: (m) => got.push(m.data) });
    try {
      await sub.ready();
      assert.equal(client.user, 'alice');
      let n = 0;
      const until = Date.now() + 3500;
      while (Date.now() < until) {
        await apiPublish(server, channel, ++n);
        await sleep(50);
      }
      await waitFor(() => got.length === n, `all ${n} messages (have ${got.length})`);
      assert.deepEqual(got, Array.from({ length: n }, (_, i) => i + 1), 'in order, none twice');
      const expired = log.events.find((e) => e.state === 'disconnected');
      assert.equal(expired?.code, 4002, 'the server closed the expired connection');
      assert.equal(expired.delay, 0, 'reconnects at once with a fresh token');
      assert.equal(reasons[0], 'initial');
      assert.ok(reasons.length >= 2 && reasons.slice(1).every((r) => r === 'token_expired' || r === 'expired'), `getToken reasons ${reasons}`);
      assert.ok(log.errors.some((e) => e.code === 'token_expired'), 'the token_expired error is reported');
      assert.equal(sub.stats.gaps, 0);
    } finally {
      client.close();
    }
  });

  test('a refused token without getToken: the error, then disconnected for good', { timeout: TEST_MS }, async () => {
    const client = connect(server.ws, { ...FAST, token: 'not.a.jwt' });
    const log = record(client);
    try {
      await waitFor(() => log.events.some((e) => e.state === 'disconnected'), 'disconnected');
      const gone = log.events.find((e) => e.state === 'disconnected');
      assert.equal(gone.code, 4001);
      assert.equal(gone.willReconnect, false);
      assert.equal(log.errors[0]?.code, 'invalid_token');
      await sleep(300);
      assert.deepEqual(log.states(), ['connecting', 'disconnected'], 'no retry with a token known to be bad');
      client.reconnect({ token: mintToken({ sub: 'bob', channels: ['room:*'] }) });
      await connected(client);
      assert.equal(client.user, 'bob');
    } finally {
      client.close();
    }
  });

  test('an expired token is not even sent when getToken can give a fresh one', { timeout: TEST_MS }, async () => {
    const stale = mintToken({ sub: 'carol', exp: Math.floor(Date.now() / 1000) - 10 });
    assert.equal(jwtExpired(stale), true);
    const fresh = mintToken({ sub: 'carol', channels: ['room:*'] });
    assert.equal(jwtExpired(fresh), false);
    const reasons = [];
    const client = connect(server.ws, { ...FAST, token: stale, getToken: ({ reason }) => { reasons.push(reason); return fresh; } });
    const log = record(client);
    try {
      await connected(client);
      assert.deepEqual(reasons, ['expired']);
      assert.deepEqual(log.errors, []);
    } finally {
      client.close();
    }
  });

  test('a forbidden channel fails the subscription with the server error', { timeout: TEST_MS }, async () => {
    const client = connect(server.ws, { ...FAST, token: mintToken({ sub: 'dave', channels: ['room:public'] }) });
    try {
      const errors = [];
      const sub = client.subscribe('room:secret', { onError: (e) => errors.push(e) });
      await assert.rejects(sub.ready(), (err) => err.code === 'forbidden' && /room:secret/.test(err.message));
      assert.equal(errors.length, 1);
      assert.equal(client.state, 'connected', 'the connection stays');
      await client.subscribe('room:public').ready();
    } finally {
      client.close();
    }
  });
});

test('the server serves this very file at /ripple.js', { timeout: TEST_MS }, async () => {
  const server = await startServer({ apiKey: API_KEY });
  try {
    const res = await fetch(`${server.url}/ripple.js`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/javascript/);
    const { readFile } = await import('node:fs/promises');
    const source = await readFile(new URL('../../crates/ripple-server/web/ripple.js', import.meta.url), 'utf8');
    assert.equal(await res.text(), source, 'rebuild the server after changing ripple.js');
    const types = await fetch(`${server.url}/ripple.d.ts`);
    assert.match(await types.text(), /export function connect/);
  } finally {
    await server.stop();
  }
});
