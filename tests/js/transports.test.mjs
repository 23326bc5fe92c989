// ripple.js over the fallback transports (docs/protocol.md, "Fallback transports"): Server-Sent
// Events on /sse and long-polling on /poll, with commands over POST /rpc, against a real Ripple
// server; and the choice among WebSocket, SSE and long-polling. Node 20 has `fetch` but no
// `EventSource`: the `sse` transport gets support.mjs's NodeEventSource, as an application
// would inject one.
//
// usage (from tests/js, after `npm ci` and building the server):
//   node --test --test-reporter=../browser/reporter.mjs --test-reporter-destination=stdout transports.test.mjs
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import {
  apiPublish, mintToken, NodeEventSource, sleep, startRelay, startServer, waitFor,
} from './support.mjs';
import { connect, pollTransport, sseTransport } from '../../crates/ripple-server/web/ripple.js';

const TEST_MS = 40_000;
const FAST = { WebSocket, EventSource: NodeEventSource, minDelay: 50, maxDelay: 400, timeout: 3000 };
const TRANSPORTS = ['sse', 'poll'];

/** Every state event of a client. */
function record(client) {
  const events = [];
  client.on('state', (e) => events.push({ ...e, at: Date.now() }));
  const errors = [];
  client.on('error', (e) => errors.push(e));
  return { events, errors, states: () => events.map((e) => e.state) };
}

const connected = (client) => waitFor(() => client.state === 'connected', 'connected');
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** A WebSocket that never gets through: closes (1006) without opening, as behind a proxy that strips Upgrade. */
class RefusedWebSocket {
  constructor() {
    setTimeout(() => this.onclose?.({ code: 1006, reason: '', wasClean: false }), 5);
  }
  send() { throw new Error('not open'); }
  close() {}
}

/** A WebSocket that hangs: neither opens nor closes. */
class HangingWebSocket {
  send() { throw new Error('not open'); }
  close() {}
}

describe('fallback transports against a server', () => {
  let server;
  before(async () => { server = await startServer(); });
  after(async () => { await server?.stop(); });

  for (const transport of TRANSPORTS) {
    const options = { ...FAST, transports: [transport] };

    test(`${transport}: subscribe, publish, presence, history, unsubscribe, errors`, { timeout: TEST_MS }, async () => {
      const client = connect(server.ws, options);
      const peer = connect(server.ws, { ...FAST, transports: ['websocket'] });
      const log = record(client);
      const channel = `room:${transport}-commands`;
      const got = [];
      const sub = client.subscribe(channel, { onMessage: (m) => got.push([m.data, m.source]) });
      try {
        await sub.ready();
        assert.equal(client.transport, transport);
        assert.equal(log.events.find((e) => e.state === 'connected').transport, transport);
        assert.match(client.clientId, /^[0-9a-f]{16}$/);
        const peerSub = peer.subscribe(channel);
        await peerSub.ready();

        const published = await client.publish(channel, 'over rpc');
        assert.equal(published.offset, 1);
        await peer.publish(channel, 'over ws');
        await apiPublish(server, channel, 'over the api');
        await waitFor(() => got.length === 3, `3 messages (have ${got.length})`);
        assert.deepEqual(got, [['over rpc', 'live'], ['over ws', 'live'], ['over the api', 'live']]);

        const members = (await sub.presence()).map((p) => p.client);
        assert.ok(members.includes(peer.clientId), 'the /ws peer is listed');
        if (transport === 'sse') {
          assert.ok(members.includes(client.clientId), 'an SSE client is a subscriber like a /ws one');
        } else {
          assert.ok(!members.includes(client.clientId), 'a long-polling client is not listed (docs/protocol.md)');
        }
        const page = await sub.history({ since: 1 });
        assert.deepEqual(page.messages.map((m) => m.data), ['over ws', 'over the api']);
        assert.equal((await client.request('ping')).type, 'pong');

        await assert.rejects(client.publish('bad channel', 1), (err) => err.code === 'invalid_channel');
        const bad = client.subscribe('');
        await assert.rejects(bad.ready(), (err) => err.code === 'invalid_channel');
        assert.equal(bad.state, 'failed');
        assert.throws(() => client.subscribe(channel), (err) => err.code === 'already_subscribed');

        await sub.unsubscribe();
        await apiPublish(server, channel, 'after unsubscribe');
        await sleep(300);
        assert.equal(got.length, 3, 'nothing after unsubscribe');
        assert.equal(client.state, 'connected');
        assert.deepEqual(log.errors.map((e) => e.code), ['invalid_channel'], 'the refused subscription nobody listened to');
      } finally {
        client.close();
        peer.close();
      }
    });

    test(`${transport}: a publish right after a subscribe reaches it, as on /ws where commands keep their order`, { timeout: TEST_MS }, async () => {
      const client = connect(server.ws, options);
      try {
        await connected(client);
        for (let round = 1; round <= 3; round++) {
          const channel = `room:${transport}-order-${round}`; // a fresh channel: the subscribe has no position
          const got = [];
          client.subscribe(channel, { onMessage: (m) => got.push(m.data) });
          const published = await client.publish(channel, round);
          assert.equal(published.offset, 1);
          await waitFor(() => got.length === 1, `round ${round}: the message published right after subscribing`);
          assert.deepEqual(got, [round]);
        }
      } finally {
        client.close();
      }
    });

    test(`${transport}: 50 messages sent while cut off arrive once, in order, marked recovery`, { timeout: TEST_MS }, async () => {
      const relay = await startRelay(server.port);
      const channel = `room:${transport}-recovery`;
      const reader = connect(relay.ws, options);
      const writer = connect(server.ws, { ...FAST, transports: ['websocket'] });
      const got = [];
      const sub = reader.subscribe(channel, { onMessage: (m) => got.push(m) });
      try {
        await sub.ready();
        await writer.publish(channel, { n: 0 });
        await waitFor(() => got.length === 1, 'the first message');

        relay.refuse = true;
        relay.cut();
        await waitFor(() => reader.state !== 'connected', 'reader disconnected');
        for (let n = 1; n <= 50; n++) {
          if (n % 2) await writer.publish(channel, { n });
          else await apiPublish(server, channel, { n });
        }
        relay.refuse = false;
        await waitFor(() => got.length === 51, `51 messages (have ${got.length})`, 15_000);
        await writer.publish(channel, { n: 51 });
        await waitFor(() => got.length === 52, 'the live message after recovery');
        await sleep(200);

        assert.equal(reader.transport, transport, 'reconnected over the same transport');
        assert.deepEqual(got.map((m) => m.data.n), range(0, 51));
        assert.deepEqual(got.map((m) => m.offset), range(1, 52));
        assert.deepEqual(got.map((m) => m.source), ['live', ...Array(50).fill('recovery'), 'live']);
        assert.equal(sub.stats.recovered, 50);
        assert.equal(sub.stats.gaps, 0);
        assert.deepEqual(sub.position, { epoch: got[0].epoch, offset: 52 });
      } finally {
        reader.close();
        writer.close();
        relay.close();
      }
    });

    test(`${transport}: changing the channel set loses and repeats nothing`, { timeout: TEST_MS }, async () => {
      const client = connect(server.ws, options);
      const got = { a: [], b: [], c: [] };
      const subscribe = (name) => client.subscribe(`room:${transport}-set-${name}`, { onMessage: (m) => got[name].push(m.data) });
      const a = subscribe('a');
      try {
        await a.ready();
        let n = 0;
        const publishing = (async () => {
          while (n < 60) {
            await apiPublish(server, `room:${transport}-set-a`, ++n);
            await sleep(5);
          }
        })();
        await sleep(30);
        const b = subscribe('b');
        await b.ready();
        const c = subscribe('c');
        await c.ready();
        await b.unsubscribe();
        await sleep(400); // the downstream follows: channels a and c, their streams settled
        // Unsubscribed and subscribed again in the same tick: the downstream carries the same
        // channel names as before, yet the new subscribe must be answered.
        void c.unsubscribe();
        const cAgain = subscribe('c');
        await cAgain.ready();
        await apiPublish(server, `room:${transport}-set-c`, 'c1');
        await publishing;
        await waitFor(() => got.a.length === 60 && got.c.length === 1, `60 on a (have ${got.a.length}), 1 on c`);
        await sleep(200);
        assert.deepEqual(got.a, range(1, 60), 'every message of the channel kept, once, in order');
        assert.deepEqual(got.c, ['c1']);
        assert.deepEqual(got.b, []);
        assert.equal(a.stats.gaps, 0);
      } finally {
        client.close();
      }
    });

    test(`${transport}: a recovery older than the history is a gap`, { timeout: TEST_MS }, async () => {
      const relay = await startRelay(server.port);
      const channel = `room:${transport}-too-far`;
      const client = connect(relay.ws, options);
      const gaps = [];
      const got = [];
      const sub = client.subscribe(channel, { onGap: (g) => gaps.push(g), onMessage: (m) => got.push(m.data) });
      try {
        await sub.ready();
        // One message first: a channel with neither subscribers nor history would be swept
        // while the client is away, and come back with a new epoch.
        await apiPublish(server, channel, 0);
        await waitFor(() => got.length === 1, 'the first message');
        relay.refuse = true;
        relay.cut();
        await waitFor(() => client.state !== 'connected', 'disconnected');
        for (let n = 1; n <= 105; n++) await apiPublish(server, channel, n); // history keeps 100
        relay.refuse = false;
        await waitFor(() => gaps.length === 1, 'a gap event', 15_000);
        assert.equal(gaps[0].reason, 'expired');
        assert.equal(gaps[0].since.offset, 1);
        assert.equal(gaps[0].offset, 106);
        await connected(client);
        await apiPublish(server, channel, 106);
        await waitFor(() => got.length === 2, 'live messages after the gap');
        assert.deepEqual(got, [0, 106]);
      } finally {
        client.close();
        relay.close();
      }
    });
  }

  test('sse: a dropped stream resumes by itself with Last-Event-ID, nothing lost or repeated', { timeout: TEST_MS }, async () => {
    const relay = await startRelay(server.port);
    const channel = 'room:sse-last-event-id';
    const sources = [];
    class Recorded extends NodeEventSource {
      constructor(url) {
        super(url);
        sources.push(this);
      }
    }
    const client = connect(relay.ws, { ...FAST, EventSource: Recorded, transports: ['sse'], timeout: 6000 });
    const log = record(client);
    const got = [];
    const sub = client.subscribe(channel, { onMessage: (m) => got.push(m) });
    try {
      await sub.ready();
      for (let n = 1; n <= 5; n++) await apiPublish(server, channel, n);
      await waitFor(() => got.length === 5, '5 messages');
      const firstId = client.clientId;
      relay.cut(); // the stream's TCP connection drops; the source reconnects after `retry` (2 s)
      for (let n = 6; n <= 15; n++) await apiPublish(server, channel, n);
      await waitFor(() => got.length === 15, `15 messages (have ${got.length})`, 10_000);
      await apiPublish(server, channel, 16);
      await waitFor(() => got.length === 16, 'a live one after');
      await sleep(200);
      assert.deepEqual(got.map((m) => m.data), range(1, 16));
      assert.deepEqual(got.slice(5, 15).map((m) => m.source), Array(10).fill('recovery'));
      assert.equal(sources.length, 1, 'the same EventSource resumed: ripple.js did not open another');
      const resumed = sources[0].attempts.at(-1);
      assert.ok(resumed.lastEventId, 'it sent Last-Event-ID');
      assert.deepEqual(log.states(), ['connecting', 'connected'], 'the client stayed connected');
      assert.notEqual(client.clientId, firstId, 'a new stream is a new session on the server');
    } finally {
      client.close();
      relay.close();
    }
  });

  test('sse: the server ending the stream (close 1001) is reconnected to, with recovery', { timeout: TEST_MS }, async () => {
    const other = await startServer();
    const client = connect(other.ws, { ...FAST, transports: ['sse'] });
    const log = record(client);
    const gaps = [];
    const sub = client.subscribe('room:restart', { onGap: (g) => gaps.push(g) });
    let restarted;
    try {
      await sub.ready();
      await apiPublish(other, 'room:restart', 1);
      restarted = await other.restart();
      await waitFor(() => log.states().filter((s) => s === 'connected').length === 2, 'reconnected after the restart');
      const lost = log.events.find((e) => e.state === 'disconnected');
      assert.equal(lost.code, 1001);
      assert.equal(lost.reason, 'server shutting down');
      assert.equal(lost.willReconnect, true);
      await waitFor(() => gaps.length === 1, 'a gap: the new server has a new epoch');
      assert.equal(gaps[0].reason, 'epoch');
    } finally {
      client.close();
      await restarted?.stop();
      await other.stop();
    }
  });

  test('choice: a WebSocket that never opens falls back to SSE, then to long-polling; what worked is kept', { timeout: TEST_MS }, async () => {
    const relay = await startRelay(server.port);
    const viaSse = connect(relay.ws, { ...FAST, WebSocket: RefusedWebSocket });
    const viaPoll = connect(server.ws, { ...FAST, WebSocket: HangingWebSocket, EventSource: undefined, timeout: 1000 });
    const logSse = record(viaSse);
    const logPoll = record(viaPoll);
    try {
      await connected(viaSse);
      assert.equal(viaSse.transport, 'sse');
      assert.deepEqual(logSse.events.filter((e) => e.state === 'connecting').map((e) => e.transport), ['websocket', 'sse']);
      await viaSse.subscribe('room:choice').ready();

      await connected(viaPoll);
      assert.equal(viaPoll.transport, 'poll', 'no EventSource in Node: long-polling');
      const tried = logPoll.events.filter((e) => e.state === 'connecting').map((e) => e.transport);
      assert.deepEqual(tried, ['websocket', 'poll']);
      assert.match(logPoll.events.find((e) => e.state === 'disconnected').reason, /not connected within 1000 ms/);

      // A new connection after it worked: over SSE, not WebSocket first.
      viaSse.reconnect();
      await waitFor(() => logSse.states().filter((s) => s === 'connected').length === 2, 'reconnected');
      assert.deepEqual(logSse.events.filter((e) => e.state === 'connecting').map((e) => e.transport), ['websocket', 'sse', 'sse']);
      await viaSse.publish('room:choice', 'still here');
    } finally {
      viaSse.close();
      viaPoll.close();
      relay.close();
    }
  });

  test('choice: a server nothing reaches sends the client back to WebSocket, not on to long-polling', { timeout: TEST_MS }, async () => {
    const relay = await startRelay(server.port);
    relay.refuse = true; // the server is down, for every transport alike
    const client = connect(relay.ws, { ...FAST, maxDelay: 100 });
    const log = record(client);
    try {
      await waitFor(() => log.events.filter((e) => e.state === 'connecting').length >= 6, '6 attempts');
      const tried = log.events.filter((e) => e.state === 'connecting').slice(0, 6).map((e) => e.transport);
      assert.deepEqual(tried, ['websocket', 'sse', 'websocket', 'sse', 'websocket', 'sse'], 'SSE found nothing either: back to the first');
      relay.refuse = false;
      await connected(client);
      assert.ok(['websocket', 'sse'].includes(client.transport), client.transport);
    } finally {
      client.close();
      relay.close();
    }
  });

  test('choice: transports forces one, and unknown or unavailable ones are refused', () => {
    assert.throws(() => connect('ws://127.0.0.1:1/ws', { transports: ['carrier-pigeon'] }), /unknown transport "carrier-pigeon"/);
    assert.throws(() => connect('ws://127.0.0.1:1/ws', { transports: ['sse'], autoConnect: false }), /no EventSource implementation/);
    assert.throws(() => sseTransport({ fetch: globalThis.fetch }), /no EventSource/);
    assert.equal(typeof pollTransport(), 'function');
    const forced = connect('http://127.0.0.1:1/', { ...FAST, transports: ['poll'], autoConnect: false });
    assert.equal(forced.url, 'ws://127.0.0.1:1/ws', 'a base URL gets /ws');
    forced.close();
  });
});

describe('fallback transports in JWT mode', () => {
  let server;
  before(async () => { server = await startServer({ jwt: true }); });
  after(async () => { await server?.stop(); });

  for (const transport of TRANSPORTS) {
    const options = { ...FAST, transports: [transport] };

    test(`${transport}: getToken is called again when the token expires; nothing is lost`, { timeout: TEST_MS }, async () => {
      const channel = `room:${transport}-expiring`;
      const reasons = [];
      const client = connect(server.ws, {
        ...options,
        getToken: ({ reason }) => {
          reasons.push(reason);
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
        assert.deepEqual(got, range(1, n), 'in order, none twice');
        const expired = log.events.find((e) => e.state === 'disconnected');
        assert.equal(expired?.code, 4002, `the expired token ended the connection: ${JSON.stringify(expired)}`);
        assert.ok(reasons.length >= 2 && reasons.slice(1).every((r) => r === 'token_expired' || r === 'expired'), `getToken reasons ${reasons}`);
        assert.equal(sub.stats.gaps, 0);
      } finally {
        client.close();
      }
    });

    test(`${transport}: a refused token without getToken ends it; a forbidden channel fails alone`, { timeout: TEST_MS }, async () => {
      const refused = connect(server.ws, { ...options, token: 'not.a.jwt' });
      const log = record(refused);
      const dave = connect(server.ws, { ...options, token: mintToken({ sub: 'dave', channels: ['room:public'] }) });
      try {
        await waitFor(() => log.events.some((e) => e.state === 'disconnected'), 'disconnected');
        const gone = log.events.find((e) => e.state === 'disconnected');
        assert.equal(gone.code, 4001);
        assert.equal(gone.willReconnect, false);
        assert.equal(log.errors[0]?.code, 'invalid_token');
        await sleep(300);
        assert.deepEqual(log.states(), ['connecting', 'disconnected'], 'no retry with a token known to be bad');

        const open = dave.subscribe('room:public');
        const secret = dave.subscribe('room:secret');
        await assert.rejects(secret.ready(), (err) => err.code === 'forbidden' && /room:secret/.test(err.message));
        await open.ready();
        assert.equal(dave.user, 'dave');
        const got = [];
        open.on('message', (m) => got.push(m.data));
        await dave.publish('room:public', 'hi');
        await waitFor(() => got.length === 1, 'the allowed channel works');
        assert.equal(dave.state, 'connected');
      } finally {
        refused.close();
        dave.close();
      }
    });
  }
});
