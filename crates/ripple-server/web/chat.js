// The chat page (/): rooms on channels `room:<name>` over ripple.js.
//
// A message is published as {text, nick, client}; a member announces itself with
// {kind: "hello", nick, client} on every (re)subscription, which is how the anonymous server's
// presence (connection ids only) gets names. In JWT mode the name is the token's `sub`
// (`from`, `user`), which the server vouches for.
//
// The page URL may carry ?room=, ?nick= (both: join at once), ?token=, and ?transport=
// (websocket, sse or poll: only that transport; by default ripple.js picks the first that works).
import { connect } from '/ripple.js';

const RECENT = 50; // messages shown on joining
const MAX_ROWS = 500; // rows kept in the page
const GROUP_MS = 5 * 60_000; // consecutive messages of one author within this share a header
const REANNOUNCE_AFTER = 40; // re-send our hello on a join when ours is older than this many offsets
/** How the indicator names each transport, and what its tooltip says. */
const TRANSPORTS = {
  websocket: { label: 'WebSocket', title: 'WebSocket on /ws' },
  sse: { label: 'SSE', title: 'Server-Sent Events on /sse, commands over POST /rpc' },
  poll: { label: 'long-polling', title: 'Long-polling on /poll, commands over POST /rpc' },
};

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const ui = {
  status: $('status'), statusText: $('status-text'), retry: /** @type {HTMLButtonElement} */ ($('retry')),
  error: $('error'), errorText: $('error-text'), errorClose: $('error-close'),
  joinView: $('join-view'), join: /** @type {HTMLFormElement} */ ($('join')),
  nick: /** @type {HTMLInputElement} */ ($('nick')), room: /** @type {HTMLInputElement} */ ($('room')),
  token: /** @type {HTMLInputElement} */ ($('token')), tokenDetails: /** @type {HTMLDetailsElement} */ ($('token-details')),
  chatView: $('chat-view'), roomTitle: $('room-title'), roomHeading: $('room-heading'),
  scroller: $('scroller'), messages: $('messages'), jump: $('jump'),
  composer: /** @type {HTMLFormElement} */ ($('composer')), input: /** @type {HTMLInputElement} */ ($('composer-input')),
  send: /** @type {HTMLButtonElement} */ ($('send')), hint: $('composer-hint'),
  people: $('people'), peopleCount: $('people-count'), leave: $('leave'),
};

const storage = {
  get: (/** @type {Storage} */ s, /** @type {string} */ k) => { try { return s.getItem(k); } catch { return null; } },
  set: (/** @type {Storage} */ s, /** @type {string} */ k, /** @type {string} */ v) => { try { s.setItem(k, v); } catch { /* private mode */ } },
};

/** @type {import('/ripple.d.ts').Client | null} */
let client = null;
let clientToken = '';
/** The room being shown. */
let room = /** @type {null | {name: string, channel: string, sub: import('/ripple.d.ts').Subscription, nick: string}} */ (null);
/** Every connection id this page has had (its messages are "mine" across reconnects). */
const myClients = new Set();
/** client id → nickname, from hello messages. */
const nicks = new Map();
/** client id → presence info, for the room shown. */
let members = new Map();
/** Epochs in the order first seen: a restarted channel's messages sort after the old ones. */
let epochs = /** @type {string[]} */ ([]);
let lastKey = [0, 0];
let myHelloOffset = 0;
let newestOffset = 0;
let unread = 0;
/** The notice over the messages recovered after a reconnect, counted as they come. */
let catchUp = /** @type {null | {epoch: string, upTo: number, count: number, row: HTMLLIElement | null}} */ (null);
/** @type {any} */
let countdown = null;
/** `?transport=`: the one transport to use, or null to let ripple.js choose. */
let forcedTransport = /** @type {null | 'websocket' | 'sse' | 'poll'} */ (null);

init();

function init() {
  const params = new URLSearchParams(location.search);
  const token = params.get('token') ?? storage.get(sessionStorage, 'ripple.token') ?? '';
  const transport = params.get('transport');
  if (transport === 'websocket' || transport === 'sse' || transport === 'poll') forcedTransport = transport;
  ui.nick.value = params.get('nick') ?? storage.get(localStorage, 'ripple.nick') ?? '';
  ui.room.value = params.get('room') ?? storage.get(localStorage, 'ripple.room') ?? 'lobby';
  ui.token.value = token;
  if (token) ui.tokenDetails.open = true;
  ui.status.hidden = true;

  ui.join.addEventListener('submit', (e) => {
    e.preventDefault();
    join(ui.nick.value.trim(), ui.room.value.trim(), ui.token.value.trim());
  });
  ui.composer.addEventListener('submit', (e) => {
    e.preventDefault();
    send();
  });
  ui.leave.addEventListener('click', leave);
  ui.errorClose.addEventListener('click', () => { ui.error.hidden = true; });
  ui.retry.addEventListener('click', () => client?.reconnect(clientToken ? { token: clientToken } : {}));
  ui.jump.addEventListener('click', () => scrollToBottom());
  ui.scroller.addEventListener('scroll', () => { if (atBottom()) ui.jump.hidden = true; });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) { unread = 0; updateTitle(); }
  });

  if (params.get('nick') && params.get('room')) {
    join(ui.nick.value.trim(), ui.room.value.trim(), token);
  } else {
    (ui.nick.value ? ui.room : ui.nick).focus();
  }
}

// --- joining and leaving ---------------------------------------------------------------------

function join(/** @type {string} */ nick, /** @type {string} */ name, /** @type {string} */ token) {
  if (!nick || !name || /\s/.test(name)) return;
  ui.error.hidden = true;
  storage.set(localStorage, 'ripple.nick', nick);
  storage.set(localStorage, 'ripple.room', name);
  storage.set(sessionStorage, 'ripple.token', token);
  history.replaceState(null, '', `?${pageQuery({ room: name })}`);

  if (!client) {
    client = connect('/ws', { token: token || undefined, ...(forcedTransport ? { transports: [forcedTransport] } : {}) });
    clientToken = token;
    client.on('state', showState);
    client.on('error', (err) => showError(err));
    client.on('connected', () => { if (client?.clientId) myClients.add(client.clientId); });
    // For tests and the curious: the live client.
    Object.assign(window, { chat: { get client() { return client; }, get room() { return room; } } });
  } else if (token !== clientToken || client.state === 'disconnected') {
    clientToken = token;
    client.reconnect({ token: token || undefined });
  }
  ui.status.hidden = false;

  if (room?.name !== name || room.sub.state === 'failed' || room.sub.state === 'unsubscribed') {
    room?.sub.unsubscribe();
    clearRoom();
    const channel = `room:${name}`;
    const sub = client.subscribe(channel, {
      recent: RECENT,
      onMessage: received,
      onSubscribed: subscribed,
      onGap: gap,
      onJoin: joined,
      onLeave: left,
      onError: (err) => {
        if (room?.sub !== sub) return;
        showError(err);
        ui.input.disabled = ui.send.disabled = true;
        const empty = ui.messages.querySelector('.empty');
        if (empty) empty.textContent = 'This room is not open to you.';
      },
    });
    room = { name, channel, sub, nick };
  }
  room.nick = nick;
  ui.roomTitle.textContent = `# ${name}`;
  ui.roomHeading.textContent = `Room ${name}`;
  ui.input.placeholder = `Message #${name}`;
  ui.input.disabled = ui.send.disabled = false;
  updateTitle();
  ui.joinView.hidden = true;
  ui.chatView.hidden = false;
  ui.input.focus();
}

function leave() {
  room?.sub.unsubscribe();
  room = null;
  clearRoom();
  const query = pageQuery({});
  history.replaceState(null, '', query ? `?${query}` : location.pathname);
  ui.roomTitle.textContent = '';
  document.title = 'Ripple chat';
  ui.chatView.hidden = true;
  ui.joinView.hidden = false;
  ui.room.focus();
}

/** The page's query: `fields`, and the forced transport (it stays for reloads). */
function pageQuery(/** @type {Record<string, string>} */ fields) {
  const query = new URLSearchParams(fields);
  if (forcedTransport) query.set('transport', forcedTransport);
  return query.toString();
}

function clearRoom() {
  ui.messages.replaceChildren(emptyRow('Loading…'));
  members = new Map();
  epochs = [];
  lastKey = [0, 0];
  myHelloOffset = 0;
  newestOffset = 0;
  renderPeople();
}

// --- the subscription's events -------------------------------------------------------------------

function subscribed(/** @type {import('/ripple.d.ts').SubscribedEvent} */ event) {
  const sub = room?.sub;
  if (!room || !sub || event.channel !== room.channel) return;
  // Over SSE every new stream is a new session with its own id.
  if (client?.clientId) myClients.add(client.clientId);
  ui.input.disabled = ui.send.disabled = false;
  rank(event.epoch);
  newestOffset = Math.max(newestOffset, event.offset);
  const empty = ui.messages.querySelector('.empty');
  if (empty) empty.textContent = 'No messages yet. Say hello!';
  if (event.resubscribed && event.recovered && event.since && event.offset > event.since.offset) {
    catchUp = { epoch: event.epoch, upTo: event.offset, count: 0, row: null };
  }
  announce(event.resubscribed);
  sub.presence().then((list) => {
    if (room?.sub !== sub) return;
    members = new Map(list.map((m) => [m.client, m]));
    // A long-polling client holds no connection: the server does not list it. We are here all the same.
    if (client?.transport === 'poll' && client.clientId) members.set(client.clientId, { client: client.clientId });
    renderPeople();
  }).catch(() => {});
}

function received(/** @type {import('/ripple.d.ts').DeliveredMessage<any>} */ m) {
  newestOffset = Math.max(newestOffset, m.offset);
  const data = m.data;
  if (data && typeof data === 'object' && data.kind === 'hello') {
    if (typeof data.client === 'string' && typeof data.nick === 'string') nicks.set(data.client, data.nick.slice(0, 32));
    if (myClients.has(data.client)) myHelloOffset = Math.max(myHelloOffset, m.offset);
    if (!data.again) addNotice(`${m.from ?? data.nick} joined`, [rank(m.epoch), m.offset], 'join');
    renderPeople();
    return;
  }
  addMessage(m);
  if (m.source === 'recovery' && catchUp && m.epoch === catchUp.epoch && m.offset <= catchUp.upTo) {
    catchUp.count += 1;
    const text = `Back online: ${catchUp.count} ${catchUp.count === 1 ? 'message' : 'messages'} arrived while you were away`;
    if (!catchUp.row) {
      catchUp.row = addNotice(text, [rank(m.epoch), m.offset - 0.5], 'caught-up');
    } else {
      /** @type {HTMLElement} */ (catchUp.row.firstChild).textContent = text;
    }
  }
}

function gap(/** @type {import('/ripple.d.ts').GapEvent} */ g) {
  const why = {
    epoch: 'The server restarted while you were away: messages sent meanwhile may be missing.',
    expired: 'You were away for long: some messages may be missing.',
    skipped: 'Some messages may be missing.',
  }[g.reason] ?? 'Some messages may be missing.';
  addNotice(why, [rank(g.epoch), g.offset + 0.5], 'gap');
}

function joined(/** @type {import('/ripple.d.ts').PresenceInfo} */ info) {
  members.set(info.client, info);
  renderPeople();
  // Someone new may not have our hello in the history they got: say it again (hidden).
  if (room && client?.state === 'connected' && newestOffset - myHelloOffset > REANNOUNCE_AFTER) announce(true);
}

function left(/** @type {import('/ripple.d.ts').PresenceInfo} */ info) {
  const name = nameOf(info.client);
  members.delete(info.client);
  renderPeople();
  if (![...members.keys()].some((c) => nameOf(c) === name)) {
    addNotice(`${name} left`, [lastKey[0], lastKey[1] + 0.5], 'leave');
  }
}

function announce(/** @type {boolean} */ again) {
  if (!room || !client?.clientId) return;
  const hello = { kind: 'hello', nick: room.nick, client: client.clientId, ...(again ? { again: true } : {}) };
  room.sub.publish(hello).catch(() => {});
}

// --- sending ---------------------------------------------------------------------------------------

function send() {
  const text = ui.input.value.trim();
  if (!text || !room || !client) return;
  ui.input.value = '';
  if (client.state !== 'connected') {
    ui.hint.textContent = 'Not connected: your message will be sent when the connection is back.';
  }
  room.sub.publish({ text, nick: room.nick, client: client.clientId })
    .then(() => { ui.hint.textContent = ''; })
    .catch((err) => {
      ui.hint.textContent = '';
      showError(`Your message was not sent (${err.code ?? 'error'}: ${err.message}).`);
      if (!ui.input.value) ui.input.value = text;
    });
}

// --- the message list ------------------------------------------------------------------------------

/** The order of an epoch among those seen (a new epoch sorts after every older one). */
function rank(/** @type {string} */ epoch) {
  let i = epochs.indexOf(epoch);
  if (i < 0) { epochs.push(epoch); i = epochs.length - 1; }
  return i;
}

function addMessage(/** @type {import('/ripple.d.ts').DeliveredMessage<any>} */ m) {
  const data = m.data;
  const isObject = data !== null && typeof data === 'object';
  const text = typeof data === 'string' ? data : isObject && typeof data.text === 'string' ? data.text : null;
  const author = String(m.from ?? (isObject && typeof data.nick === 'string' ? data.nick.slice(0, 32) : 'server'));
  const mine = isObject && myClients.has(data.client);

  const li = document.createElement('li');
  li.className = 'msg';
  li.dataset.epoch = m.epoch;
  li.dataset.offset = String(m.offset);
  li.dataset.source = m.source;
  li.dataset.author = author;
  li.dataset.ts = String(m.ts);
  if (mine) li.classList.add('mine');
  if (m.source === 'recovery') li.classList.add('recovered');

  const avatar = document.createElement('span');
  avatar.className = 'avatar';
  avatar.setAttribute('aria-hidden', 'true');
  avatar.textContent = initial(author);
  avatar.style.background = colorOf(author);

  const meta = document.createElement('div');
  meta.className = 'meta';
  const who = document.createElement('span');
  who.className = 'author';
  who.textContent = author;
  meta.append(who);
  if (m.from) {
    const badge = document.createElement('span');
    badge.className = 'verified';
    badge.textContent = '✓';
    badge.title = 'Signed in with a token';
    meta.append(badge);
  }
  meta.append(timeElement(m.ts));

  const bubble = document.createElement('div');
  bubble.className = 'bubble';
  if (text === null) {
    bubble.classList.add('data');
    bubble.textContent = JSON.stringify(data);
  } else {
    bubble.textContent = text;
  }
  // Screen readers hear "alice, 14:03: text" even when the header is visually grouped.
  const spoken = document.createElement('span');
  spoken.className = 'visually-hidden';
  spoken.textContent = `${author} at ${formatTime(m.ts)}: `;
  bubble.prepend(spoken);

  li.append(avatar, meta, bubble);
  insertRow(li, [rank(m.epoch), m.offset]);
  if (document.hidden) { unread += 1; updateTitle(); }
}

function addNotice(/** @type {string} */ text, /** @type {number[]} */ key, /** @type {string} */ kind) {
  const li = document.createElement('li');
  li.className = `notice ${kind}`;
  li.dataset.kind = kind;
  const span = document.createElement('span');
  span.textContent = text;
  li.append(span);
  insertRow(li, key);
  return li;
}

/** Inserts a row in (epoch, offset) order: recovered messages land in their place. */
function insertRow(/** @type {HTMLLIElement} */ li, /** @type {number[]} */ key) {
  const stick = atBottom() || li.classList.contains('mine');
  ui.messages.querySelector('.empty')?.remove();
  li.dataset.key = key.join(':');
  let before = /** @type {Element | null} */ (ui.messages.lastElementChild);
  while (before && compare(keyOf(before), key) > 0) before = before.previousElementSibling;
  if (before) before.after(li); else ui.messages.prepend(li);
  if (compare(key, lastKey) > 0) lastKey = key;
  regroup(li);
  if (li.nextElementSibling) regroup(li.nextElementSibling);
  while (ui.messages.children.length > MAX_ROWS) ui.messages.firstElementChild?.remove();
  if (stick) scrollToBottom(); else if (li.classList.contains('msg')) ui.jump.hidden = false;
}

/** A message starts a group unless the row above is the same author's, recent enough. */
function regroup(/** @type {Element} */ row) {
  if (!(row instanceof HTMLElement) || !row.classList.contains('msg')) return;
  const prev = row.previousElementSibling;
  const same = prev instanceof HTMLElement && prev.classList.contains('msg') &&
    prev.dataset.author === row.dataset.author &&
    Math.abs(Number(row.dataset.ts) - Number(prev.dataset.ts)) < GROUP_MS;
  row.classList.toggle('first', !same);
}

const keyOf = (/** @type {Element} */ el) => (/** @type {HTMLElement} */ (el).dataset.key ?? '0:0').split(':').map(Number);
const compare = (/** @type {number[]} */ a, /** @type {number[]} */ b) => (a[0] - b[0]) || (a[1] - b[1]);

function emptyRow(/** @type {string} */ text) {
  const li = document.createElement('li');
  li.className = 'empty';
  li.textContent = text;
  return li;
}

function atBottom() {
  const s = ui.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
}

function scrollToBottom() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
  ui.jump.hidden = true;
}

// --- people --------------------------------------------------------------------------------------

function nameOf(/** @type {string} */ id) {
  return members.get(id)?.user ?? nicks.get(id) ?? `guest-${id.slice(0, 4)}`;
}

function renderPeople() {
  /** @type {Map<string, {mine: boolean, clients: number}>} */
  const byName = new Map();
  for (const id of members.keys()) {
    const name = nameOf(id);
    const entry = byName.get(name) ?? { mine: false, clients: 0 };
    entry.clients += 1;
    entry.mine ||= id === client?.clientId;
    byName.set(name, entry);
  }
  const names = [...byName.keys()].sort((a, b) => Number(byName.get(b)?.mine) - Number(byName.get(a)?.mine) || a.localeCompare(b));
  ui.people.replaceChildren(...names.map((name) => {
    const li = document.createElement('li');
    li.dataset.name = name;
    const avatar = document.createElement('span');
    avatar.className = 'avatar';
    avatar.setAttribute('aria-hidden', 'true');
    avatar.textContent = initial(name);
    avatar.style.background = colorOf(name);
    const label = document.createElement('span');
    label.className = 'name';
    label.textContent = name;
    li.append(avatar, label);
    if (byName.get(name)?.mine) {
      li.classList.add('me');
      const you = document.createElement('span');
      you.className = 'you';
      you.textContent = '(you)';
      li.append(you);
    }
    return li;
  }));
  ui.peopleCount.textContent = String(names.length);
  ui.peopleCount.setAttribute('aria-label', `${names.length} ${names.length === 1 ? 'person' : 'people'}`);
}

// --- connection state and errors ---------------------------------------------------------------

function showState(/** @type {import('/ripple.d.ts').StateEvent} */ e) {
  clearInterval(countdown);
  ui.retry.hidden = true;
  ui.status.title = e.reason ? `${e.code ?? ''} ${e.reason}`.trim() : '';
  if (e.transport) ui.status.dataset.transport = e.transport;
  if (e.state === 'connected') {
    const transport = TRANSPORTS[/** @type {keyof TRANSPORTS} */ (e.transport)];
    setStatus('connected', transport ? `Connected · ${transport.label}` : 'Connected');
    ui.status.title = transport?.title ?? '';
    ui.hint.textContent = '';
  } else if (e.state === 'connecting') {
    setStatus(e.attempt ? 'reconnecting' : 'connecting', e.attempt ? 'Reconnecting…' : 'Connecting…');
  } else if (e.willReconnect) {
    const tick = () => {
      const secs = Math.max(0, Math.ceil(((e.retryAt ?? Date.now()) - Date.now()) / 1000));
      setStatus('reconnecting', secs > 0 ? `Reconnecting in ${secs}s` : 'Reconnecting…');
    };
    tick();
    countdown = setInterval(tick, 250);
    ui.retry.textContent = 'Retry now';
    ui.retry.hidden = false;
  } else {
    setStatus('offline', 'Offline');
    ui.retry.textContent = 'Reconnect';
    const tokenRefused = e.code === 4001 || e.code === 4002 || e.code === 4003;
    ui.retry.hidden = tokenRefused;
    if (tokenRefused) {
      // The token was refused: ask for another one.
      ui.tokenDetails.open = true;
      ui.chatView.hidden = true;
      ui.joinView.hidden = false;
      ui.token.focus();
    }
  }
}

function setStatus(/** @type {string} */ state, /** @type {string} */ text) {
  ui.status.dataset.state = state;
  if (ui.statusText.textContent !== text) ui.statusText.textContent = text;
}

function showError(/** @type {any} */ err) {
  ui.errorText.replaceChildren();
  if (typeof err === 'string') {
    ui.errorText.textContent = err;
  } else {
    const code = document.createElement('code');
    code.textContent = err.code ?? 'error';
    const advice = {
      token_expired: ' Paste a new token and join again.',
      invalid_token: ' Check the token and join again.',
      forbidden: ' Your token does not give access to this room.',
    }[/** @type {string} */ (err.code)] ?? '';
    ui.errorText.append('The server said ', code, `: ${err.message}.${advice}`);
  }
  ui.error.hidden = false;
}

function updateTitle() {
  const base = room ? `#${room.name} · Ripple` : 'Ripple chat';
  document.title = unread > 0 ? `(${unread}) ${base}` : base;
}

// --- formatting ----------------------------------------------------------------------------------

const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayAndTime = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

function formatTime(/** @type {number} */ ts) {
  const date = new Date(ts);
  return date.toDateString() === new Date().toDateString() ? timeOfDay.format(date) : dayAndTime.format(date);
}

function timeElement(/** @type {number} */ ts) {
  const time = document.createElement('time');
  time.dateTime = new Date(ts).toISOString();
  time.title = full.format(new Date(ts));
  time.textContent = formatTime(ts);
  return time;
}

function initial(/** @type {string} */ name) {
  return ([...name.trim()][0] ?? '?').toUpperCase();
}

function colorOf(/** @type {string} */ name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + /** @type {number} */ (ch.codePointAt(0))) % 360;
  return `hsl(${h} 52% 42%)`;
}
