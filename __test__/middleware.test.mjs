// The framework adapters (ratelimit-native/hono, /express, /fastify) over real HTTP, each app
// listening on loopback: exact header names, values and formats, 429 / 403 bodies, the client
// address (a spoofed X-Forwarded-For ignored unless a proxy is trusted), tiers chosen per
// request, `pending` handed to waitUntil, bad options refused at setup. The store is the memory
// store, or the project's REST server in front of a real redis-server for the deny list.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { after, before, describe, test } from 'node:test'
import { serve } from '@hono/node-server'
import express from 'express'
import Fastify from 'fastify'
import { Hono } from 'hono'
import { Ratelimit, Redis } from '../index.js'
import { rateLimiter } from '../lib/middleware/hono.js'
import { rateLimit as expressRateLimit } from '../lib/middleware/express.js'
import { rateLimit as fastifyRateLimit } from '../lib/middleware/fastify.js'
import { clientAddress, compileTrust } from '../lib/middleware/client-address.js'
import { redisBatch } from './helpers/direct-redis.mjs'
import { startStack } from './helpers/servers.mjs'

const require = createRequire(import.meta.url)
const T = { timeout: 30_000 }
const fresh = () => `mw${randomBytes(4).toString('hex')}`
const memory = Redis.memory()
const limiterOf = (tokens, prefix = fresh(), redis = memory) => new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(tokens, '60 s'), prefix, ephemeralCache: false })

/** Starts an app on loopback: Hono (node-server), Express or Fastify; `.url`, `.close()`. */
async function listen(kind, install) {
  if (kind === 'hono') {
    const app = new Hono()
    install(app)
    const server = await new Promise((resolve) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s))
    })
    return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) }
  }
  if (kind === 'express') {
    const app = express()
    install(app)
    const server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s))
    })
    return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) }
  }
  const app = Fastify()
  await install(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { url: `http://127.0.0.1:${app.server.address().port}`, close: () => app.close() }
}

/** The same small API on each framework: `/api/hello` behind the limiter with `options`. */
function apiWith(kind, options) {
  return (app) => {
    if (kind === 'hono') {
      app.use('/api/*', rateLimiter(options))
      app.get('/api/hello', (c) => c.json({ remaining: c.get('rateLimit').remaining }))
      app.onError((error, c) => c.json({ failed: error.message }, 500))
    } else if (kind === 'express') {
      app.use('/api', expressRateLimit(options))
      app.get('/api/hello', (req, res) => res.json({ remaining: req.rateLimit.remaining }))
      app.use((error, req, res, _next) => res.status(500).json({ failed: error.message }))
    } else {
      return app.register(async (scope) => {
        await scope.register(fastifyRateLimit, options)
        scope.get('/hello', (request) => ({ remaining: request.rateLimit.remaining }))
        scope.setErrorHandler((error, request, reply) => reply.code(500).send({ failed: error.message }))
      }, { prefix: '/api' })
    }
  }
}

async function get(url, headers = {}) {
  const response = await fetch(url, { headers })
  return { status: response.status, headers: response.headers, body: await response.json() }
}

for (const kind of ['hono', 'express', 'fastify']) {
  describe(`ratelimit-native/${kind} over HTTP`, () => {
    test('3 requests pass with both header sets, the 4th gets 429 with Retry-After and a JSON body', T, async () => {
      const limiter = limiterOf(3)
      const app = await listen(kind, apiWith(kind, { limiter, policy: 'per-ip' }))
      try {
        const answers = []
        for (let i = 0; i < 4; i++) answers.push(await get(`${app.url}/api/hello`))
        assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 429])
        assert.deepEqual(answers.slice(0, 3).map((a) => a.body), [{ remaining: 2 }, { remaining: 1 }, { remaining: 0 }])
        const first = answers[0].headers
        assert.equal(first.get('x-ratelimit-limit'), '3')
        assert.equal(first.get('x-ratelimit-remaining'), '2')
        const reset = Number(first.get('x-ratelimit-reset'))
        assert.ok(Number.isInteger(reset) && reset * 1000 > Date.now() && reset * 1000 <= Date.now() + 61_000, `X-RateLimit-Reset in unix seconds: ${reset}`)
        assert.equal(first.get('ratelimit-policy'), '"per-ip";q=3;w=60')
        assert.match(first.get('ratelimit'), /^"per-ip";r=2;t=([1-9]|[1-5]\d|60)$/)
        assert.equal(first.get('retry-after'), null)
        const refused = answers[3]
        assert.match(refused.headers.get('content-type'), /^application\/json/)
        const retryAfter = Number(refused.headers.get('retry-after'))
        assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`)
        assert.deepEqual(refused.body, { error: 'Too Many Requests', retryAfter })
        assert.equal(refused.headers.get('ratelimit'), `"per-ip";r=0;t=${retryAfter}`)
        assert.equal(refused.headers.get('x-ratelimit-remaining'), '0')
      } finally {
        await app.close()
      }
    })

    test('a spoofed X-Forwarded-For is ignored by default; with trustProxy: 1 the proxy-appended entry counts', T, async () => {
      const direct = await listen(kind, apiWith(kind, { limiter: limiterOf(2) }))
      try {
        const statuses = []
        for (const ip of ['198.51.100.1', '198.51.100.2', '198.51.100.3']) statuses.push((await get(`${direct.url}/api/hello`, { 'x-forwarded-for': ip })).status)
        assert.deepEqual(statuses, [200, 200, 429], 'one budget: the socket peer, whatever the header says')
      } finally {
        await direct.close()
      }
      const proxied = await listen(kind, apiWith(kind, { limiter: limiterOf(2), trustProxy: 1 }))
      try {
        const statuses = []
        // The client forges the leftmost entry; the trusted proxy appended the real one.
        for (const forged of ['1.1.1.1', '2.2.2.2', '3.3.3.3']) statuses.push((await get(`${proxied.url}/api/hello`, { 'x-forwarded-for': `${forged}, 203.0.113.9` })).status)
        assert.deepEqual(statuses, [200, 200, 429], 'counted by the entry the proxy appended')
        assert.equal((await get(`${proxied.url}/api/hello`, { 'x-forwarded-for': '203.0.113.10' })).status, 200, 'another client has its own budget')
      } finally {
        await proxied.close()
      }
    })

    test('tiers: the limiter is chosen per request (by API key), and headers: "draft" sends only the IETF fields', T, async () => {
      const free = limiterOf(1)
      const paid = limiterOf(5)
      const options = {
        limiter: (request) => (headerOf(kind, request, 'x-api-key') === 'paid-key' ? paid : free),
        identify: (request, { clientAddress: ip }) => headerOf(kind, request, 'x-api-key') ?? ip,
        headers: 'draft',
      }
      const app = await listen(kind, apiWith(kind, options))
      try {
        const paidAnswers = []
        for (let i = 0; i < 3; i++) paidAnswers.push(await get(`${app.url}/api/hello`, { 'x-api-key': 'paid-key' }))
        assert.deepEqual(paidAnswers.map((a) => a.status), [200, 200, 200])
        assert.equal(paidAnswers[2].headers.get('ratelimit-policy'), '"default";q=5;w=60')
        assert.equal(paidAnswers[2].headers.get('x-ratelimit-limit'), null)
        const freeAnswers = [await get(`${app.url}/api/hello`, { 'x-api-key': 'free-key' }), await get(`${app.url}/api/hello`, { 'x-api-key': 'free-key' })]
        assert.deepEqual(freeAnswers.map((a) => a.status), [200, 429])
      } finally {
        await app.close()
      }
    })

    test('skip, rate and onLimited', T, async () => {
      const options = {
        limiter: limiterOf(4),
        skip: (request) => headerOf(kind, request, 'x-internal') === 'yes',
        rate: 2,
        onLimited: customRefusal(kind),
      }
      const app = await listen(kind, apiWith(kind, options))
      try {
        assert.equal((await get(`${app.url}/api/hello`)).status, 200)
        assert.equal((await get(`${app.url}/api/hello`)).status, 200)
        const limited = await get(`${app.url}/api/hello`)
        assert.equal(limited.status, 503)
        assert.deepEqual(limited.body, { custom: true })
        const skipped = await get(`${app.url}/api/hello`, { 'x-internal': 'yes' })
        assert.equal(skipped.status, 500, 'a skipped request has no rateLimit result (the route reads it)')
      } finally {
        await app.close()
      }
    })

    test('a failing store: the error reaches the framework by default, onError decides otherwise', T, async () => {
      const broken = { limit: () => Promise.reject(new Error('store down')) }
      const app = await listen(kind, apiWith(kind, { limiter: broken }))
      try {
        const answer = await get(`${app.url}/api/hello`)
        assert.deepEqual([answer.status, answer.body], [500, { failed: 'store down' }])
      } finally {
        await app.close()
      }
    })
  })
}

function headerOf(kind, request, name) {
  if (kind === 'hono') return request.req.header(name)
  return request.headers[name]
}

function customRefusal(kind) {
  if (kind === 'hono') return (c) => c.json({ custom: true }, 503)
  if (kind === 'express') return (req, res) => res.status(503).json({ custom: true })
  return (request, reply) => reply.code(503).send({ custom: true })
}

describe('deny list (enableProtection) through the adapters: 403', () => {
  let stack
  before(async () => {
    stack = await startStack()
  })
  after(async () => {
    await stack?.stop()
  })

  for (const kind of ['hono', 'express', 'fastify']) {
    test(`${kind}: a denied client address gets 403 and the JSON body, others pass`, T, async () => {
      const prefix = fresh()
      await redisBatch(stack.redis, [['SADD', `${prefix}:denyList:all`, '192.0.2.66'], ['SET', `${prefix}:ipDenyListStatus`, 'disabled']])
      const limiter = new Ratelimit({ redis: new Redis({ url: stack.rest.url, token: stack.rest.token }), limiter: Ratelimit.slidingWindow(10, '60 s'), prefix, enableProtection: true })
      const app = await listen(kind, apiWith(kind, { limiter, trustProxy: ['127.0.0.1'] }))
      try {
        const denied = await get(`${app.url}/api/hello`, { 'x-forwarded-for': '192.0.2.66' })
        assert.deepEqual([denied.status, denied.body], [403, { error: 'Forbidden', reason: 'denyList' }])
        assert.equal(denied.headers.get('retry-after'), null)
        const allowed = await get(`${app.url}/api/hello`, { 'x-forwarded-for': '192.0.2.67' })
        assert.equal(allowed.status, 200)
      } finally {
        await app.close()
      }
    })
  }
})

test('hono: pending goes to executionCtx.waitUntil (Workers), and the analytics write is done when it settles', T, async () => {
  const stack = await startStack()
  try {
    const prefix = fresh()
    const limiter = new Ratelimit({ redis: new Redis({ url: stack.rest.url, token: stack.rest.token }), limiter: Ratelimit.fixedWindow(5, '60 s'), prefix, analytics: true })
    const app = new Hono()
    app.use('*', rateLimiter({ limiter }))
    app.get('/', (c) => c.text('ok'))
    const handed = []
    const executionCtx = { waitUntil: (promise) => handed.push(promise), passThroughOnException() {} }
    const response = await app.fetch(new Request('http://worker.test/', { headers: { 'x-forwarded-for': '203.0.113.5' } }), {}, executionCtx)
    assert.equal(response.status, 200)
    assert.equal(handed.length, 1, 'one promise handed to waitUntil')
    await Promise.all(handed)
    const answer = await fetch(stack.rest.url, { method: 'POST', headers: { authorization: `Bearer ${stack.rest.token}` }, body: JSON.stringify(['KEYS', `${prefix}:events:*`]) })
    assert.equal((await answer.json()).result.length, 1, 'the analytics event is in Redis')
  } finally {
    await stack.stop()
  }
})

test('pending goes to a Vercel function\'s waitUntil (its request context) when the framework has none', T, async (t) => {
  const handed = []
  const registry = Symbol.for('@vercel/request-context')
  globalThis[registry] = { get: () => ({ waitUntil: (promise) => handed.push(promise) }) }
  t.after(() => delete globalThis[registry])
  const inner = limiterOf(5)
  const busy = { limit: async (id, req) => ({ ...(await inner.limit(id, req)), pending: new Promise((resolve) => setTimeout(resolve, 5)) }) }
  const app = new Hono()
  app.use('*', rateLimiter({ limiter: busy, identify: () => 'vercel-client' }))
  app.get('/', (c) => c.text('ok'))
  // No executionCtx (Node.js): Hono has no waitUntil of its own.
  assert.equal((await app.request('/')).status, 200)
  assert.equal(handed.length, 1, 'handed to the request context\'s waitUntil')
  await Promise.all(handed)
  // The framework's own waitUntil (here the option) comes first.
  const own = []
  const first = new Hono()
  first.use('*', rateLimiter({ limiter: busy, identify: () => 'vercel-client-2', waitUntil: (promise) => own.push(promise) }))
  first.get('/', (c) => c.text('ok'))
  await first.request('/')
  assert.deepEqual([own.length, handed.length], [1, 1])
  // Outside a request the context is empty: nothing handed over, no error.
  globalThis[registry] = { get: () => undefined }
  assert.equal((await app.request('/')).status, 200)
  assert.equal(handed.length, 1)
})

test('the client address: socket peer, hop counts, trusted ranges, platform headers, no socket', () => {
  const request = (peer, headers) => ({ peer, header: (name) => headers[name] })
  const at = (peer, headers, trustProxy, ipHeader) => clientAddress(request(peer, headers), compileTrust(trustProxy), ipHeader)
  assert.equal(at('10.0.0.2', { 'x-forwarded-for': '6.6.6.6' }), '10.0.0.2', 'no trust: the peer, the header ignored')
  assert.equal(at('::ffff:10.0.0.2', {}), '10.0.0.2', 'IPv4 through a dual-stack socket')
  assert.equal(at('10.0.0.2', { 'x-forwarded-for': '6.6.6.6, 203.0.113.1' }, 1), '203.0.113.1')
  assert.equal(at('10.0.0.2', { 'x-forwarded-for': '6.6.6.6, 203.0.113.1, 10.0.0.9' }, 2), '203.0.113.1')
  assert.equal(at('10.0.0.2', { 'x-forwarded-for': '203.0.113.1' }, 5), '203.0.113.1', 'a shorter chain: its leftmost entry')
  assert.equal(at('10.0.0.2', { 'x-forwarded-for': '6.6.6.6, 203.0.113.1, 10.1.2.3' }, ['10.0.0.0/8']), '203.0.113.1', 'trusted ranges are skipped from the peer leftwards')
  assert.equal(at('192.168.1.1', { 'x-forwarded-for': '6.6.6.6' }, ['10.0.0.0/8']), '192.168.1.1', 'an untrusted peer is the client')
  assert.equal(at('::ffff:10.0.0.2', { 'x-forwarded-for': '203.0.113.1' }, ['10.0.0.0/8']), '203.0.113.1', 'IPv4-mapped peers match IPv4 ranges')
  assert.equal(at('2001:db8::1', { 'x-forwarded-for': '203.0.113.1' }, ['2001:db8::/32']), '203.0.113.1')
  assert.equal(at('10.0.0.2', { 'cf-connecting-ip': '198.51.100.7', 'x-forwarded-for': '6.6.6.6' }, undefined, 'cf-connecting-ip'), '198.51.100.7', 'an opted-in platform header')
  assert.equal(at('10.0.0.2', { 'cf-connecting-ip': '198.51.100.7' }), '10.0.0.2', 'not without opting in')
  assert.equal(at(undefined, { 'x-forwarded-for': '6.6.6.6, 203.0.113.1' }), '203.0.113.1', 'no socket: the entry the platform appended')
  assert.equal(at(undefined, {}), undefined)
  assert.equal(at(undefined, { 'x-forwarded-for': '6.6.6.6' }, 0), undefined, 'no socket and nothing trusted: unknown')
  assert.throws(() => compileTrust(true), /would trust every X-Forwarded-For entry/)
  assert.throws(() => compileTrust(['10.0.0.0/40']), /not an IP address or CIDR range/)
  assert.throws(() => compileTrust(-1), /number of proxies/)
})

test('bad options fail at setup with a clear error', () => {
  assert.throws(() => rateLimiter(), /options must be an object with a `limiter`/)
  assert.throws(() => rateLimiter({ limiter: 'x' }), /`limiter` must be a Ratelimit/)
  assert.throws(() => expressRateLimit({ limiter: limiterOf(1), headers: 'ietf' }), /headers must be "legacy", "draft", "both" or false/)
  assert.throws(() => expressRateLimit({ limiter: limiterOf(1), rate: '2' }), /`rate` must be a number/)
  assert.throws(() => expressRateLimit({ limiter: limiterOf(1), onLimited: 429 }), /onLimited must be a function/)
  assert.throws(() => expressRateLimit({ limiter: limiterOf(1), ipHeader: 'x real ip' }), /`ipHeader` must be a header name/)
  assert.throws(() => expressRateLimit({ limiter: limiterOf(1), policy: 'naïve' }), /printable ASCII/)
  assert.throws(() => expressRateLimit({ limiter: limiterOf(1), trustProxy: true }), /would trust every/)
})

test('the subpaths resolve through the package exports, with their types', () => {
  for (const [subpath, name] of [['hono', 'rateLimiter'], ['express', 'rateLimit'], ['fastify', 'rateLimit'], ['next', 'rateLimitProxy'], ['next', 'withRateLimit'], ['otel', 'instrumentRatelimit']]) {
    assert.equal(typeof require(`ratelimit-native/${subpath}`)[name], 'function', `${subpath}.${name}`)
  }
})

test('next: withRateLimit runs the handler when allowed (its response gets the headers) and answers 429 itself', T, async () => {
  const { withRateLimit } = require('../lib/middleware/next.js')
  const handed = []
  // A limiter whose answers leave work behind (as analytics do), and one whose do not.
  const inner = limiterOf(1)
  const busy = { limit: async (id, req) => ({ ...(await inner.limit(id, req)), pending: new Promise((resolve) => setTimeout(resolve, 5)) }) }
  const handler = withRateLimit((request, context, rateLimit) => Response.json({ remaining: rateLimit.remaining, id: context.params.id }), {
    limiter: busy,
    waitUntil: (promise) => handed.push(promise),
  })
  const request = () => new Request('http://app.test/api/x', { headers: { 'x-forwarded-for': '6.6.6.6, 203.0.113.40' } })
  const allowed = await handler(request(), { params: { id: '7' } })
  assert.deepEqual([allowed.status, await allowed.json()], [200, { remaining: 0, id: '7' }])
  assert.equal(allowed.headers.get('x-ratelimit-limit'), '1')
  assert.equal(allowed.headers.get('ratelimit-policy'), '"default";q=1', 'no window for a limiter that is not one of ours')
  const refused = await handler(request(), { params: { id: '7' } })
  assert.equal(refused.status, 429)
  assert.deepEqual(await refused.json(), { error: 'Too Many Requests', retryAfter: Number(refused.headers.get('retry-after')) })
  assert.equal(handed.length, 2, 'pending handed over for each decision that left work')
  await Promise.all(handed)
  const idle = withRateLimit(() => new Response('ok'), { limiter: limiterOf(5), waitUntil: (promise) => handed.push(promise) })
  await idle(request(), {})
  assert.equal(handed.length, 2, 'nothing handed over when nothing is left to do')
  const other = await handler(new Request('http://app.test/api/x', { headers: { 'x-forwarded-for': '203.0.113.41' } }), { params: { id: '8' } })
  assert.equal(other.status, 200, 'another client (the platform-appended entry differs)')
})
