//! The Lua scripts that make each Redis operation atomic. Redis runs a script
//! alone, so an append's counter increment, duplicate-id check, `XADD`s and
//! trimming are one step for every node and every replica.
//!
//! Keys (one hash tag, so they share a slot on Redis Cluster too):
//! `KEYS[1]` the stream `{name}:log` (entry ids `0-{seq}`, fields `t` = accept
//! time in ms, `d` = the event's postcard bytes), `KEYS[2]` the counter
//! `{name}:seq` (last `seq` handed out), `KEYS[3]` the epoch `{name}:epoch`,
//! `KEYS[4]` the id index `{name}:ids` (sorted set: publisher id → `seq`).
//!
//! Why explicit `0-{seq}` ids from a counter rather than Redis's `ms-n` ids:
//! `seq` must be one u64 that is the same on every node and rises by one per
//! event, so a replay can tell a gap (trimmed history) from a quiet topic, and
//! a position stays a small number in ids. The counter lives beside the stream
//! in the same script, so both move together in replication and persistence;
//! the cost is that `MINID` cannot express age, so age retention reads the
//! `t` field of the oldest entries (bounded work per call).

use std::sync::LazyLock;

use redis::Script;

/// Functions shared by the scripts that trim.
const TRIM_FUNCTIONS: &str = r#"
local function seq_of(id) return tonumber(string.sub(id, 3)) end
local function trim_age(cutoff)
  if cutoff <= 0 then return end
  for _ = 1, 20 do
    local e = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 100)
    if #e == 0 then return end
    for _, entry in ipairs(e) do
      if tonumber(entry[2][2]) >= cutoff then
        redis.call('XTRIM', KEYS[1], 'MINID', entry[1])
        return
      end
    end
    redis.call('XTRIM', KEYS[1], 'MINID', string.format('0-%d', seq_of(e[#e][1]) + 1))
  end
end
local function trim_ids()
  local f = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
  if #f == 0 then
    redis.call('DEL', KEYS[4])
  else
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. seq_of(f[1][1]))
  end
end
"#;

/// Creates the epoch if it is missing (a new or lost stream: the stream,
/// counter and index are cleared with it), or replaces it when it still
/// equals `ARGV[2]` (a node found the history shorter than what it delivered).
/// ARGV: candidate epoch, epoch to replace ('' = none). Returns {epoch, counter}.
pub(super) static INIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local e = redis.call('GET', KEYS[3])
if (not e) or (ARGV[2] ~= '' and e == ARGV[2]) then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
  redis.call('SET', KEYS[3], ARGV[1])
  e = ARGV[1]
end
return {e, redis.call('GET', KEYS[2]) or '0'}
"#,
    )
});

/// Appends a batch. ARGV: epoch, lowest acceptable counter (what the calling
/// node already delivered), max entries ('0' = none), age cutoff in ms ('0' =
/// none), accept time, then per event its publisher id ('' = none) and bytes.
/// Returns {'ok', first seq} | {'dup', id} | {'epoch'} | {'lost'}.
pub(super) static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{TRIM_FUNCTIONS}{}",
        r#"
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {'epoch'} end
if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[2]) then return {'lost'} end
local n = (#ARGV - 5) / 2
for i = 1, n do
  local id = ARGV[4 + 2 * i]
  if id ~= '' and redis.call('ZSCORE', KEYS[4], id) then return {'dup', id} end
end
local first = redis.call('INCRBY', KEYS[2], n) - n + 1
for i = 1, n do
  local sid = string.format('0-%d', first + i - 1)
  if ARGV[3] ~= '0' then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], sid, 't', ARGV[5], 'd', ARGV[5 + 2 * i])
  else
    redis.call('XADD', KEYS[1], sid, 't', ARGV[5], 'd', ARGV[5 + 2 * i])
  end
  local id = ARGV[4 + 2 * i]
  if id ~= '' then redis.call('ZADD', KEYS[4], first + i - 1, id) end
end
trim_age(tonumber(ARGV[4]))
trim_ids()
return {'ok', string.format('%d', first)}
"#
    ))
});

/// Age retention when nobody publishes. ARGV: epoch, cutoff in ms.
/// Returns the stream's length.
pub(super) static TRIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{TRIM_FUNCTIONS}{}",
        r#"
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
trim_age(tonumber(ARGV[2]))
trim_ids()
return redis.call('XLEN', KEYS[1])
"#
    ))
});

/// One page of history with the trim mark, in one snapshot. ARGV: epoch,
/// first entry id to return, most entries. Returns {'epoch'} when the stream
/// was reset, else {oldest retained id or nil, counter, entries}.
pub(super) static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {'epoch'} end
local f = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local first = false
if #f > 0 then first = f[1][1] end
return {first, redis.call('GET', KEYS[2]) or '0', redis.call('XRANGE', KEYS[1], ARGV[2], '+', 'COUNT', ARGV[3])}
"#,
    )
});
