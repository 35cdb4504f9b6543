// An Express API rate limited by ratelimit-native/express: 10 requests per minute per client
// (by API key when one is sent, else by client IP), a cost of 5 for POSTs, both header sets, 429
// with Retry-After, and the health check never counted.
import express from 'express'
import { Ratelimit, Redis } from 'ratelimit-native'
import { rateLimit } from 'ratelimit-native/express'

/**
 * `redis`: the store (default: Upstash REST from the environment, else the embedded store);
 * `trustProxy`: proxies in front of the app that append to X-Forwarded-For (default none).
 */
export function createApp({ redis = defaultRedis(), trustProxy = 0, prefix = 'express-api' } = {}) {
  const limiter = new Ratelimit({ redis, limiter: Ratelimit.slidingWindow(10, '1 m'), prefix })
  const app = express()
  app.get('/health', (req, res) => res.json({ ok: true }))
  app.use(
    '/api',
    rateLimit({
      limiter,
      trustProxy,
      identify: (req, { clientAddress }) => req.get('x-api-key') ?? clientAddress ?? 'unknown',
      rate: (req) => (req.method === 'POST' ? 5 : 1),
    }),
  )
  app.get('/api/items', (req, res) => res.json({ items: [], remaining: req.rateLimit.remaining }))
  app.post('/api/items', (req, res) => res.status(201).json({ created: true, remaining: req.rateLimit.remaining }))
  return app
}

function defaultRedis(env = process.env) {
  return env.UPSTASH_REDIS_REST_URL && env.UPSTASH_REDIS_REST_TOKEN ? Redis.fromEnv() : Redis.memory()
}
