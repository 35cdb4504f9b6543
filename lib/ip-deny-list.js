'use strict'
// The IP deny list of `enableProtection`: the `IpDenyList` export of @upstash/ratelimit 2.2.0,
// reimplemented (reference: /work/shared/reference/upstash-ratelimit-behaviour.md §1.8, §3.6).
//
// Keys (P = prefix):
//   P:denyList:all        every denied value (user entries + the IP list)
//   P:denyList:ipDenyList  the IPs that came from the downloaded list and nowhere else
//   P:ipDenyListStatus    "valid" (expires at the next 02:00 UTC), "disabled" (no TTL), or, set by
//                         the limiter's check, "pending" for 30 s while one caller refreshes
//
// Client methods used:
//   - `multi()` → `.sdiffstore(dst, a, b)`, `.del(key)`, `.sadd(key, first, ...rest)`,
//     `.sunionstore(dst, a, b)`, `.set(key, value, { px }?)`, `.exec()`, exactly as upstream
//     (so an `@upstash/redis` client sends the same MULTI/EXEC transaction);
//   - for a client without `multi()`: one `eval(script, keys, args)` doing the same commands
//     atomically and answering the same array (e.g. [1, 0, 74, 74, 75, "OK"]).
// The list is downloaded with the global `fetch`, looked up at call time.

const { ratelimitClient } = require('./client-adapters')
const { markStockRedis } = require('./algorithms')
const { isCluster } = require('./cluster')
const { MEMBERS_SCRIPT } = require('./protection')
const HOUR_MS = 60 * 60 * 1000
const DAY_MS = 24 * HOUR_MS
const REFRESH_OFFSET_MS = 2 * HOUR_MS // the list is refreshed daily at 02:00 UTC
const LIST_BASE_URL = 'https://raw.githubusercontent.com/stamparm/ipsum/master/levels'
/** Members per SADD inside the eval fallback (Lua's unpack() limit is about 8000 values). */
const SADD_CHUNK = 4000

class ThresholdError extends Error {
  constructor(threshold) {
    super(`Allowed threshold values are from 1 to 8, 1 and 8 included. Received: ${threshold}`)
    this.name = 'ThresholdError'
  }
}

/** ms from `time` (default now; 0 also means now, as upstream) until the next 02:00 UTC; 24 h at 02:00 itself. */
function getIpListTTL(time) {
  const now = time || Date.now()
  return DAY_MS - ((now - REFRESH_OFFSET_MS) % DAY_MS)
}

/** Where the ipsum list of IPs seen on at least `threshold` blacklists is downloaded from. */
function ipListUrl(threshold) {
  return `${LIST_BASE_URL}/${threshold}.txt`
}

/** The three keys of a prefix's deny list. */
function denyListKeys(prefix) {
  return {
    all: [prefix, 'denyList', 'all'].join(':'),
    ip: [prefix, 'denyList', 'ipDenyList'].join(':'),
    status: [prefix, 'ipDenyListStatus'].join(':'),
  }
}

/** Validates the threshold, downloads the list and returns its non-empty lines. */
async function downloadIpList(threshold) {
  // The same test as upstream (so, like upstream, NaN and fractions get through).
  if (typeof threshold !== 'number' || threshold < 1 || threshold > 8) {
    throw new ThresholdError(threshold)
  }
  try {
    const response = await globalThis.fetch(ipListUrl(threshold))
    if (!response.ok) throw new Error(`Error fetching data: ${response.statusText}`)
    const text = await response.text()
    return text.split('\n').filter((line) => line.length > 0)
  } catch (error) {
    throw new Error(`Failed to fetch ip deny list: ${error}`)
  }
}

// KEYS: all, ip, status. ARGV[1]: status TTL in ms; ARGV[2..]: the IPs.
// Reply: the six replies of the transaction upstream sends.
const UPDATE_SCRIPT = `
local all, ip, status = KEYS[1], KEYS[2], KEYS[3]
local replies = {}
replies[1] = redis.call('SDIFFSTORE', all, all, ip)
replies[2] = redis.call('DEL', ip)
local added = 0
for first = 2, #ARGV, ${SADD_CHUNK} do
  added = added + redis.call('SADD', ip, unpack(ARGV, first, math.min(first + ${SADD_CHUNK - 1}, #ARGV)))
end
replies[3] = added
replies[4] = redis.call('SDIFFSTORE', ip, ip, all)
replies[5] = redis.call('SUNIONSTORE', all, all, ip)
replies[6] = redis.call('SET', status, 'valid', 'PX', ARGV[1]).ok
return replies
`

// KEYS: all, ip, status. Reply: the three replies of upstream's disable transaction.
const DISABLE_SCRIPT = `
local all, ip, status = KEYS[1], KEYS[2], KEYS[3]
return {
  redis.call('SDIFFSTORE', all, all, ip),
  redis.call('DEL', ip),
  redis.call('SET', status, 'disabled').ok,
}
`

// On a Redis Cluster the three keys live in different slots, so neither a transaction nor one
// script can hold them: the same steps run as scripts of one key each, in upstream's order, with
// the same replies (not atomic as a whole: a limiter checking meanwhile may see the old list
// half removed, never a value denied that neither list holds).
const TAKE_SCRIPT = "local members = redis.call('SMEMBERS', KEYS[1]) redis.call('DEL', KEYS[1]) return members"
const SREM_SCRIPT = `for first = 1, #ARGV, ${SADD_CHUNK} do
  redis.call('SREM', KEYS[1], unpack(ARGV, first, math.min(first + ${SADD_CHUNK - 1}, #ARGV)))
end
return redis.call('SCARD', KEYS[1])`
const SADD_SCRIPT = `local added = 0
for first = 1, #ARGV, ${SADD_CHUNK} do
  added = added + redis.call('SADD', KEYS[1], unpack(ARGV, first, math.min(first + ${SADD_CHUNK - 1}, #ARGV)))
end
return {added, redis.call('SCARD', KEYS[1])}`

/** `values` minus those in the set at `key` (SMISMEMBER in chunks). */
async function notMembers(redis, key, values) {
  const out = []
  for (let first = 0; first < values.length; first += SADD_CHUNK) {
    const chunk = values.slice(first, first + SADD_CHUNK)
    const flags = await redis.eval(MEMBERS_SCRIPT, [key], chunk)
    chunk.forEach((value, i) => Number(flags[i]) === 0 && out.push(value))
  }
  return out
}

/** The old IP list out of `all`: [SCARD all, DEL ip] as the transaction's first two replies. */
async function removeIpList(redis, keys) {
  const old = await redis.eval(TAKE_SCRIPT, [keys.ip], [])
  const remaining = await redis.eval(SREM_SCRIPT, [keys.all], old)
  return [Number(remaining), old.length > 0 ? 1 : 0]
}

async function updateOnCluster(redis, keys, px, ips) {
  const [allSize, deleted] = await removeIpList(redis, keys)
  const [added] = await redis.eval(SADD_SCRIPT, [keys.ip], ips)
  // SDIFFSTORE ip ip all, then SUNIONSTORE all all ip: the list keeps only IPs nobody denied by
  // hand, and those join `all`.
  const unique = [...new Set(ips)]
  const fresh = await notMembers(redis, keys.all, unique)
  const isFresh = new Set(fresh)
  const ipSize = await redis.eval(SREM_SCRIPT, [keys.ip], unique.filter((ip) => !isFresh.has(ip)))
  const [, allAfter] = await redis.eval(SADD_SCRIPT, [keys.all], fresh)
  const status = await redis.set(keys.status, 'valid', { px })
  return [allSize, deleted, Number(added), Number(ipSize), Number(allAfter), status]
}

async function disableOnCluster(redis, keys) {
  const [allSize, deleted] = await removeIpList(redis, keys)
  return [allSize, deleted, await redis.set(keys.status, 'disabled')]
}

/**
 * Downloads the ipsum list for `threshold` (1..8) and makes it the prefix's IP deny list:
 * IPs from the previous list leave `all`, the new IPs not already user-denied join it, and the
 * status becomes "valid" for `ttl` ms (default: until the next 02:00 UTC).
 * Resolves to the transaction's replies, e.g. [1, 0, 74, 74, 75, "OK"].
 */
async function updateIpDenyList(client, prefix, threshold, ttl) {
  const redis = ratelimitClient(client, markStockRedis)
  const ips = await downloadIpList(threshold)
  const keys = denyListKeys(prefix)
  const px = ttl ?? getIpListTTL()
  if (isCluster(redis)) return updateOnCluster(redis, keys, px, ips)
  if (typeof redis.multi !== 'function') {
    return redis.eval(UPDATE_SCRIPT, [keys.all, keys.ip, keys.status], [px, ...ips])
  }
  const tx = redis.multi()
  tx.sdiffstore(keys.all, keys.all, keys.ip)
  tx.del(keys.ip)
  tx.sadd(keys.ip, ips[0], ...ips.slice(1))
  tx.sdiffstore(keys.ip, keys.ip, keys.all)
  tx.sunionstore(keys.all, keys.all, keys.ip)
  tx.set(keys.status, 'valid', { px })
  return tx.exec()
}

/** Removes the downloaded IPs from the deny list and marks it "disabled" (never refreshed again). */
async function disableIpDenyList(client, prefix) {
  const redis = ratelimitClient(client, markStockRedis)
  const keys = denyListKeys(prefix)
  if (isCluster(redis)) return disableOnCluster(redis, keys)
  if (typeof redis.multi !== 'function') {
    return redis.eval(DISABLE_SCRIPT, [keys.all, keys.ip, keys.status], [])
  }
  const tx = redis.multi()
  tx.sdiffstore(keys.all, keys.all, keys.ip)
  tx.del(keys.ip)
  tx.set(keys.status, 'disabled')
  return tx.exec()
}

/** The public namespace, with upstream's key order; frozen like upstream's getter-only export. */
const IpDenyList = Object.freeze({ ThresholdError, disableIpDenyList, updateIpDenyList })

module.exports = {
  IpDenyList,
  ThresholdError,
  updateIpDenyList,
  disableIpDenyList,
  getIpListTTL,
  ipListUrl,
  denyListKeys,
}
