// Telemetry (reference: /work/shared/reference/upstash-ratelimit-behaviour.md §3.8, §9 item 22),
// adapted to ratelimit-native:
//   - on an @upstash/redis instance, `new Ratelimit` calls `redis.addTelemetry({ sdk:
//     "ratelimit-native@<version>" })` once per client (a WeakSet), unless `enableTelemetry: false`
//     or UPSTASH_DISABLE_TELEMETRY is set; @upstash/redis appends it to its Upstash-Telemetry-Sdk
//     header, which its own requests carry;
//   - our own Redis client sends no Upstash-Telemetry-* header at all.
// Headers are captured by a loopback HTTP proxy in front of the project's REST server.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import { createRequire } from 'node:module'
import { after, afterEach, before, describe, test } from 'node:test'
import { Ratelimit as UpstreamRatelimit } from '@upstash/ratelimit'
import { Redis as UpstashRedis } from '@upstash/redis'
import { Analytics, Ratelimit, Redis } from '../index.js'
import { startStack } from './helpers/servers.mjs'
import { nativeOnly, wasmOnly } from './helpers/engine.mjs'

const require = createRequire(import.meta.url)
const { version } = require('../package.json')

const T = { timeout: 20000 }
const OURS = `ratelimit-native@${version}`
const UPSTREAM = '@upstash/ratelimit@2.2.0'
const REDIS_SDK = '@upstash/redis@v1.39.0'
const fresh = () => `rtl${randomBytes(5).toString('hex')}`

/** A loopback proxy in front of the REST server recording each request's headers and body. */
async function startProxy(target) {
  const t = new URL(target)
  const log = []
  const agent = new http.Agent({ keepAlive: true })
  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      log.push({ path: req.url, headers: { ...req.headers }, body: body.toString('utf8') })
      const up = http.request({ host: t.hostname, port: t.port, path: req.url, method: req.method, headers: { ...req.headers, host: t.host }, agent }, (ur) => {
        res.writeHead(ur.statusCode, ur.headers)
        ur.pipe(res)
      })
      up.on('error', (e) => {
        res.writeHead(502)
        res.end(String(e))
      })
      up.end(body)
    })
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    log,
    mark: () => log.length,
    since: (i) => log.slice(i),
    close: () =>
      new Promise((r) => {
        server.closeAllConnections?.()
        agent.destroy()
        server.close(r)
      }),
  }
}

const sdkOf = (entry) => entry.headers['upstash-telemetry-sdk']
const telemetryHeaders = (entry) => Object.keys(entry.headers).filter((h) => h.startsWith('upstash-telemetry'))

/** Headers of the requests `fn` sends. */
async function requestsOf(fn) {
  const i = proxy.mark()
  await fn()
  const entries = proxy.since(i)
  assert.ok(entries.length > 0, 'at least one request was sent')
  return entries
}

let stack
let proxy
const savedEnv = process.env.UPSTASH_DISABLE_TELEMETRY
/** A fresh @upstash/redis client with its default telemetry (on). */
const client = (opts = {}) => new UpstashRedis({ url: proxy.url, token: stack.rest.token, ...opts })

before(async () => {
  stack = await startStack()
  proxy = await startProxy(stack.rest.url)
  delete process.env.UPSTASH_DISABLE_TELEMETRY
})
afterEach(() => {
  delete process.env.UPSTASH_DISABLE_TELEMETRY // every test starts with telemetry allowed
})
after(async () => {
  if (savedEnv !== undefined) process.env.UPSTASH_DISABLE_TELEMETRY = savedEnv
  await proxy?.close()
  await stack?.stop()
})

describe('upstream (oracle), §9 item 22', () => {
  test('the first request carries "@upstash/redis@v1.39.0,@upstash/ratelimit@2.2.0"; a second Ratelimit does not append again', T, async () => {
    const redis = client()
    new UpstreamRatelimit({ redis, limiter: UpstreamRatelimit.fixedWindow(10, '10 s'), prefix: fresh() })
    const rl = new UpstreamRatelimit({ redis, limiter: UpstreamRatelimit.fixedWindow(10, '10 s'), prefix: fresh() })
    const [first] = await requestsOf(() => rl.limit('u'))
    assert.equal(sdkOf(first), `${REDIS_SDK},${UPSTREAM}`)
  })
})

describe('ours on an @upstash/redis instance', () => {
  test(`tags the client with "${OURS}" once; the instance's own requests carry it`, T, async () => {
    const redis = client()
    assert.equal(redis.client.headers['Upstash-Telemetry-Sdk'], REDIS_SDK)
    const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '10 s'), prefix: fresh(), dynamicLimits: true })
    new Ratelimit({ redis, limiter: Ratelimit.slidingWindow(10, '10 s'), prefix: fresh() })
    new Ratelimit({ redis, limiter: Ratelimit.tokenBucket(1, '10 s', 10), prefix: fresh(), enableTelemetry: true })
    const expected = `${REDIS_SDK},${OURS}`
    assert.equal(redis.client.headers['Upstash-Telemetry-Sdk'], expected, 'appended exactly once')
    // requests sent through the instance's own methods (dynamic limits use get / set / del)
    for (const entry of await requestsOf(() => rl.setDynamicLimit({ limit: 5 }))) assert.equal(sdkOf(entry), expected)
    for (const entry of await requestsOf(() => rl.getDynamicLimit())) assert.equal(sdkOf(entry), expected)
    for (const entry of await requestsOf(() => redis.get('anything'))) assert.equal(sdkOf(entry), expected)
  })

  test('limit() goes over HTTP from Rust (not through the instance): those requests carry no Upstash-Telemetry-* header', { ...T, ...nativeOnly }, async () => {
    // Current design (docs/COMPATIBILITY.md: the instance's evalsha/eval are not called). Upstream's
    // limit() requests, sent by the instance, carry the tag (see the oracle test above).
    const redis = client()
    const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '10 s'), prefix: fresh() })
    for (const entry of await requestsOf(() => rl.limit('u'))) assert.deepEqual(telemetryHeaders(entry), [], JSON.stringify(entry.headers))
  })

  test('on the WebAssembly engine limit() goes through the instance, as upstream: its requests carry the tag', { ...T, ...wasmOnly }, async () => {
    const redis = client()
    const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '10 s'), prefix: fresh() })
    const entries = await requestsOf(() => rl.limit('u'))
    assert.ok(entries.length > 0)
    for (const entry of entries) assert.equal(sdkOf(entry), `${REDIS_SDK},${OURS}`)
  })

  test('upstream and ours on the same client: each tag once, in construction order', T, async () => {
    const redis = client()
    new UpstreamRatelimit({ redis, limiter: UpstreamRatelimit.fixedWindow(10, '10 s'), prefix: fresh() })
    new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '10 s'), prefix: fresh() })
    new UpstreamRatelimit({ redis, limiter: UpstreamRatelimit.fixedWindow(10, '10 s'), prefix: fresh() })
    new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '10 s'), prefix: fresh() })
    const [entry] = await requestsOf(() => redis.get('x'))
    assert.equal(sdkOf(entry), `${REDIS_SDK},${UPSTREAM},${OURS}`)
  })

  test('enableTelemetry: false → no tag; a later limiter without it still tags (the WeakSet is untouched), as upstream', T, async () => {
    const redis = client()
    new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '10 s'), prefix: fresh(), enableTelemetry: false })
    let [entry] = await requestsOf(() => redis.get('x'))
    assert.equal(sdkOf(entry), REDIS_SDK)
    new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '10 s'), prefix: fresh() })
    ;[entry] = await requestsOf(() => redis.get('x'))
    assert.equal(sdkOf(entry), `${REDIS_SDK},${OURS}`)
  })

  test('UPSTASH_DISABLE_TELEMETRY → no tag (read when the limiter is constructed)', T, async () => {
    const redis = client() // created while telemetry is allowed: the client's own tag is there
    process.env.UPSTASH_DISABLE_TELEMETRY = '1'
    new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '10 s'), prefix: fresh() })
    new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '10 s'), prefix: fresh(), enableTelemetry: true })
    let [entry] = await requestsOf(() => redis.get('x'))
    assert.equal(sdkOf(entry), REDIS_SDK)
    delete process.env.UPSTASH_DISABLE_TELEMETRY
    new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '10 s'), prefix: fresh() })
    ;[entry] = await requestsOf(() => redis.get('x'))
    assert.equal(sdkOf(entry), `${REDIS_SDK},${OURS}`)
  })

  test("the client's own enableTelemetry: false suppresses every telemetry header", T, async () => {
    const redis = client({ enableTelemetry: false })
    const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '10 s'), prefix: fresh(), dynamicLimits: true })
    for (const entry of await requestsOf(() => rl.setDynamicLimit({ limit: 3 }))) assert.deepEqual(telemetryHeaders(entry), [])
  })
})

describe('addTelemetry calls on a client object (ours vs upstream)', () => {
  function spyClient({ throws = false } = {}) {
    const calls = []
    return {
      calls,
      redis: {
        evalsha: async () => [1, 10], // our fixedWindow script: {counter, effective limit}
        eval: async () => [1, 10],
        get: async () => null,
        set: async () => 'OK',
        del: async () => 0,
        addTelemetry(t) {
          calls.push(t)
          if (throws) throw new Error('telemetry boom')
        },
      },
    }
  }

  test('once per client with { sdk } only, across limiters; upstream does the same with its own string', () => {
    const ours = spyClient()
    const theirs = spyClient()
    for (let i = 0; i < 3; i++) {
      new Ratelimit({ redis: ours.redis, limiter: Ratelimit.fixedWindow(1, '1 s') })
      new UpstreamRatelimit({ redis: theirs.redis, limiter: UpstreamRatelimit.fixedWindow(1, '1 s') })
    }
    assert.deepEqual(ours.calls, [{ sdk: OURS }])
    assert.deepEqual(theirs.calls, [{ sdk: UPSTREAM }])
    assert.match(OURS, /^ratelimit-native@\d+\.\d+\.\d+/)
  })

  test('not called with enableTelemetry: false or UPSTASH_DISABLE_TELEMETRY', () => {
    const ours = spyClient()
    new Ratelimit({ redis: ours.redis, limiter: Ratelimit.fixedWindow(1, '1 s'), enableTelemetry: false })
    process.env.UPSTASH_DISABLE_TELEMETRY = 'true'
    new Ratelimit({ redis: ours.redis, limiter: Ratelimit.fixedWindow(1, '1 s') })
    assert.deepEqual(ours.calls, [])
    delete process.env.UPSTASH_DISABLE_TELEMETRY
    new Ratelimit({ redis: ours.redis, limiter: Ratelimit.fixedWindow(1, '1 s') })
    assert.deepEqual(ours.calls, [{ sdk: OURS }])
  })

  test('an addTelemetry that throws never breaks construction or limit()', async () => {
    const ours = spyClient({ throws: true })
    const rl = new Ratelimit({ redis: ours.redis, limiter: Ratelimit.fixedWindow(10, '10 s'), ephemeralCache: false })
    assert.equal(ours.calls.length, 1)
    const r = await rl.limit('u')
    assert.equal(r.success, true)
    // tagged (in the WeakSet) before the call, as upstream: not retried
    new Ratelimit({ redis: ours.redis, limiter: Ratelimit.fixedWindow(10, '10 s') })
    assert.equal(ours.calls.length, 1)
  })

  test('a client without addTelemetry (our own Redis, plain objects) is fine', () => {
    const own = new Redis({ url: 'http://127.0.0.1:1', token: 't' })
    assert.equal(typeof own.addTelemetry, 'undefined')
    new Ratelimit({ redis: own, limiter: Ratelimit.fixedWindow(1, '1 s') })
    new Ratelimit({ redis: { evalsha: async () => 0, get: async () => null, set: async () => 'OK' }, limiter: Ratelimit.fixedWindow(1, '1 s') })
  })
})

describe('our own Redis client sends no telemetry headers', () => {
  test('limit / getRemaining / resetUsedTokens / dynamic limits / analytics / protection / Analytics queries', T, async () => {
    const redis = new Redis({ url: proxy.url, token: stack.rest.token })
    const P = fresh()
    const i = proxy.mark()
    const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(1, '10 s'), prefix: P, analytics: true, enableProtection: true, dynamicLimits: true, denyListThreshold: 9 })
    const first = await rl.limit('u', { ip: '9.9.9.9' }) // status -2 → refresh attempt (threshold 9 fails in pending)
    await first.pending.catch(() => {})
    await (await rl.limit('u')).pending // rejected by Redis
    await (await rl.limit('u')).pending // cacheBlock: a separate ZINCRBY
    await rl.getRemaining('u')
    await rl.resetUsedTokens('u')
    await rl.setDynamicLimit({ limit: 4 })
    await rl.getDynamicLimit()
    await rl.setDynamicLimit({ limit: false })
    const analytics = new Analytics({ redis, prefix: P })
    await analytics.getUsage(Date.now() - 7_200_000)
    await analytics.getUsageOverTime(2, 'success')
    await redis.zincrby(`${P}:x`, 1, 'm')
    await redis.del(`${P}:x`)
    const entries = proxy.since(i)
    assert.ok(entries.length >= 10, `${entries.length} requests`)
    for (const entry of entries) assert.deepEqual(telemetryHeaders(entry), [], `${entry.path} ${entry.body.slice(0, 60)}`)
  })
})
