// A Fastify API rate limited by ratelimit-native/fastify, only on the routes of its /api scope:
// a token bucket of 20 (refilled 5 per second) per client IP, behind one trusted proxy.
import Fastify from 'fastify'
import { Ratelimit, Redis } from 'ratelimit-native'
import { rateLimit } from 'ratelimit-native/fastify'

export async function createApp({ redis = defaultRedis(), trustProxy = 1, prefix = 'fastify-api' } = {}) {
  const limiter = new Ratelimit({ redis, limiter: Ratelimit.tokenBucket(5, '1 s', 20), prefix })
  const app = Fastify()
  app.get('/health', async () => ({ ok: true }))
  await app.register(
    async (api) => {
      await api.register(rateLimit, { limiter, trustProxy, headers: 'draft' })
      api.get('/quote', async (request) => ({ quote: 'Make it work, make it right, make it fast.', remaining: request.rateLimit.remaining }))
    },
    { prefix: '/api' },
  )
  return app
}

function defaultRedis(env = process.env) {
  return env.UPSTASH_REDIS_REST_URL && env.UPSTASH_REDIS_REST_TOKEN ? Redis.fromEnv() : Redis.memory()
}
