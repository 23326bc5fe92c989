//! The Redis side of the broker: key names and the Lua scripts. Every change to a channel's
//! state is one script, so it is atomic for all nodes: offset assignment, history append,
//! trimming and the pub/sub publish happen together or not at all.
//!
//! Keys (`{…}` is a Redis Cluster hash tag: a channel's keys share a slot):
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `ripple:{C}:meta` | hash | `epoch` (created with HSETNX when absent), `offset` (HINCRBY per publication), `seq` (HINCRBY per publication, join and leave: orders presence pushes among messages) |
//! | `ripple:{C}:hist` | stream | entry id `<offset>-0`, fields `t` (Redis time, ms) and `m` (the `message` push); MAXLEN `history_size`, older than the TTL removed, PEXPIRE TTL |
//! | `ripple:{C}:pres` | hash | client id → `<node>\|<{"client","user"?} JSON>` |
//! | `ripple:channels` | sorted set | every live channel (score 0: sorted by name); a swept channel keeps its `meta` one more hour, out of this set |
//! | `ripple:nodes` | sorted set | node id → the time (ms) its presence entries expire unless it heartbeats |
//! | `ripple:node:N:subs` | set | node N's subscriptions (`<client length>:<client><channel>`), for cleaning up after it |
//! | `ripple:sweeping` | string | held for a few seconds by the node that sweeps (one per interval) |
//!
//! Pub/sub: `ripple:<db>:shard:<n>` for `n` in `0..shards` (see [`super::wire`]).

use redis::Script;

/// The `meta` key of a channel.
pub(super) fn meta(channel: &str) -> String {
    format!("ripple:{{{channel}}}:meta")
}

/// The `hist` key of a channel.
pub(super) fn hist(channel: &str) -> String {
    format!("ripple:{{{channel}}}:hist")
}

/// The `pres` key of a channel.
pub(super) fn pres(channel: &str) -> String {
    format!("ripple:{{{channel}}}:pres")
}

/// Every channel with a `meta`.
pub(super) const CHANNELS: &str = "ripple:channels";

/// Held by the node sweeping now.
pub(super) const SWEEPING: &str = "ripple:sweeping";

/// A node's set of subscriptions.
pub(super) fn node_subs(node: &str) -> String {
    format!("ripple:node:{node}:subs")
}

/// The pub/sub channel of shard `n` for database `db`.
pub(super) fn shard(db: i64, n: u32) -> String {
    format!("ripple:{db}:shard:{n}")
}

/// Helpers every script starts with.
const PRELUDE: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Whether a node still heartbeats (cached per script run).
local function alive(cache, node, now)
  local known = cache[node]
  if known == nil then
    local score = redis.call('ZSCORE', 'ripple:nodes', node)
    known = (score and tonumber(score) >= now) and true or false
    cache[node] = known
  end
  return known
end
-- The node of a presence entry, and its ClientInfo JSON.
local function entry(value)
  local bar = string.find(value, '|', 1, true)
  if not bar then return nil, nil end
  return string.sub(value, 1, bar - 1), string.sub(value, bar + 1)
end
local function offset_of(id)
  return tonumber(string.match(id, '^(%d+)'))
end
-- Removes history entries older than cutoff (they are in time order).
local function trim_age(hist, cutoff)
  while true do
    local first = redis.call('XRANGE', hist, '-', '+', 'COUNT', 1)
    if #first == 0 or tonumber(first[1][2][2]) >= cutoff then return end
    redis.call('XDEL', hist, first[1][1])
  end
end
-- History entries from stream id `start` on that are not older than cutoff: {offset, json}...
local function live_entries(hist, start, cutoff)
  local out = {}
  for _, e in ipairs(redis.call('XRANGE', hist, start, '+')) do
    if tonumber(e[2][2]) >= cutoff then
      out[#out + 1] = {offset_of(e[1]), e[2][4]}
    end
  end
  return out
end
-- A new channel (or one whose state was lost): a fresh epoch, offset 0, no old history.
local function ensure_meta(meta, hist, channel, epoch)
  if redis.call('HSETNX', meta, 'epoch', epoch) == 1 then
    redis.call('HSET', meta, 'offset', 0, 'seq', 0)
    redis.call('DEL', hist)
    redis.call('ZADD', 'ripple:channels', 0, channel)
  elseif redis.call('PERSIST', meta) == 1 then
    -- Swept while empty: back in the list, with the same epoch and offset.
    redis.call('ZADD', 'ripple:channels', 0, channel)
  end
  return redis.call('HGET', meta, 'epoch'), tonumber(redis.call('HGET', meta, 'offset'))
end
-- The same as serde_json's escaping of a string.
local escapes = {['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t'}
local function json_string(s)
  local escaped = string.gsub(s, '[%z\1-\31"\\]', function(c)
    return escapes[c] or string.format('\\u%04x', string.byte(c))
  end)
  return '"' .. escaped .. '"'
end
-- Publishes a join or leave push (see wire.rs), numbered in the channel's sequence; nothing
-- for a channel that has no meta (forgotten: nobody can be subscribed).
local function announce(meta, shard, channel, client, json)
  local epoch = redis.call('HGET', meta, 'epoch')
  if not epoch then return end
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  redis.call('PUBLISH', shard,
    'p' .. #channel .. ':' .. channel .. epoch .. ':' .. seq .. ':' .. #client .. ':' .. client .. json)
end
-- The `leave` push of a presence entry's ClientInfo JSON (as local::presence_json).
local function leave_json(channel, info)
  return '{"type":"leave","channel":' .. json_string(channel) .. ',' .. string.sub(info, 2)
end
-- wire::shard_of
local function shard_of(channel, shards)
  local h = 0
  for i = 1, #channel do
    h = (h * 31 + string.byte(channel, i)) % 4294967296
  end
  return h % shards
end
"#;

/// Publishes. KEYS: meta, hist. ARGV: channel, a new epoch (used if the channel has none),
/// history size, history TTL (ms), the push's head, data, from part, shard channel.
/// Returns `{epoch, offset}`.
const PUBLISH: &str = r#"
local meta, hist = KEYS[1], KEYS[2]
local epoch = ensure_meta(meta, hist, ARGV[1], ARGV[2])
local offset = redis.call('HINCRBY', meta, 'offset', 1)
local seq = redis.call('HINCRBY', meta, 'seq', 1)
local now = now_ms()
local json = ARGV[5] .. offset .. ',"epoch":"' .. epoch .. '","data":' .. ARGV[6] .. ARGV[7]
  .. ',"ts":' .. now .. '}'
local size, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
if size > 0 then
  redis.call('XADD', hist, 'MAXLEN', size, offset .. '-0', 't', now, 'm', json)
  trim_age(hist, now - ttl)
  redis.call('PEXPIRE', hist, math.max(ttl, 1))
end
redis.call('PUBLISH', ARGV[8],
  'm' .. #ARGV[1] .. ':' .. ARGV[1] .. epoch .. ':' .. offset .. ':' .. seq .. ':' .. json)
return {epoch, offset}
"#;

/// Subscribes. KEYS: meta, hist, pres, node subs. ARGV: channel, a new epoch, client,
/// presence entry, membership, join push JSON ('' for none), shard channel, since epoch (''
/// for none), since offset, history TTL (ms), '1' to register presence ('0' for a hidden
/// subscriber). Registers the presence entry, publishes the join, and reads what the client
/// missed. Returns `{epoch, offset, recovered, {json...},
/// seq}`: `seq` numbers the subscription among the channel's pushes.
const SUBSCRIBE: &str = r#"
local meta, hist = KEYS[1], KEYS[2]
local epoch, offset = ensure_meta(meta, hist, ARGV[1], ARGV[2])
if ARGV[11] == '1' then
  redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
  redis.call('SADD', KEYS[4], ARGV[5])
end
if ARGV[6] ~= '' then
  announce(meta, ARGV[7], ARGV[1], ARGV[3], ARGV[6])
end
local recovered, replay = 1, {}
if ARGV[8] ~= '' then
  local since = tonumber(ARGV[9])
  recovered = 0
  if ARGV[8] == epoch and since <= offset then
    if since == offset then
      recovered = 1
    else
      local entries = live_entries(hist, (since + 1) .. '-0', now_ms() - tonumber(ARGV[10]))
      if #entries > 0 and entries[1][1] == since + 1 then
        recovered = 1
        for _, e in ipairs(entries) do replay[#replay + 1] = e[2] end
      end
    end
  end
end
return {epoch, offset, recovered, replay, tonumber(redis.call('HGET', meta, 'seq'))}
"#;

/// Unsubscribes. KEYS: pres, node subs, meta. ARGV: channel, client, membership, shard
/// channel, '1' to publish a `leave`. Returns 1 if the client was there.
const UNSUBSCRIBE: &str = r#"
local value = redis.call('HGET', KEYS[1], ARGV[2])
redis.call('SREM', KEYS[2], ARGV[3])
if not value then return 0 end
redis.call('HDEL', KEYS[1], ARGV[2])
local _, info = entry(value)
if ARGV[5] == '1' and info then
  announce(KEYS[3], ARGV[4], ARGV[1], ARGV[2], leave_json(ARGV[1], info))
end
return 1
"#;

/// Reads a page of history. KEYS: meta, hist. ARGV: after (offset; '' for all), limit, TTL
/// (ms), most bytes (each entry's JSON length plus one; the first entry always goes in).
/// Returns `{epoch or '', offset, {{offset, json}...}, more (0 or 1)}`, oldest first.
const HISTORY: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return {'', 0, {}, 0} end
local offset = tonumber(redis.call('HGET', KEYS[1], 'offset'))
local start = '-'
if ARGV[1] ~= '' then
  local after = tonumber(ARGV[1])
  if after >= offset then return {epoch, offset, {}, 0} end
  start = (after + 1) .. '-0'
end
local out, limit, most, bytes, more = {}, tonumber(ARGV[2]), tonumber(ARGV[4]), 0, 0
for _, e in ipairs(live_entries(KEYS[2], start, now_ms() - tonumber(ARGV[3]))) do
  local size = #e[2] + 1
  if #out >= limit or (#out > 0 and bytes + size > most) then
    more = 1
    break
  end
  bytes = bytes + size
  out[#out + 1] = e
end
return {epoch, offset, out, more}
"#;

/// Presence. KEYS: pres. Returns the ClientInfo JSON of every entry of a live node.
const PRESENCE: &str = r#"
local now, cache, out = now_ms(), {}, {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local node, info = entry(all[i + 1])
  if node and alive(cache, node, now) then out[#out + 1] = info end
end
return out
"#;

/// Summaries. ARGV: channel names. Returns `{{name, epoch, offset, subscribers}...}` for
/// those that have a `meta`.
const CHANNELS_PAGE: &str = r#"
local now, cache, out = now_ms(), {}, {}
for _, channel in ipairs(ARGV) do
  local meta = redis.call('HMGET', 'ripple:{' .. channel .. '}:meta', 'epoch', 'offset')
  if meta[1] then
    local count = 0
    for _, value in ipairs(redis.call('HVALS', 'ripple:{' .. channel .. '}:pres')) do
      local node = entry(value)
      if node and alive(cache, node, now) then count = count + 1 end
    end
    out[#out + 1] = {channel, meta[1], tonumber(meta[2]), count}
  end
end
return out
"#;

/// Sweeps channels. ARGV: history TTL (ms), channel names. Drops expired history and the
/// entries of dead nodes; forgets (meta included: a new epoch next time) each channel left with
/// neither a live subscriber nor history. Returns how many were forgotten.
const SWEEP_PAGE: &str = r#"
local now, cache, forgotten = now_ms(), {}, 0
local cutoff = now - tonumber(ARGV[1])
for i = 2, #ARGV do
  local channel = ARGV[i]
  local meta = 'ripple:{' .. channel .. '}:meta'
  local hist = 'ripple:{' .. channel .. '}:hist'
  local pres = 'ripple:{' .. channel .. '}:pres'
  trim_age(hist, cutoff)
  local live = 0
  local all = redis.call('HGETALL', pres)
  for j = 1, #all, 2 do
    local node = entry(all[j + 1])
    if node and alive(cache, node, now) then
      live = live + 1
    else
      redis.call('HDEL', pres, all[j])
    end
  end
  if live == 0 and redis.call('XLEN', hist) == 0 then
    -- The epoch and offset stay a while, so that a client that had everything is still
    -- told recovered: true when the channel comes back.
    redis.call('DEL', hist, pres)
    redis.call('PEXPIRE', meta, 3600000)
    redis.call('ZREM', 'ripple:channels', channel)
    forgotten = forgotten + 1
  end
end
return forgotten
"#;

/// Removes what dead nodes left. ARGV: shard count, database, '1' to publish `leave`s, the
/// most memberships to handle. For each node whose heartbeat expired, removes its presence
/// entries (publishing a `leave` for each) and, once its set is empty, the node. Returns how
/// many entries were removed.
const REAP: &str = r#"
local now, budget, removed = now_ms(), tonumber(ARGV[4]), 0
local shards, db, leaves = tonumber(ARGV[1]), ARGV[2], ARGV[3] == '1'
for _, node in ipairs(redis.call('ZRANGEBYSCORE', 'ripple:nodes', '-inf', '(' .. now, 'LIMIT', 0, 16)) do
  local subs = 'ripple:node:' .. node .. ':subs'
  local members = redis.call('SPOP', subs, budget)
  budget = budget - #members
  for _, member in ipairs(members) do
    local length, rest = string.match(member, '^(%d+):(.*)$')
    if length then
      local client = string.sub(rest, 1, tonumber(length))
      local channel = string.sub(rest, tonumber(length) + 1)
      local pres = 'ripple:{' .. channel .. '}:pres'
      local value = redis.call('HGET', pres, client)
      local owner, info = nil, nil
      if value then owner, info = entry(value) end
      if owner == node then
        redis.call('HDEL', pres, client)
        removed = removed + 1
        if leaves then
          announce('ripple:{' .. channel .. '}:meta',
            'ripple:' .. db .. ':shard:' .. shard_of(channel, shards),
            channel, client, leave_json(channel, info))
        end
      end
    end
  end
  if redis.call('SCARD', subs) == 0 then
    redis.call('ZREM', 'ripple:nodes', node)
  end
  if budget <= 0 then break end
end
return removed
"#;

/// Heartbeats. ARGV: node, TTL (ms). Returns 1 if the node was alive before (0: it was
/// reaped or Redis lost it, so its subscriptions must be registered again).
const HEARTBEAT: &str = r#"
local now = now_ms()
local old = redis.call('ZSCORE', 'ripple:nodes', ARGV[1])
redis.call('ZADD', 'ripple:nodes', now + tonumber(ARGV[2]), ARGV[1])
if old and tonumber(old) >= now then return 1 end
return 0
"#;

/// Every script, compiled once (each is sent by its SHA1, and loaded again after a Redis
/// restart emptied the script cache).
#[derive(Debug)]
pub(super) struct Scripts {
    pub(super) publish: Script,
    pub(super) subscribe: Script,
    pub(super) unsubscribe: Script,
    pub(super) history: Script,
    pub(super) presence: Script,
    pub(super) channels_page: Script,
    pub(super) sweep_page: Script,
    pub(super) reap: Script,
    pub(super) heartbeat: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        let script = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Self {
            publish: script(PUBLISH),
            subscribe: script(SUBSCRIBE),
            unsubscribe: script(UNSUBSCRIBE),
            history: script(HISTORY),
            presence: script(PRESENCE),
            channels_page: script(CHANNELS_PAGE),
            sweep_page: script(SWEEP_PAGE),
            reap: script(REAP),
            heartbeat: script(HEARTBEAT),
        }
    }
}
