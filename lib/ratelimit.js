'use strict'
// The drop-in `Ratelimit` (upstream's class is named `RegionRatelimit`). Methods are own-property
// arrow functions, as upstream, so `const { limit } = ratelimit` works; every method that returns
// a Promise rejects instead of throwing.

const { timeoutResponse, quietPending, warnAnalytics, droppedAtTimeout } = require('./responses')
const { blockUntilReady } = require('./block-until-ready')
const algorithms = require('./algorithms')
const { EphemeralCache } = require('./cache')
const protection = require('./protection')
const { decideStore, storeOfContext, limitStoreFor } = require('./redis')
const telemetry = require('./telemetry')
const { analyticsWriteError } = require('./errors')
const decisions = require('./decisions')
const { ratelimitClient, checkClient, nativeTwin } = require('./client-adapters')
const engine = require('./engine')
const cluster = require('./cluster')

const DEFAULT_PREFIX = '@upstash/ratelimit'
const DEFAULT_TIMEOUT_MS = 5000

/**
 * `failClosed: true`: when the store times out or fails, refuse instead of admitting. `reason`
 * stays upstream's "timeout" (so code written for upstream's types keeps compiling); a store
 * failure also carries the `error`. `reset` is one second ahead, so callers can send a
 * meaningful Retry-After.
 */
function failClosedResponse(error) {
  const response = { success: false, limit: 0, remaining: 0, reset: Date.now() + 1000, pending: Promise.resolve(), reason: 'timeout' }
  if (error !== undefined) response.error = error
  return response
}

/** Responses whose analytics write already happened inside the limit script. */
const analyticsWritten = new WeakSet()

let denyListScript
function denyListCheckScript() {
  denyListScript ??= require('./engine').knownScriptSource('denyList.check')
  return denyListScript
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
  if (config.failClosed !== undefined && typeof config.failClosed !== 'boolean') {
    throw new TypeError(`ratelimit-native: \`failClosed\` must be true or false, got ${String(config.failClosed)}`)
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
    // An ioredis or node-redis client is called through an adapter (lib/client-adapters.js).
    checkClient(config.redis, '`redis`')
    // A standalone one whose settings say exactly where its server is: our native connection
    // to that server instead (same database, no per-call JS of the client).
    const redis = nativeTwin(config.redis) ?? ratelimitClient(config.redis, algorithms.markStockRedis)
    this.ctx = { redis }
    this.prefix = config.prefix ?? DEFAULT_PREFIX
    this.timeout = config.timeout ?? DEFAULT_TIMEOUT_MS
    this.primaryRedis = redis
    // Required here, once: a require() per call costs microseconds (module resolution).
    const analyticsModule = config.analytics ? require('./analytics') : null
    this.analytics = analyticsModule ? new analyticsModule.Analytics({ redis, prefix: this.prefix }) : undefined
    this.#eventMembers = analyticsModule ? new analyticsModule.EventMembers() : null
    this.enableProtection = config.enableProtection ?? false
    this.denyListThreshold = config.denyListThreshold ?? 6
    // `true` (as upstream: one global dynamic limit per prefix) or `{ perIdentifier: true }`
    // (ours: an identifier's own dynamic limit, then the global one).
    this.dynamicLimits = Boolean(config.dynamicLimits ?? false)
    this.failClosed = config.failClosed ?? false
    this.ctx.dynamicLimits = this.dynamicLimits
    this.ctx.prefix = this.prefix
    if (this.timeout > 0) Object.defineProperty(this.ctx, algorithms.WAIT_MS, { value: this.timeout })
    // On a Redis Cluster each identifier's keys share a hash tag (lib/cluster.js).
    this.#cluster = cluster.isCluster(redis)
    if (this.#cluster) Object.defineProperty(this.ctx, cluster.CLUSTER, { value: true })
    const perIdentifier = typeof config.dynamicLimits === 'object' && config.dynamicLimits !== null && config.dynamicLimits.perIdentifier === true
    if (perIdentifier) Object.defineProperty(this.ctx, algorithms.PER_IDENTIFIER, { value: true })
    if (config.ephemeralCache instanceof Map) this.ctx.cache = new EphemeralCache(config.ephemeralCache)
    else if (config.ephemeralCache === undefined) this.ctx.cache = EphemeralCache.bounded()
    const store = decideStore(this.ctx)
    if (store?.sync && (this.analytics || this.enableProtection)) {
      throw new TypeError(
        'ratelimit-native: `analytics` and `enableProtection` keep their data in Redis; they cannot be used with Redis.memory()',
      )
    }
    telemetry.tagClient(config.redis, config.enableTelemetry)
    // Fast paths, when our own counter algorithm runs with nothing around it (no protection,
    // no analytics): they skip the timeout timer, which cannot fire for answers given at once.
    // On a cluster the deny lists and analytics live in other slots than the identifier's keys,
    // so they are not carried in its script.
    this.#carriesExtras = Boolean(this.limiter[algorithms.BUILT_IN]?.carriesExtras) && !this.#cluster
    const plain = this.limiter[algorithms.BUILT_IN]?.carriesExtras && !this.analytics && !this.enableProtection
    this.#algorithm = plain ? this.limiter() : null
    this.#syncStore = plain && store?.sync ? store : null
    // On the WebAssembly engine our Redis has a store for plain limit() calls only, without
    // dynamic limits (which read another key).
    const remote = plain && !store?.sync ? limitStoreFor(this.ctx.redis, store) : null
    // On a cluster the global dynamic limit is read with a command of its own (lib/algorithms.js).
    this.#remoteStore = remote && !((remote.limitsOnly || this.#cluster) && this.dynamicLimits) ? remote : null
    this.#analyticsInScript = Boolean(this.analytics && this.#carriesExtras)
    // With protection and/or analytics, our counter algorithms on a native remote store still
    // make one Promise per call: the deny-list check and the analytics write travel in the
    // limit's script (#limitWithExtras). Anything else takes the general path.
    const withExtras = this.#carriesExtras && (this.analytics || this.enableProtection) && !store?.sync
    const extrasStore = withExtras ? limitStoreFor(this.ctx.redis, store) : null
    this.#extrasStore = extrasStore && !extrasStore.limitsOnly ? extrasStore : null
    this.#extrasAlgorithm = this.#extrasStore ? this.limiter() : null
  }

  #cluster
  #carriesExtras
  #eventMembers
  #extrasStore
  #extrasAlgorithm

  #algorithm
  #syncStore
  #remoteStore
  #analyticsInScript

  /**
   * Counts one request (or `req.rate` of them) for `identifier`.
   */
  limit = (identifier, req) => {
    if (!decisions.observed()) return this.#limit(identifier, req)
    const started = performance.now()
    return decisions.observe(this.#limit(identifier, req), identifier, started, this.#about())
  }

  /** What a decision message says of this limiter (lib/decisions.js), made again only when
   * the limiter's prefix, algorithm or client was replaced. */
  #about() {
    const about = this.#aboutCache
    if (about?.prefix === this.prefix && about.of === this.limiter && about.redis === this.ctx.redis) return about
    this.#aboutCache = {
      prefix: this.prefix,
      algorithm: this.limiter?.[algorithms.BUILT_IN]?.kind ?? 'custom',
      engine: engine.name,
      store: decisions.storeKind(this.ctx.redis),
      of: this.limiter,
      redis: this.ctx.redis,
    }
    return this.#aboutCache
  }

  #aboutCache = null

  #limit(identifier, req) {
    const fast = this.#algorithm
    if (fast) {
      // Our own algorithm with nothing around it: the same answers as the general path below,
      // with fewer Promise layers (what a call costs on the JS thread is most of its CPU).
      let key
      try {
        key = this.getKey(identifier)
        if (this.#syncStore) {
          try {
            return fast[algorithms.SYNC_LIMIT](this.ctx, key, req?.rate, this.#syncFailure)
          } catch (error) {
            if (this.failClosed) return Promise.resolve(failClosedResponse(error))
            throw error
          }
        }
        const blocked = fast[algorithms.CACHED_BLOCK](this.ctx, key, req?.rate)
        if (blocked) return Promise.resolve(blocked)
      } catch (error) {
        return Promise.reject(error)
      }
      if (this.#remoteStore) {
        try {
          const queued = fast[algorithms.REMOTE_LIMIT](this.ctx, key, req?.rate, this.#remoteStore, this.#guard, this.timeout)
          if (queued !== null) return queued
        } catch (error) {
          return new Promise((resolve) => resolve(this.#guard.onError(error)))
        }
      }
    } else if (this.#extrasAlgorithm) {
      let queued = null
      try {
        queued = this.#limitWithExtras(identifier, req)
      } catch {
        // Whatever went wrong (an identifier getKey refuses, …) is answered by the general
        // path, with the same errors and failClosed answers as before.
      }
      if (queued !== null) return queued
    }
    return this.#limitGuarded(identifier, req)
  }

  /**
   * limit() with protection and/or analytics, our counter algorithm on a native remote store:
   * the same answers as #limitGuarded(#limitAndProtect), without its Promise layers, timer and
   * race (the store's shared deadline timers answer timeouts). Null where the general path
   * must answer: a value in the deny cache, or an identifier blocked in the ephemeral cache
   * (no script runs there, so the deny list is checked on its own).
   */
  #limitWithExtras(identifier, req) {
    const algorithm = this.#extrasAlgorithm
    const key = this.getKey(identifier)
    const values = this.enableProtection ? protection.protectionValues(identifier, req) : null
    if (values !== null && protection.cachedDeniedValue(values) !== undefined) return null
    if (algorithm[algorithms.CACHED_BLOCK](this.ctx, key, req?.rate)) return null
    const extras = this.#extras(identifier, req, values)
    // The answers when the script's own answer does not come: as #limitGuarded gives them.
    const guard = {
      onTimeout: () => {
        const response = this.#guard.onTimeout()
        // The script may still run, with the analytics write of the real outcome in it.
        if (this.#analyticsInScript) analyticsWritten.add(response)
        return quietPending(this.#recordAnalytics(response, identifier, req))
      },
      // The plain path's answers (or its throw); a call dropped unsent is recorded here.
      onError: (error) => quietPending(this.#recordAnalytics(this.#guard.onError(error), identifier, req)),
    }
    const carry = (response, carried) => {
      if (carried.analyticsError) warnAnalytics(analyticsWriteError(carried.analyticsError))
      analyticsWritten.add(response)
      if (values !== null) this.#resolveProtection(response, values, carried)
      return quietPending(this.#recordAnalytics(response, identifier, req))
    }
    return algorithm[algorithms.REMOTE_LIMIT_EXTRAS](this.ctx, key, req?.rate, this.#extrasStore, guard, this.timeout, extras, carry)
  }

  /** A plain limit call the memory store refused: failClosed's answer, or the error. */
  #syncFailure = (error) => {
    if (this.failClosed) return failClosedResponse(error)
    throw error
  }

  /**
   * The answers of a plain limit call on a native remote store when it cannot give its own:
   * the timeout answer (also for a call the native queue dropped, unsent, at its deadline: see
   * #limitGuarded), and failClosed's. The same answers as #limitGuarded's race; the store's
   * queue applies them (one Promise per call, timeouts on a shared timer: lib/deadlines.js).
   */
  #guard = {
    onTimeout: () => (this.failClosed ? failClosedResponse() : timeoutResponse()),
    onError: (error) => {
      if (droppedAtTimeout(error)) return this.#guard.onTimeout()
      if (this.failClosed) return failClosedResponse(error)
      throw error
    },
  }

  /** limit() in general: the timeout race, protection, analytics, any Algorithm. */
  async #limitGuarded(identifier, req) {
    let timeoutId = null
    try {
      let work = this.#limitAndProtect(identifier, req)
      let timedOut
      let timer = null
      if (this.timeout > 0) {
        timer = new Promise((resolve) => {
          timeoutId = setTimeout(() => {
            timedOut = this.#guard.onTimeout()
            resolve(timedOut)
          }, this.timeout)
        })
        // The native queue drops a call whose caller's timeout has passed (never sent, never
        // counted). That notice can beat this timer (the native deadline starts a few µs
        // earlier, timers run late under load, fake timers never run): the answer is still the
        // timeout one. Not marked as written: nothing ran, so analytics records this answer.
        work = work.catch((error) => {
          if (!droppedAtTimeout(error)) throw error
          return this.#guard.onTimeout()
        })
      }
      if (this.failClosed) work = work.catch((error) => failClosedResponse(error))
      let response
      if (timer) {
        response = await Promise.race([work, timer])
        // The script still running carries the analytics write of the real outcome; recording
        // the timeout answer too would count the call twice.
        if (response === timedOut && this.#analyticsInScript) analyticsWritten.add(response)
      } else {
        response = await work
      }
      return quietPending(this.#recordAnalytics(response, identifier, req))
    } finally {
      if (timeoutId) clearTimeout(timeoutId)
    }
  }

  /**
   * The limit plus, with `enableProtection`, the deny-list check. For our own algorithms both
   * (and the analytics write) travel in the limit's script: one request. Otherwise they run side
   * by side, as upstream does.
   */
  async #limitAndProtect(identifier, req) {
    const key = this.getKey(identifier)
    const values = this.enableProtection ? protection.protectionValues(identifier, req) : null
    if (values) {
      const cached = protection.cachedDeniedValue(values)
      if (cached !== undefined) return protection.deniedResponse(cached)
    }
    const limiter = this.limiter()
    if ((values || this.analytics) && this.#carriesExtras) {
      const response = await limiter.limit(this.ctx, key, req?.rate, undefined, this.#extras(identifier, req, values))
      const carried = response[algorithms.EXTRAS]
      if (carried) {
        if (carried.analyticsError) warnAnalytics(analyticsWriteError(carried.analyticsError))
        analyticsWritten.add(response)
        return values ? this.#resolveProtection(response, values, carried) : response
      }
      // Answered from the ephemeral cache: no script ran, so check the deny list on its own.
      return values ? this.#resolveProtection(response, values, await this.#checkDenyList(values)) : response
    }
    if (!values) return limiter.limit(this.ctx, key, req?.rate)
    const [response, check] = await Promise.all([limiter.limit(this.ctx, key, req?.rate), this.#checkDenyList(values)])
    return this.#resolveProtection(response, values, check)
  }

  /** The deny-list keys and values, and the analytics members for every possible outcome. */
  #extras(identifier, req, values) {
    const extras = {}
    if (values) {
      const keys = this.#protectionKeys()
      extras.denyListKey = keys.denyListKey
      extras.statusKey = keys.statusKey
      extras.values = values
    }
    if (this.analytics) {
      const geo = req ? this.analytics.extractGeo(req) : undefined
      const members = this.#eventMembers
      extras.eventsKey = members.key(this.prefix, Date.now())
      extras.allowedMember = members.member(identifier, true, geo)
      extras.blockedMember = members.member(identifier, false, geo)
      const denied = []
      if (values) for (const value of values) denied.push(members.member(value, 'denied', geo))
      extras.deniedMembers = denied
    }
    return extras
  }

  /** protection.protectionKeys(this.prefix), made again only when the prefix changed. */
  #protectionKeys() {
    let keys = this.#protectionKeysCache
    if (keys === null || keys.prefix !== this.prefix) {
      keys = this.#protectionKeysCache = { prefix: this.prefix, ...protection.protectionKeys(this.prefix) }
    }
    return keys
  }

  #protectionKeysCache = null

  /** The deny-list check alone: `{ status, denied: [0|1 per value] }`. */
  async #checkDenyList(values) {
    const { denyListKey, statusKey } = protection.protectionKeys(this.prefix)
    if (this.#cluster) return protection.checkDenyListApart(this.primaryRedis, denyListKey, statusKey, values)
    const store = storeOfContext(this.ctx)
    const reply = store
      ? await algorithms.queued(store, store.queue().evalKnown('denyList.check', [denyListKey, statusKey], values))
      : await algorithms.evalThroughClient(this.primaryRedis, { ...denyListCheckScript(), keys: [denyListKey, statusKey], args: values })
    const [flags, status] = reply
    return { status: Number(status), denied: (flags ?? []).map(Number) }
  }

  /** Applies a deny-list result: upstream's last-denied-wins, the deny cache, the IP list refresh. */
  #resolveProtection(response, values, { status, denied }) {
    const deniedValues = values.filter((_, i) => denied[i] === 1)
    protection.rememberDenied(deniedValues)
    if (deniedValues.length > 0) {
      response.success = false
      response.remaining = 0
      response.reason = 'denyList'
      response.deniedValue = deniedValues[deniedValues.length - 1]
    }
    if (status === -2) {
      const { updateIpDenyList } = require('./ip-deny-list')
      const refresh = updateIpDenyList(this.primaryRedis, this.prefix, this.denyListThreshold)
      // Quieted here, not only when returned: a response that loses the timeout race is never
      // returned, and its failing refresh must not become an unhandled rejection.
      quietPending(response)
      response.pending = Promise.all([response.pending, refresh])
      quietPending(response)
    }
    return response
  }

  /** Records analytics for responses whose write did not already travel with the limit. */
  #recordAnalytics(response, identifier, req) {
    if (!this.analytics) return response
    if (analyticsWritten.has(response)) {
      response.pending = Promise.all([response.pending, undefined])
      return response
    }
    try {
      const geo = req ? this.analytics.extractGeo(req) : undefined
      const denied = response.reason === 'denyList'
      const written = this.analytics
        .record({ identifier: denied ? response.deniedValue : identifier, time: Date.now(), success: denied ? 'denied' : response.success, ...geo })
        .catch(warnAnalytics)
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

  resetUsedTokens = async (identifier) => {
    await this.limiter().resetTokens(this.ctx, this.getKey(identifier))
  }

  getRemaining = async (identifier) => this.limiter().getRemaining(this.ctx, this.getKey(identifier))

  /**
   * Sets (a number) or removes (`false`) the prefix's global dynamic limit — or, with
   * `identifier` and `dynamicLimits: { perIdentifier: true }`, that identifier's own limit,
   * which takes precedence over the global one.
   */
  setDynamicLimit = async (options) => {
    const key = this.#dynamicLimitKey(options, 'setDynamicLimit')
    if (options.limit === false) await this.primaryRedis.del(key)
    else await this.primaryRedis.set(key, options.limit)
  }

  getDynamicLimit = async (options) => {
    const key = this.#dynamicLimitKey(options, 'getDynamicLimit')
    const result = await this.primaryRedis.get(key)
    return { dynamicLimit: result === null || result === undefined ? null : Number(result) }
  }

  #dynamicLimitKey(options, method) {
    if (!this.dynamicLimits) {
      throw new Error(`dynamicLimits must be enabled in the Ratelimit constructor to use ${method}()`)
    }
    const identifier = options?.identifier
    if (identifier === undefined) return `${this.prefix}:dynamic:global`
    if (!this.ctx[algorithms.PER_IDENTIFIER]) {
      throw new Error(
        `per-identifier dynamic limits must be enabled with dynamicLimits: { perIdentifier: true } to use ${method}({ identifier })`,
      )
    }
    if (typeof identifier !== 'string') throw new TypeError(`ratelimit-native: identifier must be a string, got ${typeof identifier}`)
    // Named after the identifier's key as lib/algorithms.js dynamicKey names it: on a cluster
    // `P:dynamic:id:{I}`, in the identifier's slot, so its script can read it.
    return `${this.prefix}:dynamic:id:${this.getKey(identifier).slice(this.prefix.length + 1)}`
  }

  // Upstream joins with Array#join (null and undefined become ""); a string, the usual case,
  // takes the cheaper concatenation with the same result.
  getKey = (identifier) => cluster.identifierKey(this.prefix, identifier, this.#cluster)

  static fixedWindow = algorithms.fixedWindow
  static slidingWindow = algorithms.slidingWindow
  static tokenBucket = algorithms.tokenBucket
  static cachedFixedWindow = algorithms.cachedFixedWindow
}

module.exports = { Ratelimit: RegionRatelimit }
