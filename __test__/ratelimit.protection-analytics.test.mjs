// `enableProtection` and `analytics` on our Ratelimit, against the published @upstash/ratelimit
// 2.2.0 (the oracle) on ONE redis-server behind the project's REST server.
// Reference: /work/shared/reference/upstash-ratelimit-behaviour.md §1.5, §1.7, §1.8, §3.2,
// §3.5, §3.6, §3.9, Q2, Q10, Q11, Q14, Q17 and §9 items 11–14.
//
// Our deliberate differences (tested as OUR behaviour):
//   - fixedWindow / slidingWindow / tokenBucket send the limit, the deny-list check and the
//     analytics ZINCRBY in ONE script: one HTTP request per limit() (upstream: EVALSHA + EVAL +
//     ZINCRBY, i.e. at least two requests with @upstash/redis' auto-pipelining); same stored data;
//   - the deny cache is consulted by protected limiters only (upstream: by every limiter, Q2);
//   - empty protection values (identifier "" alone) skip SMISMEMBER (upstream rejects, Q14);
//   - analytics / enableProtection with Redis.memory() throw at construction.
//
// Every HTTP request goes through a loopback proxy in front of the REST server that records
// path, headers and the Redis commands of the body (and can delay requests), so "how many
// requests did one limit() cost" is measured honestly. Redis state is read directly from
// redis-server. The ipsum download is never real: globalThis.fetch is stubbed for
// raw.githubusercontent.com only, and restored after each test.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import { createRequire } from 'node:module'
import { after, afterEach, before, describe, test } from 'node:test'
import { Analytics as UpstreamAnalytics, Ratelimit as UpstreamRatelimit } from '@upstash/ratelimit'
import { Redis as UpstashRedis } from '@upstash/redis'
import { Analytics, IpDenyList, Ratelimit, Redis } from '../index.js'
import { startStack } from './helpers/servers.mjs'
import { redisBatch } from './helpers/direct-redis.mjs'

const require = createRequire(import.meta.url)
const { getIpListTTL } = require('../lib/ip-deny-list.js')
const protection = require('../lib/protection.js')

const T = { timeout: 30000 }
const H = 3_600_000
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const tag = () => randomBytes(4).toString('hex')
const fresh = () => `rpa${tag()}`
const omitPending = ({ pending, ...rest }) => rest
const W = (now, windowMs) => (Math.floor(now / windowMs) + 1) * windowMs
const hourOf = (t) => Math.floor(t / H) * H
/** A distinct IP per call, so no value ever sits in a module-global deny cache by accident. */
let ipCounter = 0
const uniqueIp = (a = 7) => {
  ipCounter++
  return `${a}.${(ipCounter >> 16) & 255}.${(ipCounter >> 8) & 255}.${ipCounter & 255}`
}

// --- clock ------------------------------------------------------------------------------------

const realNow = Date.now
const clock = {
  set(t) {
    Date.now = () => t
  },
  restore() {
    Date.now = realNow
  },
}
/** Middle of the current hour (both libraries then agree on the analytics bucket). */
const midHour = () => hourOf(realNow()) + H / 2
/** One call two hours before `t` (another analytics bucket), so the limiter's script is cached. */
async function warm(rl, t) {
  clock.set(t - 2 * H)
  try {
    await (await rl.limit('warm')).pending
  } finally {
    clock.restore()
  }
}

// --- direct redis-server access (RESP) ---------------------------------------------------------

const redisOne = async (...args) => (await redisBatch(stack.redis, [args]))[0]

/** `INFO commandstats` → calls per command name (lower case). */
async function commandStats() {
  const text = await redisOne('INFO', 'commandstats')
  const stats = {}
  for (const m of text.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) stats[m[1]] = Number(m[2])
  return stats
}
const statDelta = (a, b, name) => (b[name] ?? 0) - (a[name] ?? 0)

/** A zset as `{ member: score }` (raw member text, so JSON key order is compared too). */
async function zset(key) {
  const flat = (await redisOne('ZRANGE', key, 0, -1, 'WITHSCORES')) ?? []
  const out = {}
  for (let i = 0; i < flat.length; i += 2) out[flat[i]] = Number(flat[i + 1])
  return out
}
const smembers = async (key) => ((await redisOne('SMEMBERS', key)) ?? []).sort()

/** Every key under `prefix:` → { suffix: { type, value, ttl: 'none' | 'set' } }. */
async function dumpState(prefix) {
  const keys = ((await redisOne('KEYS', `${prefix}:*`)) ?? []).sort()
  const out = {}
  for (const key of keys) {
    const [type, pttl] = await redisBatch(stack.redis, [
      ['TYPE', key],
      ['PTTL', key],
    ])
    let value
    if (type === 'string') value = await redisOne('GET', key)
    else if (type === 'hash') {
      const flat = await redisOne('HGETALL', key)
      value = {}
      for (let i = 0; i < flat.length; i += 2) value[flat[i]] = flat[i + 1]
    } else if (type === 'set') value = await smembers(key)
    else if (type === 'zset') value = await zset(key)
    else value = `<${type}>`
    out[key.slice(prefix.length + 1)] = { type, value, ttl: pttl === -1 ? 'none' : pttl > 0 ? 'set' : String(pttl) }
  }
  return out
}

// --- a recording (and optionally delaying) loopback proxy in front of the REST server ---------

/** The Redis commands an Upstash REST request carries (upper-case names). */
function commandsOf(entry) {
  let body
  try {
    body = JSON.parse(entry.body)
  } catch {
    return []
  }
  if (entry.path === '/pipeline' || entry.path === '/multi-exec') return body.map((c) => [String(c[0]).toUpperCase(), ...c.slice(1)])
  if (Array.isArray(body)) return [[String(body[0]).toUpperCase(), ...body.slice(1)]]
  return []
}

async function startProxy(target) {
  const t = new URL(target)
  const log = []
  let delayMs = 0
  const agent = new http.Agent({ keepAlive: true })
  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', async () => {
      const body = Buffer.concat(chunks)
      const entry = { path: req.url, headers: { ...req.headers }, body: body.toString('utf8') }
      log.push(entry)
      if (delayMs > 0) await sleep(delayMs)
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
    /** Index to pass to `since()`. */
    mark: () => log.length,
    since: (i) => log.slice(i),
    setDelay(ms) {
      delayMs = ms
    },
    close: () =>
      new Promise((r) => {
        server.closeAllConnections?.()
        agent.destroy()
        server.close(r)
      }),
  }
}

// --- ipsum stub ---------------------------------------------------------------------------------

const realFetch = globalThis.fetch
const IPSUM = 'https://raw.githubusercontent.com/stamparm/ipsum/master/levels/'
/** ipsum URLs → `respond(url)`; everything else → the real fetch (which @upstash/redis uses). */
function stubIpsum(respond) {
  const requested = []
  globalThis.fetch = async (input, init) => {
    const url = String(input instanceof Request ? input.url : input)
    if (!url.startsWith('https://raw.githubusercontent.com/')) return realFetch(input, init)
    requested.push(url)
    return respond(url)
  }
  return requested
}
const listResponse = (ips) => () => new Response(ips.join('\n') + '\n')

// --- unhandled rejections -------------------------------------------------------------------------

const unhandled = []
const onUnhandled = (reason) => unhandled.push(reason)

// --- setup ------------------------------------------------------------------------------------

let stack
let proxy
const upstash = () => new UpstashRedis({ url: proxy.url, token: stack.rest.token, enableTelemetry: false })
/** A plain object forwarding evalsha/eval/get/set/del to an @upstash/redis instance (our compat path). */
function forwarding() {
  const inner = upstash()
  const calls = []
  const client = {}
  for (const name of ['evalsha', 'eval', 'get', 'set', 'del']) {
    client[name] = (...args) => {
      calls.push(name)
      return inner[name](...args)
    }
  }
  return { client, calls }
}
const PATHS = {
  upstash: () => upstash(),
  own: () => new Redis({ url: proxy.url, token: stack.rest.token }),
  compat: () => forwarding().client,
}

before(async () => {
  stack = await startStack()
  proxy = await startProxy(stack.rest.url)
  process.on('unhandledRejection', onUnhandled)
})
afterEach(() => {
  globalThis.fetch = realFetch
  clock.restore()
  proxy?.setDelay(0)
})
after(async () => {
  process.off('unhandledRejection', onUnhandled)
  globalThis.fetch = realFetch
  clock.restore()
  await proxy?.close()
  await stack?.stop()
})

/** Prepares a prefix's deny list: `members` denied, IP list disabled (status "disabled", no TTL). */
async function denyList(prefix, members, status = 'disabled') {
  const cmds = [['DEL', `${prefix}:denyList:all`, `${prefix}:ipDenyListStatus`]]
  if (members.length) cmds.push(['SADD', `${prefix}:denyList:all`, ...members])
  if (status) cmds.push(['SET', `${prefix}:ipDenyListStatus`, status])
  await redisBatch(stack.redis, cmds)
}

/** Commands sent over HTTP by `fn`, and the number of HTTP requests. */
async function traffic(fn) {
  const i = proxy.mark()
  const result = await fn()
  const entries = proxy.since(i)
  return { result, requests: entries.length, commands: entries.flatMap(commandsOf).map((c) => c[0]) }
}

// =================================================================================================
// §9 item 11: analytics
// =================================================================================================

describe('§9 item 11: analytics', () => {
  const geoReq = { geo: { country: 'DE', city: 'Berlin' } }
  const geoMember = '{"identifier":"u","success":true,"country":"DE","city":"Berlin"}'

  test('upstream (oracle): 1 EVALSHA + 1 ZINCRBY, member JSON, score 1, no TTL, pending [undefined, undefined]', T, async () => {
    const P = fresh()
    const t = midHour()
    const rl = new UpstreamRatelimit({ redis: upstash(), limiter: UpstreamRatelimit.fixedWindow(10, '100 s'), prefix: P, ephemeralCache: false, analytics: true })
    await warm(rl, t) // script cached in Redis, nothing cold below
    clock.set(t)
    const { result: r, commands } = await traffic(async () => {
      const r = await rl.limit('u', geoReq)
      assert.deepEqual(await r.pending, [undefined, undefined])
      return r
    })
    assert.deepEqual(omitPending(r), { success: true, limit: 10, remaining: 9, reset: W(t, 100_000) })
    assert.deepEqual(commands.sort(), ['EVALSHA', 'ZINCRBY'])
    const key = `${P}:events:${hourOf(t)}`
    assert.deepEqual(await zset(key), { [geoMember]: 1 })
    assert.equal(await redisOne('TTL', key), -1)
    await (await rl.limit('w', { ip: '1.2.3.4', country: 'DE' })).pending
    assert.equal((await zset(key))['{"identifier":"w","success":true}'], 1)
  })

  for (const [path, make] of Object.entries(PATHS)) {
    test(`[${path}] ours: same data in ONE request (the ZINCRBY travels in the limit script); pending [undefined, undefined]`, T, async () => {
      const P = fresh()
      const t = midHour()
      const rl = new Ratelimit({ redis: make(), limiter: Ratelimit.fixedWindow(10, '100 s'), prefix: P, ephemeralCache: false, analytics: true })
      await warm(rl, t)
      clock.set(t)
      const { result: r, requests, commands } = await traffic(async () => {
        const r = await rl.limit('u', geoReq)
        assert.deepEqual(await r.pending, [undefined, undefined])
        return r
      })
      assert.deepEqual(omitPending(r), { success: true, limit: 10, remaining: 9, reset: W(t, 100_000) })
      assert.equal(requests, 1, 'one HTTP request')
      assert.deepEqual(commands, ['EVALSHA'], 'no standalone ZINCRBY / EVAL')
      const key = `${P}:events:${hourOf(t)}`
      assert.deepEqual(await zset(key), { [geoMember]: 1 })
      assert.equal(await redisOne('TTL', key), -1)
      // ip / country are not geo: only identifier and success are recorded
      const r2 = await rl.limit('w', { ip: '1.2.3.4', country: 'DE' })
      assert.deepEqual(await r2.pending, [undefined, undefined])
      assert.deepEqual(await zset(key), { [geoMember]: 1, '{"identifier":"w","success":true}': 1 })
      // req.cf is used when req.geo is absent (extractGeo), exactly as upstream
      await (await rl.limit('u', { cf: { country: 'FR' } })).pending
      assert.equal((await zset(key))['{"identifier":"u","success":true,"country":"FR"}'], 1)
    })
  }

  test('ours: the hour bucket is the call-start time (Date.now when limit() is called)', T, async () => {
    const P = fresh()
    const t = hourOf(realNow()) + H - 1 // the last ms of the current hour
    const rl = new Ratelimit({ redis: upstash(), limiter: Ratelimit.fixedWindow(10, '100 s'), prefix: P, ephemeralCache: false, analytics: true })
    await warm(rl, t)
    let now = t
    Date.now = () => now
    const p = rl.limit('edge')
    now = t + 10 // the call finishes in the next hour
    const r = await p
    await r.pending
    assert.deepEqual(await zset(`${P}:events:${hourOf(t)}`), { '{"identifier":"edge","success":true}': 1 })
    assert.equal(await redisOne('EXISTS', `${P}:events:${hourOf(t) + H}`), 0)
  })

  test('slidingWindow and tokenBucket carry the analytics write too (one request each, same members as upstream)', T, async () => {
    const t = midHour()
    for (const [name, make, makeUp] of [
      ['slidingWindow', () => Ratelimit.slidingWindow(2, '100 s'), () => UpstreamRatelimit.slidingWindow(2, '100 s')],
      ['tokenBucket', () => Ratelimit.tokenBucket(1, '100 s', 2), () => UpstreamRatelimit.tokenBucket(1, '100 s', 2)],
    ]) {
      const [A, B] = [fresh(), fresh()]
      const up = new UpstreamRatelimit({ redis: upstash(), limiter: makeUp(), prefix: A, ephemeralCache: false, analytics: true })
      const us = new Ratelimit({ redis: upstash(), limiter: make(), prefix: B, ephemeralCache: false, analytics: true })
      await warm(us, t)
      await warm(up, t)
      clock.set(t)
      for (let i = 0; i < 3; i++) {
        const a = await up.limit('u', { geo: { city: 'Rome' } })
        await a.pending
        const { result: b, requests } = await traffic(async () => {
          const b = await us.limit('u', { geo: { city: 'Rome' } })
          await b.pending
          return b
        })
        assert.deepEqual(omitPending(b), omitPending(a), `${name} call ${i}`)
        assert.equal(requests, 1, `${name} call ${i}: one request`)
      }
      assert.deepEqual(await zset(`${B}:events:${hourOf(t)}`), await zset(`${A}:events:${hourOf(t)}`), name)
      assert.deepEqual(await zset(`${B}:events:${hourOf(t)}`), {
        '{"identifier":"u","success":false,"city":"Rome"}': 1,
        '{"identifier":"u","success":true,"city":"Rome"}': 2,
      })
      clock.restore()
    }
  })
})

// =================================================================================================
// analytics for responses that did not run the script (cacheBlock, deny cache, timeout)
// =================================================================================================

describe('analytics for responses answered without the limit script', () => {
  for (const [path, make] of Object.entries(PATHS)) {
    test(`[${path}] cacheBlock: a separate write; await pending → [undefined, undefined], then the score is in Redis`, T, async () => {
      const P = fresh()
      const t = midHour()
      clock.set(t)
      const rl = new Ratelimit({ redis: make(), limiter: Ratelimit.fixedWindow(1, '100 s'), prefix: P, analytics: true })
      await (await rl.limit('u')).pending
      await (await rl.limit('u')).pending // rejected by Redis: blocks in the ephemeral cache
      const { result: r, requests, commands } = await traffic(async () => {
        const r = await rl.limit('u')
        assert.deepEqual(await r.pending, [undefined, undefined])
        return r
      })
      assert.deepEqual(omitPending(r), { success: false, limit: 1, remaining: 0, reset: W(t, 100_000), reason: 'cacheBlock' })
      assert.equal(requests, 1)
      // the @upstash/redis instance's and our client's own ZINCRBY; a plain object without zincrby → EVAL
      assert.deepEqual(commands, [path === 'compat' ? 'EVAL' : 'ZINCRBY'])
      assert.deepEqual(await zset(`${P}:events:${hourOf(t)}`), {
        '{"identifier":"u","success":true}': 1,
        '{"identifier":"u","success":false}': 2,
      })
    })
  }

  test('upstream (oracle) and ours record the same events for a cacheBlock sequence', T, async () => {
    const [A, B] = [fresh(), fresh()]
    const t = midHour()
    clock.set(t)
    const up = new UpstreamRatelimit({ redis: upstash(), limiter: UpstreamRatelimit.tokenBucket(1, '100 s', 1), prefix: A, analytics: true })
    const us = new Ratelimit({ redis: upstash(), limiter: Ratelimit.tokenBucket(1, '100 s', 1), prefix: B, analytics: true })
    for (let i = 0; i < 4; i++) {
      const a = await up.limit('u', { geo: { country: 'IT' } })
      const b = await us.limit('u', { geo: { country: 'IT' } })
      assert.deepEqual(omitPending(b), omitPending(a), `call ${i}`)
      assert.deepEqual(await b.pending, await a.pending)
    }
    assert.deepEqual(await zset(`${B}:events:${hourOf(t)}`), await zset(`${A}:events:${hourOf(t)}`))
  })

  test('a timeout response is recorded once, as upstream records it (success: true), not twice', T, async () => {
    const [A, B] = [fresh(), fresh()]
    const t = midHour()
    const up = new UpstreamRatelimit({ redis: upstash(), limiter: UpstreamRatelimit.fixedWindow(10, '100 s'), prefix: A, ephemeralCache: false, analytics: true, timeout: 150 })
    const us = new Ratelimit({ redis: upstash(), limiter: Ratelimit.fixedWindow(10, '100 s'), prefix: B, ephemeralCache: false, analytics: true, timeout: 150 })
    await warm(up, t)
    await warm(us, t)
    clock.set(t)
    proxy.setDelay(500)
    const a = await up.limit('slow')
    const b = await us.limit('slow')
    const expected = { success: true, limit: 0, remaining: 0, reset: 0, reason: 'timeout' }
    assert.deepEqual(omitPending(a), expected)
    assert.deepEqual(omitPending(b), expected)
    await Promise.all([a.pending, b.pending])
    await sleep(900) // the late limit scripts land
    proxy.setDelay(0)
    const theirs = await zset(`${A}:events:${hourOf(t)}`)
    assert.deepEqual(theirs, { '{"identifier":"slow","success":true}': 1 })
    assert.deepEqual(await zset(`${B}:events:${hourOf(t)}`), theirs, 'ours: one event per limit() call, as upstream')
  })
})

// =================================================================================================
// a failed analytics write is warned and never fails limit()
// =================================================================================================

describe('a failed analytics write is warned, never fails limit()', () => {
  /** Runs `fn` with console.warn captured. */
  async function captureWarn(fn) {
    const warned = []
    const original = console.warn
    console.warn = (...args) => warned.push(args)
    try {
      await fn()
    } finally {
      console.warn = original
    }
    return warned
  }

  test('WRONGTYPE on the events key: same warning text as upstream; the limit still counts', T, async () => {
    const [A, B] = [fresh(), fresh()]
    const t = midHour()
    clock.set(t)
    for (const P of [A, B]) await redisOne('SET', `${P}:events:${hourOf(t)}`, 'not a zset')
    const up = new UpstreamRatelimit({ redis: upstash(), limiter: UpstreamRatelimit.fixedWindow(10, '100 s'), prefix: A, ephemeralCache: false, analytics: true })
    const us = new Ratelimit({ redis: upstash(), limiter: Ratelimit.fixedWindow(10, '100 s'), prefix: B, ephemeralCache: false, analytics: true })
    let a
    let b
    const theirs = await captureWarn(async () => {
      a = await up.limit('u')
      await a.pending
    })
    const ours = await captureWarn(async () => {
      b = await us.limit('u')
      await b.pending
    })
    assert.deepEqual(omitPending(b), { success: true, limit: 10, remaining: 9, reset: W(t, 100_000) })
    assert.deepEqual(omitPending(b), omitPending(a))
    assert.equal(theirs.length, 1)
    assert.equal(ours.length, 1, 'warned once')
    assert.equal(ours[0][0], theirs[0][0], 'the long WRONGTYPE message')
    assert.match(String(ours[0][1]), /WRONGTYPE/)
    assert.equal(await redisOne('GET', `${B}:events:${hourOf(t)}`), 'not a zset')
    // the counter was consumed despite the failed write
    assert.equal(await redisOne('GET', `${B}:u:${Math.floor(t / 100_000)}`), '1')
  })

  test('WRONGTYPE on a cacheBlock write: warned, limit() resolves', T, async () => {
    const P = fresh()
    const t = midHour()
    clock.set(t)
    const rl = new Ratelimit({ redis: new Redis({ url: proxy.url, token: stack.rest.token }), limiter: Ratelimit.fixedWindow(1, '100 s'), prefix: P, analytics: true })
    await (await rl.limit('u')).pending
    await (await rl.limit('u')).pending
    await redisOne('DEL', `${P}:events:${hourOf(t)}`)
    await redisOne('SET', `${P}:events:${hourOf(t)}`, 'x')
    let r
    const warned = await captureWarn(async () => {
      r = await rl.limit('u')
      await r.pending
    })
    assert.equal(r.reason, 'cacheBlock')
    assert.equal(warned.length, 1)
    assert.match(warned[0][0], /Failed to record analytics/)
  })
})

// =================================================================================================
// §9 item 12: protection
// =================================================================================================

describe('§9 item 12: protection', () => {
  /** Values unique to one run (the deny caches are module-global and last 60 s). */
  function values() {
    const k = tag()
    return { badId: `bad-${k}`, badIp: uniqueIp(6), badUa: `evil-${k}`, badCountry: `X${k}`, good: `good-${k}`, other: `other-${k}` }
  }

  async function scenario({ make, lib, ours }) {
    const P = fresh()
    const v = values()
    await denyList(P, [v.badId, v.badIp, v.badUa, v.badCountry])
    const Rl = lib
    const rl = new Rl({ redis: make(), limiter: Rl.fixedWindow(10, '100 s'), prefix: P, ephemeralCache: false, enableProtection: true })
    await rl.limit(`warm-${tag()}`) // scripts cached
    const t = realNow()
    clock.set(t)
    const Wt = W(t, 100_000)

    const good = await traffic(() => rl.limit(v.good))
    assert.deepEqual(omitPending(good.result), { success: true, limit: 10, remaining: 9, reset: Wt })
    if (ours) {
      assert.equal(good.requests, 1)
      assert.deepEqual(good.commands, ['EVALSHA'], 'the deny-list check travels in the limit script')
    } else {
      assert.deepEqual(good.commands.sort(), ['EVAL', 'EVALSHA'])
    }

    const denied = await traffic(() => rl.limit(v.badId, { ip: v.badIp }))
    assert.deepEqual(omitPending(denied.result), { success: false, limit: 10, remaining: 0, reset: Wt, reason: 'denyList', deniedValue: v.badIp }, 'the last denied member wins')
    if (ours) assert.equal(denied.requests, 1)
    // the limiter consumed a token for the denied request (Q7)
    assert.equal(await redisOne('GET', `${P}:${v.badId}:${Math.floor(t / 100_000)}`), '1')

    const cached = await traffic(() => rl.limit(v.other, { ip: v.badIp }))
    assert.deepEqual(omitPending(cached.result), { success: false, limit: 0, remaining: 0, reset: 0, reason: 'denyList', deniedValue: v.badIp })
    assert.equal(cached.requests, 0, 'a deny-cache hit costs no request')
    assert.equal(await redisOne('EXISTS', `${P}:${v.other}:${Math.floor(t / 100_000)}`), 0)

    // user agent and country are checked too (in members order)
    const ua = await rl.limit(`u-${tag()}`, { userAgent: v.badUa, country: 'DE' })
    assert.deepEqual(omitPending(ua), { success: false, limit: 10, remaining: 0, reset: Wt, reason: 'denyList', deniedValue: v.badUa })
    const country = await rl.limit(`c-${tag()}`, { ip: uniqueIp(), country: v.badCountry })
    assert.equal(country.deniedValue, v.badCountry)

    // Q11: blockUntilReady on a deny-cache hit (reset 0) rejects
    clock.restore()
    await assert.rejects(rl.blockUntilReady(v.badId, 1000), { message: 'This should not happen' })
    await assert.rejects(rl.blockUntilReady(v.good, 0), { message: 'timeout must be positive' })
    return { P, v }
  }

  test('upstream (oracle): denied values, last wins, deny cache, Q11; an unprotected limiter IS denied by the cache (Q2)', T, async () => {
    const { v } = await scenario({ make: upstash, lib: UpstreamRatelimit, ours: false })
    const unprotected = new UpstreamRatelimit({ redis: upstash(), limiter: UpstreamRatelimit.fixedWindow(10, '100 s'), prefix: fresh(), ephemeralCache: false })
    const r = await unprotected.limit(`x-${tag()}`, { userAgent: v.badIp })
    assert.deepEqual(omitPending(r), { success: false, limit: 0, remaining: 0, reset: 0, reason: 'denyList', deniedValue: v.badIp })
  })

  for (const [path, make] of Object.entries(PATHS)) {
    test(`[${path}] ours: same responses, one request per limit(); an unprotected limiter is NOT denied by the cache`, T, async () => {
      const { v } = await scenario({ make, lib: Ratelimit, ours: true })
      const P2 = fresh()
      const unprotected = new Ratelimit({ redis: make(), limiter: Ratelimit.fixedWindow(10, '100 s'), prefix: P2, ephemeralCache: false })
      await unprotected.limit(`warm-${tag()}`) // the plain script cached: one request below
      const t = realNow()
      clock.set(t)
      const r = await traffic(() => unprotected.limit('x', { userAgent: v.badIp, ip: v.badId }))
      assert.deepEqual(omitPending(r.result), { success: true, limit: 10, remaining: 9, reset: W(t, 100_000) })
      assert.equal(r.requests, 1)
      // another PROTECTED limiter (another prefix, whose own deny list is empty) still shares the cache
      const P3 = fresh()
      await denyList(P3, [])
      const protectedElsewhere = new Ratelimit({ redis: make(), limiter: Ratelimit.fixedWindow(10, '100 s'), prefix: P3, ephemeralCache: false, enableProtection: true })
      const shared = await traffic(() => protectedElsewhere.limit('y', { userAgent: v.badIp }))
      assert.deepEqual(omitPending(shared.result), { success: false, limit: 0, remaining: 0, reset: 0, reason: 'denyList', deniedValue: v.badIp })
      assert.equal(shared.requests, 0)
    })
  }

  test('cacheBlock with protection: the deny-list check runs on its own and turns it into denyList (as upstream)', T, async () => {
    const [A, B] = [fresh(), fresh()]
    const v = values()
    await denyList(A, [v.badUa])
    await denyList(B, [v.badUa])
    const t = realNow()
    clock.set(t)
    const up = new UpstreamRatelimit({ redis: upstash(), limiter: UpstreamRatelimit.fixedWindow(1, '100 s'), prefix: A, enableProtection: true })
    const us = new Ratelimit({ redis: upstash(), limiter: Ratelimit.fixedWindow(1, '100 s'), prefix: B, enableProtection: true })
    const steps = [['u'], ['u'], ['u'], ['u', { userAgent: v.badUa }]]
    const responses = []
    for (const [id, req] of steps) {
      const a = await up.limit(id, req)
      const b = await us.limit(id, req)
      assert.deepEqual(omitPending(b), omitPending(a), `${id} ${JSON.stringify(req)}`)
      responses.push(omitPending(b))
    }
    assert.deepEqual(responses[2], { success: false, limit: 1, remaining: 0, reset: W(t, 100_000), reason: 'cacheBlock' })
    assert.deepEqual(responses[3], { success: false, limit: 1, remaining: 0, reset: W(t, 100_000), reason: 'denyList', deniedValue: v.badUa })
    // ours: the cacheBlock's separate check is one request with the deny-list script alone
    const again = await traffic(() => us.limit('u', { userAgent: uniqueIp() }))
    assert.equal(again.result.reason, 'cacheBlock')
    assert.equal(again.requests, 1)
    assert.equal(again.commands.length, 1)
  })

  test('Q14: identifier "" and no ip/ua/country — upstream rejects, ours skips SMISMEMBER and answers', T, async () => {
    const [A, B] = [fresh(), fresh()]
    await denyList(A, ['x'])
    await denyList(B, ['x'])
    const t = realNow()
    clock.set(t)
    const up = new UpstreamRatelimit({ redis: upstash(), limiter: UpstreamRatelimit.fixedWindow(10, '100 s'), prefix: A, ephemeralCache: false, enableProtection: true })
    await assert.rejects(up.limit(''), /Wrong number of args/)
    for (const [path, make] of Object.entries(PATHS)) {
      const P = `${B}${path}`
      await denyList(P, ['x'])
      const us = new Ratelimit({ redis: make(), limiter: Ratelimit.fixedWindow(10, '100 s'), prefix: P, ephemeralCache: false, enableProtection: true, analytics: true })
      const r = await us.limit('')
      assert.deepEqual(omitPending(r), { success: true, limit: 10, remaining: 9, reset: W(t, 100_000) }, path)
      assert.deepEqual(await r.pending, [undefined, undefined])
      assert.equal(await redisOne('GET', `${P}::${Math.floor(t / 100_000)}`), '1', path)
      assert.deepEqual(await zset(`${P}:events:${hourOf(t)}`), { '{"identifier":"","success":true}': 1 }, path)
    }
  })
})

// =================================================================================================
// deny cache (§3.2): shared between protected limiters only; cleared whole above 1000 entries
// =================================================================================================

describe('deny cache', () => {
  test('cleared whole when it holds more than 1000 entries; entries last 60 s', () => {
    const { denyCache, rememberDenied, cachedDeniedValue } = protection
    const t = realNow()
    clock.set(t)
    denyCache.empty()
    const many = Array.from({ length: 1001 }, (_, i) => `dc-${i}`)
    rememberDenied(many)
    assert.equal(denyCache.size(), 1001)
    assert.equal(cachedDeniedValue(['nope', 'dc-1000', 'dc-3']), 'dc-1000', 'the first cached member in order')
    rememberDenied(['dc-new'])
    assert.equal(denyCache.size(), 1, 'the whole cache was dropped before inserting')
    assert.equal(cachedDeniedValue(['dc-0', 'dc-new']), 'dc-new')
    clock.set(t + 60_000)
    assert.equal(cachedDeniedValue(['dc-new']), 'dc-new', 'still blocked at exactly +60 s (strict comparison)')
    clock.set(t + 60_001)
    assert.equal(cachedDeniedValue(['dc-new']), undefined, 'expired after 60 s')
    denyCache.empty()
  })
})

// =================================================================================================
// §9 item 13: IP list refresh failure
// =================================================================================================

describe('§9 item 13: IP deny list refresh failure (pending rejects; never an unhandled rejection)', () => {
  const thresholdMessage = 'Allowed threshold values are from 1 to 8, 1 and 8 included. Received: 9'

  async function refreshFails({ lib, make, analytics, ours }) {
    const P = fresh()
    await denyList(P, ['someone'], null) // status key absent → TTL -2
    const requested = stubIpsum(() => assert.fail('threshold 9 must not fetch'))
    const rl = new lib({ redis: make(), limiter: lib.fixedWindow(10, '100 s'), prefix: P, ephemeralCache: false, enableProtection: true, denyListThreshold: 9, analytics })
    const t = realNow()
    clock.set(t)
    const r = await rl.limit(`id-${tag()}`)
    // observe `pending` at once: upstream's rejects on its own (Q10), and an unobserved rejection
    // would be reported as unhandled while we read Redis below
    const outcome = r.pending.then(
      () => assert.fail('pending must reject'),
      (err) => Promise.reject(err),
    )
    outcome.catch(() => {})
    assert.deepEqual(omitPending(r), { success: true, limit: 10, remaining: 9, reset: W(t, 100_000) })
    assert.equal(await redisOne('GET', `${P}:ipDenyListStatus`), 'pending')
    const ttl = await redisOne('TTL', `${P}:ipDenyListStatus`)
    assert.ok(ttl > 0 && ttl <= 30, `status TTL ${ttl}`)
    await assert.rejects(outcome, (err) => {
      assert.equal(err.name, 'ThresholdError')
      assert.equal(err.message, thresholdMessage)
      if (ours) assert.ok(err instanceof IpDenyList.ThresholdError)
      return true
    })
    assert.deepEqual(requested, [])
    return { P, rl }
  }

  test('upstream (oracle): status "pending" for 30 s, pending rejects with ThresholdError', T, async () => {
    await refreshFails({ lib: UpstreamRatelimit, make: upstash, analytics: false, ours: false })
    await refreshFails({ lib: UpstreamRatelimit, make: upstash, analytics: true, ours: false })
  })

  for (const [path, make] of Object.entries(PATHS)) {
    for (const analytics of [false, true]) {
      test(`[${path}] ours${analytics ? ' + analytics' : ''}: same; an ignored pending causes no unhandledRejection`, T, async () => {
        await refreshFails({ lib: Ratelimit, make, analytics, ours: true })
        // the same again with `pending` ignored
        const P = fresh()
        await denyList(P, [], null)
        const rl = new Ratelimit({ redis: make(), limiter: Ratelimit.fixedWindow(10, '100 s'), prefix: P, ephemeralCache: false, enableProtection: true, denyListThreshold: 9, analytics })
        const before = unhandled.length
        const r = await rl.limit('ignored')
        assert.equal(r.success, true)
        assert.equal(await redisOne('GET', `${P}:ipDenyListStatus`), 'pending')
        for (let i = 0; i < 5; i++) await new Promise((res) => setImmediate(res))
        await sleep(50)
        assert.deepEqual(unhandled.slice(before), [], 'no unhandledRejection')
      })
    }
  }

  test('ours: no unhandledRejection either when the timeout wins and the late response carries the failing refresh', T, async () => {
    const P = fresh()
    await denyList(P, [], null)
    const rl = new Ratelimit({ redis: upstash(), limiter: Ratelimit.fixedWindow(10, '100 s'), prefix: P, ephemeralCache: false, enableProtection: true, denyListThreshold: 9, timeout: 150 })
    await rl.limit('warm') // caches the script (this call's failing refresh is an ignored pending too)
    await redisOne('DEL', `${P}:ipDenyListStatus`)
    const before = unhandled.length
    proxy.setDelay(500)
    const r = await rl.limit('late')
    assert.equal(r.reason, 'timeout')
    await sleep(900)
    proxy.setDelay(0)
    assert.equal(await redisOne('GET', `${P}:ipDenyListStatus`), 'pending', 'the late script ran')
    for (let i = 0; i < 5; i++) await new Promise((res) => setImmediate(res))
    assert.deepEqual(unhandled.slice(before).map(String), [], 'the late response\'s rejected refresh is unobservable by the caller and must not surface')
  })

  test('no network: pending rejects "Failed to fetch ip deny list: TypeError: fetch failed" (ours as upstream)', T, async () => {
    stubIpsum(() => {
      throw new TypeError('fetch failed')
    })
    const results = []
    for (const [lib, make] of [
      [UpstreamRatelimit, upstash],
      [Ratelimit, upstash],
      [Ratelimit, PATHS.own],
    ]) {
      const P = fresh()
      await denyList(P, [], null)
      const rl = new lib({ redis: make(), limiter: lib.fixedWindow(10, '100 s'), prefix: P, ephemeralCache: false, enableProtection: true })
      const r = await rl.limit('u')
      assert.equal(r.success, true)
      const settled = await Promise.allSettled([r.pending])
      assert.equal(settled[0].status, 'rejected')
      results.push(settled[0].reason.message)
    }
    assert.deepEqual(results, Array(3).fill('Failed to fetch ip deny list: TypeError: fetch failed'))
  })
})

// =================================================================================================
// §9 item 14: IP list refresh success
// =================================================================================================

describe('§9 item 14: IP deny list refresh through pending (stubbed ipsum list)', () => {
  async function refreshSucceeds({ lib, make, analytics, path }) {
    const P = fresh()
    const k = tag()
    const userEntries = [`user-${k}`, `agent-${k}`, `6.6.${(ipCounter >> 8) & 255}.${ipCounter & 255}`]
    ipCounter++
    // 5 IPs, one of which (userEntries[2]) is already user-denied
    const list = [uniqueIp(10), uniqueIp(10), userEntries[2], uniqueIp(10), uniqueIp(10)]
    await denyList(P, userEntries, null)
    const requested = stubIpsum(listResponse(list))
    const rl = new lib({ redis: make(), limiter: lib.fixedWindow(10, '100 s'), prefix: P, ephemeralCache: false, enableProtection: true, analytics })
    const r = await rl.limit(`id-${tag()}`)
    assert.equal(r.success, true)
    const replies = [3, 0, 5, 4, 7, 'OK'] // SDIFFSTORE, DEL, SADD, SDIFFSTORE, SUNIONSTORE, SET
    const expected = analytics ? [[undefined, replies], undefined] : [undefined, replies]
    assert.deepEqual(await r.pending, expected, `${path} analytics=${analytics}`)
    assert.deepEqual(requested, [`${IPSUM}6.txt`])
    assert.equal(await redisOne('GET', `${P}:ipDenyListStatus`), 'valid')
    const pttl = await redisOne('PTTL', `${P}:ipDenyListStatus`)
    assert.ok(Math.abs(pttl - getIpListTTL()) < 5000, `PTTL ${pttl} ≈ ms to the next 02:00 UTC`)
    assert.deepEqual(await smembers(`${P}:denyList:ipDenyList`), [list[0], list[1], list[3], list[4]].sort())
    assert.deepEqual(await smembers(`${P}:denyList:all`), [...userEntries, list[0], list[1], list[3], list[4]].sort())
    assert.equal((await smembers(`${P}:denyList:ipDenyList`)).length, (await smembers(`${P}:denyList:all`)).length - userEntries.length)
    // a listed IP is now denied (through Redis: limit/reset kept)
    const denied = await rl.limit(`id-${tag()}`, { ip: list[3] })
    assert.equal(denied.success, false)
    assert.equal(denied.reason, 'denyList')
    assert.equal(denied.deniedValue, list[3])
    assert.equal(denied.limit, 10)
    // status valid: no second refresh
    await denied.pending
    assert.equal(requested.length, 1)
  }

  for (const analytics of [false, true]) {
    test(`upstream (oracle)${analytics ? ' + analytics' : ''}: pending → [prev, [3, 0, 5, 4, 7, "OK"]]`, T, async () => {
      await refreshSucceeds({ lib: UpstreamRatelimit, make: upstash, analytics, path: 'upstream' })
    })
    for (const [path, make] of Object.entries(PATHS)) {
      test(`[${path}] ours${analytics ? ' + analytics' : ''}: pending → [prev, [3, 0, 5, 4, 7, "OK"]], same sets and status`, T, async () => {
        await refreshSucceeds({ lib: Ratelimit, make, analytics, path })
      })
    }
  }
})

// =================================================================================================
// the one-round-trip property
// =================================================================================================

describe('one request per limit() with analytics + protection (ours) vs at least two (upstream)', () => {
  const N = 10

  async function measure(rl, ids) {
    const before = await commandStats()
    const i = proxy.mark()
    for (const id of ids) {
      const r = await rl.limit(id, { ip: uniqueIp(), userAgent: 'Mozilla/5.0', country: 'DE', geo: { country: 'DE' } })
      await r.pending
    }
    const entries = proxy.since(i)
    const after = await commandStats()
    return { entries, before, after }
  }

  for (const algo of ['fixedWindow', 'slidingWindow', 'tokenBucket']) {
    const make = (lib) => (algo === 'tokenBucket' ? lib.tokenBucket(1, '100 s', 1000) : lib[algo](1000, '100 s'))

    for (const path of ['upstash', 'own']) {
      test(`[${path}] ${algo}: N warm calls → N HTTP requests, each exactly one EVALSHA; no EVAL, no top-level ZINCRBY`, T, async () => {
        const P = fresh()
        await denyList(P, [`never-${tag()}`])
        const rl = new Ratelimit({ redis: PATHS[path](), limiter: make(Ratelimit), prefix: P, analytics: true, enableProtection: true })
        await (await rl.limit('warm')).pending
        const { entries, before, after } = await measure(rl, Array.from({ length: N }, (_, k) => `id${k}`))
        assert.equal(entries.length, N, 'HTTP requests')
        for (const e of entries) assert.deepEqual(commandsOf(e).map((c) => c[0]), ['EVALSHA'])
        assert.equal(statDelta(before, after, 'evalsha'), N)
        assert.equal(statDelta(before, after, 'eval'), 0)
        // commandstats also counts the commands run inside scripts: the one script did all three jobs
        assert.equal(statDelta(before, after, 'zincrby'), N)
        assert.equal(statDelta(before, after, 'smismember'), N)
        const hour = hourOf(realNow())
        const events = await zset(`${P}:events:${hour}`)
        const total = Object.values(events).reduce((a, b) => a + b, 0)
        assert.ok(total >= N, `${total} events recorded`)
      })
    }

    test(`upstream (oracle) ${algo}: N warm calls → ≥ 2N HTTP requests (EVALSHA + EVAL, then ZINCRBY)`, T, async () => {
      const P = fresh()
      await denyList(P, [`never-${tag()}`])
      const rl = new UpstreamRatelimit({ redis: upstash(), limiter: make(UpstreamRatelimit), prefix: P, analytics: true, enableProtection: true })
      await (await rl.limit('warm')).pending
      const { entries, before, after } = await measure(rl, Array.from({ length: N }, (_, k) => `id${k}`))
      assert.ok(entries.length >= 2 * N, `${entries.length} requests`)
      const top = entries.flatMap(commandsOf).map((c) => c[0])
      assert.equal(top.filter((c) => c === 'EVALSHA').length, N)
      assert.equal(top.filter((c) => c === 'EVAL').length, N)
      assert.equal(top.filter((c) => c === 'ZINCRBY').length, N)
      assert.equal(statDelta(before, after, 'eval'), N)
      assert.equal(statDelta(before, after, 'evalsha'), N)
    })
  }

  test('ours: analytics alone, protection alone, and a Redis-side denial are one request each', T, async () => {
    const P = fresh()
    const bad = `bad-${tag()}`
    await denyList(P, [bad])
    for (const opts of [{ analytics: true }, { enableProtection: true }, { analytics: true, enableProtection: true }]) {
      const rl = new Ratelimit({ redis: upstash(), limiter: Ratelimit.slidingWindow(100, '100 s'), prefix: P, ...opts })
      await (await rl.limit('warm')).pending
      const ok = await traffic(async () => {
        const r = await rl.limit(`ok-${tag()}`, { ip: uniqueIp() })
        await r.pending
        return r
      })
      assert.equal(ok.requests, 1, JSON.stringify(opts))
      if (opts.enableProtection) {
        const denied = await traffic(async () => {
          const r = await rl.limit(`d-${tag()}`, { userAgent: bad })
          await r.pending
          return r
        })
        assert.equal(denied.result.reason, 'denyList')
        assert.equal(denied.requests, 1, JSON.stringify(opts))
        protection.denyCache.empty() // let the next option set see Redis again
      }
    }
  })
})

// =================================================================================================
// differential: the same sequence on upstream (prefix A) and ours (prefix B)
// =================================================================================================

describe('differential: protection + analytics sequences, upstream vs ours, same Redis', () => {
  const ALGOS = {
    fixedWindow: (lib) => lib.fixedWindow(3, '100 s'),
    slidingWindow: (lib) => lib.slidingWindow(3, '100 s'),
    tokenBucket: (lib) => lib.tokenBucket(1, '100 s', 3),
  }

  /**
   * The sequence: [label, identifier, req, clock step ms before the call, expected outcome].
   * Outcomes: 'ok', 'limited' (rejected by Redis), 'cacheBlock', or [value key in `v`, 'redis' |
   * 'cache'] for a deny-list denial answered through Redis (limit/reset kept) or from the deny cache.
   */
  function sequence(v, algo) {
    const geoDE = { geo: { country: 'DE', city: 'Berlin' } }
    return [
      ['first call: IP list refresh (status -2)', 'alice', { ...geoDE, ip: v.goodIp, userAgent: 'Mozilla', country: 'DE' }, 0, 'ok'],
      ['alice 2', 'alice', { ...geoDE, ip: v.goodIp }, 1000, 'ok'],
      ['alice 3', 'alice', { ip: v.goodIp, country: 'DE' }, 1000, 'ok'],
      ['alice over the limit (Redis)', 'alice', geoDE, 1000, 'limited'],
      ['alice cacheBlock', 'alice', {}, 1000, 'cacheBlock'],
      ['alice cacheBlock + denied user agent', 'alice', { userAgent: v.badUa, geo: { country: 'FR' } }, 1000, ['badUa', 'redis']],
      ['bob denied ip (Redis), geo US', 'bob', { ip: v.badIp, geo: { country: 'US' } }, 1000, ['badIp', 'redis']],
      ['bob denied ip (deny cache)', 'bob', { ip: v.badIp }, 1000, ['badIp', 'cache']],
      ['carol listed ip (refreshed IP list)', 'carol', { ip: v.listedIp, geo: { city: 'Paris' } }, 1000, ['listedIp', 'redis']],
      ['dave: cached user agent wins over an uncached country', 'dave', { userAgent: v.badUa, country: v.badCountry }, 1000, ['badUa', 'cache']],
      ['erin: denied country (Redis)', 'erin', { country: v.badCountry, geo: { country: 'ES' } }, 1000, ['badCountry', 'redis']],
      ['denied identifier', v.badId, { geo: { country: 'DE' } }, 1000, ['badId', 'redis']],
      ['denied identifier again (cache)', v.badId, {}, 1000, ['badId', 'cache']],
      ['frank rate 2', 'frank', { rate: 2, geo: { country: 'FR' } }, 1000, 'ok'],
      ['frank rate 0', 'frank', { rate: 0 }, 1000, 'ok'],
      ['frank rate -1', 'frank', { rate: -1, ip: v.goodIp }, 1000, 'ok'],
      ['frank rate 2 again', 'frank', { rate: 2 }, 1000, 'ok'],
      ['frank over (Redis)', 'frank', { rate: 1 }, 1000, 'limited'],
      ['frank again (cacheBlock)', 'frank', {}, 1000, 'cacheBlock'],
      ['next hour and window: gina', 'gina', { ...geoDE, ip: uniqueIp() }, 25_000, 'ok'],
      // fixed / sliding: a new window; the bucket's next refill is still ahead (blocked until then)
      ['next hour: frank', 'frank', {}, 1000, algo === 'tokenBucket' ? 'cacheBlock' : 'ok'],
      ['a window later: alice again', 'alice', { ...geoDE }, 100_000, 'ok'],
      ['deny cache expired: bob denied via Redis again', 'bob', { ip: v.badIp }, 1000, ['badIp', 'redis']],
      ['bob again: deny cache', 'bob', { ip: v.badIp }, 1000, ['badIp', 'cache']],
      ['harry: several denied members, the last wins', 'harry', { ip: v.badIp2, userAgent: v.badUa2, country: v.badCountry2 }, 1000, ['badCountry2', 'redis']],
    ]
  }

  /** Checks a response against an expected outcome of `sequence`. */
  function checkOutcome(r, outcome, v, label) {
    if (outcome === 'ok') assert.deepEqual([r.success, r.reason, r.limit], [true, undefined, 3], label)
    else if (outcome === 'limited') assert.deepEqual([r.success, r.reason, r.limit, r.remaining], [false, undefined, 3, 0], label)
    else if (outcome === 'cacheBlock') assert.deepEqual([r.success, r.reason, r.limit, r.remaining], [false, 'cacheBlock', 3, 0], label)
    else {
      const [key, source] = outcome
      assert.deepEqual([r.success, r.reason, r.deniedValue, r.remaining], [false, 'denyList', v[key], 0], label)
      if (source === 'cache') assert.deepEqual([r.limit, r.reset], [0, 0], label)
      else assert.ok(r.limit === 3 && r.reset > 0, label)
    }
  }

  for (const [algo, make] of Object.entries(ALGOS)) {
    for (const path of ['upstash', 'own']) {
      test(`${algo} [ours: ${path}]: equal responses, equal Redis data modulo prefix, equal Analytics answers`, T, async () => {
        const id = tag()
        const A = `rdu${id}`
        const B = `rds${id}`
        const v = {
          badId: `bad-${id}`,
          badIp: uniqueIp(6),
          badIp2: uniqueIp(6),
          badUa: `evil-${id}`,
          badUa2: `evil2-${id}`,
          badCountry: `X${id}`,
          badCountry2: `Y${id}`,
          goodIp: uniqueIp(8),
          listedIp: uniqueIp(10),
        }
        const list = [uniqueIp(10), v.listedIp, uniqueIp(10), v.badIp2]
        const userEntries = [v.badId, v.badIp, v.badUa, v.badCountry, v.badIp2, v.badUa2, v.badCountry2]
        await denyList(A, userEntries, null)
        await denyList(B, userEntries, null)
        stubIpsum(listResponse(list))
        const up = new UpstreamRatelimit({ redis: upstash(), limiter: make(UpstreamRatelimit), prefix: A, analytics: true, enableProtection: true })
        const us = new Ratelimit({ redis: PATHS[path](), limiter: make(Ratelimit), prefix: B, analytics: true, enableProtection: true })

        // start 40 s before the end of the current hour, so the sequence crosses an hour boundary
        let now = hourOf(realNow()) + H - 40_000
        Date.now = () => now
        const start = now
        for (const [label, identifier, req, step, outcome] of sequence(v, algo)) {
          now += step
          const a = await up.limit(identifier, { ...req })
          const b = await us.limit(identifier, { ...req })
          assert.deepEqual(omitPending(b), omitPending(a), label)
          checkOutcome(b, outcome, v, label)
          const [pa, pb] = await Promise.allSettled([a.pending, b.pending])
          assert.equal(pb.status, pa.status, `${label}: pending settles alike`)
          assert.deepEqual(pb.value, pa.value, `${label}: pending value`)
          // the first call refreshed the IP list: 7 user entries, 4 listed IPs of which 1 user-denied
          const expectedPending = step === 0 && identifier === 'alice' && now === start ? [[undefined, [7, 0, 4, 3, 10, 'OK']], undefined] : [undefined, undefined]
          assert.deepEqual(pb.value, expectedPending, `${label}: pending value`)
        }
        // the status key: "valid" with a TTL on both (refreshed by the first call)
        const [sa, sb] = [await dumpState(A), await dumpState(B)]
        assert.equal(sb.ipDenyListStatus?.value, 'valid')
        assert.deepEqual(sb, sa, 'every key under the prefix: same type, value, TTL presence')
        // the events really spread over two hours
        const eventKeys = Object.keys(sb).filter((k) => k.startsWith('events:'))
        assert.deepEqual(eventKeys.sort(), [`events:${hourOf(start)}`, `events:${hourOf(start) + H}`])
        const allEvents = Object.assign({}, ...eventKeys.map((k) => sb[k].value))
        assert.ok(Object.keys(allEvents).some((m) => m.includes('"success":"denied"')))
        assert.ok(Object.keys(allEvents).some((m) => m.includes('"success":false')))

        // Analytics (ours and upstream's) answer the same on both prefixes
        const answers = []
        for (const [name, Cls] of [
          ['ours', Analytics],
          ['upstream', UpstreamAnalytics],
        ]) {
          for (const prefix of [A, B]) {
            const an = new Cls({ redis: upstash(), prefix })
            const settle = async (p) => {
              try {
                return { ok: await p }
              } catch {
                return { rejected: true }
              }
            }
            answers.push({
              name: `${name}@${prefix === A ? 'A' : 'B'}`,
              value: {
                usage: await settle(an.getUsage(start - 2 * H)),
                overTimeSuccess: await settle(an.getUsageOverTime(3, 'success')),
                overTimeIdentifier: await settle(an.getUsageOverTime(3, 'identifier')),
                top: await settle(an.getMostAllowedBlocked(3)),
                top2: await settle(an.getMostAllowedBlocked(3, 2, 20)),
                series: await settle(an.series('identifier', start - 2 * H)),
                seriesCountry: await settle(an.series('country', start - 2 * H)),
              },
            })
          }
        }
        for (const other of answers.slice(1)) assert.deepEqual(other.value, answers[0].value, `${other.name} vs ${answers[0].name}`)
        const usage = answers[0].value.usage.ok
        assert.ok(usage.alice.success >= 1 && usage.alice.blocked >= 1, JSON.stringify(usage.alice))
        assert.ok(answers[0].value.top.ok.denied.length > 0)
      })
    }
  }
})

// =================================================================================================
// Redis.memory(): analytics and protection need Redis
// =================================================================================================

describe('Redis.memory() with analytics / enableProtection', () => {
  const message = 'ratelimit-native: `analytics` and `enableProtection` keep their data in Redis; they cannot be used with Redis.memory()'

  for (const opts of [{ analytics: true }, { enableProtection: true }, { analytics: true, enableProtection: true }]) {
    test(`${JSON.stringify(opts)} → the constructor throws`, () => {
      assert.throws(() => new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.fixedWindow(1, '1 s'), ...opts }), { name: 'TypeError', message })
    })
  }

  test('analytics: false / enableProtection: false are fine', async () => {
    const rl = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.fixedWindow(1, '10 s'), prefix: fresh(), analytics: false, enableProtection: false })
    assert.equal((await rl.limit('u')).success, true)
  })
})
