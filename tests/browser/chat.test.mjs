// The chat page (/) in headless Chromium against a real Ripple server: people in one room,
// history, presence, a page that goes offline while 50 messages are sent, a server restart,
// and tokens (JWT mode). Screenshots go to target/screenshots/.
//
// usage (from tests/browser, after `npm ci` and
// `cargo build --release -p ripple-server --example serve`):
//   node --test --test-reporter=./reporter.mjs --test-reporter-destination=stdout chat.test.mjs
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  apiPublish, joinByForm, launch, messages, mintToken, people, PHONE, say, screenshot,
  sleep, startServer, stateLog, STEP_MS, waitFor, waitForState, watchStates,
} from './support.mjs';

const TEST_MS = 90_000;

let chrome;
before(async () => { chrome = await launch(); });
after(async () => { await chrome?.close(); });

/** Failure context: what the pages and the server printed. */
const context = (server) => `\npages:\n  ${chrome.seen.slice(-20).join('\n  ') || '(nothing)'}\nserver:\n  ${server.output.trim().split('\n').slice(-15).join('\n  ')}`;

describe('anonymous server', () => {
  let server;
  before(async () => { server = await startServer(); });
  after(async () => { await server?.stop(); });

  test('two people chat in one room, presence shows both, a third sees the history', { timeout: TEST_MS }, async () => {
    const alice = await chrome.person('alice');
    const bob = await chrome.person('bob', PHONE);
    try {
      await joinByForm(alice.page, server, 'alice', 'team');
      await waitForState(alice.page, 'connected');
      await bob.page.goto(`${server.url}/?room=team&nick=bob`);
      await waitForState(bob.page, 'connected');

      await say(alice.page, 'Morning! Is the release still on for today?');
      await waitFor(async () => (await messages(bob.page)).length === 1, 'bob sees alice’s message');
      await say(bob.page, 'Yes, tagging it after lunch.');
      await say(alice.page, 'Great, I will update the changelog.');
      const expected = [
        ['alice', 'Morning! Is the release still on for today?'],
        ['bob', 'Yes, tagging it after lunch.'],
        ['alice', 'Great, I will update the changelog.'],
      ];
      for (const page of [alice.page, bob.page]) {
        await waitFor(async () => (await messages(page)).length === 3, 'three messages on both pages');
        assert.deepEqual((await messages(page)).map((m) => [m.author, m.text]), expected, context(server));
        await waitFor(async () => (await people(page)).join() === 'alice,bob', `presence alice,bob (have ${await people(page)})`);
      }
      assert.equal(await alice.page.locator('#people li[data-name="alice"] .you').count(), 1, 'alice is marked (you)');

      const carol = await chrome.person('carol');
      try {
        await carol.page.goto(`${server.url}/?room=team&nick=carol`);
        await waitForState(carol.page, 'connected');
        await waitFor(async () => (await messages(carol.page)).length === 3, 'carol sees the history');
        const history = await messages(carol.page);
        assert.deepEqual(history.map((m) => [m.author, m.text]), expected);
        assert.deepEqual(history.map((m) => m.source), ['history', 'history', 'history']);
        for (const page of [alice.page, bob.page, carol.page]) {
          await waitFor(async () => (await people(page)).join() === 'alice,bob,carol', 'presence of three');
        }
        await alice.page.getByText('carol joined').waitFor();
        await say(carol.page, 'Hi both, just catching up.');
        await waitFor(async () => (await messages(alice.page)).length === 4, 'alice sees carol’s message');
        await screenshot(alice.page, 'chat-desktop');
        await screenshot(bob.page, 'chat-phone');
        await screenshot(carol.page, 'chat-history');
      } finally {
        await carol.context.close();
      }
      await waitFor(async () => (await people(alice.page)).join() === 'alice,bob', 'carol’s leave');
      await alice.page.getByText('carol left').waitFor();
    } finally {
      await alice.context.close();
      await bob.context.close();
    }
  });

  test('a page offline while 50 messages are sent shows all of them after, in order, once', { timeout: TEST_MS }, async () => {
    const alice = await chrome.person('alice');
    const bob = await chrome.person('bob');
    const room = 'offline';
    try {
      await alice.page.goto(`${server.url}/?room=${room}&nick=alice`);
      await bob.page.goto(`${server.url}/?room=${room}&nick=bob`);
      await waitForState(alice.page, 'connected');
      await waitForState(bob.page, 'connected');
      await say(alice.page, 'Going into the tunnel, back in a minute');
      await waitFor(async () => (await messages(bob.page)).length === 1, 'bob sees it');
      await watchStates(alice.page);

      // DevTools network emulation: the browser reports offline, new connections fail.
      await alice.context.setOffline(true);
      await waitForState(alice.page, 'reconnecting');
      const sent = [];
      for (let i = 1; i <= 25; i++) {
        const fromBob = `bob ${i}: still here`;
        await say(bob.page, fromBob);
        sent.push(fromBob);
        await waitFor(async () => (await messages(bob.page)).length === 2 * i, `bob sees his message ${i}`);
        const fromApi = `build ${i} passed`;
        await apiPublish(server, `room:${room}`, { text: fromApi, nick: 'ci' });
        sent.push(fromApi);
      }
      await waitFor(async () => (await messages(bob.page)).length === 51, 'bob sees all 51');
      assert.equal((await messages(alice.page)).length, 1, 'alice is offline: nothing arrived');
      await screenshot(alice.page, 'chat-offline');

      await alice.context.setOffline(false);
      await waitFor(async () => (await messages(alice.page)).length >= 51, `alice gets the 50 (has ${(await messages(alice.page)).length})`, 15_000);
      await waitForState(alice.page, 'connected');
      await sleep(300); // anything doubled would show up by now
      const shown = await messages(alice.page);
      assert.equal(shown.length, 51, `no duplicates: ${shown.length} rows`);
      assert.deepEqual(shown.slice(1).map((m) => m.text), sent, 'all 50, in the order sent');
      const offsets = shown.slice(1).map((m) => m.offset);
      assert.deepEqual(offsets, offsets.map((_, i) => offsets[0] + i), 'consecutive offsets');
      assert.deepEqual(shown.slice(1).map((m) => m.source), Array(50).fill('recovery'));
      assert.equal(await alice.page.locator('.notice.gap').count(), 0, 'nothing was missing');
      const states = await stateLog(alice.page);
      const reconnecting = states.indexOf('reconnecting');
      assert.ok(reconnecting >= 0 && states.lastIndexOf('connected') > reconnecting, `indicator went reconnecting → connected: ${states}`);
      assert.equal(states.at(-1), 'connected');
      const caughtUp = alice.page.locator('.notice.caught-up');
      assert.equal(await caughtUp.textContent(), 'Back online: 50 messages arrived while you were away');
      const before = await alice.page.$$eval('#messages > li', (rows) => rows.findIndex((li) => li.classList.contains('caught-up')));
      const firstRecovered = await alice.page.$$eval('#messages > li', (rows) => rows.findIndex((li) => li.dataset.source === 'recovery'));
      assert.equal(before + 1, firstRecovered, 'the notice sits right above the recovered messages');
      await caughtUp.evaluate((el) => el.scrollIntoView({ block: 'center' }));
      await screenshot(alice.page, 'chat-recovered');
    } finally {
      await alice.context.close();
      await bob.context.close();
    }
  });
});

test('a server restart: the page reconnects by itself and says messages may be missing', { timeout: TEST_MS }, async () => {
  let server = await startServer();
  const alice = await chrome.person('alice');
  try {
    await alice.page.goto(`${server.url}/?room=restart&nick=alice`);
    await waitForState(alice.page, 'connected');
    await say(alice.page, 'Deploying the new server now');
    await waitFor(async () => (await messages(alice.page)).length === 1, 'the message');
    await watchStates(alice.page);

    server = await server.restart(); // SIGTERM (close 1001), then a new process: history is gone
    await waitFor(async () => (await alice.page.locator('.notice.gap').count()) === 1, 'the missing-messages notice', STEP_MS);
    await waitForState(alice.page, 'connected');
    const notice = await alice.page.locator('.notice.gap').textContent();
    assert.match(notice, /messages .*may be missing/i);
    const states = await stateLog(alice.page);
    assert.ok(states.includes('reconnecting') && states.at(-1) === 'connected', `indicator: ${states}`);

    await say(alice.page, 'Back on the new server');
    await waitFor(async () => (await messages(alice.page)).length === 2, 'a message after the restart');
    const order = await alice.page.$$eval('#messages > li', (rows) => rows.map((li) => li.className.split(' ')[0] + (li.dataset.kind ? `:${li.dataset.kind}` : '')));
    assert.deepEqual(order.filter((k) => k !== 'notice:join'), ['msg', 'notice:gap', 'msg'], 'the notice sits where messages may be missing');
    await screenshot(alice.page, 'chat-restart');
  } finally {
    await alice.context.close();
    await server.stop();
  }
});

describe('JWT mode', () => {
  let server;
  before(async () => { server = await startServer({ jwt: true }); });
  after(async () => { await server?.stop(); });

  test('a valid token chats; a forbidden room and an expired token show the server’s error', { timeout: TEST_MS }, async () => {
    const alice = await chrome.person('alice');
    const mallory = await chrome.person('mallory');
    const late = await chrome.person('late');
    try {
      const token = mintToken({ sub: 'alice', channels: ['room:*'] });
      await alice.page.goto(`${server.url}/?room=ops&nick=alice&token=${token}`);
      await waitForState(alice.page, 'connected');
      assert.doesNotMatch(alice.page.url(), /token=/, 'the token does not stay in the address bar');
      await say(alice.page, 'Signed in with a token');
      await waitFor(async () => (await messages(alice.page)).length === 1, 'the message');
      const [shown] = await messages(alice.page);
      assert.equal(shown.author, 'alice', 'the author is the token’s sub');
      assert.equal(await alice.page.locator('#messages .verified').count(), 1);
      assert.deepEqual(await people(alice.page), ['alice']);

      const narrow = mintToken({ sub: 'mallory', channels: ['room:public'] });
      await joinByForm(mallory.page, server, 'mallory', 'ops', narrow);
      const banner = mallory.page.locator('#error');
      await banner.waitFor({ state: 'visible' });
      assert.match(await banner.textContent(), /forbidden.*the token does not allow channel "room:ops"/s);
      await waitForState(mallory.page, 'connected'); // the connection stays; the room is refused
      assert.equal(await mallory.page.getByLabel('Message', { exact: true }).isDisabled(), true);
      assert.equal((await messages(mallory.page)).length, 0, 'nothing of the room leaks');
      await screenshot(mallory.page, 'chat-forbidden');

      const expired = mintToken({ sub: 'late', channels: ['room:*'], exp: Math.floor(Date.now() / 1000) - 60 });
      await late.page.goto(`${server.url}/?room=ops&nick=late&token=${expired}`);
      await late.page.locator('#error').waitFor({ state: 'visible' });
      assert.match(await late.page.locator('#error').textContent(), /token_expired/);
      await waitForState(late.page, 'offline');
      assert.equal(await late.page.getByLabel('Token (JWT)').isVisible(), true, 'asks for another token');
      await screenshot(late.page, 'chat-expired-token');

      // A fresh token in the field, Join: the same page chats.
      await late.page.getByLabel('Token (JWT)').fill(mintToken({ sub: 'late', channels: ['room:*'] }));
      await late.page.getByRole('button', { name: 'Join' }).click();
      await waitForState(late.page, 'connected');
      await waitFor(async () => (await messages(late.page)).length === 1, 'the room’s history with the new token');
    } finally {
      await alice.context.close();
      await mallory.context.close();
      await late.context.close();
    }
  });
});
