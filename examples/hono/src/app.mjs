// A Hono API with tiered rate limiting. The code is written against @upstash/ratelimit's API;
// ratelimit-native is a drop-in, so moving between the two is the import line below (with
// @upstash/ratelimit, `Redis` comes from @upstash/redis, which has no embedded `memory()` store).

import { createHash } from 'node:crypto'
import { Hono } from 'hono'
import { Ratelimit, Redis } from 'ratelimit-native'

/** One policy per caller class; each gets its own key prefix so their counters never mix. */
export const TIERS = {
  anonymous: { tokens: 20, window: '1 m', seconds: 60 }, // per client IP
  free: { tokens: 100, window: '1 m', seconds: 60 }, // per API key
  paid: { tokens: 1000, window: '1 m', seconds: 60 }, // per API key
}

/** Keys for trying the example out; a real app looks keys up in its database (`apiKeys` option). */
export const DEMO_API_KEYS = {
  free_demo_key_0001: 'free',
  paid_demo_key_0001: 'paid',
}

// Module level on purpose: the ephemeral cache remembers callers that are over their limit, so
// their next requests are refused without a store round trip. It only helps if it outlives a
// single request (and survives createApp being called again in a warm serverless instance).
const ephemeralCache = new Map()

/**
 * The store the limiters use when none is injected: Upstash (or `npx ratelimit-native serve`)
 * when its REST credentials are in the environment, otherwise the embedded in-process store.
 */
export function defaultStore(env = process.env) {
  if (env.UPSTASH_REDIS_REST_URL && env.UPSTASH_REDIS_REST_TOKEN) {
    return { redis: Redis.fromEnv(), description: `Upstash REST at ${env.UPSTASH_REDIS_REST_URL}` }
  }
  return { redis: Redis.memory(), description: 'embedded memory store (Redis.memory())' }
}

/**
 * The client IP, as far as it can be trusted. Each proxy in front of the app appends the address
 * it received the request from to X-Forwarded-For, so with `hops` trusted proxies the client is
 * the hops-th entry from the right; anything further left was written by the client and can be
 * forged. With 0 hops the header is ignored and the socket peer is the client. When the header
 * has fewer entries than expected we use the leftmost one (as Express's `trust proxy` does).
 */
export function clientIp(forwardedFor, socketAddress, hops) {
  const chain = (forwardedFor ?? '')
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
  // Nearest first: the socket peer, then what each proxy saw, right to left.
  const nearestFirst = [socketAddress ?? 'unknown', ...chain.reverse()]
  const ip = nearestFirst[Math.min(hops, nearestFirst.length - 1)]
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip // IPv4 seen through a dual-stack socket
}

/** The rate-limit identifier of an API key: a digest, so secrets do not end up in key names. */
export function apiKeyIdentifier(apiKey) {
  return createHash('sha256').update(apiKey).digest('hex').slice(0, 32)
}

/** Structured-field string (draft-ietf-httpapi-ratelimit-headers uses a String as policy name). */
const sfString = (name) => `"${name.replace(/[\\"]/g, '\\$&')}"`

/**
 * Builds the app. Every option has a default, so `createApp()` is the production setup.
 * @param {object} [options]
 * @param {object} [options.redis] store for the counters (default: `defaultStore().redis`)
 * @param {number} [options.trustedProxyHops] proxies in front of the app that append to X-Forwarded-For (default 0)
 * @param {Record<string,'free'|'paid'> | ((key: string) => 'free'|'paid'|undefined|Promise<'free'|'paid'|undefined>)} [options.apiKeys]
 * @param {string} [options.prefix] key prefix; each tier uses `${prefix}:${tier}` (default "hono-api")
 * @param {Map<string,number>|false} [options.ephemeralCache] default: the module-level Map
 * @param {number} [options.timeout] ms before a slow store is bypassed (fail open; default 1000)
 */
export function createApp(options = {}) {
  const {
    redis = defaultStore().redis,
    trustedProxyHops = 0,
    apiKeys = DEMO_API_KEYS,
    prefix = 'hono-api',
    timeout = 1000,
  } = options
  const cache = options.ephemeralCache ?? ephemeralCache
  if (!Number.isInteger(trustedProxyHops) || trustedProxyHops < 0) {
    throw new TypeError(`trustedProxyHops must be a non-negative integer, got ${trustedProxyHops}`)
  }
  const tierOfKey = typeof apiKeys === 'function' ? apiKeys : (key) => (Object.hasOwn(apiKeys, key) ? apiKeys[key] : undefined)

  const limiters = Object.fromEntries(
    Object.entries(TIERS).map(([tier, { tokens, window }]) => [
      tier,
      new Ratelimit({
        redis,
        limiter: Ratelimit.slidingWindow(tokens, window),
        prefix: `${prefix}:${tier}`,
        ephemeralCache: cache,
        timeout,
      }),
    ]),
  )

  const app = new Hono()

  app.use('/api/*', async (c, next) => {
    const apiKey = c.req.header('x-api-key')
    let tier = 'anonymous'
    let identifier
    if (apiKey !== undefined) {
      tier = await tierOfKey(apiKey)
      if (tier !== 'free' && tier !== 'paid') return c.json({ error: 'unknown API key' }, 401)
      identifier = apiKeyIdentifier(apiKey)
    } else {
      // c.env.incoming is the Node request from @hono/node-server. On other runtimes it is
      // absent and, without trusted X-Forwarded-For hops, all callers share one "unknown" budget.
      const socketAddress = c.env?.incoming?.socket?.remoteAddress
      identifier = clientIp(c.req.header('x-forwarded-for'), socketAddress, trustedProxyHops)
    }

    const result = await limiters[tier].limit(identifier)
    c.set('rateLimit', { tier, identifier, ...result })
    // On a store timeout the limiter fails open (success, reason "timeout") with placeholder
    // numbers: serve the request, but do not advertise limits we do not know.
    if (result.reason === 'timeout') return next()

    // Seconds until the window resets, rounded up so a client never retries too early; one
    // value for RateLimit's t and Retry-After, so they cannot disagree.
    const resetIn = Math.max(0, Math.ceil((result.reset - Date.now()) / 1000))
    setRateLimitHeaders(c, tier, result, resetIn)
    if (!result.success) {
      const retryAfter = Math.max(1, resetIn)
      c.header('Retry-After', String(retryAfter))
      return c.json({ error: 'too many requests', tier, retryAfter }, 429)
    }
    await next()
  })

  app.get('/api/hello', (c) => {
    const { tier, remaining } = c.get('rateLimit')
    return c.json({ message: 'hello', tier, remaining })
  })

  return app
}

function setRateLimitHeaders(c, tier, { limit, remaining, reset }, resetIn) {
  // The de-facto X-RateLimit-* trio (Reset as unix seconds)...
  c.header('X-RateLimit-Limit', String(limit))
  c.header('X-RateLimit-Remaining', String(remaining))
  c.header('X-RateLimit-Reset', String(Math.ceil(reset / 1000)))
  // ...and the IETF fields (draft-ietf-httpapi-ratelimit-headers-11): the policy (quota q per
  // window w seconds) and the current service limit (r remaining, t seconds until reset).
  // `limit` rather than the tier's constant, so a dynamic limit would show up here too.
  c.header('RateLimit-Policy', `${sfString(tier)};q=${limit};w=${TIERS[tier].seconds}`)
  c.header('RateLimit', `${sfString(tier)};r=${remaining};t=${resetIn}`)
}
