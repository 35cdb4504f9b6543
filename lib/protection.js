'use strict'
// enableProtection: deny lists. Values (identifier, ip, user agent, country) found in Redis'
// `P:denyList:all` set are denied, and remembered for 60 s in a deny cache so repeat offenders
// are answered without I/O. Upstream's deny cache is module-global and consulted by every
// limiter, even those without protection; ours is consulted only by limiters with protection on
// (still shared between them, since deny-list values are not prefixed).

const { EphemeralCache } = require('./cache')

const DENY_CACHE_MS = 60_000
const DENY_CACHE_MAX = 1000

const denyCache = new EphemeralCache(new Map())

/** The request's values to check, in upstream's order: identifier, ip, user agent, country. */
function protectionValues(identifier, req) {
  return [identifier, req?.ip, req?.userAgent, req?.country].filter(Boolean)
}

/** The first value of `values` still in the deny cache, if any. */
function cachedDeniedValue(values) {
  for (const value of values) {
    if (denyCache.isBlocked(value).blocked) return value
  }
  return undefined
}

/** Remembers denied values; the whole cache is dropped when it grows past 1000 entries. */
function rememberDenied(values) {
  for (const value of values) {
    if (denyCache.size() > DENY_CACHE_MAX) denyCache.empty()
    denyCache.blockUntil(value, Date.now() + DENY_CACHE_MS)
  }
}

function deniedResponse(deniedValue) {
  return { success: false, limit: 0, remaining: 0, reset: 0, pending: Promise.resolve(), reason: 'denyList', deniedValue }
}

/** Keys of the deny-list check for a prefix. */
function protectionKeys(prefix) {
  return { denyListKey: `${prefix}:denyList:all`, statusKey: `${prefix}:ipDenyListStatus` }
}

// On a Redis Cluster the deny list and the IP list's status live in different slots, so the
// check is two scripts of one key each, with the replies of the combined one (denyList.check).
/** Which of ARGV are members of the set KEYS[1] (also the cluster IP list refresh's). */
const MEMBERS_SCRIPT = "return redis.call('SMISMEMBER', KEYS[1], unpack(ARGV))"
const STATUS_SCRIPT = `local status = redis.call('TTL', KEYS[1])
if status == -2 then redis.call('SETEX', KEYS[1], 30, 'pending') end
return status`

/** The deny-list check on a cluster: `{ status, denied: [0|1 per value] }`. */
async function checkDenyListApart(redis, denyListKey, statusKey, values) {
  const [flags, status] = await Promise.all([
    values.length > 0 ? redis.eval(MEMBERS_SCRIPT, [denyListKey], values) : [],
    redis.eval(STATUS_SCRIPT, [statusKey], []),
  ])
  return { status: Number(status), denied: (flags ?? []).map(Number) }
}

module.exports = { protectionValues, cachedDeniedValue, rememberDenied, deniedResponse, protectionKeys, checkDenyListApart, MEMBERS_SCRIPT, denyCache }
