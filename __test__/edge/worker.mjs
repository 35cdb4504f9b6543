// The code a user writes on an Edge runtime or in a Worker, used by edge-runtimes.test.mjs: one
// request runs one scenario against the REST server whose URL and token arrive in `env`, and
// answers its outcome as JSON. Bundled by the test for each runtime, with "ratelimit-native"
// resolved to that runtime's entry (index.edge.mjs or index.workerd.mjs).
import { Ratelimit, MultiRegionRatelimit, Redis, UpstashError, engine } from 'ratelimit-native'
import { Redis as UpstashRedis } from '@upstash/redis'
import { Redis as CloudflareRedis } from '@upstash/redis/cloudflare'
import { Redis as FastlyRedis } from '@upstash/redis/fastly'
import { Hono } from 'hono'
import { rateLimiter } from 'ratelimit-native/hono'
import { withRateLimit } from 'ratelimit-native/next'

const limiters = {
  fixedWindow: () => Ratelimit.fixedWindow(10, '30 s'),
  slidingWindow: () => Ratelimit.slidingWindow(10, '30 s'),
  tokenBucket: () => Ratelimit.tokenBucket(1, '30 s', 10),
  cachedFixedWindow: () => Ratelimit.cachedFixedWindow(10, '30 s'),
}

const scenarios = {
  engine: async () => ({ engine }),

  /** 15 calls at once on one identifier against a limit of 10. */
  burst: async (env, params) => {
    const redis = Redis.fromEnv(env)
    const rl = new Ratelimit({ redis, limiter: limiters[params.get('algorithm')](), prefix: params.get('prefix'), ephemeralCache: params.get('algorithm') === 'cachedFixedWindow' ? new Map() : false })
    const results = await Promise.all(Array.from({ length: 15 }, () => rl.limit('user')))
    await Promise.all(results.map((r) => r.pending))
    const remaining = await rl.getRemaining('user')
    await rl.resetUsedTokens('user')
    const afterReset = await rl.getRemaining('user')
    return { admitted: results.filter((r) => r.success).length, limit: results[0].limit, remaining: remaining.remaining, afterReset: afterReset.remaining }
  },

  /** The limiter on each flavour of @upstash/redis as its client (its own methods, its fetch). */
  upstashClient: async (env, params) => {
    const config = { url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN }
    const redis = {
      default: () => new UpstashRedis(config),
      cloudflare: () => CloudflareRedis.fromEnv(env),
      // Fastly names the backend a request goes to; other runtimes' fetch ignores the option.
      fastly: () => new FastlyRedis({ ...config, backend: 'upstash' }),
    }[params.get('flavour')]()
    const rl = new Ratelimit({ redis, limiter: limiters[params.get('algorithm')](), prefix: params.get('prefix'), ephemeralCache: false, analytics: true })
    const results = await Promise.all(Array.from({ length: 15 }, () => rl.limit('user')))
    await Promise.all(results.map((r) => r.pending))
    const remaining = await rl.getRemaining('user')
    return { admitted: results.filter((r) => r.success).length, remaining: remaining.remaining }
  },

  /**
   * ratelimit-native/hono in a Hono app on this runtime: no socket here, so the client is the
   * X-Forwarded-For entry the platform appended; `pending` (the analytics write) goes to the
   * runtime's own waitUntil.
   */
  honoMiddleware: async (env, params, ctx) => {
    const limiter = new Ratelimit({ redis: Redis.fromEnv(env), limiter: Ratelimit.fixedWindow(3, '30 s'), prefix: params.get('prefix'), analytics: true, ephemeralCache: false })
    const app = new Hono()
    app.use('*', rateLimiter({ limiter }))
    app.get('/', (c) => c.json({ remaining: c.get('rateLimit').remaining }))
    const answers = []
    for (let i = 0; i < 4; i++) {
      const response = await app.fetch(new Request('http://app.test/', { headers: { 'x-forwarded-for': `6.6.6.${i}, 203.0.113.9` } }), env, ctx)
      answers.push({ status: response.status, ratelimit: response.headers.get('ratelimit'), retryAfter: response.headers.get('retry-after') })
    }
    return { answers }
  },

  /** ratelimit-native/next's route-handler wrapper on this runtime. */
  nextHandler: async (env, params) => {
    const limiter = new Ratelimit({ redis: Redis.fromEnv(env), limiter: Ratelimit.slidingWindow(2, '30 s'), prefix: params.get('prefix') })
    const handler = withRateLimit((request, context, rateLimit) => Response.json({ remaining: rateLimit.remaining }), { limiter })
    const statuses = []
    for (let i = 0; i < 3; i++) statuses.push((await handler(new Request('http://app.test/api', { headers: { 'x-forwarded-for': '203.0.113.10' } }), {})).status)
    return { statuses }
  },

  /** Analytics and protection travel with the limit; a denied value answers denyList. */
  protection: async (env, params) => {
    const rl = new Ratelimit({ redis: Redis.fromEnv(env), limiter: Ratelimit.fixedWindow(5, '30 s'), prefix: params.get('prefix'), analytics: true, enableProtection: true })
    const allowed = await rl.limit('user', { ip: '192.0.2.1' })
    await allowed.pending
    const denied = await rl.limit('user', { ip: '192.0.2.66' })
    await denied.pending
    return { allowed: allowed.success, denied: denied.success, reason: denied.reason, deniedValue: denied.deniedValue }
  },

  /** Dynamic limits, timeout and failClosed. */
  dynamic: async (env, params) => {
    const rl = new Ratelimit({ redis: Redis.fromEnv(env), limiter: Ratelimit.fixedWindow(10, '30 s'), prefix: params.get('prefix'), dynamicLimits: true, ephemeralCache: false })
    await rl.setDynamicLimit({ limit: 2 })
    const results = []
    for (let i = 0; i < 3; i++) results.push((await rl.limit('user')).success)
    const { dynamicLimit } = await rl.getDynamicLimit()
    return { results, dynamicLimit }
  },

  /** A REST server that does not answer: the timeout answer, or failClosed's. */
  unreachable: async (env) => {
    const redis = new Redis({ url: env.UNREACHABLE_URL, token: 'token' })
    const open = await new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '30 s'), timeout: 200 }).limit('user')
    const closed = await new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '30 s'), timeout: 200, failClosed: true }).limit('user')
    return { open: [open.success, open.reason], closed: [closed.success, closed.reason] }
  },

  /** Redis rejects the script: upstream's error. */
  error: async (env, params) => {
    const rl = new Ratelimit({ redis: Redis.fromEnv(env), limiter: Ratelimit.fixedWindow(10, '30 s'), prefix: params.get('prefix') })
    try {
      await rl.limit('user', { rate: 1.5 })
      return { thrown: false }
    } catch (error) {
      return { thrown: true, name: error.name, upstash: error instanceof UpstashError, message: error.message }
    }
  },

  /** Two regions (two REST servers): each records every request. */
  multiRegion: async (env, params) => {
    const regions = [Redis.fromEnv(env), new Redis({ url: env.SECOND_URL, token: env.SECOND_TOKEN })]
    const rl = new MultiRegionRatelimit({ redis: regions, limiter: MultiRegionRatelimit.slidingWindow(5, '30 s'), prefix: params.get('prefix') })
    const results = []
    for (let i = 0; i < 7; i++) {
      const r = await rl.limit('user')
      await r.pending
      results.push(r.success)
    }
    return { admitted: results.filter(Boolean).length }
  },

  /** The memory store, per isolate. */
  memory: async () => {
    const rl = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.slidingWindow(3, '30 s'), prefix: `m${Date.now()}` })
    const results = await Promise.all(Array.from({ length: 5 }, () => rl.limit('user')))
    return { admitted: results.filter((r) => r.success).length }
  },

  /** redis:// cannot work here: a clear error that names the runtime. */
  redisUrl: async () => {
    try {
      new Redis({ url: 'redis://:secret@127.0.0.1:6379' })
      return { thrown: false }
    } catch (error) {
      return { thrown: true, message: error.message }
    }
  },
}

export async function handle(request, env, ctx) {
  const url = new URL(request.url)
  const scenario = scenarios[url.searchParams.get('scenario')]
  if (!scenario) return new Response('unknown scenario', { status: 404 })
  try {
    return Response.json(await scenario(env, url.searchParams, ctx))
  } catch (error) {
    return Response.json({ failed: `${error?.name}: ${error?.message}` }, { status: 500 })
  }
}
