'use strict'
// `ratelimit-native/next`: rate limiting for Next.js, in `proxy.ts` / `middleware.ts` (Edge or
// Node.js runtime) and in route handlers.
//
//   // proxy.ts
//   export default rateLimitProxy({ limiter: new Ratelimit({ … }) })
//   export const config = { matcher: '/api/:path*' }
//
//   // app/api/x/route.ts
//   export const GET = withRateLimit((request) => Response.json({ ok: true }), { limiter })
//
// There is no socket here: the client address is the entry the platform appended to
// X-Forwarded-For (`trustProxy` defaults to 1; see lib/middleware/client-address.js). `pending`
// goes to the proxy's `event.waitUntil`, or to `after()` in a route handler.

const { decider, refusalBody, keepPending } = require('./decide')

/** next/server, loaded when first needed (this file is only used inside a Next.js app). */
let nextServer
function server() {
  nextServer ??= require('next/server')
  return nextServer
}

function refusal(decision) {
  const status = decision.action === 'deny' ? 403 : 429
  const headers = new Headers(decision.headers)
  headers.set('content-type', 'application/json')
  return new Response(JSON.stringify(refusalBody(decision)), { status, headers })
}

function requestOf(request) {
  return { raw: request, peer: undefined, header: (name) => request.headers.get(name) ?? undefined }
}

/**
 * For `proxy.ts` / `middleware.ts`: `(request, event) → Response` — the refusal, or
 * `NextResponse.next()` carrying the rate-limit headers. `onLimited(request, decision)` /
 * `onDenied(request, decision)` return the refusal Response; `onError(request, error)` returns
 * what to answer when limit() fails (default: the error is thrown, as Next.js reports it).
 */
function rateLimitProxy(options) {
  const decide = decider(options, 'next')
  return async function proxy(request, event) {
    const waitUntil = () => (typeof event?.waitUntil === 'function' ? (p) => event.waitUntil(p) : undefined)
    const { response, decision } = await decideOrAnswer(decide, options, request, waitUntil)
    if (response) return response
    const next = server().NextResponse.next()
    for (const [name, value] of decision?.headers ?? []) next.headers.set(name, value)
    return next
  }
}

/**
 * The decision for `request`, or the response that ends it: a refusal, or onError's answer.
 * `decision` is null for a skipped request. `platformWaitUntil()` gives the platform's waitUntil
 * (or undefined), asked only when there is a `pending` to hand over.
 */
async function decideOrAnswer(decide, options, request, platformWaitUntil) {
  let decision
  try {
    decision = await decide(requestOf(request))
  } catch (error) {
    if (options.onError) return { response: await options.onError(request, error) }
    throw error
  }
  if (decision.action === 'skip') return { decision: null }
  keepPending(decision.result.pending, () => options.waitUntil ?? platformWaitUntil())
  if (decision.action === 'limit') return { response: options.onLimited ? await options.onLimited(request, decision) : refusal(decision) }
  if (decision.action === 'deny') return { response: options.onDenied ? await options.onDenied(request, decision) : refusal(decision) }
  return { decision }
}

/** `after()` of next/server (Next.js 15+), or undefined. */
function afterOf() {
  try {
    const { after } = server()
    return typeof after === 'function' ? (promise) => after(() => promise) : undefined
  } catch {
    return undefined
  }
}

/**
 * For a route handler: runs the handler when the request is allowed, with the rate-limit
 * headers added to its response; answers the refusal otherwise. The handler gets the limit()
 * result as a third argument: `(request, context, rateLimit)`.
 */
function withRateLimit(handler, options) {
  if (typeof handler !== 'function') throw new TypeError('ratelimit-native/next: withRateLimit(handler, options) needs the route handler first')
  const decide = decider(options, 'next')
  return async function rateLimitedHandler(request, context) {
    const { response, decision } = await decideOrAnswer(decide, options, request, afterOf)
    if (response) return response
    const answer = await handler(request, context, decision?.result)
    if (decision && answer instanceof Response) {
      try {
        for (const [name, value] of decision.headers) answer.headers.set(name, value)
      } catch {
        // Immutable headers (a Response.redirect or a fetched response): returned as it is.
      }
    }
    return answer
  }
}

module.exports = { rateLimitProxy, withRateLimit }
