'use strict'
// The built-in algorithms as upstream-shaped `Algorithm`s: `() => ({ limit, getRemaining,
// resetTokens })`, called with the limiter's context. The algorithm itself (scripts, keys,
// arithmetic) lives in Rust; this file only decides where the script runs:
// - native store (our Redis, an @upstash/redis instance): one native async call;
// - compat path (any other client object): EVALSHA through the object, EVAL on NOSCRIPT,
//   then the reply goes back to Rust for the arithmetic.
// The ephemeral cache is consulted here, on the JS thread, so a blocked caller costs no I/O.

const engine = require('./engine')
const { storeOfContext } = require('./redis')
const { memoryLimit, limitAlone, flushMemoryBatch } = require('./memory-batch')
const { rethrowStoreError } = require('./errors')
const { CLUSTER } = require('./cluster')

// A settled `pending` carries nothing, so every response that has nothing pending shares one
// resolved Promise (upstream makes one per call: a small allocation on every limit()).
const RESOLVED = Promise.resolve()
const resolved = () => RESOLVED

/** A factory's numeric argument: a number, checked further (positive, finite) natively. */
function numberArg(name, value) {
  if (typeof value !== 'number') {
    throw new TypeError(`ratelimit-native: ${name} must be a positive, finite number, got ${describeValue(value)}`)
  }
  return value
}

function describeValue(value) {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
  if (value === null || typeof value !== 'object') return String(value)
  return Array.isArray(value) ? 'an array' : 'an object'
}

/**
 * A call's cost: `rate ?? 1` as upstream. Upstream hands the value to Redis as it is, where a
 * numeric string counts like the number, so numeric strings are read as numbers; anything else
 * is refused with a clear error (non-finite numbers are refused natively).
 */
function callCost(rate) {
  if (rate === undefined || rate === null) return 1
  if (typeof rate === 'number') return rate
  if (typeof rate === 'string' && rate.trim() !== '' && Number.isFinite(Number(rate))) return Number(rate)
  throw new TypeError(`ratelimit-native: rate must be a finite number, got ${describeValue(rate)}`)
}

function parseWindow(window) {
  if (typeof window !== 'string') throw new Error(`Unable to parse window size: ${window}`)
  return engine.parseDuration(window)
}

/** Set on a context whose limiter gives up after a timeout: queued calls are not sent later. */
const WAIT_MS = Symbol.for('ratelimit-native.waitMs')

/** Set on a context whose limiter was built with `dynamicLimits: { perIdentifier: true }`. */
const PER_IDENTIFIER = Symbol.for('ratelimit-native.perIdentifierDynamicLimits')

/**
 * The dynamic-limit keys the scripts consult, most specific first (the first one set wins):
 * the identifier's own limit (our addition) and the prefix's global one (as upstream).
 * `key` is the prefixed identifier, `prefix:identifier`.
 */
function dynamicKey(ctx, key) {
  if (!ctx.dynamicLimits) return null
  const global = `${ctx.prefix}:dynamic:global`
  if (!ctx[PER_IDENTIFIER]) return [global]
  return [`${ctx.prefix}:dynamic:id:${key.slice(ctx.prefix.length + 1)}`, global]
}

/**
 * A script call on a Redis Cluster with dynamic limits on. The global limit (`P:dynamic:global`)
 * lives in another slot than the identifier's keys: it is read with a GET of its own and handed
 * to the script as its limit (ARGV[1], which a dynamic limit replaces exactly, in every
 * algorithm). The identifier's own limit (`P:dynamic:id:{I}`) shares its slot and is still
 * read by the script, first.
 */
async function clusterDynamicCall(ctx, dyn, makeCall) {
  const value = await ctx.redis.get(dyn[dyn.length - 1])
  const call = makeCall(dyn.slice(0, -1))
  if (value !== null && value !== undefined) call.args[0] = typeof value === 'string' ? value : JSON.stringify(value)
  return call
}

/** Clients found to talk to stock Redis, which refuses the scripts' Upstash key-locking flag. */
const stockRedisClients = new WeakSet()
/** Flagged script SHA1 → `{ sha1, script }` of its stock variant (the flag line emptied). */
const stockScripts = new Map()

/**
 * EVALSHA first; EVAL when Redis does not know the script (upstream's exact fallback test). A
 * client whose Redis refuses the key-locking flag (stock Redis, e.g. our redis:// client with
 * its methods replaced, or an adapter over another client) gets the scripts without it from
 * then on: same keys, values and replies.
 */
async function evalThroughClient(redis, call) {
  if (stockRedisClients.has(redis)) return evalScript(redis, stockCall(call))
  try {
    return await evalScript(redis, call)
  } catch (error) {
    if (!`${error}`.includes('Unexpected flag in script shebang')) throw error
    const stock = stockCall(call)
    if (stock === call) throw error
    stockRedisClients.add(redis)
    return evalScript(redis, stock)
  }
}

async function evalScript(redis, call) {
  try {
    return await redis.evalsha(call.sha1, call.keys, call.args)
  } catch (error) {
    if (`${error}`.includes('NOSCRIPT')) return redis.eval(call.script, call.keys, call.args)
    throw error
  }
}

function stockCall(call) {
  let stock = stockScripts.get(call.sha1)
  if (stock === undefined) {
    stock = engine.stockScript(call.script)
    stockScripts.set(call.sha1, stock)
  }
  return stock ? { sha1: stock.sha1, script: stock.script, keys: call.keys, args: call.args } : call
}

/** Script replies as numbers; clients such as @upstash/redis may hand back numeric strings. */
function replyNumbers(reply) {
  const one = (v) => {
    if (v === null || v === undefined) return null
    const n = typeof v === 'number' ? v : Number(v)
    return Number.isNaN(n) ? null : n
  }
  return Array.isArray(reply) ? reply.map(one) : [one(reply)]
}

/** Starts a queued native call and makes sure this tick's queue gets sent; rejects with the
 * error upstream's client would (lib/errors.js). */
function queued(store, promise) {
  store.flushSoon()
  return promise.catch(rethrowStoreError)
}

/** What queues a limit call on a native remote store under the id it is given. */
function limitIssuer(algo, store, ctx, key, now, rate, dyn) {
  return (id) => algo.limitQueue(store.native, id, key, now, rate, dyn, ctx[WAIT_MS])
}

async function runLimit(algo, ctx, key, now, rate) {
  const dyn = dynamicKey(ctx, key)
  if (dyn && ctx[CLUSTER]) {
    const call = await clusterDynamicCall(ctx, dyn, (own) => algo.limitCall(key, now, rate, own))
    return algo.limitOutcome(replyNumbers(await evalThroughClient(ctx.redis, call)), now, rate)
  }
  const store = storeOfContext(ctx)
  if (store) {
    if (store.sync) return algo.limitNow(store.queue(), key, now, rate, dyn)
    return store.call(limitIssuer(algo, store, ctx, key, now, rate, dyn))
  }
  const reply = await evalThroughClient(ctx.redis, algo.limitCall(key, now, rate, dyn))
  return algo.limitOutcome(replyNumbers(reply), now, rate)
}

/** The limit with protection and/or analytics in the same script (one request). */
async function runLimitWithExtras(algo, ctx, key, now, rate, extras) {
  const dyn = dynamicKey(ctx, key)
  const store = storeOfContext(ctx)
  if (store) {
    if (store.sync) throw new Error('ratelimit-native: analytics and enableProtection need a Redis store, not Redis.memory()')
    return store.call((id) => algo.limitExtrasQueue(store.native, id, key, now, rate, dyn, extras, ctx[WAIT_MS]), true)
  }
  const reply = await evalThroughClient(ctx.redis, algo.limitExtrasCall(key, now, rate, dyn, extras))
  return algo.limitExtrasOutcome(reply, now)
}

async function runRemaining(algo, ctx, key, now) {
  const dyn = dynamicKey(ctx, key)
  if (dyn && ctx[CLUSTER]) {
    const call = await clusterDynamicCall(ctx, dyn, (own) => algo.remainingCall(key, now, own))
    return algo.remainingOutcome(replyNumbers(await evalThroughClient(ctx.redis, call)), now)
  }
  const store = storeOfContext(ctx)
  if (store) return store.sync ? algo.remainingNow(store.queue(), key, now, dyn) : queued(store, algo.remainingOn(store.queue(), key, now, dyn))
  const reply = await evalThroughClient(ctx.redis, algo.remainingCall(key, now, dyn))
  return algo.remainingOutcome(replyNumbers(reply), now)
}

async function runReset(algo, ctx, key) {
  const store = storeOfContext(ctx)
  if (store) return store.sync ? algo.resetNow(store.queue(), key, Date.now()) : queued(store, algo.resetOn(store.queue(), key))
  await evalThroughClient(ctx.redis, algo.resetCall(key))
}

/** Tags our own algorithms so the limiter can recognise them. */
const BUILT_IN = Symbol.for('ratelimit-native.algorithm')

/** On our counter algorithms: limit on a synchronous (memory) store, answered at once. */
const SYNC_LIMIT = Symbol('ratelimit-native.syncLimit')
/** On our counter algorithms: the ephemeral-cache answer for a blocked identifier, or null. */
const CACHED_BLOCK = Symbol('ratelimit-native.cachedBlock')
/** On our counter algorithms: limit on a native remote store, as one Promise (no async layers). */
const REMOTE_LIMIT = Symbol('ratelimit-native.remoteLimit')

/** On our counter algorithms: limit with protection and/or analytics on a native remote store,
 * as one Promise (the deny-list check and the analytics write in the limit's script). */
const REMOTE_LIMIT_EXTRAS = Symbol('ratelimit-native.remoteLimitExtras')

/**
 * On a response whose limit script also ran the deny-list check and the analytics write:
 * `{ status, denied: [0|1 per value], analyticsError }`.
 */
const EXTRAS = Symbol('ratelimit-native.extras')

/** What a limit script with extras reported besides the limit (see EXTRAS). */
function carriedExtras({ numbers, analyticsError }) {
  return { status: numbers[4], denied: numbers.slice(5), analyticsError }
}

function asAlgorithm(impl, describe) {
  const algorithm = () => impl
  Object.defineProperty(algorithm, BUILT_IN, { value: describe })
  return algorithm
}

/** The algorithm as `memoryLimit`'s and `limitBatch`'s numbers: kind (0 fixed, 1 sliding,
 * 2 bucket) and params. */
function memoryArgs(describe) {
  switch (describe.kind) {
    case 'fixedWindow':
      return [0, describe.tokens, describe.windowMs, 0]
    case 'slidingWindow':
      return [1, describe.tokens, describe.windowMs, 0]
    default:
      return [2, describe.refillRate, describe.intervalMs, describe.maxTokens]
  }
}

/** fixedWindow, slidingWindow, tokenBucket: same flow, different script and arithmetic. */
function counterAlgorithm(algo, staticLimit, describe) {
  /** The ephemeral-cache answer for a blocked identifier, or null. */
  const blockedResponse = (ctx, identifier, incrementBy) => {
    if (!ctx.cache || !(incrementBy > 0)) return null
    const { blocked, reset } = ctx.cache.isBlocked(identifier)
    return blocked ? { success: false, limit: staticLimit, remaining: 0, reset, pending: resolved(), reason: 'cacheBlock' } : null
  }
  /** Updates the cache from the store's answer (`[success, limit, remaining, reset]` at
   * `numbers[at]`) and builds the response. */
  const finish = (ctx, identifier, incrementBy, numbers, at = 0) => {
    const ok = numbers[at] === 1
    const reset = numbers[at + 3]
    if (ctx.cache) {
      if (!ok) ctx.cache.blockUntil(identifier, reset)
      else if (incrementBy < 0) ctx.cache.pop(identifier)
    }
    return { success: ok, limit: numbers[at + 1], remaining: numbers[at + 2], reset, pending: resolved() }
  }
  const impl = {
    // `extras` (not part of the public Algorithm signature) is passed by our own Ratelimit only.
    limit: async (ctx, identifier, rate, _opts, extras) => {
      const incrementBy = callCost(rate)
      const blocked = blockedResponse(ctx, identifier, incrementBy)
      if (blocked) return blocked
      if (!extras) return finish(ctx, identifier, incrementBy, await runLimit(algo, ctx, identifier, Date.now(), incrementBy))
      const out = await runLimitWithExtras(algo, ctx, identifier, Date.now(), incrementBy, extras)
      const response = finish(ctx, identifier, incrementBy, out.numbers)
      Object.defineProperty(response, EXTRAS, { value: carriedExtras(out) })
      return response
    },
    getRemaining: async (ctx, identifier) => {
      const [remaining, reset, limit] = await runRemaining(algo, ctx, identifier, Date.now())
      return { remaining, reset, limit }
    },
    resetTokens: async (ctx, identifier) => {
      if (ctx.cache) ctx.cache.pop(identifier)
      await runReset(algo, ctx, identifier)
    },
  }
  // Fast paths our Ratelimit uses when nothing else must happen around the call: the same
  // logic as `limit`, without its Promise layers. On the memory store a turn's calls are
  // answered together at its end (lib/memory-batch.js); a call with dynamic limits goes alone,
  // through a plain native function with number arguments writing into a reused Float64Array.
  const asNumbers = memoryArgs(describe)
  Object.defineProperties(impl, {
    // Returns the call's Promise; `failure(error)` answers a call the store refused, or throws.
    [SYNC_LIMIT]: {
      value: (ctx, identifier, rate, failure) => {
        const incrementBy = callCost(rate)
        const blocked = blockedResponse(ctx, identifier, incrementBy)
        if (blocked) return Promise.resolve(blocked)
        const now = Date.now()
        const dyn = dynamicKey(ctx, identifier)
        if (dyn === null) {
          const answer = (numbers, at) => finish(ctx, identifier, incrementBy, numbers, at)
          return memoryLimit(asNumbers, identifier, now, incrementBy, answer, failure)
        }
        flushMemoryBatch()
        return Promise.resolve(finish(ctx, identifier, incrementBy, limitAlone(asNumbers, identifier, now, incrementBy, dyn)))
      },
    },
    [CACHED_BLOCK]: { value: (ctx, identifier, rate) => blockedResponse(ctx, identifier, callCost(rate)) },
    // After CACHED_BLOCK said no: the queued call, answered with the response built from its
    // numbers (or the guard's timeout/error answers: redis.js guardedCall); null where the
    // store cannot take this call.
    [REMOTE_LIMIT]: {
      value: (ctx, identifier, rate, store, guard, timeoutMs) => {
        const incrementBy = callCost(rate)
        const now = Date.now()
        const answer = (numbers) => finish(ctx, identifier, incrementBy, numbers)
        const dyn = dynamicKey(ctx, identifier)
        if (dyn === null && Number.isFinite(incrementBy) && now >= 0 && Number.isFinite(now)) {
          // Buffered and handed over with the rest of this turn's calls (redis.js LimitBatch).
          // Numbers the native side would refuse take the call of their own below, which
          // throws the same error at once.
          const limit = { algorithm: asNumbers, key: identifier, now, rate: incrementBy, waitMs: ctx[WAIT_MS] }
          return store.guardedCall(null, answer, guard, timeoutMs, now, limit)
        }
        // A batched limit store takes nothing else (redis.js limitStoreFor): the caller's
        // general path answers this call.
        if (store.limitsOnly) return null
        return store.guardedCall(limitIssuer(algo, store, ctx, identifier, now, incrementBy, dyn), answer, guard, timeoutMs, now)
      },
    },
    // After CACHED_BLOCK said no: the call with `extras` in its script, answered with
    // `carry(response, carried)` (carried: what EXTRAS holds), or the guard's answers.
    [REMOTE_LIMIT_EXTRAS]: {
      value: (ctx, identifier, rate, store, guard, timeoutMs, extras, carry) => {
        const incrementBy = callCost(rate)
        const now = Date.now()
        const dyn = dynamicKey(ctx, identifier)
        const issue = (id) => algo.limitExtrasQueue(store.native, id, identifier, now, incrementBy, dyn, extras, ctx[WAIT_MS])
        const answer = (out) => carry(finish(ctx, identifier, incrementBy, out.numbers), carriedExtras(out))
        return store.guardedCall(issue, answer, guard, timeoutMs, now, null, true)
      },
    },
  })
  return asAlgorithm(impl, describe)
}

function fixedWindow(tokens, window) {
  const windowMs = parseWindow(window)
  const algo = engine.NativeAlgorithm.fixedWindow(numberArg('tokens', tokens), windowMs)
  return counterAlgorithm(algo, tokens, { kind: 'fixedWindow', tokens, windowMs, carriesExtras: true })
}

function slidingWindow(tokens, window) {
  const windowMs = parseWindow(window)
  const algo = engine.NativeAlgorithm.slidingWindow(numberArg('tokens', tokens), windowMs)
  return counterAlgorithm(algo, tokens, { kind: 'slidingWindow', tokens, windowMs, carriesExtras: true })
}

function tokenBucket(refillRate, interval, maxTokens) {
  const intervalMs = parseWindow(interval)
  const algo = engine.NativeAlgorithm.tokenBucket(numberArg('refillRate', refillRate), intervalMs, numberArg('maxTokens', maxTokens))
  return counterAlgorithm(algo, maxTokens, { kind: 'tokenBucket', refillRate, intervalMs, maxTokens, carriesExtras: true })
}

/**
 * cachedFixedWindow (experimental upstream): counts locally in the ephemeral cache and writes
 * to Redis in the background (`pending`); only a cache miss waits for Redis.
 */
function cachedFixedWindow(tokens, window) {
  const windowMs = parseWindow(window)
  const algo = engine.NativeAlgorithm.cachedFixedWindow(numberArg('tokens', tokens), windowMs)
  const requireCache = (ctx) => {
    if (!ctx.cache) throw new Error('This algorithm requires a cache')
  }
  const impl = {
    limit: async (ctx, identifier, rate) => {
      requireCache(ctx)
      if (ctx.dynamicLimits) {
        console.warn(
          'Warning: Dynamic limits are not yet supported for cachedFixedWindow algorithm. The dynamicLimits option will be ignored.',
        )
      }
      const incrementBy = callCost(rate)
      const now = Date.now()
      const key = algo.windowKey(identifier, now)
      const reset = algo.windowReset(now)
      if (typeof ctx.cache.get(key) === 'number') {
        const local = ctx.cache.incr(key, incrementBy)
        const success = local <= tokens
        const pending = success ? runLimit(algo, { ...ctx, dynamicLimits: false }, identifier, now, incrementBy).then((r) => r[0]) : resolved()
        // A failed background write rejects `pending` for those who await it, but is never an
        // unhandled rejection by itself (the caller may ignore `pending`).
        pending.catch(() => {})
        return { success, limit: tokens, remaining: tokens - local, reset, pending }
      }
      const [used] = await runLimit(algo, { ...ctx, dynamicLimits: false }, identifier, now, incrementBy)
      ctx.cache.set(key, used)
      const remaining = tokens - used
      return { success: remaining >= 0, limit: tokens, remaining, reset, pending: resolved() }
    },
    getRemaining: async (ctx, identifier) => {
      requireCache(ctx)
      const now = Date.now()
      const key = algo.windowKey(identifier, now)
      const cached = ctx.cache.get(key)
      if (typeof cached === 'number') {
        return { remaining: Math.max(0, tokens - cached), reset: algo.windowReset(now), limit: tokens }
      }
      const [remaining, reset, limit] = await runRemaining(algo, ctx, identifier, now)
      return { remaining, reset, limit }
    },
    resetTokens: async (ctx, identifier) => {
      requireCache(ctx)
      ctx.cache.pop(algo.windowKey(identifier, Date.now()))
      await runReset(algo, ctx, identifier)
    },
  }
  return asAlgorithm(impl, { kind: 'cachedFixedWindow', tokens, windowMs })
}

/** A client known to talk to stock Redis (an adapter over ioredis / node-redis): the scripts go
 * without the key-locking flag from its first call. */
const markStockRedis = (client) => stockRedisClients.add(client)

/** True for the `pending` of a response that had nothing left to do (one shared resolved Promise). */
const settledPending = (pending) => pending === RESOLVED

module.exports = { settledPending, markStockRedis, WAIT_MS, callCost, numberArg, fixedWindow, slidingWindow, tokenBucket, cachedFixedWindow, BUILT_IN, EXTRAS, PER_IDENTIFIER, SYNC_LIMIT, CACHED_BLOCK, REMOTE_LIMIT, REMOTE_LIMIT_EXTRAS, evalThroughClient, queued }
