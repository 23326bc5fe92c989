// The dashboard (/dashboard): reads the server's stats feed (GET /api/stats, Server-Sent
// Events of JSON samples, one a second; http/stats.rs) with fetch, so that it can send the API
// key as a bearer token, and draws the last two minutes.
import { backoff } from '/ripple.js';
import { formatBytes, formatMicros, formatNumber, LineChart, niceBytes } from '/assets/charts.js';

const STALE_MS = 5000; // no sample for this long: the feed is replaced
const KEY = 'ripple.apiKey';

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const PALETTE = { blue: '#2f7de1', green: '#1f9d63', orange: '#e8871e', purple: '#8b5cf6', red: '#d64545', teal: '#0f9fb0' };

const charts = {
  connections: new LineChart(/** @type {HTMLCanvasElement} */ ($('chart-connections')), {
    series: [{ label: 'connections', color: PALETTE.blue }],
  }),
  channels: new LineChart(/** @type {HTMLCanvasElement} */ ($('chart-channels')), {
    series: [{ label: 'channels', color: PALETTE.teal }, { label: 'subscriptions', color: PALETTE.purple }],
  }),
  messages: new LineChart(/** @type {HTMLCanvasElement} */ ($('chart-messages')), {
    series: [{ label: 'out', color: PALETTE.blue }, { label: 'in', color: PALETTE.green }, { label: 'published', color: PALETTE.orange }],
  }),
  bytes: new LineChart(/** @type {HTMLCanvasElement} */ ($('chart-bytes')), {
    series: [{ label: 'bytes out', color: PALETTE.purple }], format: formatBytes, nice: niceBytes, minMax: 1024,
  }),
  fanout: new LineChart(/** @type {HTMLCanvasElement} */ ($('chart-fanout')), {
    series: [{ label: 'p50', color: PALETTE.green }, { label: 'p99', color: PALETTE.orange }], format: formatMicros, minMax: 10,
  }),
  dropped: new LineChart(/** @type {HTMLCanvasElement} */ ($('chart-dropped')), {
    series: [{ label: 'dropped/s', color: PALETTE.red }, { label: 'slow-consumer closes/s', color: PALETTE.orange }],
  }),
};

const legends = {
  channels: legend($('legend-channels'), charts.channels),
  messages: legend($('legend-messages'), charts.messages),
  fanout: legend($('legend-fanout'), charts.fanout),
  dropped: legend($('legend-dropped'), charts.dropped),
};

let key = sessionStorage.getItem(KEY) ?? '';
let generation = 0;
/** @type {AbortController | null} */
let current = null;
let samples = 0;

$('key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  key = /** @type {HTMLInputElement} */ ($('key')).value.trim();
  sessionStorage.setItem(KEY, key);
  $('key-error').textContent = '';
  run();
});

run();

/** Reads the feed until it ends, then reconnects with backoff; stops at a 401. */
async function run() {
  const mine = ++generation;
  current?.abort();
  let attempt = 0;
  while (generation === mine) {
    const controller = new AbortController();
    current = controller;
    try {
      setStatus(attempt ? 'reconnecting' : 'connecting', attempt ? 'Reconnecting…' : 'Connecting…');
      const headers = key ? { authorization: `Bearer ${key}` } : undefined;
      const res = await fetch('/api/stats', { headers, cache: 'no-store', signal: controller.signal });
      if (res.status === 401) {
        askForKey(res);
        return;
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      showDashboard();
      await readEvents(res.body, controller, (sample) => {
        attempt = 0;
        render(sample);
      });
    } catch (err) {
      if (generation !== mine) return;
      console.warn('stats feed:', err);
    }
    if (generation !== mine) return;
    const wait = backoff(attempt, { minDelay: 1000, maxDelay: 15_000 });
    attempt += 1;
    const until = Date.now() + wait;
    while (Date.now() < until && generation === mine) {
      setStatus('reconnecting', `Reconnecting in ${Math.max(1, Math.ceil((until - Date.now()) / 1000))}s`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * Parses `text/event-stream` and calls `onSample` for each `stats` event; returns when the
 * stream ends or goes quiet for STALE_MS.
 *
 * @param {ReadableStream<Uint8Array>} body
 * @param {AbortController} controller
 * @param {(sample: any) => void} onSample
 */
async function readEvents(body, controller, onSample) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let watchdog = setTimeout(() => controller.abort(), STALE_MS);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const lines = block.split('\n');
        const event = lines.find((l) => l.startsWith('event:'))?.slice(6).trim() ?? 'message';
        const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
        if (event !== 'stats' || !data) continue;
        clearTimeout(watchdog);
        watchdog = setTimeout(() => controller.abort(), STALE_MS);
        onSample(JSON.parse(data));
      }
    }
  } finally {
    clearTimeout(watchdog);
    reader.cancel().catch(() => {});
  }
}

function askForKey(/** @type {Response} */ res) {
  setStatus('offline', 'API key needed');
  $('dash').hidden = true;
  $('key-view').hidden = false;
  if (key) {
    res.json().then((body) => {
      $('key-error').textContent = `The server refused this key: ${body?.error?.message ?? res.status}.`;
    }).catch(() => {
      $('key-error').textContent = 'The server refused this key.';
    });
  }
  $('key').focus();
}

function showDashboard() {
  $('key-view').hidden = true;
  $('dash').hidden = false;
  setStatus('connected', 'Live');
}

/** One sample (http/stats.rs `Sample`). */
function render(/** @type {any} */ s) {
  samples += 1;
  const r = s.rates;
  const t = s.ts;
  setText('connections', formatNumber(s.connections));
  setText('connections-sub', `${formatNumber(s.totals.connections)} opened in all`);
  setText('channels', formatNumber(s.channels));
  setText('channels-sub', `${formatNumber(s.subscriptions)} subscriptions`);
  setText('dropped', formatNumber(s.totals.dropped));
  setText('dropped-sub', `${formatNumber(s.totals.slow_consumer_closes)} slow consumers`);
  $('dropped').closest('.kpi')?.classList.toggle('alert', s.totals.dropped > 0 || s.totals.slow_consumer_closes > 0);
  if (r) {
    setText('messages-in', formatNumber(r.messages_in));
    setText('messages-out', formatNumber(r.messages_out));
    setText('bytes-out', formatBytes(r.bytes_out));
    setText('fanout-p99', r.fanout_p99_us === null ? '–' : formatMicros(r.fanout_p99_us));
    setText('fanout-sub', r.fanout_count ? `of ${formatNumber(r.fanout_count)} fan-outs` : 'no publication');
  }
  charts.connections.push(t, [s.connections]);
  charts.channels.push(t, [s.channels, s.subscriptions]);
  charts.messages.push(t, [r?.messages_out, r?.messages_in, r?.publications]);
  charts.bytes.push(t, [r?.bytes_out]);
  charts.fanout.push(t, [r?.fanout_p50_us, r?.fanout_p99_us]);
  charts.dropped.push(t, [r?.dropped, r?.slow_consumer_closes]);
  legends.channels([s.channels, s.subscriptions].map(formatNumber));
  legends.messages([r?.messages_out, r?.messages_in, r?.publications].map((v) => (v == null ? '–' : formatNumber(v))));
  legends.fanout([r?.fanout_p50_us, r?.fanout_p99_us].map((v) => (v == null ? '–' : formatMicros(v))));
  legends.dropped([r?.dropped, r?.slow_consumer_closes].map((v) => (v == null ? '–' : formatNumber(v))));
  $('chart-connections').setAttribute('aria-label', `Connections over the last two minutes; now ${s.connections}`);
  renderBusiest(s.busiest);
  setText('updated', `Updated ${new Date(t).toLocaleTimeString()}.`);
  document.body.dataset.samples = String(samples);
}

function renderBusiest(/** @type {any[]} */ rows) {
  const body = $('busiest');
  if (!rows.length) {
    const td = Object.assign(document.createElement('td'), { colSpan: 4, className: 'none', textContent: 'No channel yet.' });
    const tr = document.createElement('tr');
    tr.append(td);
    body.replaceChildren(tr);
    return;
  }
  const top = Math.max(...rows.map((r) => r.rate), 1);
  body.replaceChildren(...rows.map((row) => {
    const tr = document.createElement('tr');
    tr.dataset.channel = row.channel;
    const name = Object.assign(document.createElement('td'), { className: 'channel', textContent: row.channel, title: row.channel });
    const subs = Object.assign(document.createElement('td'), { className: 'num', textContent: formatNumber(row.subscribers) });
    const rate = Object.assign(document.createElement('td'), { className: 'num' });
    const bar = Object.assign(document.createElement('span'), { className: 'bar' });
    bar.style.width = `${Math.round((row.rate / top) * 60)}px`;
    rate.append(bar, formatNumber(row.rate));
    const offset = Object.assign(document.createElement('td'), { className: 'num', textContent: String(row.offset) });
    tr.append(name, subs, rate, offset);
    return tr;
  }));
}

/** Builds a legend (swatch, label, latest value) for a chart; returns its updater. */
function legend(/** @type {HTMLElement} */ el, /** @type {LineChart} */ chart) {
  const values = chart.series.map((s) => {
    const item = document.createElement('span');
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = s.color;
    const value = document.createElement('b');
    value.textContent = '–';
    item.append(swatch, `${s.label} `, value);
    el.append(item);
    return value;
  });
  return (/** @type {string[]} */ texts) => texts.forEach((t, i) => { values[i].textContent = t; });
}

function setText(/** @type {string} */ id, /** @type {string} */ text) {
  const el = $(id);
  if (el.textContent !== text) el.textContent = text;
}

function setStatus(/** @type {string} */ state, /** @type {string} */ text) {
  const status = $('status');
  status.dataset.state = state;
  setText('status-text', text);
}
