// Chromium for the page tests (chat.test.mjs, dashboard.test.mjs): Debian's /usr/bin/chromium
// driven by playwright-core, as compression.test.mjs launches it, one browser per test file
// with a fresh context per person. The server side (a real `serve` child process, tokens, the
// HTTP API) is tests/js/support.mjs.
//
// Pages are loaded from the Ripple server itself (http://127.0.0.1:PORT/), which is also what
// lets them open ws://127.0.0.1 (Chromium blocks a public origin such as about:blank from it).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT } from '../js/support.mjs';

export * from '../js/support.mjs';

export const CHROMIUM = process.env.RIPPLE_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
export const SCREENSHOTS = process.env.RIPPLE_SCREENSHOTS || path.join(ROOT, 'target/screenshots');
export const DESKTOP = { width: 1180, height: 760 };
export const PHONE = { width: 390, height: 780 };
export const STEP_MS = 10_000; // one thing the page should do "now"

export async function launch() {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
  /** What the pages printed and threw, for failure messages. */
  const seen = [];
  return {
    browser,
    seen,
    /** A page in its own context (its own storage: another person). */
    async person(name, viewport = DESKTOP) {
      const context = await browser.newContext({ viewport, locale: 'en-GB', timezoneId: 'Europe/Paris' });
      const page = await context.newPage();
      page.setDefaultTimeout(STEP_MS);
      page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') seen.push(`${name} console.${m.type()}: ${m.text()}`); });
      page.on('pageerror', (e) => seen.push(`${name} page error: ${e.message}`));
      return { page, context, name };
    },
    async close() {
      await browser.close().catch(() => {});
    },
  };
}

export async function screenshot(page, name, options = {}) {
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, ...options });
  return file;
}

/** Joins `room` as `nick` the way a person does: the form, then Enter. */
export async function joinByForm(page, server, nick, room, token) {
  await page.goto(`${server.url}/`);
  await page.getByLabel('Nickname').fill(nick);
  await page.getByLabel('Room').fill(room);
  if (token) {
    await page.getByText('The server needs a token?').click();
    await page.getByLabel('Token (JWT)').fill(token);
  }
  await page.getByLabel('Room').press('Enter');
}

/** Types a message and presses Enter. */
export async function say(page, text) {
  const box = page.getByLabel('Message', { exact: true });
  await box.fill(text);
  await box.press('Enter');
}

/** The messages shown, in page order: {text, author, offset, epoch, source}. */
export function messages(page) {
  return page.$$eval('#messages li.msg', (rows) => rows.map((li) => ({
    text: li.querySelector('.bubble')?.lastChild?.textContent ?? '',
    author: li.dataset.author,
    offset: Number(li.dataset.offset),
    epoch: li.dataset.epoch,
    source: li.dataset.source,
  })));
}

/** The names in "Here now". */
export function people(page) {
  return page.$$eval('#people li', (rows) => rows.map((li) => li.dataset.name).sort());
}

export async function waitForState(page, state) {
  await page.waitForSelector(`#status[data-state="${state}"]`, { timeout: STEP_MS });
}

/** Records every data-state the indicator takes, from now on (read with stateLog). */
export async function watchStates(page) {
  await page.evaluate(() => {
    const status = document.getElementById('status');
    window.__states = [status.dataset.state];
    new MutationObserver(() => {
      if (window.__states.at(-1) !== status.dataset.state) window.__states.push(status.dataset.state);
    }).observe(status, { attributes: true, attributeFilter: ['data-state'] });
  });
}

export const stateLog = (page) => page.evaluate(() => window.__states);
