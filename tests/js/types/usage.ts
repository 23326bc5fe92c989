// What a TypeScript application writes against ripple.d.ts; types.test.mjs compiles it with
// --strict. A change to the declarations that breaks it breaks users.
import {
  backoff, connect, type DeliveredMessage, type GapEvent, pollTransport, RippleError, sseTransport, type Transport, type TransportName,
} from '../../../crates/ripple-server/web/ripple.js';

interface Chat { text: string; nick: string }

const client = connect('ws://127.0.0.1:8765/ws', {
  token: 'eyJ…',
  getToken: async ({ reason }) => `fresh token (${reason})`,
  pingInterval: 15_000,
});
client.on('state', (e) => console.log(e.state, e.attempt, e.code, e.reason, e.willReconnect, e.delay));
client.on('error', (err: RippleError) => console.log(err.code, err.message));
client.on('connected', (e) => console.log(e.transport, client.transport));

// Only the HTTP transports, SSE first; or one forced; or one built by hand with injected implementations.
const order: TransportName[] = ['sse', 'poll'];
const fallback = connect('https://chat.example/', { transports: order, EventSource: class {}, fetch: globalThis.fetch });
const forced = connect('/ws', { transports: ['poll'], autoConnect: false });
const custom: Transport = sseTransport({ EventSource: class {}, fetch: globalThis.fetch });
const byHand = connect('/ws', { transport: custom, autoConnect: false });
const polling: Transport = (url, on, context) => pollTransport()(url, on, context);
console.log(fallback.url, forced.transport, byHand.state, polling.length);

const room = client.subscribe<Chat>('room:lobby', {
  recent: 50,
  onMessage: (m: DeliveredMessage<Chat>) => console.log(m.data.nick, m.data.text, m.offset, m.epoch, m.source, m.from ?? '-'),
  onJoin: (p) => console.log(p.client, p.user),
  onGap: (g: GapEvent) => console.log(g.reason, g.since.offset, g.offset),
  onSubscribed: (e) => console.log(e.recovered, e.resubscribed, e.since?.offset),
});

async function main(): Promise<void> {
  await room.ready();
  const where = await room.publish({ text: 'hi', nick: 'alice' });
  const offset: number = where.offset;
  const people = await room.presence();
  const page = await room.history({ limit: 10 });
  const first: Chat | undefined = page.messages[0]?.data;
  console.log(offset, people.map((p) => p.user ?? p.client), first, room.position?.offset, room.stats.duplicates);
  const delay: number = backoff(2, { minDelay: 100 });
  console.log(delay);
  await room.unsubscribe();
  client.close();
}
void main();
