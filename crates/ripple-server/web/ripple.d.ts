// Type declarations for ripple.js, the client for Ripple's channel protocol (docs/protocol.md).
// The server serves them at /ripple.d.ts; the API is described in docs/ripple-js.md.

export const VERSION: string;

export const DEFAULTS: Readonly<{
  minDelay: number;
  maxDelay: number;
  pingInterval: number;
  pongTimeout: number;
  timeout: number;
  maxQueued: number;
}>;

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A channel's stream position: the last message a client has. */
export interface Position {
  epoch: string;
  offset: number;
}

/** A message published on a channel. */
export interface Message<T = Json> {
  channel: string;
  epoch: string;
  /** Grows by one per publication on the channel (within one epoch). */
  offset: number;
  /** What the publisher sent, as it sent it. */
  data: T;
  /** The publisher's token `sub`; absent for anonymous publishers and the HTTP API. */
  from?: string;
  /** Publication time, Unix milliseconds. */
  ts: number;
}

/** How a message reached `onMessage`. */
export type MessageSource =
  /** published while subscribed */
  | 'live'
  /** replayed by the server after a reconnect (recovery) */
  | 'recovery'
  /** one of the last messages fetched on subscribing (`recent`) */
  | 'history';

export interface DeliveredMessage<T = Json> extends Message<T> {
  source: MessageSource;
}

/** A member of a channel (presence, join, leave). */
export interface PresenceInfo {
  channel?: string;
  client: string;
  /** The token's `sub` (JWT mode). */
  user?: string;
}

/** The transports `connect` knows: `/ws`; Server-Sent Events (`/sse`) with `POST /rpc`; long-polling (`/poll`) with `POST /rpc`. */
export type TransportName = 'websocket' | 'sse' | 'poll';

/** `{ send, close }` over one connection: what a transport factory returns. It carries `/ws` commands and messages, whatever it does underneath. */
export interface TransportConnection {
  name?: string;
  send(text: string): void;
  close(code?: number, reason?: string): void;
}

/** How a connection ended. */
export interface CloseInfo {
  code: number;
  reason: string;
  wasClean?: boolean;
  /**
   * Before a transport has worked for this client: `true`, this transport does not get through
   * here (the client tries its next one); `false` before opening, nothing reached the server at
   * all (the client starts again from its first). Absent: judged by whether `open()` was called.
   */
  transportFailed?: boolean;
}

export interface TransportHandlers {
  open(): void;
  message(text: string): void;
  close(info: CloseInfo): void;
  error(error: unknown): void;
}

/** What the client knows when it opens a connection. */
export interface TransportContext {
  /** The token of this connection (also sent in an `auth` command), or null. */
  token: string | null;
  /** The client's `timeout` (ms). */
  timeout: number;
}

/** Opens one connection to `url` (the client's `ws(s)://…/ws` URL); called again for every reconnect. */
export type Transport = (url: string, on: TransportHandlers, context: TransportContext) => TransportConnection;

export interface TokenContext {
  /** `initial`: no token yet; `expired`: the token's `exp` has passed; otherwise the server's refusal (`token_expired`, `invalid_token`, `no_token`). */
  reason: 'initial' | 'expired' | 'token_expired' | 'invalid_token' | 'no_token';
}

export interface ClientOptions {
  /** A JWT (JWT mode); sent in an `auth` command on every connection. */
  token?: string;
  /** Provides a token when there is none, when it expired, or when the server refused it. */
  getToken?: (context: TokenContext) => string | Promise<string>;
  /** The transports to try, in order, keeping the first that works (default `['websocket', 'sse', 'poll']`, skipping those this environment cannot run). One name forces that transport. */
  transports?: TransportName[];
  /** The WebSocket class (default: the global one; in Node < 22, the `ws` package's). */
  WebSocket?: unknown;
  /** The EventSource class for the `sse` transport (default: the global one). */
  EventSource?: unknown;
  /** The fetch function for the `sse` and `poll` transports (default: the global one). */
  fetch?: unknown;
  /** Replaces the built-in transports (`transports` is then ignored). */
  transport?: Transport;
  /** Reconnect backoff: the first retry waits 250–500 ms by default. */
  minDelay?: number;
  /** Reconnect backoff cap (default 20 000 ms). */
  maxDelay?: number;
  /** Send `ping` after this long without a message from the server (default 20 000 ms). */
  pingInterval?: number;
  /** Replace the connection when nothing arrives this long after a ping (default 10 000 ms). */
  pongTimeout?: number;
  /** For a command's reply, a connection attempt, and a getToken call (default 10 000 ms). */
  timeout?: number;
  /** Commands waiting for a connection (default 1000); more are rejected with `queue_full`. */
  maxQueued?: number;
  /** Listen to the browser's online/offline events (default true, where they exist). */
  watchNetwork?: boolean;
  /** Connect at once (default true). */
  autoConnect?: boolean;
}

export interface SubscribeOptions<T = Json> {
  onMessage?: (message: DeliveredMessage<T>) => void;
  onJoin?: (info: PresenceInfo) => void;
  onLeave?: (info: PresenceInfo) => void;
  onSubscribed?: (event: SubscribedEvent) => void;
  /** The server could not replay what was missed: some messages may be missing. */
  onGap?: (event: GapEvent) => void;
  /** The server refused the subscription (`forbidden`, `invalid_channel`, …). */
  onError?: (error: RippleError) => void;
  onUnsubscribed?: (event: { channel: string }) => void;
  /** Start after this position (recover from it), e.g. one saved from an earlier page. */
  since?: Position;
  /** On the first subscribe, deliver up to this many of the channel's latest messages first. */
  recent?: number;
}

export interface SubscribedEvent {
  channel: string;
  epoch: string;
  /** The channel's newest offset at the subscription. */
  offset: number;
  recovered: boolean;
  /** Whether `since` was sent (a resubscription, `recent`, or the `since` option). */
  wasRecovering: boolean;
  /** Whether this is a resubscription after a reconnect. */
  resubscribed: boolean;
  /** The position recovered from (null without `since`): with `recovered`, the messages after it up to `offset` follow, marked `recovery`. */
  since: Position | null;
}

export interface GapEvent {
  channel: string;
  /** The position the client asked to recover from. */
  since: Position;
  /** Where the stream continues from. */
  epoch: string;
  offset: number;
  /** `epoch`: the channel restarted (server restart, or swept); `expired`: older than the history keeps; `skipped`: offsets jumped. */
  reason: 'epoch' | 'expired' | 'skipped';
}

export interface StateEvent {
  state: 'connecting' | 'connected' | 'disconnected';
  /** connecting: reconnect attempts so far (0 for the first connection). */
  attempt?: number;
  /** connected: this connection's id and the token's `sub`. */
  client?: string | null;
  user?: string | null;
  /** connecting, connected: the transport of this connection (`websocket`, `sse`, `poll`, or `custom`). */
  transport?: string;
  /** disconnected: the close code (1006 when the connection failed or was abandoned) and why. */
  code?: number;
  reason?: string;
  willReconnect?: boolean;
  /** disconnected with willReconnect: milliseconds until the next attempt, and when. */
  delay?: number;
  retryAt?: number;
}

export class RippleError extends Error {
  /** The server's error code (`forbidden`, `token_expired`, …) or the client's (`timeout`, `disconnected`, `closed`, `queue_full`, `token_unavailable`, `already_subscribed`, `unsubscribed`). */
  code: string;
  channel?: string;
  constructor(code: string, message: string, details?: { channel?: string });
}

interface Events<M> {
  on<K extends keyof M>(event: K, listener: (arg: M[K]) => void): () => void;
  once<K extends keyof M>(event: K, listener: (arg: M[K]) => void): () => void;
  off<K extends keyof M>(event: K, listener: (arg: M[K]) => void): void;
  listenerCount(event: keyof M): number;
}

export interface ClientEvents {
  state: StateEvent;
  connecting: StateEvent;
  connected: StateEvent;
  disconnected: StateEvent;
  error: RippleError;
}

export interface SubscriptionEvents<T = Json> {
  message: DeliveredMessage<T>;
  join: PresenceInfo;
  leave: PresenceInfo;
  subscribed: SubscribedEvent;
  gap: GapEvent;
  error: RippleError;
  unsubscribed: { channel: string };
}

export interface Client extends Events<ClientEvents> {}
export class Client {
  constructor(url: string, options?: ClientOptions);
  readonly url: string;
  /** The transport of the current (or last) connection; null before the first. */
  readonly transport: string | null;
  state: 'connecting' | 'connected' | 'disconnected';
  clientId: string | null;
  user: string | null;
  attempt: number;
  readonly subscriptions: Map<string, Subscription>;
  subscribe<T = Json>(channel: string, options?: SubscribeOptions<T>): Subscription<T>;
  getSubscription(channel: string): Subscription | null;
  publish(channel: string, data: Json): Promise<{ channel: string } & Position>;
  presence(channel: string): Promise<PresenceInfo[]>;
  /** One page (at most the server's `history_page_bytes`); `more`: ask again with `since` = the last message's offset. */
  history(channel: string, options?: { since?: number; limit?: number }): Promise<{ channel: string; epoch: string; offset: number; more: boolean; messages: Message[] }>;
  request(type: string, fields?: Record<string, Json | undefined>, options?: { timeout?: number }): Promise<any>;
  close(): void;
  reconnect(options?: { token?: string }): void;
}

export interface Subscription<T = Json> extends Events<SubscriptionEvents<T>> {}
export class Subscription<T = Json> {
  readonly channel: string;
  state: 'subscribing' | 'subscribed' | 'unsubscribed' | 'failed';
  /** The last message delivered: where a resubscription recovers from. */
  position: Position | null;
  stats: { delivered: number; duplicates: number; recovered: number; gaps: number; subscribes: number };
  ready(): Promise<void>;
  publish(data: T): Promise<{ channel: string } & Position>;
  presence(): Promise<PresenceInfo[]>;
  history(options?: { since?: number; limit?: number }): Promise<{ channel: string; epoch: string; offset: number; more: boolean; messages: Message<T>[] }>;
  unsubscribe(): Promise<void>;
}

export function connect(url: string, options?: ClientOptions): Client;
export function backoff(attempt: number, options?: { minDelay?: number; maxDelay?: number }, random?: () => number): number;
export function websocketTransport(WebSocket?: unknown): Transport;
export function sseTransport(options?: { EventSource?: unknown; fetch?: unknown }): Transport;
export function pollTransport(options?: { fetch?: unknown }): Transport;
export function jwtExpired(token: string, now?: number): boolean;
