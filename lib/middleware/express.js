'use strict'
// `ratelimit-native/express`: rate limiting as Connect-style middleware (Express, NestJS on
// Express, Connect, plain `http` with a router that speaks `(req, res, next)`).
//
//   app.use('/api', rateLimit({ limiter: new Ratelimit({ … }) }))
//   app.get('/api/x', (req, res) => res.json(req.rateLimit))
//
// The socket peer is `req.socket.remoteAddress`; X-Forwarded-For counts only with `trustProxy`
// (this middleware's own: Express's `trust proxy` setting is not read).

const { decider, refusalBody, keepPending } = require('./decide')

function sendJson(res, status, body) {
  const text = JSON.stringify(body)
  res.statusCode = status
  res.setHeader('Content-Type', 'application/json; charset=utf-8')
  res.setHeader('Content-Length', Buffer.byteLength(text))
  res.end(text)
}

function header(req, name) {
  const value = req.headers[name]
  return Array.isArray(value) ? value.join(', ') : value
}

/**
 * Options: see index.d.ts of this subpath. `onLimited(req, res, next, decision)`,
 * `onDenied(req, res, next, decision)` send the refusal; `onError(error, req, res, next)` decides
 * what a failed limit() does (default: `next(error)`, Express's error handling).
 */
function rateLimit(options) {
  const decide = decider(options, 'express')
  return function rateLimitMiddleware(req, res, next) {
    decide({ raw: req, peer: req.socket?.remoteAddress, header: (name) => header(req, name) }).then(
      (decision) => {
        if (decision.action === 'skip') return next()
        keepPending(decision.result.pending, () => options.waitUntil)
        req.rateLimit = decision.result
        for (const [name, value] of decision.headers) res.setHeader(name, value)
        if (decision.action === 'limit') return options.onLimited ? options.onLimited(req, res, next, decision) : sendJson(res, 429, refusalBody(decision))
        if (decision.action === 'deny') return options.onDenied ? options.onDenied(req, res, next, decision) : sendJson(res, 403, refusalBody(decision))
        next()
      },
      (error) => (options.onError ? options.onError(error, req, res, next) : next(error)),
    )
  }
}

module.exports = { rateLimit }
