//! The Lua scripts that make each shared step atomic: Redis runs a script alone, so two nodes can
//! never both take a nameplate's one attempt, both attach as a session's agent, or both see
//! "the other side has not confirmed yet". Every script touches the keys of one session or one
//! nameplate only (one Redis Cluster slot, see `keys`).

use std::sync::LazyLock;

use redis::Script;

/// KEYS: nameplate. ARGV: agent location, agent instance ('' for none), TTL ms.
/// Returns 1 if the nameplate was free and is now the agent's, 0 if it is taken.
pub static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'a', ARGV[1], 'i', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1",
    )
});

/// KEYS: nameplate, tombstone. ARGV: desktop location, TTL ms for the linked pairing.
/// Returns {'ok', agent location} or {'expired'} / {'unknown'} (one attempt per nameplate).
pub static JOIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local a = redis.call('HGET', KEYS[1], 'a')
if not a then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {'expired'} end
  return {'unknown'}
end
if redis.call('HEXISTS', KEYS[1], 'd') == 1 then return {'unknown'} end
redis.call('HSET', KEYS[1], 'd', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {'ok', a}",
    )
});

/// KEYS: nameplate. ARGV: role ('a' / 'd'), hex SHA-256 of the device token that end will get.
/// Returns {} (no linked pairing), {'waiting'}, or {'both', agent location, agent instance,
/// desktop location, agent token hash, desktop token hash} — then the nameplate is gone.
pub static CONFIRM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HEXISTS', KEYS[1], 'd') == 0 then return {} end
redis.call('HSET', KEYS[1], 'h' .. ARGV[1], ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'a', 'i', 'd', 'ha', 'hd')
if not (v[4] and v[5]) then return {'waiting'} end
redis.call('DEL', KEYS[1])
return {'both', v[1], v[2] or '', v[3], v[4], v[5]}",
    )
});

/// KEYS: nameplate, tombstone. ARGV: agent location, tombstone TTL ms.
/// An unused nameplate of this agent ran out: forget it, remember it expired. Returns 1 if so.
pub static EXPIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local a = redis.call('HGET', KEYS[1], 'a')
if a and (a ~= ARGV[1] or redis.call('HEXISTS', KEYS[1], 'd') == 1) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 1",
    )
});

/// KEYS: this end's presence, the other end's presence, the agent's instance.
/// ARGV: this end's location, agent instance ('' for none / a desktop), role ('a' / 'd'), TTL s.
/// Returns {previous location of this end or '', the other end's location or '', restarted 0/1}.
pub static ATTACH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4])
local peer = redis.call('GET', KEYS[2])
local restarted = 0
if ARGV[3] == 'a' and ARGV[2] ~= '' then
  local prev = redis.call('GET', KEYS[3])
  if prev and prev ~= ARGV[2] then restarted = 1 end
  redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[4])
end
return {old or '', peer or '', restarted}",
    )
});

/// KEYS: this end's presence, the other end's presence.
/// ARGV: this end's location. If this end is still there, remove it and return the other end's
/// location ('' for none); otherwise (a newer connection took over) return nil.
pub static DETACH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
redis.call('DEL', KEYS[1])
return redis.call('GET', KEYS[2]) or ''",
    )
});

/// KEYS: the agent's presence, the desktop's presence. Returns both locations ('' for none)
/// and removes them (the session ended).
pub static REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('MGET', KEYS[1], KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
return {v[1] or '', v[2] or ''}",
    )
});

/// KEYS: session record. ARGV: now (Unix s). Marks it revoked; 1 if it was live.
pub static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'r') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'r', ARGV[1])
return 1",
    )
});

/// KEYS: session record. ARGV: now (Unix s), TTL s. Records the last-seen time and extends the
/// record's life; a record that expired meanwhile is not brought back half-made.
pub static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'l', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1",
    )
});
