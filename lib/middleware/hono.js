'use strict'
// `ratelimit-native/hono`: rate limiting as Hono middleware.
//
//   app.use('/api/*', rateLimiter({ limiter: new Ratelimit({ … }) }))
//   app.get('/api/x', (c) => c.json(c.get('rateLimit')))
//
// The socket peer is read from @hono/node-server (`c.env.incoming`) and Bun (`c.env.requestIP`);
// elsewhere (Workers, Deno, Edge) there is none and the platform's X-Forwarded-For entry is used
// (lib/middleware/client-address.js). `pending` goes to `c.executionCtx.waitUntil` on Workers.

const { decider, refusalBody, keepPending } = require('./decide')

function peerOf(c) {
  const env = c.env
  const incoming = env?.incoming?.socket?.remoteAddress
  if (incoming) return incoming
  try {
    if (typeof env?.requestIP === 'function') return env.requestIP(c.req.raw)?.address
  } catch {
    // not Bun's server
  }
  return undefined
}

function waitUntilOf(c) {
  try {
    const ctx = c.executionCtx // a getter that throws where there is no execution context
    return typeof ctx?.waitUntil === 'function' ? (promise) => ctx.waitUntil(promise) : undefined
  } catch {
    return undefined
  }
}

/**
 * Options: see index.d.ts of this subpath. `onLimited(c, decision)`, `onDenied(c, decision)`
 * return the Response to send; `onError(c, error, next)` decides what a failed limit() does
 * (default: the error goes to Hono's error handler).
 */
function rateLimiter(options) {
  const decide = decider(options, 'hono')
  return async function rateLimitMiddleware(c, next) {
    let decision
    try {
      decision = await decide({ raw: c, peer: peerOf(c), header: (name) => c.req.header(name) })
    } catch (error) {
      if (options.onError) return options.onError(c, error, next)
      throw error
    }
    if (decision.action === 'skip') return next()
    keepPending(decision.result.pending, () => options.waitUntil ?? waitUntilOf(c))
    c.set('rateLimit', decision.result)
    for (const [name, value] of decision.headers) c.header(name, value)
    if (decision.action === 'limit') return options.onLimited ? options.onLimited(c, decision) : c.json(refusalBody(decision), 429)
    if (decision.action === 'deny') return options.onDenied ? options.onDenied(c, decision) : c.json(refusalBody(decision), 403)
    await next()
  }
}

module.exports = { rateLimiter }
