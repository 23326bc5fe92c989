// ripple.js: the client for Ripple's channel protocol (docs/protocol.md), for browsers and Node.
//
// One ES module with no dependencies and no build step. A page served by `ripple serve` imports
// it from the server itself:
//
//   import { connect } from '/ripple.js';
//   const client = connect('/ws', { token });
//   const room = client.subscribe('room:lobby', { onMessage: (m) => show(m), recent: 50 });
//   await room.publish({ text: 'hello' });
//
// Node (no global WebSocket before 22) passes an implementation: connect(url, { WebSocket }),
// for example the `ws` package's. The API is described in docs/ripple-js.md; the types in
// ripple.d.ts (served at /ripple.d.ts).
//
// What it does for the application:
// - reconnects by itself with jittered exponential backoff ([backoff]), immediately when the
//   browser comes back online, and gives up only when the server refused the token and no
//   `getToken` can provide another;
// - re-authenticates (`getToken` again when the token expired or was refused), re-subscribes
//   every channel with `since` = the last position it saw, and delivers the missed messages in
//   order, each exactly once (duplicates are dropped by offset); when the server could not
//   recover (`recovered: false`) the subscription emits `gap`: some messages may be missing;
// - sends the protocol's `ping` when the connection is idle (a page cannot see WebSocket pings)
//   and replaces a connection that stays silent past the deadline;
// - speaks to the network only through a transport, a factory of `{ send(text), close(code,
//   reason) }` that carries the `/ws` commands and messages: [websocketTransport], or, where
//   WebSockets do not get through, [sseTransport] (Server-Sent Events down, `POST /rpc` up) and
//   [pollTransport] (long-polling down, `POST /rpc` up), which translate the same commands to
//   the HTTP endpoints of docs/protocol.md ("Fallback transports"). By default the client tries
//   them in that order and keeps the first that works.

export const VERSION = '0.1.0';

/** @type {Required<Pick<import('./ripple.d.ts').ClientOptions, 'minDelay' | 'maxDelay' | 'pingInterval' | 'pongTimeout' | 'timeout' | 'maxQueued'>>} */
export const DEFAULTS = Object.freeze({
  minDelay: 500, // first reconnect after 250-500 ms
  maxDelay: 20_000, // never wait more than 20 s
  pingInterval: 20_000, // a `ping` after this long without a message from the server
  pongTimeout: 10_000, // ... and the connection is dead if nothing arrives this long after it
  timeout: 10_000, // a command's reply, a connection attempt, a getToken call
  maxQueued: 1000, // commands waiting for a connection
});

/** Close codes of docs/protocol.md that decide what a reconnect needs. */
const CLOSE = Object.freeze({
  NORMAL: 1000,
  ABNORMAL: 1006,
  INVALID_TOKEN: 4001,
  TOKEN_EXPIRED: 4002,
  AUTH_TIMEOUT: 4003,
  ABANDONED: 4000, // sent by this client when it gives up on a connection
});

/**
 * An error from the server (`code` is the protocol's stable code: `forbidden`, `token_expired`,
 * …) or from this client (`timeout`, `disconnected`, `closed`, `queue_full`,
 * `token_unavailable`, `already_subscribed`).
 */
export class RippleError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{channel?: string}} [details]
   */
  constructor(code, message, details = {}) {
    super(message);
    this.name = 'RippleError';
    /** @type {string} */
    this.code = code;
    /** @type {string | undefined} */
    this.channel = details.channel;
  }
}

/**
 * The delay before reconnect attempt `attempt` (0 for the first retry): exponential, capped,
 * with "equal jitter": a random point in the upper half of `min(maxDelay, minDelay * 2^attempt)`,
 * so clients that lost the same server do not come back all at once, and never back-to-back.
 *
 * @param {number} attempt
 * @param {{minDelay?: number, maxDelay?: number}} [options]
 * @param {() => number} [random] in [0, 1)
 * @returns {number} milliseconds
 */
export function backoff(attempt, options = {}, random = Math.random) {
  const min = options.minDelay ?? DEFAULTS.minDelay;
  const max = options.maxDelay ?? DEFAULTS.maxDelay;
  const ceiling = Math.min(max, min * 2 ** Math.min(Math.max(attempt, 0), 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * The WebSocket transport: one `new WebSocket(url)` per connection.
 *
 * @param {any} [WebSocketImpl] a WHATWG-style WebSocket class (default: the global one)
 * @returns {import('./ripple.d.ts').Transport}
 */
export function websocketTransport(WebSocketImpl = globalThis.WebSocket) {
  if (typeof WebSocketImpl !== 'function') {
    throw new TypeError('ripple.js: no WebSocket implementation; pass connect(url, { WebSocket }) (in Node: the ws package)');
  }
  return (url, on) => {
    const ws = new WebSocketImpl(url);
    let closed = false;
    ws.onopen = () => on.open();
    ws.onmessage = (/** @type {{data: unknown}} */ event) => {
      if (typeof event.data === 'string') on.message(event.data);
    };
    ws.onerror = () => {}; // always followed by a close event, which says more
    ws.onclose = (/** @type {{code: number, reason: string, wasClean: boolean}} */ event) => {
      if (closed) return;
      closed = true;
      on.close({ code: event.code, reason: event.reason, wasClean: event.wasClean });
    };
    return {
      name: 'websocket',
      send: (text) => ws.send(text),
      close: (code = CLOSE.NORMAL, reason = '') => {
        closed = true;
        try {
          ws.close(code, reason);
        } catch {
          // already closing, or still connecting in an implementation that throws
        }
      },
    };
  };
}

/**
 * The Server-Sent Events transport: messages come down an `EventSource` on `/sse`, commands go
 * up as `POST /rpc` (docs/protocol.md, "Fallback transports"). Needs `EventSource` and `fetch`.
 *
 * @param {{EventSource?: any, fetch?: any}} [options] implementations (default: the globals)
 * @returns {import('./ripple.d.ts').Transport}
 */
export function sseTransport(options = {}) {
  const EventSourceImpl = options.EventSource ?? globalThis.EventSource;
  if (typeof EventSourceImpl !== 'function') {
    throw new TypeError('ripple.js: no EventSource implementation; pass connect(url, { EventSource })');
  }
  const fetchImpl = fetchFunction(options.fetch);
  return (url, on, context) =>
    new HttpSession('sse', url, on, context, fetchImpl, (session) => new EventStream(session, EventSourceImpl)).connection();
}

/**
 * The long-polling transport: messages come as answers to `GET /poll`, one request after the
 * other, commands go up as `POST /rpc`. Needs only `fetch`.
 *
 * @param {{fetch?: any}} [options] implementation (default: the global `fetch`)
 * @returns {import('./ripple.d.ts').Transport}
 */
export function pollTransport(options = {}) {
  const fetchImpl = fetchFunction(options.fetch);
  return (url, on, context) => new HttpSession('poll', url, on, context, fetchImpl, (session) => new PollLoop(session)).connection();
}

/** The transports `connect` knows by name, in the default order of preference. */
const TRANSPORTS = Object.freeze({
  websocket: (/** @type {import('./ripple.d.ts').ClientOptions} */ o) => websocketTransport(o.WebSocket),
  sse: (/** @type {import('./ripple.d.ts').ClientOptions} */ o) => sseTransport({ EventSource: o.EventSource, fetch: o.fetch }),
  poll: (/** @type {import('./ripple.d.ts').ClientOptions} */ o) => pollTransport({ fetch: o.fetch }),
});

/**
 * The transports a client tries, in order: `options.transport` alone, else those of
 * `options.transports` (default: all, WebSocket first) that this environment can run.
 *
 * @param {import('./ripple.d.ts').ClientOptions} options
 * @returns {{name: string, factory: import('./ripple.d.ts').Transport}[]}
 */
function transportCandidates(options) {
  if (options.transport) return [{ name: 'custom', factory: options.transport }];
  const names = options.transports ?? /** @type {import('./ripple.d.ts').TransportName[]} */ (Object.keys(TRANSPORTS));
  if (!Array.isArray(names) || names.length === 0) throw new TypeError('ripple.js: `transports` must list at least one of websocket, sse, poll');
  const candidates = [];
  const missing = [];
  for (const name of names) {
    const make = Object.hasOwn(TRANSPORTS, name) ? TRANSPORTS[name] : undefined;
    if (!make) throw new TypeError(`ripple.js: unknown transport ${JSON.stringify(name)} (known: websocket, sse, poll)`);
    try {
      candidates.push({ name, factory: make(options) });
    } catch (err) {
      missing.push(err instanceof Error ? err.message : String(err)); // not available here
    }
  }
  if (candidates.length === 0) throw new TypeError(missing.join('; '));
  return candidates;
}

/** @param {any} impl @returns {(url: string, init?: any) => Promise<any>} */
function fetchFunction(impl) {
  if (typeof impl === 'function') return impl;
  if (typeof globalThis.fetch === 'function') return globalThis.fetch.bind(globalThis);
  throw new TypeError('ripple.js: no fetch implementation; pass connect(url, { fetch })');
}

/** A long-poll waits at most this long on the server (`poll_timeout_secs`: default and maximum 25 s). */
const POLL_WAIT_MS = 25_000;
/** Refusals of a stream or poll request that concern the channels being added, not the connection. */
const CHANNEL_REFUSALS = new Set(['forbidden', 'invalid_channel', 'invalid_field', 'too_many_subscriptions']);
/** The `event:` types of `/sse`. */
const SSE_EVENTS = ['authenticated', 'subscribed', 'message', 'join', 'leave', 'close'];
const RESTART = 'restart';

/**
 * @typedef {{serial: number, position: {epoch: string, offset: number} | null, id: any, awaiting: boolean, checked: boolean, answered: () => void}} ChannelEntry
 *   `serial`: which subscribe made it (a channel subscribed again is another entry);
 *   `position`: the last message the client has (the cursor's triple); `awaiting`: the
 *   subscribe command `id` is not answered yet (`answered()` says when it is, or when it never
 *   will be); `checked`: the server allows the channel.
 * @typedef {{ok: boolean, status: number, body: any}} Answer
 *   `body`: the JSON answer; for a refusal always the protocol's `error` object
 */

/**
 * One connection over plain HTTP. The client speaks to it as to `/ws`: `auth` is answered here
 * (the token goes with every request), `subscribe` and `unsubscribe` change the downstream's
 * channel set, every other command is a `POST /rpc`; what comes down is handed on as the `/ws`
 * messages it is. It keeps each channel's position so that every new stream or poll resumes
 * exactly where the client is, whatever was cut off (a cursor, docs/protocol.md).
 */
class HttpSession {
  /** @type {Map<string, ChannelEntry>} */
  channels = new Map();
  closed = false;
  /** Whether the downstream answered on this connection (a stream opened, a poll replied). */
  proven = false;
  clientId = randomId();
  /** @type {string | null} */
  user = null;
  /** @type {string | null} */
  token;
  timeout;
  urls;
  #on;
  #fetch;
  #aborter = new AbortController();
  /** Subscribes whose channel check is in flight: the downstream waits for them. */
  #checks = 0;
  #scheduled = false;
  #serial = 0;
  /**
   * Settles once every subscribe sent so far is answered. Other commands wait for it: on `/ws`
   * the server takes commands in order, so a publish sent after a subscribe reaches that
   * subscription; over HTTP the publish could otherwise overtake the subscribe.
   */
  #subscribesAnswered = Promise.resolve();
  /** @type {EventStream | PollLoop} */
  #downstream;

  /**
   * @param {'sse' | 'poll'} kind
   * @param {string} url the client's `/ws` URL
   * @param {import('./ripple.d.ts').TransportHandlers} on
   * @param {import('./ripple.d.ts').TransportContext | undefined} context
   * @param {(url: string, init?: any) => Promise<any>} fetchImpl
   * @param {(session: HttpSession) => EventStream | PollLoop} downstream
   */
  constructor(kind, url, on, context, fetchImpl, downstream) {
    this.kind = kind;
    this.#on = on;
    this.#fetch = fetchImpl;
    this.token = context?.token ?? null;
    this.timeout = context?.timeout ?? DEFAULTS.timeout;
    this.user = this.token ? jwtClaims(this.token)?.sub ?? null : null;
    this.urls = { sse: endpointUrl(url, 'sse'), poll: endpointUrl(url, 'poll'), rpc: endpointUrl(url, 'rpc') };
    this.#downstream = downstream(this);
    void this.#probe();
  }

  /** @returns {import('./ripple.d.ts').TransportConnection} */
  connection() {
    return {
      name: this.kind,
      send: (text) => this.#command(text),
      close: () => this.#shutdown(),
    };
  }

  // --- commands from the client ------------------------------------------------------------------

  /** @param {string} text */
  #command(text) {
    if (this.closed) throw new Error('the connection is closed');
    const command = JSON.parse(text);
    switch (command.type) {
      case 'auth':
        if (typeof command.token === 'string') this.#identifyBy(command.token);
        this.deliver({ type: 'authenticated', id: command.id, client: this.clientId, ...(this.user ? { user: this.user } : {}) });
        break;
      case 'subscribe':
        void this.#subscribe(command);
        break;
      case 'unsubscribe':
        this.#unsubscribe(command);
        break;
      default:
        void this.#rpc(command);
    }
  }

  /** @param {string} token */
  #identifyBy(token) {
    this.token = token;
    this.user = jwtClaims(token)?.sub ?? null;
  }

  /**
   * Whether this transport reaches the server, and whether the server takes the token: a `ping`
   * over `/rpc`. Then the connection is open (and, without a token, greeted as `/ws` greets).
   */
  async #probe() {
    let answer;
    try {
      answer = await this.#post({ type: 'ping' });
    } catch (err) {
      // Nothing got through to the server: that says nothing about this transport.
      this.fail({ code: CLOSE.ABNORMAL, reason: `POST /rpc failed: ${errorText(err)}` });
      return;
    }
    if (this.closed) return;
    if (answer.status === 401) {
      this.#on.open();
      this.deliver(answer.body);
      this.tokenRefused(answer.body);
      return;
    }
    if (!answer.ok) {
      this.fail({ code: CLOSE.ABNORMAL, reason: `POST /rpc answered ${answer.status} ${answer.body.code}` }, true);
      return;
    }
    this.#on.open();
    if (!this.token) this.deliver({ type: 'authenticated', client: this.clientId });
  }

  /**
   * One command as `POST /rpc` (a text/plain body: no CORS preflight), the token in the URL.
   *
   * @param {any} command
   */
  #post(command) {
    const url = new URL(this.urls.rpc);
    if (this.token) url.searchParams.set('token', this.token);
    return this.request('POST /rpc', url.toString(), { method: 'POST', body: JSON.stringify(command) });
  }

  /** @param {any} command */
  async #rpc(command) {
    await this.#subscribesAnswered;
    if (this.closed) return;
    let answer;
    try {
      answer = await this.#post(command);
    } catch (err) {
      // As on /ws, a command that cannot be sent is a connection that failed.
      this.fail({ code: CLOSE.ABNORMAL, reason: `POST /rpc failed: ${errorText(err)}` }, true);
      return;
    }
    if (this.closed) return;
    const reply = answer.body ?? { type: 'error', code: 'internal', message: 'POST /rpc answered no JSON object' };
    if (command.id !== undefined && reply.id === undefined) reply.id = command.id;
    this.deliver(reply);
    if (answer.status === 401) this.tokenRefused(reply);
  }

  /**
   * Adds a channel: the server checks it first (a `presence` over `/rpc`, which refuses a
   * channel as `subscribe` does), since a stream or a poll refuses all its channels at once;
   * then the downstream takes it in, and its `subscribed` answers the command.
   *
   * @param {any} command
   */
  async #subscribe(command) {
    const { channel, id } = command;
    if (this.channels.has(channel)) {
      this.deliver({ type: 'error', id, code: 'already_subscribed', message: `already subscribed to ${JSON.stringify(channel)}` });
      return;
    }
    const since = command.since;
    let answered = () => {};
    const settled = new Promise((resolve) => { answered = () => resolve(undefined); });
    this.#subscribesAnswered = Promise.all([this.#subscribesAnswered, settled]).then(() => {});
    const position = since ? { epoch: String(since.epoch), offset: Number(since.offset) } : null;
    /** @type {ChannelEntry} */
    const entry = { serial: ++this.#serial, position, id, awaiting: true, checked: false, answered };
    this.channels.set(channel, entry);
    this.#checks += 1;
    let answer;
    try {
      answer = await this.#post({ type: 'presence', channel });
    } catch (err) {
      this.fail({ code: CLOSE.ABNORMAL, reason: `POST /rpc failed: ${errorText(err)}` }, true);
      return;
    } finally {
      this.#checks -= 1;
    }
    if (this.closed) return;
    if (this.channels.get(channel) === entry) {
      if (answer.ok) {
        entry.checked = true;
      } else {
        this.abandon(channel, entry, answer.body);
        if (answer.status === 401) this.tokenRefused(answer.body);
      }
    }
    this.#changed();
  }

  /** @param {any} command */
  #unsubscribe(command) {
    const { channel, id } = command;
    const entry = this.channels.get(channel);
    if (!entry) {
      this.deliver({ type: 'error', id, code: 'not_subscribed', message: `not subscribed to ${JSON.stringify(channel)}` });
      return;
    }
    this.channels.delete(channel);
    entry.answered(); // a subscribe still waiting is not answered: the client dropped it already
    this.deliver({ type: 'unsubscribed', id, channel });
    this.#changed();
  }

  /** The channel set changed: the downstream follows, once no check is in flight (batched). */
  #changed() {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setTimeout(() => {
      this.#scheduled = false;
      if (!this.closed && this.#checks === 0) this.#downstream.update();
    }, 0);
  }

  // --- for the downstream ------------------------------------------------------------------------

  /** @returns {[string, ChannelEntry][]} the channels the downstream carries */
  streamChannels() {
    return [...this.channels].filter(([, entry]) => entry.checked);
  }

  /** Which subscribes the downstream carries: when it changes, the downstream must follow. */
  streamKey() {
    return this.streamChannels().map(([, entry]) => entry.serial).join(',');
  }

  /** @param {string} channel */
  channel(channel) {
    const entry = this.channels.get(channel);
    return entry?.checked ? entry : null;
  }

  /**
   * The URL of a stream or poll over `channels`, resuming at their positions.
   *
   * @param {'sse' | 'poll'} endpoint
   * @param {[string, ChannelEntry][]} channels
   * @param {Record<string, string>} [params]
   */
  streamUrl(endpoint, channels, params = {}) {
    const url = new URL(this.urls[endpoint]);
    for (const [name] of channels) url.searchParams.append('channel', name);
    const cursor = encodeCursor(channels);
    if (cursor) url.searchParams.set('cursor', cursor);
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
    if (this.token) url.searchParams.set('token', this.token);
    return url.toString();
  }

  /**
   * A channel's `subscribed` from the downstream: the answer to its subscribe command, or (the
   * channel was subscribed again by a new stream) a resubscription the client hears about when
   * `always`, or when the server could not recover.
   *
   * @param {ChannelEntry} entry
   * @param {any} msg
   * @param {boolean} always
   */
  acknowledge(entry, msg, always) {
    if (entry.awaiting) {
      entry.awaiting = false;
      this.deliver({ ...msg, id: entry.id });
      entry.answered();
    } else if (always || !msg.recovered) {
      this.deliver(msg);
    }
  }

  /**
   * Drops a channel whose subscribe the server refused, answering it with `error`.
   *
   * @param {string} name
   * @param {ChannelEntry} entry
   * @param {any} error
   */
  abandon(name, entry, error) {
    this.channels.delete(name);
    this.deliver({ ...error, id: entry.id });
    entry.answered();
  }

  /** @param {any} msg a stream's `authenticated`: the server's id for this session */
  identify(msg) {
    this.clientId = msg.client ?? this.clientId;
    this.user = msg.user ?? null;
  }

  /** @param {string | object} message a `/ws` message, to the client */
  deliver(message) {
    if (this.closed) return;
    this.#on.message(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /**
   * A stream or poll request was refused: a token refusal ends the connection as on `/ws`;
   * a channel refusal fails the subscribes that were waiting (the others go on); anything else
   * is a failed connection.
   *
   * @param {string} what
   * @param {Answer} answer
   */
  refused(what, answer) {
    const error = answer.body;
    if (answer.status === 401) {
      this.deliver(error);
      this.tokenRefused(error);
      return;
    }
    const waiting = [...this.channels].filter(([, entry]) => entry.checked && entry.awaiting);
    if (CHANNEL_REFUSALS.has(error.code) && waiting.length > 0) {
      for (const [name, entry] of waiting) this.abandon(name, entry, error);
      this.#changed();
      return;
    }
    this.fail({ code: CLOSE.ABNORMAL, reason: `${what} answered ${answer.status} ${error.code}: ${error.message}` }, true);
  }

  /** @param {any} error the server's `unauthorized`, `invalid_token` or `token_expired` */
  tokenRefused(error) {
    const code = error?.code === 'token_expired' ? CLOSE.TOKEN_EXPIRED : error?.code === 'unauthorized' ? CLOSE.AUTH_TIMEOUT : CLOSE.INVALID_TOKEN;
    this.fail({ code, reason: error?.message ?? error?.code ?? 'token refused' });
  }

  /**
   * Ends the connection from this side and tells the client.
   *
   * @param {{code: number, reason: string}} info
   * @param {boolean} [network] a network or HTTP failure: before the downstream ever worked, it
   *   says this transport does not get through
   */
  fail(info, network = false) {
    if (this.closed) return;
    this.#shutdown();
    this.#on.close({ ...info, transportFailed: network && !this.proven });
  }

  #shutdown() {
    if (this.closed) return;
    this.closed = true;
    this.#aborter.abort();
    this.#downstream.close();
    for (const entry of this.channels.values()) entry.answered();
  }

  /**
   * Fetches `url` and reads its JSON. A refusal's body is made a protocol `error` whatever it
   * was. With `peek`, a successful answer's body is not read (an event stream never ends). The
   * request is aborted by `controller`, if given, and when the connection closes.
   *
   * @param {string} what for messages: `POST /rpc`, `GET /poll`, …
   * @param {string} url
   * @param {{method?: string, body?: string, controller?: AbortController, peek?: boolean, headers?: Record<string, string>}} [init]
   * @returns {Promise<Answer>}
   */
  async request(what, url, init = {}) {
    const { peek, controller = new AbortController(), ...rest } = init;
    const abort = () => controller.abort();
    const closing = this.#aborter.signal;
    closing.addEventListener('abort', abort);
    try {
      if (closing.aborted) throw new Error('the connection is closed');
      const fetchImpl = this.#fetch;
      const res = await fetchImpl(url, { cache: 'no-store', ...rest, signal: controller.signal });
      if (peek && res.ok) {
        controller.abort();
        return { ok: true, status: res.status, body: null };
      }
      return await this.#answer(what, res);
    } finally {
      closing.removeEventListener('abort', abort);
    }
  }

  /**
   * @param {string} what
   * @param {any} res a fetch Response
   * @returns {Promise<Answer>}
   */
  async #answer(what, res) {
    const text = await res.text();
    let body = null;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: said below
    }
    if (!res.ok) {
      if (body?.type !== 'error') {
        const inner = body?.error; // the HTTP API's {"error": {code, message}}
        body = {
          type: 'error',
          code: typeof inner?.code === 'string' ? inner.code : `http_${res.status}`,
          message: typeof inner?.message === 'string' ? inner.message : `${what} answered HTTP ${res.status}: ${text.slice(0, 200)}`,
        };
      }
    } else if (body === null || typeof body !== 'object') {
      throw new Error(`${what} answered ${res.status} without a JSON object`);
    }
    return { ok: res.ok, status: res.status, body };
  }
}

/**
 * The SSE downstream: one `EventSource` over the session's channels, replaced when they change.
 * The browser resumes a dropped stream by itself (`Last-Event-ID`); a stream that stays down
 * past the timeout, that is refused, or that the server ends (`close`) ends the connection.
 */
class EventStream {
  #session;
  #EventSource;
  /** @type {any} */
  #source = null;
  #key = '';
  /** @type {any} */
  #timer = null;

  /** @param {HttpSession} session @param {any} EventSourceImpl */
  constructor(session, EventSourceImpl) {
    this.#session = session;
    this.#EventSource = EventSourceImpl;
  }

  update() {
    const session = this.#session;
    const channels = session.streamChannels();
    const key = session.streamKey();
    if (this.#source && key === this.#key) return;
    this.close();
    this.#key = key;
    if (channels.length === 0) return;
    const url = session.streamUrl('sse', channels);
    const source = new this.#EventSource(url);
    this.#source = source;
    let opened = false;
    const live = () => this.#source === source && !session.closed;
    this.#deadline(`no event stream within ${session.timeout} ms`);
    source.addEventListener('open', () => {
      if (!live()) return;
      opened = true;
      session.proven = true;
      clearTimeout(this.#timer);
      this.#timer = null;
    });
    source.addEventListener('error', (/** @type {any} */ event) => {
      if (!live()) return;
      if (typeof event.data === 'string') {
        session.deliver(event.data); // the server's `event: error`, e.g. token_expired
      } else if (source.readyState === 2) {
        this.#source = null; // CLOSED: refused (an HTTP error, or not an event stream)
        void this.#diagnose(url);
      } else if (!opened) {
        session.fail({ code: CLOSE.ABNORMAL, reason: 'the event stream did not open' }, true);
      } else if (!this.#timer) {
        // CONNECTING: the browser reconnects by itself, sending the last `id:` (a cursor).
        this.#deadline(`the event stream stayed down for ${session.timeout} ms`);
      }
    });
    for (const type of SSE_EVENTS) {
      source.addEventListener(type, (/** @type {any} */ event) => {
        if (live()) this.#event(type, event.data);
      });
    }
  }

  close() {
    clearTimeout(this.#timer);
    this.#timer = null;
    this.#source?.close();
    this.#source = null;
  }

  /** @param {string} reason */
  #deadline(reason) {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#session.fail({ code: CLOSE.ABNORMAL, reason }, true), this.#session.timeout);
  }

  /**
   * `EventSource` does not say why it was refused: asks again with `fetch`.
   *
   * @param {string} url
   */
  async #diagnose(url) {
    const session = this.#session;
    let answer;
    try {
      answer = await session.request('GET /sse', url, { headers: { accept: 'text/event-stream' }, peek: true });
    } catch (err) {
      session.fail({ code: CLOSE.ABNORMAL, reason: `GET /sse failed: ${errorText(err)}` }, true);
      return;
    }
    if (session.closed) return;
    if (answer.ok) {
      session.fail({ code: CLOSE.ABNORMAL, reason: 'the event stream was refused' }, true);
      return;
    }
    this.#key = ''; // whatever the outcome, the next update opens a stream
    session.refused('GET /sse', answer);
  }

  /** @param {string} type @param {string} data */
  #event(type, data) {
    const session = this.#session;
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (msg === null || typeof msg !== 'object') return;
    switch (type) {
      case 'close':
        session.fail({ code: Number(msg.code) || CLOSE.ABNORMAL, reason: String(msg.reason ?? '') });
        return;
      case 'authenticated':
        session.identify(msg);
        session.deliver(data);
        return;
      case 'subscribed': {
        const entry = session.channel(msg.channel);
        if (!entry) return;
        // Recovered: the missed messages follow and move the position; otherwise it starts here.
        if (entry.position === null || !msg.recovered) entry.position = { epoch: msg.epoch, offset: msg.offset };
        session.acknowledge(entry, msg, true);
        return;
      }
      case 'message': {
        const entry = session.channel(msg.channel);
        const at = entry?.position;
        if (!entry || (at && at.epoch === msg.epoch && msg.offset <= at.offset)) return;
        entry.position = { epoch: msg.epoch, offset: msg.offset };
        session.deliver(data);
        return;
      }
      default:
        if (session.channel(msg.channel)) session.deliver(data);
    }
  }
}

/**
 * The long-polling downstream: `GET /poll` after `GET /poll` while there are channels, each with
 * the positions the previous answer gave. A change of channels cuts the waiting request short;
 * a channel being added is asked with `timeout=0`, so that its subscribe is answered at once.
 */
class PollLoop {
  #session;
  #running = false;
  /** @type {AbortController | null} */
  #controller = null;
  #key = '';

  /** @param {HttpSession} session */
  constructor(session) {
    this.#session = session;
  }

  update() {
    const key = this.#session.streamKey();
    if (this.#running && key === this.#key) return;
    this.#key = key;
    this.#controller?.abort(RESTART);
    if (!this.#running) void this.#loop();
  }

  close() {
    this.#controller?.abort(RESTART);
  }

  async #loop() {
    this.#running = true;
    try {
      for (;;) {
        const channels = this.#session.streamChannels();
        if (this.#session.closed || channels.length === 0 || !(await this.#poll(channels))) return;
      }
    } finally {
      this.#running = false;
    }
  }

  /**
   * One request. Resolves whether to go on.
   *
   * @param {[string, ChannelEntry][]} channels
   */
  async #poll(channels) {
    const session = this.#session;
    const waiting = channels.filter(([, entry]) => entry.awaiting);
    const url = session.streamUrl('poll', channels, waiting.length > 0 ? { timeout: '0' } : {});
    const controller = new AbortController();
    this.#controller = controller;
    const patience = (waiting.length > 0 ? 0 : POLL_WAIT_MS) + session.timeout;
    const timer = setTimeout(() => controller.abort(new Error(`no answer within ${patience} ms`)), patience);
    let answer;
    try {
      answer = await session.request('GET /poll', url, { controller });
    } catch (err) {
      if (session.closed) return false;
      if (controller.signal.reason === RESTART) return true;
      session.fail({ code: CLOSE.ABNORMAL, reason: `GET /poll failed: ${errorText(controller.signal.reason ?? err)}` }, true);
      return false;
    } finally {
      clearTimeout(timer);
    }
    if (session.closed) return false;
    if (!answer.ok) {
      session.refused('GET /poll', answer);
      return !session.closed;
    }
    session.proven = true;
    this.#received(new Map(channels), answer.body);
    for (const [name, entry] of waiting) {
      if (entry.awaiting && session.channels.get(name) === entry) {
        // The server did not report it: say so rather than ask again and again.
        session.abandon(name, entry, { type: 'error', code: 'internal', message: `GET /poll did not report channel ${JSON.stringify(name)}` });
      }
    }
    return true;
  }

  /**
   * The answer: first each channel's state (the subscribes it answers, a recovery that failed),
   * then the messages, then the positions they lead to.
   *
   * @param {Map<string, ChannelEntry>} asked
   * @param {any} reply
   */
  #received(asked, reply) {
    const session = this.#session;
    const current = (/** @type {string} */ name) => {
      const entry = asked.get(name);
      return entry && session.channels.get(name) === entry ? entry : null;
    };
    const states = Array.isArray(reply.channels) ? reply.channels : [];
    for (const state of states) {
      const entry = current(state.channel);
      if (!entry) continue;
      const { channel, epoch, offset, recovered } = state;
      session.acknowledge(entry, { type: 'subscribed', channel, epoch, offset, recovered }, false);
    }
    for (const msg of Array.isArray(reply.messages) ? reply.messages : []) {
      if (current(msg.channel)) session.deliver(msg);
    }
    for (const state of states) {
      const entry = current(state.channel);
      if (entry) entry.position = { epoch: state.epoch, offset: state.offset };
    }
  }
}

/**
 * A cursor (docs/protocol.md, "Fallback transports"): the unpadded base64url of the JSON array of
 * `[channel, epoch, offset]` of every channel with a position; null when none has one.
 *
 * @param {[string, ChannelEntry][]} channels
 */
function encodeCursor(channels) {
  const triples = channels.flatMap(([name, entry]) => (entry.position ? [[name, entry.position.epoch, entry.position.offset]] : []));
  if (triples.length === 0) return null;
  let binary = '';
  for (const byte of new TextEncoder().encode(JSON.stringify(triples))) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * The URL of endpoint `name` (`sse`, `poll`, `rpc`) of the server that serves `url`: a sibling of
 * its `/ws` (`wss://host/x/ws` → `https://host/x/sse`), or under a base ending with `/`.
 *
 * @param {string} url
 * @param {string} name
 */
function endpointUrl(url, name) {
  const resolved = new URL(url);
  if (resolved.protocol === 'ws:') resolved.protocol = 'http:';
  if (resolved.protocol === 'wss:') resolved.protocol = 'https:';
  resolved.pathname = resolved.pathname.replace(/[^/]*$/, name);
  resolved.search = '';
  resolved.hash = '';
  return resolved.toString();
}

function randomId() {
  const bytes = new Uint8Array(8);
  if (globalThis.crypto?.getRandomValues) globalThis.crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** @param {unknown} err */
function errorText(err) {
  if (err instanceof Error) return err.cause instanceof Error ? `${err.message} (${err.cause.message})` : err.message;
  return String(err);
}

/**
 * Connects to a Ripple server and keeps connected until `close()`: over `/ws`, or, where the
 * WebSocket does not get through, over `/sse` or `/poll` with `/rpc` (`options.transports`).
 *
 * @param {string} url `ws://host:port/ws`, `http(s)://…/ws`, (in a page) a path like `/ws`, or a
 *   base ending with `/`; the HTTP transports use the siblings `sse`, `poll` and `rpc` of `ws`
 * @param {import('./ripple.d.ts').ClientOptions} [options]
 * @returns {Client}
 */
export function connect(url, options = {}) {
  return new Client(url, options);
}

/** A tiny event emitter; a listener that throws is reported and does not stop the others. */
class Emitter {
  /** @type {Map<string, Set<Function>>} */
  #listeners = new Map();

  /**
   * @param {string} event
   * @param {Function} listener
   * @returns {() => void} removes the listener
   */
  on(event, listener) {
    if (!this.#listeners.has(event)) this.#listeners.set(event, new Set());
    this.#listeners.get(event)?.add(listener);
    return () => this.off(event, listener);
  }

  /** @param {string} event @param {Function} listener */
  off(event, listener) {
    this.#listeners.get(event)?.delete(listener);
  }

  /** @param {string} event @param {Function} listener */
  once(event, listener) {
    const off = this.on(event, (/** @type {any} */ arg) => {
      off();
      listener(arg);
    });
    return off;
  }

  /** @param {string} event */
  listenerCount(event) {
    return this.#listeners.get(event)?.size ?? 0;
  }

  /** @param {string} event @param {any} [arg] */
  emit(event, arg) {
    for (const listener of [...(this.#listeners.get(event) ?? [])]) {
      try {
        listener(arg);
      } catch (err) {
        (globalThis.reportError ?? console.error)(err);
      }
    }
  }
}

/**
 * One logical connection to the server, over any number of successive transport connections.
 * Events: `state`, `connecting`, `connected`, `disconnected`, `error` (see ripple.d.ts).
 */
export class Client extends Emitter {
  /** @type {'connecting' | 'connected' | 'disconnected'} */
  state = 'disconnected';
  /** This connection's id from the server (changes at every reconnect). */
  clientId = /** @type {string | null} */ (null);
  /** The token's `sub` (JWT mode), else null. */
  user = /** @type {string | null} */ (null);
  /** Reconnect attempts since the last successful connection. */
  attempt = 0;

  #url;
  #options;
  /** @type {{name: string, factory: import('./ripple.d.ts').Transport}[]} the transports to try, in order */
  #candidates;
  /** The candidate the next connection uses. */
  #candidate = 0;
  /** Whether a transport has worked: reconnects then keep it instead of trying the next. */
  #settled = false;
  /** @type {string | null} */
  #transportName = null;
  /** @type {string | null} */
  #token;
  /** @type {Map<string, Subscription>} */
  #subscriptions = new Map();
  /** @type {Map<number, {resolve: Function, reject: Function, timer: any, onReply?: Function, queued: boolean}>} */
  #pending = new Map();
  /** @type {{id: number, text: string}[]} */
  #queued = [];
  #nextId = 0;
  /** @type {any} the live transport connection (null between connections) */
  #conn = null;
  #authenticated = false;
  #stopped = false;
  /** @type {any} */
  #retryTimer = null;
  /** @type {any} */
  #connectTimer = null;
  /** @type {any} */
  #pingTimer = null;
  #lastReceived = 0;
  #pingSentAt = 0;
  /** @type {string | null} why the server refused the last token (the next attempt needs a new one) */
  #tokenRefused = null;
  #onOnline = () => this.#online();
  #onOffline = () => this.#offline();

  /**
   * @param {string} url
   * @param {import('./ripple.d.ts').ClientOptions} [options]
   */
  constructor(url, options = {}) {
    super();
    this.#url = resolveUrl(url);
    this.#options = { ...DEFAULTS, ...options };
    this.#token = options.token ?? null;
    this.#candidates = transportCandidates(options);
    if (options.watchNetwork !== false && typeof globalThis.addEventListener === 'function') {
      globalThis.addEventListener('online', this.#onOnline);
      globalThis.addEventListener('offline', this.#onOffline);
    }
    if (options.autoConnect !== false) queueMicrotask(() => this.#open());
  }

  /** The URL connections go to (`ws(s)://…/ws`; the HTTP transports use its siblings). */
  get url() {
    return this.#url;
  }

  /** The transport of the current (or last) connection: `websocket`, `sse`, `poll`, or null before the first. */
  get transport() {
    return this.#transportName;
  }

  /** Every live subscription, by channel. */
  get subscriptions() {
    return new Map(this.#subscriptions);
  }

  /**
   * Subscribes to `channel`. The subscription lives until `unsubscribe()` (or a refusal by the
   * server), across reconnects.
   *
   * @param {string} channel
   * @param {import('./ripple.d.ts').SubscribeOptions} [options]
   * @returns {Subscription}
   */
  subscribe(channel, options = {}) {
    if (this.#subscriptions.has(channel)) {
      throw new RippleError('already_subscribed', `already subscribed to ${JSON.stringify(channel)}`, { channel });
    }
    /** @type {Subscription} */
    const sub = new Subscription(this, channel, options, {
      unsubscribe: () => this.#unsubscribe(sub),
    });
    this.#subscriptions.set(channel, sub);
    if (this.#authenticated) this.#subscribeNow(sub);
    return sub;
  }

  /** @param {string} channel */
  getSubscription(channel) {
    return this.#subscriptions.get(channel) ?? null;
  }

  /**
   * Publishes `data` (any JSON value) to `channel`; no subscription needed. Waits for a
   * connection when there is none (up to `timeout`). At most once: a publish in flight when the
   * connection drops is rejected with `disconnected` and not sent again.
   *
   * @param {string} channel
   * @param {any} data
   * @returns {Promise<{channel: string, epoch: string, offset: number}>}
   */
  async publish(channel, data) {
    const reply = await this.request('publish', { channel, data: data === undefined ? null : data });
    return { channel: reply.channel, epoch: reply.epoch, offset: reply.offset };
  }

  /**
   * @param {string} channel
   * @returns {Promise<{client: string, user?: string}[]>}
   */
  async presence(channel) {
    const reply = await this.request('presence', { channel });
    return reply.clients;
  }

  /**
   * The messages the channel keeps after offset `since`, oldest first, at most `limit`.
   *
   * @param {string} channel
   * @param {{since?: number, limit?: number}} [options]
   * @returns {Promise<{channel: string, epoch: string, offset: number, messages: import('./ripple.d.ts').Message[]}>}
   */
  async history(channel, options = {}) {
    const reply = await this.request('history', { channel, since: options.since, limit: options.limit });
    return { channel, epoch: reply.epoch, offset: reply.offset, messages: reply.messages.map(toMessage) };
  }

  /**
   * Sends any command and resolves with its reply (rejects with a RippleError for an `error`
   * reply, a timeout, or a connection lost before the reply).
   *
   * @param {string} type
   * @param {Record<string, any>} [fields]
   * @param {{timeout?: number}} [options]
   * @returns {Promise<any>}
   */
  request(type, fields = {}, options = {}) {
    return this.#send({ type, ...fields }, { queue: true, timeout: options.timeout });
  }

  /** Closes the connection and stops reconnecting. `reconnect()` starts again. */
  close() {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    const conn = this.#conn;
    if (conn) {
      conn.close(CLOSE.NORMAL, 'client closed');
      this.#lost(conn, { code: CLOSE.NORMAL, reason: 'closed by the application' });
    } else {
      this.#setState('disconnected', { code: CLOSE.NORMAL, reason: 'closed by the application', willReconnect: false });
    }
    for (const { id } of this.#queued) this.#settle(id, new RippleError('closed', 'the client was closed'));
    this.#queued = [];
    if (typeof globalThis.removeEventListener === 'function') {
      globalThis.removeEventListener('online', this.#onOnline);
      globalThis.removeEventListener('offline', this.#onOffline);
    }
  }

  /**
   * Connects now: ends a pending backoff wait, replaces the current connection if any, and
   * restarts a closed or stopped client (reading `token` from `options` if given).
   *
   * @param {{token?: string}} [options]
   */
  reconnect(options = {}) {
    if (options.token !== undefined) {
      this.#token = options.token;
      this.#tokenRefused = null;
    }
    if (this.#stopped) {
      this.#stopped = false;
      if (this.#options.watchNetwork !== false && typeof globalThis.addEventListener === 'function') {
        globalThis.addEventListener('online', this.#onOnline);
        globalThis.addEventListener('offline', this.#onOffline);
      }
    }
    this.attempt = 0;
    if (this.#conn) {
      const conn = this.#conn;
      conn.close(CLOSE.ABANDONED, 'reconnecting');
      this.#lost(conn, { code: CLOSE.ABNORMAL, reason: 'reconnect requested' }, 0);
      return;
    }
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#open();
  }

  // --- connection lifecycle --------------------------------------------------------------------

  async #open() {
    if (this.#stopped || this.#conn) return;
    const candidate = this.#candidates[this.#candidate];
    this.#transportName = candidate.name;
    this.#setState('connecting', { attempt: this.attempt, transport: candidate.name });
    let token;
    try {
      token = await this.#currentToken();
    } catch (err) {
      const message = `getToken failed: ${err instanceof Error ? err.message : String(err)}`;
      this.emit('error', new RippleError('token_unavailable', message));
      this.#retryLater({ code: CLOSE.ABNORMAL, reason: message });
      return;
    }
    if (this.#stopped || this.#conn || this.state !== 'connecting') return;
    if (token === null && this.#tokenRefused) {
      this.#giveUp({ code: CLOSE.ABNORMAL, reason: `the server refused the token (${this.#tokenRefused}) and no getToken provides another` });
      return;
    }
    /** @type {any} */
    const handle = {};
    const live = () => this.#conn === handle;
    this.#conn = handle;
    this.#authenticated = false;
    this.#connectTimer = setTimeout(() => {
      if (!live()) return;
      handle.close?.(CLOSE.ABANDONED, 'connect timeout');
      this.#lost(handle, { code: CLOSE.ABNORMAL, reason: `not connected within ${this.#options.timeout} ms` });
    }, this.#options.timeout);
    let conn;
    try {
      // Each event runs in a microtask: after the factory returned, in the order they came.
      const later = (/** @type {() => void} */ f) => queueMicrotask(() => live() && f());
      const handlers = {
        open: () => later(() => this.#opened(handle, token)),
        message: (/** @type {string} */ text) => later(() => this.#received(handle, text)),
        close: (/** @type {import('./ripple.d.ts').CloseInfo} */ info) => later(() => this.#lost(handle, info)),
        error: () => {},
      };
      conn = candidate.factory(this.#url, handlers, { token, timeout: this.#options.timeout });
    } catch (err) {
      this.#lost(handle, { code: CLOSE.ABNORMAL, reason: err instanceof Error ? err.message : String(err), transportFailed: true });
      return;
    }
    handle.send = (/** @type {string} */ text) => conn.send(text);
    handle.close = (/** @type {number} */ code, /** @type {string} */ reason) => conn.close(code, reason);
    handle.name = conn.name ?? candidate.name;
    this.#transportName = handle.name;
  }

  /** The token for the next connection: the current one unless it is known to be unusable. */
  async #currentToken() {
    const usable = this.#token && !this.#tokenRefused && !jwtExpired(this.#token);
    if (usable || typeof this.#options.getToken !== 'function') {
      return this.#tokenRefused ? null : this.#token;
    }
    const reason = /** @type {import('./ripple.d.ts').TokenContext['reason']} */ (this.#tokenRefused ?? (this.#token ? 'expired' : 'initial'));
    const timeout = this.#options.timeout;
    const token = await Promise.race([
      Promise.resolve(this.#options.getToken({ reason })),
      new Promise((_, reject) => setTimeout(() => reject(new Error(`no token within ${timeout} ms`)), timeout)),
    ]);
    if (typeof token !== 'string' || token === '') throw new Error('getToken gave no token');
    this.#token = token;
    this.#tokenRefused = null;
    return token;
  }

  /** @param {any} handle @param {string | null} token */
  #opened(handle, token) {
    handle.opened = true;
    this.#lastReceived = Date.now();
    this.#pingSentAt = 0;
    const tick = Math.max(25, Math.min(this.#options.pingInterval, this.#options.pongTimeout) / 4);
    this.#pingTimer = setInterval(() => this.#checkAlive(handle), tick);
    if (token) {
      // In JWT mode the server waits for this; in anonymous mode it has greeted us already
      // and answers `authenticated` again.
      this.#send({ type: 'auth', token }, { direct: handle }).catch(() => {});
    }
  }

  /** @param {any} handle @param {string} text */
  #received(handle, text) {
    this.#lastReceived = Date.now();
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg === null || typeof msg !== 'object') return;
    if (typeof msg.id === 'number' && this.#pending.has(msg.id)) {
      if (msg.type === 'authenticated') this.#authenticatedBy(handle, msg);
      if (msg.type === 'error' && (msg.code === 'invalid_token' || msg.code === 'token_expired')) {
        this.#tokenRefused = msg.code;
        this.emit('error', new RippleError(msg.code, msg.message));
      }
      this.#settle(msg.id, msg.type === 'error' ? new RippleError(msg.code, msg.message, msg) : null, msg);
      return;
    }
    switch (msg.type) {
      case 'authenticated':
        if (this.#authenticated) {
          // The HTTP transports: a new event stream is a new session on the server.
          this.clientId = msg.client ?? this.clientId;
          this.user = msg.user ?? null;
        } else {
          this.#authenticatedBy(handle, msg);
        }
        break;
      case 'subscribed': {
        // The HTTP transports: a stream reopened (its channel set changed, or it resumed by
        // itself): the channel was subscribed again from the subscription's position.
        const sub = this.#subscriptions.get(msg.channel);
        if (sub?.state === 'subscribed') sub._subscribed(msg, sub._since());
        break;
      }
      case 'message':
      case 'join':
      case 'leave':
        this.#subscriptions.get(msg.channel)?._push(msg);
        break;
      case 'error':
        if (msg.code === 'invalid_token' || msg.code === 'token_expired') this.#tokenRefused = msg.code;
        this.emit('error', new RippleError(msg.code, msg.message, msg));
        break;
      default:
        break; // pong, or a reply whose command timed out
    }
  }

  /** @param {any} handle @param {any} msg */
  #authenticatedBy(handle, msg) {
    if (this.#authenticated || this.#conn !== handle) return;
    this.#authenticated = true;
    clearTimeout(this.#connectTimer);
    this.clientId = msg.client ?? null;
    this.user = msg.user ?? null;
    this.attempt = 0;
    this.#tokenRefused = null;
    this.#setState('connected', { client: this.clientId, user: this.user, transport: handle.name });
    for (const sub of this.#subscriptions.values()) this.#subscribeNow(sub);
    const queued = this.#queued;
    this.#queued = [];
    for (const { id, text } of queued) {
      const entry = this.#pending.get(id);
      if (!entry) continue;
      entry.queued = false;
      handle.send(text);
    }
  }

  /** Sends `ping` when idle; declares the connection dead when the ping goes unanswered. */
  #checkAlive(/** @type {any} */ handle) {
    if (this.#conn !== handle) return;
    const now = Date.now();
    const { pingInterval, pongTimeout } = this.#options;
    if (this.#pingSentAt && this.#lastReceived < this.#pingSentAt) {
      if (now - this.#pingSentAt >= pongTimeout) {
        handle.close(CLOSE.ABANDONED, 'ping timeout');
        this.#lost(handle, { code: CLOSE.ABNORMAL, reason: `no answer to ping within ${pongTimeout} ms` });
      }
      return;
    }
    if (now - this.#lastReceived >= pingInterval) {
      this.#pingSentAt = now;
      this.#send({ type: 'ping' }, { direct: handle, timeout: pongTimeout + pingInterval }).catch(() => {});
    }
  }

  /**
   * The connection `handle` is gone (closed by the server, failed, or abandoned by us).
   *
   * @param {any} handle
   * @param {import('./ripple.d.ts').CloseInfo} info
   * @param {number} [delay] reconnect after this many ms instead of the backoff
   */
  #lost(handle, info, delay) {
    if (this.#conn !== handle) return;
    this.#conn = null;
    this.#chooseTransport(handle, info);
    const { transportFailed: _, ...details } = info;
    info = details;
    const wasConnected = this.#authenticated;
    this.#authenticated = false;
    clearTimeout(this.#connectTimer);
    clearInterval(this.#pingTimer);
    for (const [id, entry] of this.#pending) {
      if (!entry.queued) this.#settle(id, new RippleError('disconnected', `connection lost before the reply (${describe(info)})`));
    }
    for (const sub of this.#subscriptions.values()) sub._connectionLost();
    if (this.#stopped) {
      this.#setState('disconnected', { ...info, willReconnect: false });
      return;
    }
    if (info.code === CLOSE.INVALID_TOKEN || info.code === CLOSE.TOKEN_EXPIRED || info.code === CLOSE.AUTH_TIMEOUT) {
      this.#tokenRefused ??= info.code === CLOSE.TOKEN_EXPIRED ? 'token_expired' : info.code === CLOSE.AUTH_TIMEOUT ? 'no_token' : 'invalid_token';
      if (typeof this.#options.getToken !== 'function') {
        this.#giveUp(info);
        return;
      }
      // A fresh token is all it takes: no backoff after a connection that worked.
      if (wasConnected) delay = 0;
    }
    this.#retryLater(info, delay);
  }

  /**
   * After a connection ended: a transport that opened is kept for every reconnect; one that
   * never opened (or whose downstream never worked) is replaced by the next candidate, until
   * one has worked. A server that nothing reaches (`transportFailed: false` before opening)
   * sends the client back to its first candidate; an attempt made offline counts for nothing.
   *
   * @param {any} handle
   * @param {import('./ripple.d.ts').CloseInfo} info
   */
  #chooseTransport(handle, info) {
    if (this.#settled || globalThis.navigator?.onLine === false) return;
    if (info.transportFailed === true || (!handle.opened && info.transportFailed === undefined)) {
      this.#candidate = (this.#candidate + 1) % this.#candidates.length;
    } else if (handle.opened) {
      this.#settled = true;
    } else {
      this.#candidate = 0; // unreachable: the first transport may well work once it is back
    }
  }

  /** @param {{code: number, reason: string}} info @param {number} [delay] */
  #retryLater(info, delay) {
    this.#conn = null;
    const wait = delay ?? backoff(this.attempt, this.#options);
    this.attempt += 1;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#open();
    }, wait);
    this.#setState('disconnected', { ...info, willReconnect: true, delay: wait, retryAt: Date.now() + wait });
  }

  /** @param {{code: number, reason: string}} info */
  #giveUp(info) {
    this.#conn = null;
    this.#stopped = true;
    this.#setState('disconnected', { ...info, willReconnect: false });
  }

  #online() {
    if (this.#retryTimer) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = null;
      this.#open();
    }
  }

  #offline() {
    const conn = this.#conn;
    if (!conn) return;
    conn.close?.(CLOSE.ABANDONED, 'offline');
    this.#lost(conn, { code: CLOSE.ABNORMAL, reason: 'the browser went offline' });
  }

  /**
   * @param {'connecting' | 'connected' | 'disconnected'} state
   * @param {Record<string, any>} details
   */
  #setState(state, details) {
    this.state = state;
    const event = { state, ...details };
    this.emit(state, event);
    this.emit('state', event);
  }

  // --- commands ----------------------------------------------------------------------------------

  /**
   * Sends a command with a fresh id; the promise settles with its reply.
   *
   * @param {Record<string, any>} command
   * @param {{queue?: boolean, direct?: any, timeout?: number, onReply?: (reply: any) => void}} how
   *   `direct`: on this connection now (auth, ping, subscribe); `queue`: now if connected, else
   *   when connected
   * @returns {Promise<any>}
   */
  #send(command, how) {
    const id = ++this.#nextId;
    const text = JSON.stringify({ ...command, id });
    const timeout = how.timeout ?? this.#options.timeout;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#queued = this.#queued.filter((q) => q.id !== id);
        this.#settle(id, new RippleError('timeout', `no reply to ${command.type} within ${timeout} ms`));
      }, timeout);
      const entry = { resolve, reject, timer, onReply: how.onReply, queued: false };
      this.#pending.set(id, entry);
      const conn = how.direct ?? (this.#authenticated ? this.#conn : null);
      if (conn) {
        try {
          conn.send(text);
        } catch (err) {
          this.#settle(id, new RippleError('disconnected', `cannot send: ${err instanceof Error ? err.message : err}`));
        }
      } else if (how.queue && !this.#stopped && this.#queued.length < this.#options.maxQueued) {
        entry.queued = true;
        this.#queued.push({ id, text });
      } else {
        const why = this.#stopped ? 'the client is closed' : how.queue ? 'too many commands waiting for a connection' : 'not connected';
        this.#settle(id, new RippleError(this.#stopped ? 'closed' : how.queue ? 'queue_full' : 'disconnected', why));
      }
    });
  }

  /** @param {number} id @param {RippleError | null} error @param {any} [reply] */
  #settle(id, error, reply) {
    const entry = this.#pending.get(id);
    if (!entry) return;
    this.#pending.delete(id);
    clearTimeout(entry.timer);
    if (error) {
      entry.reject(error);
    } else {
      entry.onReply?.(reply);
      entry.resolve(reply);
    }
  }

  /**
   * Subscribes `sub` on the current connection: with `since` = its position (recovery), or,
   * the first time with `recent`, after fetching the last messages from history.
   *
   * @param {Subscription} sub
   */
  async #subscribeNow(sub) {
    const handle = this.#conn;
    const send = (/** @type {any} */ command, /** @type {any} */ onReply = undefined) =>
      this.#send({ ...command, channel: sub.channel }, { direct: handle, onReply });
    try {
      if (sub._wantsRecent()) {
        const page = await send({ type: 'history' });
        if (this.#conn !== handle || sub.state === 'unsubscribed') return;
        sub._deliverRecent(page);
      }
      const since = sub._since();
      await send({ type: 'subscribe', since: since ?? undefined }, (/** @type {any} */ reply) => sub._subscribed(reply, since));
    } catch (err) {
      if (err instanceof RippleError && (err.code === 'disconnected' || err.code === 'timeout')) return;
      if (this.#subscriptions.get(sub.channel) === sub) this.#subscriptions.delete(sub.channel);
      sub._failed(/** @type {RippleError} */ (err));
      if (sub.listenerCount('error') === 0) this.emit('error', err);
    }
  }

  /** @param {Subscription} sub */
  async #unsubscribe(sub) {
    if (this.#subscriptions.get(sub.channel) !== sub) return;
    this.#subscriptions.delete(sub.channel);
    if (!this.#authenticated || !this.#conn) return;
    try {
      await this.#send({ type: 'unsubscribe', channel: sub.channel }, { direct: this.#conn });
    } catch (err) {
      // not_subscribed (a subscribe still in flight was refused) or a lost connection, which
      // unsubscribes too
      if (!(err instanceof RippleError)) throw err;
    }
  }
}

/**
 * A channel subscription. Events: `message`, `join`, `leave`, `subscribed`, `gap`, `error`,
 * `unsubscribed` (see ripple.d.ts).
 */
export class Subscription extends Emitter {
  /** @type {'subscribing' | 'subscribed' | 'unsubscribed' | 'failed'} */
  state = 'subscribing';
  /** The last message delivered: the `since` of the next resubscription. */
  position = /** @type {{epoch: string, offset: number} | null} */ (null);
  /** Bookkeeping, for tests and for curious applications. */
  stats = { delivered: 0, duplicates: 0, recovered: 0, gaps: 0, subscribes: 0 };

  #client;
  #hooks;
  #recent;
  #replay = /** @type {{epoch: string, upTo: number} | null} */ (null);
  /** @type {Promise<void>} */
  #ready;
  /** @type {(v?: any) => void} */
  #resolveReady = () => {};
  /** @type {(e: any) => void} */
  #rejectReady = () => {};

  /**
   * @param {Client} client
   * @param {string} channel
   * @param {import('./ripple.d.ts').SubscribeOptions} options
   * @param {{unsubscribe: () => Promise<void>}} hooks
   */
  constructor(client, channel, options, hooks) {
    super();
    this.channel = channel;
    this.#client = client;
    this.#hooks = hooks;
    this.#recent = Math.max(0, options.recent ?? 0);
    if (options.since) this.position = { epoch: String(options.since.epoch), offset: Number(options.since.offset) };
    const listeners = {
      message: options.onMessage, join: options.onJoin, leave: options.onLeave, subscribed: options.onSubscribed,
      gap: options.onGap, error: options.onError, unsubscribed: options.onUnsubscribed,
    };
    for (const [event, listener] of Object.entries(listeners)) if (typeof listener === 'function') this.on(event, listener);
    this.#ready = new Promise((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.#ready.catch(() => {}); // nobody has to wait for it
  }

  /** Resolves once subscribed (the first time); rejects if the server refuses. */
  ready() {
    return this.#ready;
  }

  /** @param {any} data */
  publish(data) {
    return this.#client.publish(this.channel, data);
  }

  presence() {
    return this.#client.presence(this.channel);
  }

  /** @param {{since?: number, limit?: number}} [options] */
  history(options) {
    return this.#client.history(this.channel, options);
  }

  /** Stops the subscription (on the server too, when connected). */
  async unsubscribe() {
    if (this.state === 'unsubscribed' || this.state === 'failed') return;
    this.state = 'unsubscribed';
    this.#rejectReady(new RippleError('unsubscribed', 'unsubscribed before subscribed', { channel: this.channel }));
    await this.#hooks.unsubscribe();
    this.emit('unsubscribed', { channel: this.channel });
  }

  // --- called by Client ---------------------------------------------------------------------------

  /** @internal */
  _wantsRecent() {
    return this.#recent > 0 && this.position === null && this.stats.subscribes === 0;
  }

  /** @internal */
  _since() {
    return this.position ? { ...this.position } : null;
  }

  /** @internal The last `recent` messages of a history page, then its position. */
  _deliverRecent(/** @type {any} */ page) {
    if (!page.epoch) return; // a channel the server does not know yet: nothing to show
    for (const msg of page.messages.slice(-this.#recent)) this.#deliver(msg, 'history');
    this.position = { epoch: page.epoch, offset: page.offset };
  }

  /** @internal */
  _subscribed(/** @type {any} */ reply, /** @type {{epoch: string, offset: number} | null} */ since) {
    if (this.state === 'unsubscribed') return;
    const resubscribed = this.stats.subscribes > 0;
    this.stats.subscribes += 1;
    this.state = 'subscribed';
    const wasRecovering = since !== null;
    /** @type {any} */
    let gap = null;
    if (!wasRecovering) {
      this.position = { epoch: reply.epoch, offset: reply.offset };
    } else if (reply.recovered) {
      this.#replay = { epoch: reply.epoch, upTo: reply.offset };
    } else {
      gap = { channel: this.channel, since, epoch: reply.epoch, offset: reply.offset, reason: since.epoch === reply.epoch ? 'expired' : 'epoch' };
      this.position = { epoch: reply.epoch, offset: reply.offset };
      this.stats.gaps += 1;
    }
    this.emit('subscribed', {
      channel: this.channel, epoch: reply.epoch, offset: reply.offset, recovered: reply.recovered, wasRecovering, resubscribed, since,
    });
    if (gap) this.emit('gap', gap);
    this.#resolveReady();
  }

  /** @internal */
  _push(/** @type {any} */ msg) {
    if (this.state !== 'subscribed') return;
    if (msg.type === 'message') {
      this.#deliver(msg, 'live');
    } else {
      this.emit(msg.type, { channel: this.channel, client: msg.client, user: msg.user });
    }
  }

  /** @internal */
  _connectionLost() {
    if (this.state === 'subscribed') this.state = 'subscribing';
    this.#replay = null;
  }

  /** @internal */
  _failed(/** @type {RippleError} */ err) {
    this.state = 'failed';
    this.#rejectReady(err);
    this.emit('error', err);
  }

  /**
   * Delivers a `message` push or history entry once: anything at or before the position in the
   * same epoch was delivered already.
   *
   * @param {any} msg
   * @param {'live' | 'history'} via
   */
  #deliver(msg, via) {
    const pos = this.position;
    if (pos && msg.epoch === pos.epoch && msg.offset <= pos.offset) {
      this.stats.duplicates += 1;
      return;
    }
    /** @type {import('./ripple.d.ts').MessageSource} */
    let source = via;
    if (via === 'live' && this.#replay && msg.epoch === this.#replay.epoch && msg.offset <= this.#replay.upTo) {
      source = 'recovery';
      this.stats.recovered += 1;
    }
    if (pos && msg.epoch === pos.epoch && msg.offset > pos.offset + 1) {
      this.stats.gaps += 1;
      this.emit('gap', { channel: this.channel, since: pos, epoch: msg.epoch, offset: msg.offset - 1, reason: 'skipped' });
    }
    this.position = { epoch: msg.epoch, offset: msg.offset };
    this.stats.delivered += 1;
    this.emit('message', { ...toMessage(msg), source });
  }
}

/** @param {any} raw @returns {import('./ripple.d.ts').Message} */
function toMessage(raw) {
  const msg = { channel: raw.channel, epoch: raw.epoch, offset: raw.offset, data: raw.data, ts: raw.ts };
  return raw.from === undefined ? msg : { ...msg, from: raw.from };
}

/** @param {{code: number, reason: string}} info */
function describe(info) {
  return info.reason ? `${info.code} ${info.reason}` : String(info.code);
}

/**
 * `ws(s)://` URL for `url`: `http(s)` becomes `ws(s)`, a path is resolved against the page, and
 * a base (a path ending with `/`) gets `ws`.
 *
 * @param {string} url
 */
function resolveUrl(url) {
  const base = globalThis.location?.href;
  const resolved = base ? new URL(url, base) : new URL(url);
  if (resolved.protocol === 'http:') resolved.protocol = 'ws:';
  if (resolved.protocol === 'https:') resolved.protocol = 'wss:';
  if (resolved.pathname.endsWith('/')) resolved.pathname += 'ws';
  return resolved.toString();
}

/**
 * Whether a JWT's `exp` has passed (read without verifying: the server does that). A token
 * that cannot be read is left for the server to judge.
 *
 * @param {string} token
 */
export function jwtExpired(token, now = Date.now()) {
  const exp = jwtClaims(token)?.exp;
  return typeof exp === 'number' && exp * 1000 <= now;
}

/**
 * A JWT's claims, read without verifying; null when they cannot be read.
 *
 * @param {string} token
 * @returns {Record<string, any> | null}
 */
function jwtClaims(token) {
  try {
    const payload = token.split('.')[1];
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(payload.length / 4) * 4, '='));
    const claims = JSON.parse(json);
    return claims !== null && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}
