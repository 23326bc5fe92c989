// The dashboard (/dashboard) in headless Chromium against a real Ripple server with an API key:
// it asks for the key, refuses a wrong one, and its connection count follows 20 extra clients
// in and out; the stats feed behind it (/api/stats) answers 401 without the key.
// Screenshots go to target/screenshots/.
//
// usage (from tests/browser, after `npm ci` and
// `cargo build --release -p ripple-server --example serve`):
//   node --test --test-reporter=./reporter.mjs --test-reporter-destination=stdout dashboard.test.mjs
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  API_KEY, apiPublish, launch, PHONE, screenshot, sleep, startServer, waitFor,
} from './support.mjs';

const TEST_MS = 90_000;
const EXTRA = 20;

let chrome;
let server;
before(async () => {
  chrome = await launch();
  server = await startServer();
});
after(async () => {
  await chrome?.close();
  await server?.stop();
});

const figure = async (page, id) => Number((await page.locator(`#${id}`).textContent()).replace(/[^0-9.]/g, ''));

test('the stats feed needs the key and sends one JSON sample a second', { timeout: TEST_MS }, async () => {
  assert.equal((await fetch(`${server.url}/api/stats`)).status, 401);
  assert.equal((await fetch(`${server.url}/api/stats`, { headers: { authorization: 'Bearer nope' } })).status, 401);
  const started = Date.now();
  const res = await fetch(`${server.url}/api/stats?samples=2`, { headers: { authorization: `Bearer ${API_KEY}` } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  const text = await res.text();
  const samples = text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)));
  assert.equal(samples.length, 2);
  assert.ok(Date.now() - started >= 900, 'a second apart');
  assert.equal(samples[0].rates, null, 'no rates before a second sample');
  for (const key of ['messages_in', 'messages_out', 'bytes_out', 'dropped', 'slow_consumer_closes', 'fanout_p50_us', 'fanout_p99_us']) {
    assert.ok(key in samples[1].rates, `rates.${key}`);
  }
  assert.equal(typeof samples[1].connections, 'number');
  assert.ok(Array.isArray(samples[1].busiest));
});

test('the dashboard asks for the key, then its connection count follows 20 clients in and out', { timeout: TEST_MS }, async () => {
  const ops = await chrome.person('ops');
  const load = await chrome.person('load');
  try {
    await ops.page.goto(`${server.url}/dashboard`);
    const key = ops.page.getByLabel('API key');
    await key.fill('wrong-key');
    await key.press('Enter');
    await ops.page.getByText('The server refused this key').waitFor();
    await key.fill(API_KEY);
    await key.press('Enter');
    await ops.page.waitForSelector('#status[data-state="connected"]');
    await waitFor(async () => /^\d+$/.test(await ops.page.locator('#connections').textContent()), 'a connection count');
    const base = await figure(ops.page, 'connections');

    // 20 more WebSocket clients, from a page of the same server, each subscribed to a channel
    // that the test then publishes on: the charts get traffic to show.
    await load.page.goto(`${server.url}/`);
    const opened = await load.page.evaluate((n) => new Promise((resolve, reject) => {
      window.extra = [];
      let ready = 0;
      for (let i = 0; i < n; i++) {
        const ws = new WebSocket(`ws://${location.host}/ws`);
        ws.onopen = () => ws.send(JSON.stringify({ type: 'subscribe', channel: i % 4 ? 'prices:eur-usd' : 'alerts', id: 1 }));
        ws.onmessage = (e) => { if (JSON.parse(e.data).type === 'subscribed' && ++ready === n) resolve(ready); };
        ws.onerror = () => reject(new Error(`socket ${i} failed`));
        window.extra.push(ws);
      }
    }), EXTRA);
    assert.equal(opened, EXTRA);
    await waitFor(async () => (await figure(ops.page, 'connections')) >= base + EXTRA, `the count to reach ${base + EXTRA}`, 5000);

    // Six seconds of traffic: 25 prices a second, an alert every second.
    for (let i = 0; i < 60; i++) {
      await apiPublish(server, 'prices:eur-usd', { bid: 1.08 + i / 1e4 });
      if (i % 10 === 0) await apiPublish(server, 'alerts', { level: 'info', text: `tick ${i}` });
      await sleep(100);
    }
    await waitFor(async () => (await figure(ops.page, 'messages-out')) > 0, 'messages out per second');
    const busiest = await ops.page.$$eval('#busiest tr', (rows) => rows.map((r) => r.dataset.channel));
    assert.equal(busiest[0], 'prices:eur-usd', `busiest channels: ${busiest}`);
    assert.match(await ops.page.locator('#fanout-p99').textContent(), /µs|ms/);
    await screenshot(ops.page, 'dashboard', { fullPage: true });

    await load.page.evaluate(() => window.extra.forEach((ws) => ws.close()));
    await waitFor(async () => (await figure(ops.page, 'connections')) <= base, `the count to fall back to ${base}`, 5000);

    await ops.page.setViewportSize(PHONE);
    await sleep(300);
    await screenshot(ops.page, 'dashboard-phone');
  } finally {
    await ops.context.close();
    await load.context.close();
  }
});
