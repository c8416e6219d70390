/**
 * The Lua scripts of the Redis alternative. Each runs atomically inside Redis (no other
 * command interleaves), which is what makes the usual flash-sale answer correct without
 * locks: check and take happen in one step.
 *
 * Keys, all under one hash tag `{ns}` (so one slot; `ns` is the namespace):
 *   {ns}:s:<bytes of sku>:<sku>:<location>  hash onHand, reserved, safetyStock, version, sourceTs
 *   {ns}:l:<sku>                           set of the SKU's locations (ATP, stock reads)
 *   {ns}:r:<reservation id>                hash bodyHash, status, orderId, createdAt, expiresAt, lines (JSON)
 *   {ns}:expiries                          sorted set: held reservation ids by expiresAt
 * The SKU's byte length in the stock key keeps `a:b`+`c` and `a`+`b:c` apart.
 *
 * Keys a script knows in advance come in KEYS; the stock keys of a stored reservation are
 * derived inside commit/release/expire scripts from its lines. That is fine on one Redis
 * node (every key shares the hash tag, so one slot) and is how such scripts are written.
 *
 * Numbers: Lua numbers are doubles; quantities (≤ 10⁹) and times in ms are exact, and
 * cjson writes them with 14 significant digits, enough for both.
 */

/** Shared helpers, prepended to every script. ARGV[1] is always the key prefix `{ns}:`. */
const prelude = `
local prefix = ARGV[1]
local function stock_key(sku, location)
  return prefix .. 's:' .. #sku .. ':' .. sku .. ':' .. location
end
local function available(key)
  local v = redis.call('HMGET', key, 'onHand', 'reserved', 'safetyStock')
  return (tonumber(v[1]) or 0) - (tonumber(v[2]) or 0) - (tonumber(v[3]) or 0)
end
-- Ships (committed) or gives back (released, expired) what a held reservation holds.
local function settle(rkey, id, status)
  local lines = cjson.decode(redis.call('HGET', rkey, 'lines'))
  for _, line in ipairs(lines) do
    if line.held > 0 then
      local skey = stock_key(line.sku, line.location)
      redis.call('HINCRBY', skey, 'reserved', -line.held)
      if status == 'committed' then
        local onHand = tonumber(redis.call('HGET', skey, 'onHand')) or 0
        redis.call('HINCRBY', skey, 'onHand', -math.min(line.held, onHand))
        line.committed = line.committed + line.held
      end
      redis.call('HINCRBY', skey, 'version', 1)
      line.held = 0
    end
  end
  redis.call('HSET', rkey, 'status', status, 'lines', cjson.encode(lines))
  redis.call('ZREM', prefix .. 'expiries', id)
end
`;

/**
 * reserve — KEYS: reservation, stock key of each (merged) line in order.
 * ARGV: prefix, id, bodyHash, now, expiresAt, orderId ('' = none), lines JSON [{sku, location, qty, held, committed}].
 * → {'held'} | {'replayed', field, value, …} | {'reused'} | {'short', shortages JSON}
 */
const reserve = `${prelude}
local rkey = KEYS[1]
local existing = redis.call('HGET', rkey, 'bodyHash')
if existing then
  if existing ~= ARGV[3] then return {'reused'} end
  local fields = redis.call('HGETALL', rkey)
  table.insert(fields, 1, 'replayed')
  return fields
end
local lines = cjson.decode(ARGV[7])
local failed, order = {}, {}
for i, line in ipairs(lines) do
  if available(KEYS[i + 1]) < line.qty and not failed[line.sku] then
    failed[line.sku] = true
    table.insert(order, line.sku)
  end
end
if #order > 0 then
  -- A shortage per SKU: units asked over all its lines, and its ATP over all its locations.
  local shortages = {}
  for _, sku in ipairs(order) do
    local requested = 0
    for _, line in ipairs(lines) do
      if line.sku == sku then requested = requested + line.qty end
    end
    local atp = 0
    for _, location in ipairs(redis.call('SMEMBERS', prefix .. 'l:' .. sku)) do
      atp = atp + math.max(0, available(stock_key(sku, location)))
    end
    table.insert(shortages, {sku = sku, requested = requested, available = atp})
  end
  return {'short', cjson.encode(shortages)}
end
for i, line in ipairs(lines) do
  redis.call('HINCRBY', KEYS[i + 1], 'reserved', line.qty)
  redis.call('HINCRBY', KEYS[i + 1], 'version', 1)
end
redis.call('HSET', rkey, 'bodyHash', ARGV[3], 'status', 'held', 'orderId', ARGV[6],
  'createdAt', ARGV[4], 'expiresAt', ARGV[5], 'lines', ARGV[7])
redis.call('ZADD', prefix .. 'expiries', ARGV[5], ARGV[2])
return {'held'}
`;

/**
 * settle — commit, release or extend. KEYS: reservation. ARGV: prefix, id, action, now, new expiresAt.
 * → {'ok', fields…} | {'replayed', fields…} | {'notfound'} | {'expired'} | {'notheld', status}
 */
const settleReservation = `${prelude}
local rkey = KEYS[1]
local id = ARGV[2]
local action = ARGV[3]
local r = redis.call('HMGET', rkey, 'status', 'expiresAt')
if not r[1] then return {'notfound'} end
local status = r[1]
-- Touching a reservation whose time has come expires it first (stockd's rule too).
if status == 'held' and tonumber(r[2]) <= tonumber(ARGV[4]) then
  settle(rkey, id, 'expired')
  return {'expired'}
end
local function answer(kind)
  local fields = redis.call('HGETALL', rkey)
  table.insert(fields, 1, kind)
  return fields
end
if (action == 'commit' and status == 'committed') or (action == 'release' and status == 'released') then
  return answer('replayed')
end
if status ~= 'held' then return {'notheld', status} end
if action == 'extend' then
  redis.call('HSET', rkey, 'expiresAt', ARGV[5])
  redis.call('ZADD', prefix .. 'expiries', ARGV[5], id)
elseif action == 'commit' then
  settle(rkey, id, 'committed')
else
  settle(rkey, id, 'released')
end
return answer('ok')
`;

/**
 * set — KEYS: stock key, locations set. ARGV: prefix, location, onHand, safetyStock, ifVersion, sourceTs ('' = absent).
 * → {'ok', onHand, reserved, safetyStock, version, sourceTs} | {'conflict', version} | {'stale', lastSourceTs}
 */
const setStock = `${prelude}
local cur = redis.call('HMGET', KEYS[1], 'version', 'sourceTs', 'safetyStock')
local version = tonumber(cur[1]) or 0
if ARGV[5] ~= '' and tonumber(ARGV[5]) ~= version then return {'conflict', version} end
local last = tonumber(cur[2]) or 0
if ARGV[6] ~= '' and tonumber(ARGV[6]) < last then return {'stale', last} end
local safety = cur[3] or '0'
if ARGV[4] ~= '' then safety = ARGV[4] end
local ts = last
if ARGV[6] ~= '' then ts = math.max(last, tonumber(ARGV[6])) end
redis.call('HSET', KEYS[1], 'onHand', ARGV[3], 'safetyStock', safety, 'sourceTs', ts)
redis.call('HSETNX', KEYS[1], 'reserved', 0)
redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('SADD', KEYS[2], ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'onHand', 'reserved', 'safetyStock', 'version', 'sourceTs')
return {'ok', v[1], v[2], v[3], v[4], v[5]}
`;

/**
 * stock — KEYS: locations set. ARGV: prefix, sku.
 * → {location, onHand, reserved, safetyStock, version, sourceTs, …} in byte order of location
 */
const stockOfSku = `${prelude}
local locations = redis.call('SMEMBERS', KEYS[1])
table.sort(locations)
local out = {}
for _, location in ipairs(locations) do
  local v = redis.call('HMGET', stock_key(ARGV[2], location), 'onHand', 'reserved', 'safetyStock', 'version', 'sourceTs')
  table.insert(out, location)
  for i = 1, 5 do table.insert(out, v[i] or '0') end
end
return out
`;

/** expire — KEYS: expiries. ARGV: prefix, now, max. Expires due held reservations. → count looked at */
const expireDue = `${prelude}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do
  local rkey = prefix .. 'r:' .. id
  if redis.call('HGET', rkey, 'status') == 'held' then
    settle(rkey, id, 'expired')
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return #due
`;

export const luaScripts = { reserve, settleReservation, setStock, stockOfSku, expireDue } as const;
export type ScriptName = keyof typeof luaScripts;
