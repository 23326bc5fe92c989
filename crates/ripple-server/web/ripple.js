// ripple.js: the client for Ripple's channel protocol (docs/protocol.md), for browsers and Node.
//
// An ES module with no dependencies and no build step, in two files: this one, and
// ripple-http.js (the HTTP fallback transports), which it imports by a relative specifier. A
// page served by `ripple serve` imports only this one, from the server itself (which serves
// ripple-http.js next to it, at /ripple-http.js):
//
//   import { connect } from '/ripple.js';
//   const client = connect('/ws', { token });
//   const room = client.subscribe('room:lobby', { onMessage: (m) => show(m), recent: 50 });
//   await room.publish({ text: 'hello' });
//
// Node (no global WebSocket before 22) passes an implementation: connect(url, { WebSocket }),
// for example the `ws` package's. The API is described in docs/ripple-js.md; the types of both
// files in ripple.d.ts (served at /ripple.d.ts).
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
//   reason) }` that carries the `/ws` commands and messages (the seam: `Transport` in
//   ripple.d.ts): [websocketTransport], defined here, or, where WebSockets do not get through,
//   [sseTransport] (Server-Sent Events down, `POST /rpc` up) and [pollTransport] (long-polling
//   down, `POST /rpc` up), defined in ripple-http.js and re-exported here, which translate the
//   same commands to the HTTP endpoints of docs/protocol.md ("Fallback transports"). By default
//   the client tries them in that order and keeps the first that works.
//
// This file holds the client (connect, Client, Subscription, reconnects, errors) and the
// WebSocket transport; ripple-http.js imports nothing from it, so there is no import cycle.

import { pollTransport, sseTransport } from './ripple-http.js';

export { pollTransport, sseTransport };

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

/** Close codes of docs/protocol.md that decide what a reconnect needs (ripple-http.js reports the same). */
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
   * The messages the channel keeps after offset `since`, oldest first, at most `limit`: one
   * page of at most the server's `history_page_bytes`. `more` says the channel keeps messages
   * after the page's last one: ask again with `since` = its offset.
   *
   * @param {string} channel
   * @param {{since?: number, limit?: number}} [options]
   * @returns {Promise<{channel: string, epoch: string, offset: number, more: boolean, messages: import('./ripple.d.ts').Message[]}>}
   */
  async history(channel, options = {}) {
    const reply = await this.request('history', { channel, since: options.since, limit: options.limit });
    return { channel, epoch: reply.epoch, offset: reply.offset, more: reply.more === true, messages: reply.messages.map(toMessage) };
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
        const page = await recentHistory(sub, send);
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

  /** @internal The last `recent` of `messages`. */
  _keepRecent(/** @type {any[]} */ messages) {
    return messages.slice(-this.#recent);
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

/**
 * The newest messages a subscription with `recent` shows: a long history comes in pages (at
 * most the server's `history_page_bytes` each, `more` when others follow), so follow them from
 * the oldest, keeping only the last `recent`. Ends with the page's position, as one page would.
 *
 * @param {Subscription} sub
 * @param {(command: any) => Promise<any>} send
 */
async function recentHistory(sub, send) {
  let page = await send({ type: 'history' });
  let messages = page.messages;
  while (page.more === true && page.messages.length > 0) {
    const since = page.messages[page.messages.length - 1].offset;
    const next = await send({ type: 'history', since });
    messages = next.epoch === page.epoch ? sub._keepRecent(messages.concat(next.messages)) : next.messages;
    page = next;
  }
  return { ...page, messages };
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
