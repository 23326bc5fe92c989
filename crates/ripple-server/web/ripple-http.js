// ripple-http.js: the HTTP fallback transports of ripple.js, for where WebSockets do not get
// through (docs/protocol.md, "Fallback transports"). ripple.js imports it and re-exports its two
// transports; a page imports only /ripple.js (the server serves this file next to it, at
// /ripple-http.js, and the browser fetches it by itself).
//
// - [sseTransport]: messages come down an `EventSource` on `/sse`;
// - [pollTransport]: messages come as answers to `GET /poll`, one request after the other;
// - both send every command as `POST /rpc`, answer `auth` themselves (the token goes with every
//   request), and keep each channel's position so that a new stream or poll resumes exactly
//   where the client is (a cursor).
//
// Each is a transport factory as ripple.d.ts describes it (`Transport`): the client speaks to
// the connection it returns as to `/ws`, and hears `/ws` messages and `/ws` close codes. The
// module imports nothing: ripple.js depends on it, never the other way round.

/**
 * The close codes of docs/protocol.md that a connection reports as `/ws` would close: the client
 * (ripple.js) decides on them whether a reconnect needs another token.
 */
const CLOSE = Object.freeze({
  ABNORMAL: 1006,
  INVALID_TOKEN: 4001,
  TOKEN_EXPIRED: 4002,
  AUTH_TIMEOUT: 4003,
});
/** The command timeout when the client gives none (its default `timeout`). */
const DEFAULT_TIMEOUT_MS = 10_000;

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
    this.timeout = context?.timeout ?? DEFAULT_TIMEOUT_MS;
    this.user = tokenUser(this.token);
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
    this.user = tokenUser(token);
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
 * A JWT's `sub`, read without verifying (the server does that): who `authenticated` names, as
 * `/ws` would; null when the token cannot be read.
 *
 * @param {string | null} token
 * @returns {string | null}
 */
function tokenUser(token) {
  if (!token) return null;
  try {
    const payload = token.split('.')[1];
    const claims = JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(payload.length / 4) * 4, '=')));
    return claims !== null && typeof claims === 'object' ? claims.sub ?? null : null;
  } catch {
    return null;
  }
}
