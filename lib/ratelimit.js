'use strict'
// The drop-in `Ratelimit` (upstream's class is named `RegionRatelimit`). Methods are own-property
// arrow functions, as upstream, so `const { limit } = ratelimit` works; every method that returns
// a Promise rejects instead of throwing.

const algorithms = require('./algorithms')
const { EphemeralCache } = require('./cache')

const DEFAULT_PREFIX = '@upstash/ratelimit'
const DEFAULT_TIMEOUT_MS = 5000

function timeoutResponse() {
  return { success: true, limit: 0, remaining: 0, reset: 0, pending: Promise.resolve(), reason: 'timeout' }
}

/** `pending` may reject (a background write failed); callers who await it still see that, but
 * an ignored `pending` must not crash the process with an unhandled rejection. */
function quietPending(response) {
  const { pending } = response
  if (pending && typeof pending.catch === 'function') pending.catch(() => {})
  return response
}

function validateConfig(config) {
  if (config === null || typeof config !== 'object') {
    throw new TypeError('ratelimit-native: new Ratelimit(config) needs a config object with `redis` and `limiter`')
  }
  const { redis, limiter } = config
  if (redis === undefined || redis === null || (typeof redis !== 'object' && typeof redis !== 'function')) {
    throw new TypeError(
      'ratelimit-native: `redis` is required: pass Redis.fromEnv(), new Redis({ url, token }), an @upstash/redis instance, or any client with evalsha/eval/get/set/del',
    )
  }
  if (typeof limiter !== 'function') {
    throw new TypeError(
      'ratelimit-native: `limiter` must be an algorithm such as Ratelimit.slidingWindow(10, "10 s"), got ' +
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

class RegionRatelimit {
  constructor(config) {
    validateConfig(config)
    this.limiter = config.limiter
    this.ctx = { redis: config.redis }
    this.prefix = config.prefix ?? DEFAULT_PREFIX
    this.timeout = config.timeout ?? DEFAULT_TIMEOUT_MS
    this.primaryRedis = config.redis
    // Analytics, protection and telemetry are accepted for compatibility; recording analytics and
    // checking deny lists arrive with the follow-up work (see README status).
    this.analytics = undefined
    this.enableProtection = config.enableProtection ?? false
    this.denyListThreshold = config.denyListThreshold ?? 6
    this.dynamicLimits = config.dynamicLimits ?? false
    this.ctx.dynamicLimits = this.dynamicLimits
    this.ctx.prefix = this.prefix
    if (config.ephemeralCache instanceof Map) this.ctx.cache = new EphemeralCache(config.ephemeralCache)
    else if (config.ephemeralCache === undefined) this.ctx.cache = new EphemeralCache(new Map())
  }

  /**
   * Counts one request (or `req.rate` of them) for `identifier`.
   */
  limit = async (identifier, req) => {
    let timeoutId = null
    try {
      const work = this.limiter().limit(this.ctx, this.getKey(identifier), req?.rate)
      let response
      if (this.timeout > 0) {
        const timer = new Promise((resolve) => {
          timeoutId = setTimeout(() => resolve(timeoutResponse()), this.timeout)
        })
        response = await Promise.race([work, timer])
      } else {
        response = await work
      }
      return quietPending(response)
    } finally {
      if (timeoutId) clearTimeout(timeoutId)
    }
  }

  /**
   * Waits (polling at the window's reset) until a request is allowed or `timeout` ms pass.
   */
  blockUntilReady = async (identifier, timeout) => {
    if (timeout <= 0) throw new Error('timeout must be positive')
    let res
    const deadline = Date.now() + timeout
    while (true) {
      res = await this.limit(identifier)
      if (res.success) break
      if (res.reset === 0) throw new Error('This should not happen')
      const wait = Math.min(res.reset, deadline) - Date.now()
      await new Promise((r) => setTimeout(r, wait > 0 ? wait : 100))
      if (Date.now() > deadline) break
    }
    return res
  }

  resetUsedTokens = async (identifier) => {
    await this.limiter().resetTokens(this.ctx, this.getKey(identifier))
  }

  getRemaining = async (identifier) => this.limiter().getRemaining(this.ctx, this.getKey(identifier))

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

  getKey = (identifier) => [this.prefix, identifier].join(':')

  static fixedWindow = algorithms.fixedWindow
  static slidingWindow = algorithms.slidingWindow
  static tokenBucket = algorithms.tokenBucket
  static cachedFixedWindow = algorithms.cachedFixedWindow
}

module.exports = { Ratelimit: RegionRatelimit }
