"""The Redis side of durable events: key names and the two Lua scripts.

Keys of channel ``news`` with the default prefix ``sse:`` (``#`` never occurs in a
channel name, so no channel's pub/sub name is one of these):

    sse:news             pub/sub channel of raw payloads (any Redis client's PUBLISH)
    sse:#events:news     pub/sub channel of durable events' envelopes (only the publish script)
    sse:#history:news    Redis Stream: the channel's history, fields d (data), e (type)
    sse:#cuts            hash: channel -> newest id trimmed from its history
    sse:#last-id         the last id issued, across all channels
    sse:#origin          the first id of this Redis's data (older ids may be lost)

PUBLISH_SCRIPT is the one atomic step of a durable publish: issue the next id from Redis
TIME (never below the last one), XADD it to the history, trim the history to its bounds
exactly (recording the cut), and PUBLISH the envelope, so live order is history order.
Any language can publish the same way:

    EVAL <PUBLISH_SCRIPT> 4 sse:#history:news sse:#last-id sse:#cuts sse:#origin
         sse:#events:news news <data> <event type or ""> <history length> <history ttl ms or 0>

and gets the id back. READ_SCRIPT returns {lost (0/1), a page of the entries after an id
(at most COUNT entries and, past the first, SIZE bytes of data), the last id issued when
the id asked after is beyond it (else ""), more (0/1: the page stopped at its bound), the
id before which events are gone (else ""), the last id issued (what the read is as of)}.
POSITION_SCRIPT returns the id everything published from now on will follow (the last
id issued, or the origin): where a subscriber starts counting what it has seen.

SETTLE_SCRIPT runs after every reconnection, before what was missed is read: Redis may now
be a promoted replica (or a restart from an older snapshot) that lacks the newest events,
which subscribers received from the old master before it died. Given the highest id this
process received or issued, and per channel the newest id it received, it raises the last
id to that highest id (new ids never repeat ones clients hold) and, for each channel whose
newest event is neither in the history nor known to be trimmed, records a cut at that
event, so whoever resumes from before it is told of the loss (`sse-lost`) and not handed a
silent gap. Returns the number of cuts recorded.
"""

from __future__ import annotations

__all__ = [
    "keys", "durable_channel", "publish_args", "history_bounds", "PUBLISH_SCRIPT", "READ_SCRIPT", "POSITION_SCRIPT",
    "SETTLE_SCRIPT", "channels_keys", "PUBLISH_MANY_SCRIPT", "publish_many_call",
]  # fmt: skip

DURABLE = b"#events:"
"""Between the prefix and a channel's name: the pub/sub channel of its durable events."""


def durable_channel(prefix: bytes, channel: bytes) -> bytes:
    """The pub/sub channel the publish script sends `channel`'s envelopes on (no channel name maps to it)."""
    return prefix + DURABLE + channel


def keys(prefix: bytes, channel: bytes) -> list[bytes]:
    """KEYS for every script: history stream, last id, cuts, origin."""
    return [prefix + b"#history:" + channel, prefix + b"#last-id", prefix + b"#cuts", prefix + b"#origin"]


def publish_many_call(prefix: bytes, events: list[tuple[str, bytes, str | None]],
                      bounds: list[bytes]) -> tuple[list[bytes], list[bytes]]:  # fmt: skip
    """KEYS and ARGV of PUBLISH_MANY_SCRIPT for `events` ((channel, data, event type or None), in order)."""
    numbers: dict[str, int] = {}
    per_event: list[bytes] = []
    for channel, data, event in events:
        number = numbers.setdefault(channel, len(numbers) + 1)
        per_event += [b"%d" % number, data, (event or "").encode("utf-8")]
    names = [channel.encode("ascii") for channel in numbers]
    script_keys = channels_keys(prefix, names)
    per_channel = [part for name in names for part in (name, durable_channel(prefix, name))]
    return script_keys, [*bounds, b"%d" % len(names), *per_channel, *per_event]


def channels_keys(prefix: bytes, channels: list[bytes]) -> list[bytes]:
    """KEYS for the scripts of several channels (publishing many, settling): last id, cuts, origin,
    then each channel's history stream."""
    histories = [prefix + b"#history:" + channel for channel in channels]
    return [prefix + b"#last-id", prefix + b"#cuts", prefix + b"#origin", *histories]


def publish_args(prefix: bytes, channel: str, data: bytes, event: str | None, bounds: list[bytes]) -> list[bytes]:
    """ARGV for PUBLISH_SCRIPT; `bounds` is [history length, history ttl in ms]."""
    name = channel.encode("ascii")
    return [durable_channel(prefix, name), name, data, (event or "").encode("utf-8"), *bounds]


def history_bounds(history: int, history_ttl: float) -> list[bytes]:
    return [b"%d" % history, b"%d" % int(history_ttl * 1000)]


_COMMON = r"""
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function less(a, b)
  local ams, aseq = parse(a)
  local bms, bseq = parse(b)
  return ams < bms or (ams == bms and aseq < bseq)
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function origin(key, now)
  -- the first id of this data set; set once, by whichever script runs first
  redis.call('SET', key, string.format('%d-0', now), 'NX')
  return redis.call('GET', key)
end
local function trim(history, cuts, channel, limit, ttl_ms, now)
  -- keep the newest `limit` entries (exactly) and, with a ttl, only those that young;
  -- remember the newest id dropped as the channel's cut
  local dropped = false
  local n = redis.call('XLEN', history)
  if n > limit then
    local old = redis.call('XRANGE', history, '-', '+', 'COUNT', n - limit)
    dropped = old[#old][1]
    redis.call('XTRIM', history, 'MAXLEN', limit)
  end
  if ttl_ms > 0 then
    local min_id = string.format('%d-0', now - ttl_ms)
    local old = redis.call('XREVRANGE', history, '(' .. min_id, '-', 'COUNT', 1)
    if #old > 0 then
      if not dropped or less(dropped, old[1][1]) then dropped = old[1][1] end
      redis.call('XTRIM', history, 'MINID', min_id)
    end
  end
  if dropped then redis.call('HSET', cuts, channel, dropped) end
end
local function first_id(last_key, now)
  -- the next id: now-0, or past the last one issued when that is not older (never below it)
  local last = redis.call('GET', last_key)
  if last then
    local lms, lseq = parse(last)
    if lms >= now then return lms, lseq + 1 end
  end
  return now, 0
end
local function append(history, pubsub, id, data, event)
  -- into the history, then live: live order is history order
  local header
  if event ~= '' then
    redis.call('XADD', history, id, 'd', data, 'e', event)
    header = cjson.encode({id = id, event = event})
  else
    redis.call('XADD', history, id, 'd', data)
    header = cjson.encode({id = id})
  end
  redis.call('PUBLISH', pubsub, '\0sse2' .. header .. '\n' .. data)
end
"""

PUBLISH_SCRIPT = (
    _COMMON
    + r"""
local pubsub, channel, data, event = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local limit, ttl_ms = tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
origin(KEYS[4], now)
local ms, seq = first_id(KEYS[2], now)
local id = string.format('%d-%d', ms, seq)
redis.call('SET', KEYS[2], id)
append(KEYS[1], pubsub, id, data, event)
trim(KEYS[1], KEYS[3], channel, limit, ttl_ms, now)
return id
"""
)

READ_SCRIPT = (
    _COMMON
    + r"""
local channel, after = ARGV[1], ARGV[2]
local limit, ttl_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local count, size = tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
local first = origin(KEYS[4], now)
trim(KEYS[1], KEYS[3], channel, limit, ttl_ms, now)
local last = redis.call('GET', KEYS[2]) or first
if less(last, after) then
  -- ahead of every id this Redis issued (a forged or far-future id): say where it really is
  return {1, {}, last, 0, '', last}
end
-- events after an id older than held_from (the origin, or the cut when it is newer) are gone
local cut = redis.call('HGET', KEYS[3], channel)
local held_from = first
if cut and less(first, cut) then held_from = cut end
local lost = 0
if less(after, held_from) then lost = 1 end
local entries
if count > 0 then
  entries = redis.call('XRANGE', KEYS[1], '(' .. after, '+', 'COUNT', count + 1)
else
  entries = redis.call('XRANGE', KEYS[1], '(' .. after, '+')
end
-- a page: at most `count` entries and, past the first, `size` bytes of data (0: no bound)
local page, total, more = {}, 0, 0
for _, entry in ipairs(entries) do
  local data = entry[2][2]
  if (count > 0 and #page >= count) or (size > 0 and #page > 0 and total + #data > size) then
    more = 1
    break
  end
  page[#page + 1] = entry
  total = total + #data
end
return {lost, page, '', more, held_from, last}
"""
)

POSITION_SCRIPT = (
    _COMMON
    + r"""
local first = origin(KEYS[4], now_ms())
return redis.call('GET', KEYS[2]) or first
"""
)

SETTLE_SCRIPT = (
    _COMMON
    + r"""
-- KEYS: last id, cuts, origin, history of each channel; ARGV: highest id, then channel, newest id pairs
local first = origin(KEYS[3], now_ms())
local highest = ARGV[1]
local last = redis.call('GET', KEYS[1]) or first
if less(last, highest) then redis.call('SET', KEYS[1], highest) end
local cuts = 0
for i = 2, #ARGV, 2 do
  local channel, newest = ARGV[i], ARGV[i + 1]
  local history = KEYS[3 + i / 2]
  local cut = redis.call('HGET', KEYS[2], channel)
  local trimmed = cut and not less(cut, newest)
  if not trimmed and not less(newest, first) and #redis.call('XRANGE', history, newest, newest) == 0 then
    redis.call('HSET', KEYS[2], channel, newest)
    cuts = cuts + 1
  end
end
return cuts
"""
)

PUBLISH_MANY_SCRIPT = (
    _COMMON
    + r"""
-- KEYS: last id, cuts, origin, then the history of each channel of the batch
-- ARGV: history length, ttl ms, k channels, k (name, durable pub/sub name) pairs,
--       then (channel number, data, event) per event
local limit, ttl_ms, k = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
origin(KEYS[3], now)
local ms, seq = first_id(KEYS[1], now)
local ids = {}
for i = 4 + 2 * k, #ARGV, 3 do
  local c = tonumber(ARGV[i])
  local id = string.format('%d-%d', ms, seq)
  append(KEYS[3 + c], ARGV[3 + 2 * c], id, ARGV[i + 1], ARGV[i + 2])
  ids[#ids + 1] = id
  seq = seq + 1
end
redis.call('SET', KEYS[1], ids[#ids])
for c = 1, k do trim(KEYS[3 + c], KEYS[2], ARGV[2 + 2 * c], limit, ttl_ms, now) end
return ids
"""
)
