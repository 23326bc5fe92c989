// The chat page over ripple.js's fallback transports, in headless Chromium against a real Ripple
// server: with the page's `WebSocket` removed the page chats over Server-Sent Events (/sse, with
// POST /rpc), with `EventSource` removed as well over long-polling (/poll, with POST /rpc); a
// page offline while messages are sent shows every one after, once, in order, on each; a
// WebSocket that does not get through falls back by itself; `?transport=` forces one.
// Screenshots go to target/screenshots/.
//
// usage (from tests/browser, after `npm ci` and
// `cargo build --release -p ripple-server --example serve`):
//   node --test --test-reporter=./reporter.mjs --test-reporter-destination=stdout fallback.test.mjs
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  apiPublish, joinByForm, launch, messages, people, PHONE, say, screenshot, sleep, startServer,
  stateLog, waitFor, waitForState, watchStates,
} from './support.mjs';

const TEST_MS = 90_000;
/** What each transport needs removed from the page, and what the indicator then says. */
const SETUPS = {
  sse: { remove: ['WebSocket'], label: 'Connected · SSE' },
  poll: { remove: ['WebSocket', 'EventSource'], label: 'Connected · long-polling' },
};

let chrome;
before(async () => { chrome = await launch(); });
after(async () => { await chrome?.close(); });

/** Failure context: what the pages and the server printed. */
const context = (server) => `\npages:\n  ${chrome.seen.slice(-20).join('\n  ') || '(nothing)'}\nserver:\n  ${server.output.trim().split('\n').slice(-15).join('\n  ')}`;

/** A person whose browser lacks the `remove`d APIs, as a browser (or network) that cannot use them. */
async function personWithout(name, remove, viewport) {
  const person = await chrome.person(name, viewport);
  await person.context.addInitScript((apis) => {
    for (const api of apis) delete window[api];
  }, remove);
  return person;
}

const statusText = (page) => page.locator('#status-text').textContent();
const transportOf = (page) => page.locator('#status').getAttribute('data-transport');

async function waitForLabel(page, label) {
  await waitFor(async () => (await statusText(page)) === label, `the indicator to say "${label}" (says "${await statusText(page)}")`);
}

describe('the chat page without WebSocket', () => {
  let server;
  before(async () => { server = await startServer(); });
  after(async () => { await server?.stop(); });

  for (const [transport, setup] of Object.entries(SETUPS)) {
    test(`${transport}: two people chat, the indicator names the transport`, { timeout: TEST_MS }, async () => {
      const alice = await personWithout('alice', setup.remove);
      const bob = await personWithout('bob', setup.remove, PHONE);
      const room = `${transport}-chat`;
      try {
        await joinByForm(alice.page, server, 'alice', room);
        await waitForLabel(alice.page, setup.label);
        assert.equal(await alice.page.evaluate(() => typeof WebSocket), 'undefined', 'no WebSocket in the page');
        await bob.page.goto(`${server.url}/?room=${room}&nick=bob`);
        await waitForLabel(bob.page, setup.label);
        assert.equal(await transportOf(bob.page), transport);

        await say(alice.page, `Hello over ${transport}`);
        await waitFor(async () => (await messages(bob.page)).length === 1, 'bob sees alice’s message');
        await say(bob.page, 'Loud and clear');
        await say(alice.page, 'No WebSocket needed');
        const expected = [['alice', `Hello over ${transport}`], ['bob', 'Loud and clear'], ['alice', 'No WebSocket needed']];
        for (const page of [alice.page, bob.page]) {
          await waitFor(async () => (await messages(page)).length === 3, 'three messages on both pages');
          assert.deepEqual((await messages(page)).map((m) => [m.author, m.text]), expected, context(server));
        }
        if (transport === 'sse') {
          // An SSE client is a subscriber: presence lists both, by the names their hellos gave.
          for (const page of [alice.page, bob.page]) {
            await waitFor(async () => (await people(page)).join() === 'alice,bob', `presence alice,bob (have ${await people(page)})`);
          }
        } else {
          // A long-polling client holds no connection and is not listed by the server; the page lists itself.
          await waitFor(async () => (await people(alice.page)).includes('alice'), 'alice lists herself');
        }
        assert.equal(await alice.page.locator('#people li[data-name="alice"] .you').count(), 1, 'alice is marked (you)');
        assert.equal(await alice.page.locator('#messages li.msg.mine').count(), 2, 'alice’s own messages are marked hers');
        await screenshot(alice.page, `chat-${transport}`);
        await screenshot(bob.page, `chat-${transport}-phone`);
      } finally {
        await alice.context.close();
        await bob.context.close();
      }
    });

    test(`${transport}: a page offline while 20 messages are sent shows all of them after, in order, once`, { timeout: TEST_MS }, async () => {
      const alice = await personWithout('alice', setup.remove);
      const bob = await chrome.person('bob'); // the writer keeps its WebSocket: transports mix in one room
      const room = `${transport}-offline`;
      try {
        await alice.page.goto(`${server.url}/?room=${room}&nick=alice`);
        await bob.page.goto(`${server.url}/?room=${room}&nick=bob`);
        await waitForLabel(alice.page, setup.label);
        await waitForLabel(bob.page, 'Connected · WebSocket');
        await say(alice.page, 'Switching trains, back soon');
        await waitFor(async () => (await messages(bob.page)).length === 1, 'bob sees it');
        await watchStates(alice.page);

        await alice.context.setOffline(true);
        await waitForState(alice.page, 'reconnecting');
        const sent = [];
        for (let i = 1; i <= 10; i++) {
          const fromBob = `bob ${i}: noted`;
          await say(bob.page, fromBob);
          sent.push(fromBob);
          await waitFor(async () => (await messages(bob.page)).length === 2 * i, `bob sees his message ${i}`);
          const fromApi = `deploy ${i} done`;
          await apiPublish(server, `room:${room}`, { text: fromApi, nick: 'ci' });
          sent.push(fromApi);
        }
        await waitFor(async () => (await messages(bob.page)).length === 21, 'bob sees all 21');
        await sleep(1500); // offline for a while
        assert.equal((await messages(alice.page)).length, 1, 'alice is offline: nothing arrived');

        await alice.context.setOffline(false);
        await waitFor(async () => (await messages(alice.page)).length >= 21, `alice gets the 20 (has ${(await messages(alice.page)).length})`, 15_000);
        await waitForLabel(alice.page, setup.label);
        await sleep(500); // anything doubled would show up by now
        const shown = await messages(alice.page);
        assert.equal(shown.length, 21, `no duplicates: ${shown.length} rows${context(server)}`);
        assert.deepEqual(shown.slice(1).map((m) => m.text), sent, 'all 20, in the order sent');
        const offsets = shown.slice(1).map((m) => m.offset);
        assert.deepEqual(offsets, offsets.map((_, i) => offsets[0] + i), 'consecutive offsets');
        assert.deepEqual(shown.slice(1).map((m) => m.source), Array(20).fill('recovery'));
        assert.equal(await alice.page.locator('.notice.gap').count(), 0, 'nothing was missing');
        const caughtUp = alice.page.locator('.notice.caught-up');
        assert.equal(await caughtUp.textContent(), 'Back online: 20 messages arrived while you were away');
        const states = await stateLog(alice.page);
        const reconnecting = states.indexOf('reconnecting');
        assert.ok(reconnecting >= 0 && states.lastIndexOf('connected') > reconnecting, `indicator went reconnecting → connected: ${states}`);
        assert.equal(await transportOf(alice.page), transport, 'back over the same transport');

        await say(alice.page, 'Back, read everything');
        await waitFor(async () => (await messages(bob.page)).length === 22, 'bob sees alice again');
        await caughtUp.evaluate((el) => el.scrollIntoView({ block: 'center' }));
        await screenshot(alice.page, `chat-${transport}-recovered`);
      } finally {
        await alice.context.close();
        await bob.context.close();
      }
    });
  }

  test('a WebSocket that does not get through: the page falls back to SSE by itself', { timeout: TEST_MS }, async () => {
    const alice = await chrome.person('alice');
    // As behind a proxy that refuses the upgrade: every WebSocket goes to a path that is not one,
    // and fails before it opens.
    await alice.context.addInitScript(() => {
      const Native = window.WebSocket;
      window.WebSocket = class extends Native {
        constructor(url, protocols) {
          super(String(url).replace(/\/ws$/, '/no-websocket-here'), protocols);
        }
      };
    });
    try {
      await alice.page.goto(`${server.url}/?room=fallback&nick=alice`);
      await waitForLabel(alice.page, 'Connected · SSE');
      await say(alice.page, 'Fell back by myself');
      await waitFor(async () => (await messages(alice.page)).length === 1, 'the message comes back');
      assert.equal(await alice.page.evaluate(() => window.chat.client.transport), 'sse');
      // What worked is kept: a reconnect does not try the WebSocket again.
      await alice.page.evaluate(() => window.chat.client.reconnect());
      await waitForLabel(alice.page, 'Connected · SSE');
      await screenshot(alice.page, 'chat-fallback');
    } finally {
      await alice.context.close();
    }
  });

  test('?transport=poll forces long-polling where WebSocket works, and stays in the address', { timeout: TEST_MS }, async () => {
    const alice = await chrome.person('alice');
    try {
      await alice.page.goto(`${server.url}/?room=forced&nick=alice&transport=poll`);
      await waitForLabel(alice.page, 'Connected · long-polling');
      assert.match(alice.page.url(), /[?&]transport=poll\b/);
      assert.match(alice.page.url(), /[?&]room=forced\b/);
      await say(alice.page, 'Polling on purpose');
      await waitFor(async () => (await messages(alice.page)).length === 1, 'the message comes back');
      assert.equal(await alice.page.locator('#status').getAttribute('title'), 'Long-polling on /poll, commands over POST /rpc');
    } finally {
      await alice.context.close();
    }
  });
});
