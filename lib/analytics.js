'use strict'
// Analytics: the `Analytics` export of @upstash/ratelimit 2.2.0, reimplemented on the same Redis
// data (reference: /work/shared/reference/upstash-ratelimit-behaviour.md §1.7, §3.5).
//
// Data layout (shared with the JS library, so either can write and either can read):
//   one sorted set per hour, `<prefix>:events:<hourStart ms>`, no TTL; each member is the JSON of
//   an event without its `time` (e.g. {"identifier":"u","success":true,"country":"DE"}) and its
//   score counts how often that exact event happened in that hour.
//
// Client methods used (and nothing else):
//   - `zincrby(key, 1, member)` for `record()` when the client has it (as upstream does); a client
//     without `zincrby` gets the same ZINCRBY through `eval` instead;
//   - `eval(script, keys, args)` for every query (all keys are passed as KEYS). Results are read
//     as `@upstash/redis` returns them (JSON-deserialised) or as raw RESP values (numbers, strings,
//     null); both give the same output.
//
// Observable behaviour kept from upstream (experimentally checked against the published package):
//   - getUsage: "denied" counts as success; when one identifier has several members (e.g.
//     different geo), each {identifier, success|blocked} slot holds the score of the LAST such
//     member in ZUNION order (ascending score), not a sum;
//   - series/getUsage look at most 256 hourly buckets back; a cutoff in the current hour gives 0
//     buckets, which Redis rejects (ZUNION needs at least one key) for getUsage, and [] for series;
//   - getUsageOverTime/series answer in chunks of 48 buckets; a fractional bucket count only
//     yields the complete chunks (upstream never executes the last, partial pipeline);
//   - a member whose JSON lacks the grouped field makes the query reject (as upstream's script);
//   - getMostAllowedBlocked scans at most `checkAtMost` (default getTop * 5) union entries from the
//     highest score down and classifies them by the text of their `success` field; a bucket count
//     below 1 or with a fraction is refused by Redis, as upstream's is.

const { ratelimitClient } = require('./client-adapters')
const { markStockRedis } = require('./algorithms')
const { isCluster } = require('./cluster')
const HOUR_MS = 60 * 60 * 1000
const TABLE = 'events'
const DEFAULT_PREFIX = '@upstash/ratelimit'
const MAX_LOOKBACK_BUCKETS = 256
const BUCKETS_PER_CALL = 48
/** Far beyond what Redis' Lua can unpack into one ZUNION; only guards against runaway loops here. */
const MAX_UNION_BUCKETS = 100000

/** Start (ms) of the hour `time` falls in; `undefined`/`null` means now. */
function hourBucket(time) {
  const t = time ?? Date.now()
  return Math.floor(t / HOUR_MS) * HOUR_MS
}

function bucketKey(prefix, bucket) {
  return [prefix, TABLE, bucket].join(':')
}

/** Keys of `count` consecutive hourly buckets, newest (`bucket(now)`) first. */
function bucketKeys(prefix, count, now) {
  if (count > MAX_UNION_BUCKETS || count === Infinity) {
    throw new RangeError(`ratelimit-native: too many analytics buckets requested: ${count}`)
  }
  const newest = hourBucket(now)
  const keys = []
  for (let i = 1; i <= count; i++) keys.push(bucketKey(prefix, newest - (i - 1) * HOUR_MS))
  return { newest, keys }
}

/**
 * The zset key and member `record()` writes for a limiter event, so a caller can send the
 * ZINCRBY itself (e.g. in the same round trip as the limit check):
 * `ZINCRBY <key> 1 <member>`. The event object is built as @upstash/ratelimit builds it
 * (`{ identifier, time, success, ...geo }`), so geo keys land after `success`.
 */
function analyticsEvent({ prefix, identifier, success, geo, time } = {}) {
  return eventEntry(prefix ?? DEFAULT_PREFIX, { identifier, time, success, ...geo })
}

/**
 * What `analyticsEvent` gives for the events one limit() call may record, made for each call
 * of a limiter with analytics on (lib/ratelimit.js): the hour's key, remembered per limiter,
 * and the members. Without geo data and with string identifiers a member is written as text,
 * byte for byte what `JSON.stringify({ identifier, success })` makes (three stringified
 * objects per call were ~12 % of such a call's Node CPU).
 */
class EventMembers {
  #prefix = null
  #bucket = -1
  #key = ''

  /** The zset key of the hour `time` falls in, for the limiter's `prefix`. */
  key(prefix, time) {
    const bucket = hourBucket(time)
    if (bucket !== this.#bucket || prefix !== this.#prefix) {
      this.#prefix = prefix
      this.#bucket = bucket
      this.#key = bucketKey(prefix ?? DEFAULT_PREFIX, bucket)
    }
    return this.#key
  }

  /** The member of `who`'s event with `success` (true, false or 'denied'); `geo` as extractGeo gives it. */
  member(who, success, geo) {
    if (typeof who === 'string' && (geo === undefined || isEmpty(geo))) {
      const outcome = success === true ? 'true' : success === false ? 'false' : JSON.stringify(success)
      return `{"identifier":${JSON.stringify(who)},"success":${outcome}}`
    }
    return JSON.stringify({ identifier: who, time: undefined, success, ...geo })
  }
}

function isEmpty(object) {
  for (const _ in object) return false
  return true
}

function eventEntry(prefix, event) {
  const bucket = hourBucket(event.time)
  return { key: bucketKey(prefix, bucket), member: JSON.stringify({ ...event, time: undefined }) }
}

// --- Lua -------------------------------------------------------------------------------------
// Our own scripts. Every key they touch is in KEYS.

/** ZINCRBY for clients without a zincrby method. KEYS[1] zset; ARGV increment, member. */
const INCREMENT_SCRIPT = `return redis.call('ZINCRBY', KEYS[1], ARGV[1], ARGV[2])`

/**
 * Per-bucket totals grouped by one field of the member JSON.
 * KEYS: bucket zsets. ARGV[1]: field name.
 * Reply: for each key, a list of {field value, summed score} (in Lua's table order; booleans
 * come back as 1 / nil, as any Lua reply does).
 */
const GROUP_BY_FIELD_SCRIPT = `
local field = ARGV[1]
local reply = {}
for k = 1, #KEYS do
  local entries = redis.call('ZRANGE', KEYS[k], 0, -1, 'WITHSCORES')
  local totals = {}
  for j = 1, #entries, 2 do
    local value = cjson.decode(entries[j])[field]
    totals[value] = (totals[value] or 0) + tonumber(entries[j + 1])
  end
  local grouped = {}
  for value, total in pairs(totals) do
    grouped[#grouped + 1] = { value, total }
  end
  reply[k] = grouped
end
return reply
`

/** The union of all bucket zsets with summed scores. KEYS: bucket zsets. Reply: ZUNION ... WITHSCORES. */
const UNION_SCRIPT = `
local command = { 'ZUNION', #KEYS }
for k = 1, #KEYS do command[#command + 1] = KEYS[k] end
command[#command + 1] = 'WITHSCORES'
return redis.call(unpack(command))
`

/**
 * The top entries per outcome over the union of the buckets.
 * KEYS: bucket zsets. ARGV[1]: entries per outcome. ARGV[2]: how many union entries to inspect
 * at most, starting from the highest score. ARGV[3]: the bucket count as the caller gave it, used
 * as ZUNION's numkeys (#KEYS is its integer part), so a fractional count is refused by Redis
 * ("value is not an integer or out of range"), as upstream's is.
 * Reply: { allowed, ratelimited, denied }, each a list of {score, member}.
 */
const TOP_SCRIPT = `
local command = { 'ZUNION', tonumber(ARGV[3]) }
for k = 1, #KEYS do command[#command + 1] = KEYS[k] end
command[#command + 1] = 'WITHSCORES'
local union = redis.call(unpack(command))

local per_group = tonumber(ARGV[1])
local inspect = tonumber(ARGV[2])
local markers = { 'success":true', 'success":false', 'success":"denied' }
local groups = { {}, {}, {} }
local picked = 0
local lowest = #union - 2 * inspect
local at = #union - 1
while picked < per_group * 3 and at >= 1 and at >= lowest do
  local score = tonumber(union[at + 1])
  if score > 0 then
    local member = union[at]
    for g = 1, 3 do
      if #groups[g] < per_group and string.find(member, markers[g], 1, true) then
        groups[g][#groups[g] + 1] = { score, member }
        picked = picked + 1
        break
      end
    end
  end
  at = at - 2
end
return groups
`

// On a Redis Cluster the hour buckets live in different slots, so no script can read several:
// each bucket is read on its own and the union (ZUNION … WITHSCORES: summed scores, ordered by
// score, then member) and the top entries are computed here, the way the scripts above do.
const RANGE_SCRIPT = "return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')"

/** The member as text (our Redis hands back parsed JSON). */
const memberText = (member) => (typeof member === 'string' ? member : JSON.stringify(member))

/** ZUNION … WITHSCORES of `replies` (each a ZRANGE … WITHSCORES), as a flat list. */
function unionOf(replies) {
  const totals = new Map()
  for (const reply of replies) {
    for (let i = 0; i < (reply?.length ?? 0); i += 2) {
      const member = memberText(reply[i])
      totals.set(member, (totals.get(member) ?? 0) + Number(reply[i + 1]))
    }
  }
  const sorted = [...totals].sort(([a, x], [b, y]) => x - y || (a < b ? -1 : a > b ? 1 : 0))
  return sorted.flat()
}

/** TOP_SCRIPT's selection over a union: up to `perGroup` entries per outcome, highest first. */
function topOfUnion(union, perGroup, inspect) {
  const markers = ['success":true', 'success":false', 'success":"denied']
  const groups = [[], [], []]
  let picked = 0
  const lowest = union.length - 2 * inspect - 1
  for (let at = union.length - 2; picked < perGroup * 3 && at >= 0 && at >= lowest; at -= 2) {
    const score = Math.trunc(Number(union[at + 1]))
    if (!(score > 0)) continue
    const g = markers.findIndex((marker, i) => groups[i].length < perGroup && union[at].includes(marker))
    if (g >= 0) {
      groups[g].push([score, union[at]])
      picked++
    }
  }
  return groups
}

// --- reply decoding ----------------------------------------------------------------------------

/** A zset member as an event object: @upstash/redis already parsed it; raw clients give JSON text. */
function decodeMember(member) {
  if (typeof member !== 'string') return member
  try {
    return JSON.parse(member)
  } catch {
    return member
  }
}

/** Sets `object[key] = value` as an own property even for "__proto__". */
function setOwn(object, key, value) {
  if (key === '__proto__') Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true })
  else object[key] = value
}

function hasOwn(object, key) {
  return Object.prototype.hasOwnProperty.call(object, key)
}

/** One bucket's {value, total} pairs → `{ time, [field]: { "<value>": total } }`. */
function bucketAggregate(pairs, field, time) {
  const grouped = {}
  for (const pair of pairs ?? []) {
    let value = pair[0]
    if (field === 'success') value = value === 1 ? 'true' : value === null ? 'false' : value
    if (!hasOwn(grouped, field)) setOwn(grouped, field, {})
    setOwn(grouped[field], (value ?? 'null').toString(), pair[1])
  }
  return { time, ...grouped }
}

function topList(entries) {
  return (entries ?? []).map(([score, member]) => ({ identifier: decodeMember(member).identifier, count: +score }))
}

/**
 * Analytics over the events a `Ratelimit` with `analytics: true` records (experimental upstream).
 */
class Analytics {
  constructor(config) {
    const { prefix } = config
    // An ioredis or node-redis client is called through an adapter (lib/client-adapters.js).
    const redis = ratelimitClient(config.redis, markStockRedis)
    Object.defineProperty(this, 'redis', { value: redis, writable: false, enumerable: false })
    Object.defineProperty(this, 'prefix', { value: prefix ?? DEFAULT_PREFIX, writable: false, enumerable: false })
    Object.defineProperty(this, 'table', { value: TABLE, writable: false, enumerable: false })
  }

  /** Vercel's `req.geo`, else Cloudflare's `req.cf`, else `{}`. */
  extractGeo(req) {
    if (req.geo !== undefined) return req.geo
    if (req.cf !== undefined) return req.cf
    return {}
  }

  /** Counts one event: ZINCRBY <prefix>:events:<hour> 1 <event JSON without time>. */
  async record(event) {
    const { key, member } = eventEntry(this.prefix, event)
    if (typeof this.redis.zincrby === 'function') await this.redis.zincrby(key, 1, member)
    else await this.redis.eval(INCREMENT_SCRIPT, [key], [1, member])
  }

  /** Per-hour totals grouped by `filter`, from the current hour back to `cutoff` (≤ 256 hours). */
  async series(filter, cutoff) {
    return this.#groupedBuckets(filter, lookback(cutoff))
  }

  /** `{ identifier: { success, blocked } }` over the hours since `cutoff` (≤ 256 hours). */
  async getUsage(cutoff = 0) {
    const { keys } = bucketKeys(this.prefix, lookback(cutoff))
    const union = isCluster(this.redis) ? await this.#unionApart(keys) : await this.redis.eval(UNION_SCRIPT, keys, [])
    const usage = {}
    for (let i = 0; i < union.length; i += 2) {
      const event = decodeMember(union[i])
      const identifier = event.identifier
      if (!hasOwn(usage, identifier)) setOwn(usage, identifier, { success: 0, blocked: 0 })
      usage[identifier][event.success ? 'success' : 'blocked'] = +union[i + 1]
    }
    return usage
  }

  /** Per-hour totals grouped by `groupby` for the last `timestampCount` hours, newest first. */
  async getUsageOverTime(timestampCount, groupby) {
    return this.#groupedBuckets(groupby, timestampCount)
  }

  /** The `getTop` identifiers with the highest counts per outcome over the last `timestampCount` hours. */
  async getMostAllowedBlocked(timestampCount, getTop, checkAtMost) {
    getTop = getTop ?? 5
    const inspect = checkAtMost ?? getTop * 5
    const count = Number(timestampCount)
    const { keys } = bucketKeys(this.prefix, count)
    const [allowed, ratelimited, denied] = isCluster(this.redis)
      ? topOfUnion(await this.#unionApart(keys), getTop, inspect)
      : await this.redis.eval(TOP_SCRIPT, keys, [getTop, inspect, keys.length < count ? count : keys.length])
    return { allowed: topList(allowed), ratelimited: topList(ratelimited), denied: topList(denied) }
  }

  /** The buckets' union on a cluster, read bucket by bucket. */
  async #unionApart(keys) {
    return unionOf(await Promise.all(keys.map((key) => this.redis.eval(RANGE_SCRIPT, [key], []))))
  }

  async #groupedBuckets(field, timestampCount) {
    let count = Number(timestampCount)
    if (!(count >= 1)) return []
    // Upstream sends its per-bucket scripts in pipelines of 48 and only ever runs the last one
    // when the loop counter equals the count exactly, so a fractional count keeps whole chunks.
    if (!Number.isInteger(count)) count = Math.floor(count / BUCKETS_PER_CALL) * BUCKETS_PER_CALL
    const { newest, keys } = bucketKeys(this.prefix, count)
    const calls = []
    const perCall = isCluster(this.redis) ? 1 : BUCKETS_PER_CALL
    for (let start = 0; start < keys.length; start += perCall) {
      calls.push(this.redis.eval(GROUP_BY_FIELD_SCRIPT, keys.slice(start, start + perCall), [field]))
    }
    const replies = (await Promise.all(calls)).flat(1)
    return replies.map((pairs, i) => bucketAggregate(pairs, field, newest - i * HOUR_MS))
  }
}

/** How many hourly buckets lie between `cutoff`'s hour and now's, capped at 256 (may be ≤ 0 or NaN). */
function lookback(cutoff) {
  return Math.min((hourBucket(Date.now()) - hourBucket(cutoff)) / HOUR_MS, MAX_LOOKBACK_BUCKETS)
}

module.exports = { Analytics, analyticsEvent, EventMembers, hourBucket }
