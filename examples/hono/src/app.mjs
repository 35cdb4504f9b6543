// A Hono API with tiered rate limiting. The code is written against @upstash/ratelimit's API;
// ratelimit-native is a drop-in, so moving between the two is the import line below (with
// @upstash/ratelimit, `Redis` comes from @upstash/redis, which has no embedded `memory()` store).

import { createHash } from 'node:crypto'
import { Hono } from 'hono'
import { Ratelimit, Redis } from 'ratelimit-native'
import { rateLimiter } from 'ratelimit-native/hono'

/** One policy per caller class; each gets its own key prefix so their counters never mix. */
export const TIERS = {
  anonymous: { tokens: 20, window: '1 m' }, // per client IP
  free: { tokens: 100, window: '1 m' }, // per API key
  paid: { tokens: 1000, window: '1 m' }, // per API key
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

/** The rate-limit identifier of an API key: a digest, so secrets do not end up in key names. */
export function apiKeyIdentifier(apiKey) {
  return createHash('sha256').update(apiKey).digest('hex').slice(0, 32)
}

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

  // Who is calling: an API key's tier (401 for an unknown key), or an anonymous client.
  app.use('/api/*', async (c, next) => {
    const apiKey = c.req.header('x-api-key')
    if (apiKey === undefined) {
      c.set('tier', 'anonymous')
      return next()
    }
    const tier = await tierOfKey(apiKey)
    if (tier !== 'free' && tier !== 'paid') return c.json({ error: 'unknown API key' }, 401)
    c.set('tier', tier)
    c.set('caller', apiKeyIdentifier(apiKey))
    return next()
  })

  // The limit of that tier, by API key or by client IP (the socket peer, or with trusted proxy
  // hops the X-Forwarded-For entry the nearest of them appended): X-RateLimit-* and the IETF
  // RateLimit / RateLimit-Policy headers, 429 with Retry-After when over. On a store timeout the
  // limiter fails open (success, reason "timeout"): the request is served without headers.
  app.use(
    '/api/*',
    rateLimiter({
      limiter: (c) => limiters[c.get('tier')],
      identify: (c, { clientAddress }) => c.get('caller') ?? clientAddress ?? 'unknown',
      trustProxy: trustedProxyHops,
      policy: (c) => c.get('tier'),
      onLimited: (c, { retryAfter }) => c.json({ error: 'too many requests', tier: c.get('tier'), retryAfter }, 429),
    }),
  )

  app.get('/api/hello', (c) => c.json({ message: 'hello', tier: c.get('tier'), remaining: c.get('rateLimit').remaining }))

  return app
}
