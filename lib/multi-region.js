'use strict'
// The drop-in `MultiRegionRatelimit`: one limiter over several independent Redis databases
// ("regions"). Every request is recorded in every region as a hash field `requestId → rate`
// under `P:I:<bucket>`; the answer comes from the first region that replies (Promise.any), and
// `pending` copies the request ids a region is missing into it once all regions have answered.
//
// The algorithm itself (scripts, keys, arithmetic, which ids to back-fill) lives in Rust
// (NativeMultiRegionAlgorithm). Per region, this file decides where a script runs:
// - a native store (our Redis, an @upstash/redis instance): one native async call;
// - any other client object: EVALSHA through the object (EVAL on NOSCRIPT), and its `hset` for
//   the back-fill, exactly as upstream drives it.
//
// Deliberate differences from @upstash/ratelimit 2.2.0 (docs/COMPATIBILITY.md):
// - `ephemeralCache` is honoured (upstream ignores it and always uses a fresh Map);
// - `resetUsedTokens` resolves once every region has finished (upstream does not wait);
// - a rejected `pending` is never an unhandled rejection by itself.

const { timeoutResponse, quietPending, warnAnalytics } = require('./responses')
const { blockUntilReady } = require('./block-until-ready')
const engine = require('./engine')
const { nativeStoreFor, decideStore, storeOfContext } = require('./redis')
const { rethrowStoreError } = require('./errors')
const { evalThroughClient, markStockRedis } = require('./algorithms')
const { ratelimitClient, checkClient } = require('./client-adapters')
const { EphemeralCache } = require('./cache')
const telemetry = require('./telemetry')
const { isCluster, identifierKey } = require('./cluster')

const DEFAULT_PREFIX = '@upstash/ratelimit'
const DEFAULT_TIMEOUT_MS = 5000
const ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

/** A 16-character request id from Math.random, over upstream's alphabet. */
function requestId() {
  let id = ''
  for (let i = 0; i < 16; i++) id += ID_CHARS.charAt(Math.floor(Math.random() * ID_CHARS.length))
  return id
}

function parseWindow(window) {
  if (typeof window !== 'string') throw new Error(`Unable to parse window size: ${window}`)
  return engine.parseDuration(window)
}

function memoryStoreError() {
  return new TypeError(
    'ratelimit-native: MultiRegionRatelimit needs Redis databases (Redis.fromEnv(), new Redis({ url, token }), @upstash/redis, or a client object); Redis.memory() is one in-process store',
  )
}

/**
 * Runs `onStore(store)` on a region's native store (then makes sure this turn's queued calls are
 * sent), or `viaClient()` through the region's client; always a Promise. `region`: a region
 * context, `{ redis, prefix }`.
 */
function inRegion(region, onStore, viaClient) {
  try {
    const entry = storeOfContext(region)
    if (entry?.sync) throw memoryStoreError()
    if (!entry) return viaClient()
    const result = onStore(entry.queue())
    entry.flushSoon()
    return result.catch(rethrowStoreError)
  } catch (error) {
    return Promise.reject(error)
  }
}

/** One back-filled request id: `HSET key id rate`. */
function hsetInRegion(region, key, id, rate) {
  const redis = region.redis
  return inRegion(
    region,
    (store) => store.command(['HSET', key, id, String(rate)]),
    () => redis.hset(key, { [id]: rate }),
  )
}

/** `fixedWindow` and `slidingWindow` share the flow; the difference is all in `algo`. */
function multiRegionAlgorithm(algo, tokens) {
  const impl = {
    limit: async (ctx, identifier, rate) => {
      const id = requestId()
      const now = Date.now()
      const incrementBy = rate ?? 1
      if (ctx.cache && incrementBy > 0) {
        const { blocked, reset } = ctx.cache.isBlocked(identifier)
        if (blocked) {
          return { success: false, limit: tokens, remaining: 0, reset, pending: Promise.resolve(), reason: 'cacheBlock' }
        }
      }
      // Built once (it also validates the rate); the compat path sends it through each client.
      const call = algo.limitCall(identifier, now, id, incrementBy)
      const regions = ctx.regionContexts
      const requests = regions.map((region) =>
        inRegion(
          region,
          (store) => algo.limitOn(store, identifier, now, id, incrementBy),
          () => evalThroughClient(region.redis, call),
        ),
      )
      // The first region to answer decides; AggregateError when every region failed.
      const first = await Promise.any(requests.map((request, index) => request.then((reply) => ({ reply, index }))))
      const [success, limit, remaining, reset] = algo.limitOutcome(first.reply, now, id, incrementBy)
      const ok = success === 1

      // Once every region has answered: write the ids each one is missing, region by region,
      // one HSET at a time. Rejects (without writing) when a region's request failed.
      const sync = async () => {
        const replies = await Promise.all(requests)
        const plan = algo.syncPlan(replies, first.index, identifier, now, id, incrementBy)
        for (let r = 0; r < regions.length; r++) {
          for (const missing of plan.ids[r]) await hsetInRegion(regions[r], plan.key, missing, incrementBy)
        }
      }

      if (ctx.cache) {
        if (!ok) ctx.cache.blockUntil(identifier, reset)
        else if (incrementBy < 0) ctx.cache.pop(identifier)
      }
      return quietPending({ success: ok, limit, remaining, reset, pending: sync() })
    },
    getRemaining: async (ctx, identifier) => {
      const now = Date.now()
      const requests = ctx.regionContexts.map((region) =>
        inRegion(
          region,
          (store) => algo.remainingOn(store, identifier, now),
          () => evalThroughClient(region.redis, algo.remainingCall(identifier, now)),
        ),
      )
      const reply = await Promise.any(requests)
      const [remaining, reset, limit] = algo.remainingOutcome(reply, now)
      return { remaining, reset, limit }
    },
    resetTokens: async (ctx, identifier) => {
      if (ctx.cache) ctx.cache.pop(identifier)
      // Unlike upstream, wait for every region; the first failure (in region order) is reported
      // once all of them have finished.
      const results = await Promise.allSettled(
        ctx.regionContexts.map((region) =>
          inRegion(
            region,
            (store) => algo.resetOn(store, identifier),
            () => evalThroughClient(region.redis, algo.resetCall(identifier)),
          ),
        ),
      )
      const failed = results.find((r) => r.status === 'rejected')
      if (failed) throw failed.reason
    },
  }
  return () => impl
}

function fixedWindow(tokens, window) {
  const windowMs = parseWindow(window)
  return multiRegionAlgorithm(engine.NativeMultiRegionAlgorithm.fixedWindow(tokens, windowMs), tokens)
}

function slidingWindow(tokens, window) {
  const windowMs = parseWindow(window)
  return multiRegionAlgorithm(engine.NativeMultiRegionAlgorithm.slidingWindow(tokens, windowMs), tokens)
}

function validateConfig(config) {
  if (config === null || typeof config !== 'object') {
    throw new TypeError('ratelimit-native: new MultiRegionRatelimit(config) needs a config object with `redis` (an array) and `limiter`')
  }
  const { redis, limiter } = config
  if (!Array.isArray(redis) || redis.length === 0) {
    throw new TypeError('ratelimit-native: `redis` must be a non-empty array of Redis clients, one per region (the first one is the primary)')
  }
  redis.forEach((client, i) => {
    if (client === undefined || client === null || (typeof client !== 'object' && typeof client !== 'function')) {
      throw new TypeError(`ratelimit-native: redis[${i}] is not a Redis client`)
    }
    if (nativeStoreFor(client)?.sync) throw memoryStoreError()
  })
  if (typeof limiter !== 'function') {
    throw new TypeError(
      'ratelimit-native: `limiter` must be an algorithm such as MultiRegionRatelimit.slidingWindow(10, "10 s"), got ' +
        (limiter === undefined ? 'undefined' : typeof limiter),
    )
  }
  if (config.timeout !== undefined && (typeof config.timeout !== 'number' || Number.isNaN(config.timeout))) {
    throw new TypeError(`ratelimit-native: \`timeout\` must be a number of milliseconds, got ${String(config.timeout)}`)
  }
  if (config.prefix !== undefined && typeof config.prefix !== 'string') {
    throw new TypeError(`ratelimit-native: \`prefix\` must be a string, got ${typeof config.prefix}`)
  }
  const cache = config.ephemeralCache
  if (cache !== undefined && cache !== false && !(cache instanceof Map)) {
    throw new TypeError('ratelimit-native: `ephemeralCache` must be a Map, false, or left out')
  }
}

class MultiRegionRatelimit {
  constructor(config) {
    validateConfig(config)
    const prefix = config.prefix ?? DEFAULT_PREFIX
    this.limiter = config.limiter
    config.redis.forEach((redis, i) => checkClient(redis, `redis[${i}]`))
    const regions = config.redis.map((redis) => ratelimitClient(redis, markStockRedis))
    this.ctx = { regionContexts: regions.map((redis) => ({ redis, prefix })) }
    // How each region is reached is decided now (native store, or the client's own methods).
    for (const region of this.ctx.regionContexts) decideStore(region)
    this.prefix = prefix
    // One key per identifier for every region: the cluster layout when any region is a cluster.
    this.#cluster = regions.some(isCluster)
    this.timeout = config.timeout ?? DEFAULT_TIMEOUT_MS
    this.primaryRedis = regions[0]
    this.analytics = config.analytics ? new (require('./analytics').Analytics)({ redis: this.primaryRedis, prefix }) : undefined
    // No deny lists for multi-region limiters (as upstream).
    this.enableProtection = false
    this.denyListThreshold = 6
    this.dynamicLimits = config.dynamicLimits ?? false
    if (config.ephemeralCache instanceof Map) this.ctx.cache = new EphemeralCache(config.ephemeralCache)
    else if (config.ephemeralCache === undefined) this.ctx.cache = new EphemeralCache(new Map())
    for (const redis of config.redis) telemetry.tagClient(redis, config.enableTelemetry)
    if (config.dynamicLimits) {
      console.warn(
        'Warning: Dynamic limits are not yet supported for multi-region rate limiters. The dynamicLimits option will be ignored.',
      )
    }
  }

  /**
   * Counts one request (or `req.rate` of them) for `identifier` in every region; answers from
   * the first region that replies.
   */
  limit = async (identifier, req) => {
    let timeoutId = null
    try {
      const work = this.#limitOnce(identifier, req)
      let response
      if (this.timeout > 0) {
        const timer = new Promise((resolve) => {
          timeoutId = setTimeout(() => resolve(timeoutResponse()), this.timeout)
        })
        response = await Promise.race([work, timer])
      } else {
        response = await work
      }
      return quietPending(this.#recordAnalytics(response, identifier, req))
    } finally {
      if (timeoutId) clearTimeout(timeoutId)
    }
  }

  async #limitOnce(identifier, req) {
    return quietPending(await this.limiter().limit(this.ctx, this.getKey(identifier), req?.rate))
  }

  #recordAnalytics(response, identifier, req) {
    if (!this.analytics) return response
    try {
      const geo = req ? this.analytics.extractGeo(req) : undefined
      const written = this.analytics.record({ identifier, time: Date.now(), success: response.success, ...geo }).catch(warnAnalytics)
      response.pending = Promise.all([response.pending, written])
    } catch (error) {
      warnAnalytics(error)
    }
    return response
  }

  /**
   * Waits (polling at the window's reset) until a request is allowed or `timeout` ms pass.
   */
  blockUntilReady = async (identifier, timeout) => blockUntilReady(this.limit, identifier, timeout)

  /** Forgets everything counted for `identifier`, in every region (resolves when all are done). */
  resetUsedTokens = async (identifier) => {
    await this.limiter().resetTokens(this.ctx, this.getKey(identifier))
  }

  getRemaining = async (identifier) => this.limiter().getRemaining(this.ctx, this.getKey(identifier))

  /** Stored on the primary region (redis[0]) only; the algorithms do not read it (as upstream). */
  setDynamicLimit = async (options) => {
    if (!this.dynamicLimits) {
      throw new Error('dynamicLimits must be enabled in the Ratelimit constructor to use setDynamicLimit()')
    }
    const key = `${this.prefix}:dynamic:global`
    if (options.limit === false) await this.primaryRedis.del(key)
    else await this.primaryRedis.set(key, options.limit)
  }

  getDynamicLimit = async () => {
    if (!this.dynamicLimits) {
      throw new Error('dynamicLimits must be enabled in the Ratelimit constructor to use getDynamicLimit()')
    }
    const result = await this.primaryRedis.get(`${this.prefix}:dynamic:global`)
    return { dynamicLimit: result === null || result === undefined ? null : Number(result) }
  }

  #cluster

  getKey = (identifier) => identifierKey(this.prefix, identifier, this.#cluster)

  static fixedWindow = fixedWindow
  static slidingWindow = slidingWindow
}

module.exports = { MultiRegionRatelimit }
