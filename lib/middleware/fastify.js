'use strict'
// `ratelimit-native/fastify`: rate limiting as a Fastify plugin (an `onRequest` hook).
//
//   await app.register(rateLimit, { limiter: new Ratelimit({ … }) })
//   app.get('/x', (request) => request.rateLimit)
//
// It adds its hook to the context it is registered in (it skips Fastify's encapsulation, as
// plugins wrapped in `fastify-plugin` do): registered at the root it covers every route;
// registered inside one of your plugin scopes, that scope's routes. The socket peer is
// `request.socket.remoteAddress`; X-Forwarded-For counts only with this plugin's own
// `trustProxy` (Fastify's own `trustProxy` is not read).

const { decider, refusalBody, keepPending } = require('./decide')

function header(request, name) {
  const value = request.headers[name]
  return Array.isArray(value) ? value.join(', ') : value
}

/**
 * The plugin. Options: see index.d.ts of this subpath. `onLimited(request, reply, decision)`,
 * `onDenied(request, reply, decision)` send the refusal; `onError(error, request, reply)`
 * decides what a failed limit() does (default: the error goes to Fastify's error handler).
 */
async function rateLimit(fastify, options) {
  const decide = decider(options, 'fastify')
  if (!fastify.hasRequestDecorator('rateLimit')) fastify.decorateRequest('rateLimit', null)
  fastify.addHook('onRequest', async (request, reply) => {
    let decision
    try {
      decision = await decide({ raw: request, peer: request.socket?.remoteAddress, header: (name) => header(request, name) })
    } catch (error) {
      if (options.onError) return options.onError(error, request, reply)
      throw error
    }
    if (decision.action === 'skip') return
    keepPending(decision.result.pending, () => options.waitUntil)
    request.rateLimit = decision.result
    for (const [name, value] of decision.headers) reply.header(name, value)
    if (decision.action === 'limit') return options.onLimited ? options.onLimited(request, reply, decision) : reply.code(429).send(refusalBody(decision))
    if (decision.action === 'deny') return options.onDenied ? options.onDenied(request, reply, decision) : reply.code(403).send(refusalBody(decision))
  })
}

// What `fastify-plugin` sets: the hook goes to the registering context, not a child of it.
rateLimit[Symbol.for('skip-override')] = true
rateLimit[Symbol.for('fastify.display-name')] = 'ratelimit-native'

module.exports = { rateLimit, default: rateLimit }
