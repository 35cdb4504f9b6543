// Script-cache loss and Redis restarts under load. SCRIPT FLUSH sent straight to Redis (behind
// the REST server's back) must never reach a caller (EVALSHA → NOSCRIPT → EVAL, on the native
// path and through a user's client); a Redis restart on the same port must be invisible to
// calls issued once Redis is back, and calls during the down time must answer per
// timeout / failClosed or fail with a clear message. What callers saw is reported per phase.

import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { after, before, test } from 'node:test'

import { Redis as UpstashRedis } from '@upstash/redis'

import { freePort, startRedis } from '../__test__/helpers/servers.mjs'
import { Ratelimit, Redis, everyView, outcomeOf, outcomes, sleep, startRedisOn, startRestServerOn, steadyLoad, watchUnhandled } from './helpers.mjs'

const TOKEN = randomBytes(16).toString('hex')

let redis // the first redis-server (from the shared helper)
let reborn // the restarted one, same port and password
let rest
let unhandled
before(async () => {
  unhandled = watchUnhandled()
  redis = await startRedis()
  rest = await startRestServerOn({ redisUrl: redis.url, token: TOKEN, port: await freePort() })
})
after(async () => {
  unhandled.dispose()
  await rest?.stop()
  await reborn?.stop()
  await redis?.stop()
})

const ours = () => new Redis({ url: rest.url, token: TOKEN })
const upstash = () => new UpstashRedis({ url: rest.url, token: TOKEN, enableTelemetry: false })
/** A user's own client object: the compat path (EVALSHA / EVAL through its methods). */
const compat = () => {
  const r = upstash()
  return { evalsha: (...a) => r.evalsha(...a), eval: (...a) => r.eval(...a), get: (k) => r.get(k), set: (...a) => r.set(...a), del: (...k) => r.del(...k) }
}

const make = (client, limiter, extra = {}) => new Ratelimit({ redis: client, limiter, prefix: `rs-${randomUUID()}`, ...extra })

function noSecrets(records) {
  for (const r of records) {
    const views = everyView(r.error ?? r.result?.error)
    assert.ok(!views.includes(TOKEN), 'no REST token in what callers see')
    assert.ok(!views.includes(redis.password), 'no Redis password in what callers see')
  }
}

test('SCRIPT FLUSH (sent straight to Redis) under load: no error and no timeout reaches callers', async (t) => {
  const limiters = {
    oursFixed: make(ours(), Ratelimit.fixedWindow(1_000_000, '1 h')),
    oursSliding: make(ours(), Ratelimit.slidingWindow(1_000_000, '1 h')),
    oursBucket: make(ours(), Ratelimit.tokenBucket(1000, '1 s', 1_000_000)),
    oursCached: make(ours(), Ratelimit.cachedFixedWindow(1_000_000, '1 h')),
    upstashSliding: make(upstash(), Ratelimit.slidingWindow(1_000_000, '1 h')),
    compatSliding: make(compat(), Ratelimit.slidingWindow(1_000_000, '1 h')),
    compatBucket: make(compat(), Ratelimit.tokenBucket(1000, '1 s', 1_000_000)),
  }
  const load = steadyLoad(limiters, { tickMs: 10, perTick: 1, keys: 50 })
  const flushes = []
  try {
    for (const mode of [[], ['ASYNC'], ['SYNC'], []]) {
      await sleep(400)
      flushes.push((await redis.command(['SCRIPT', 'FLUSH', ...mode])).trim())
    }
    await sleep(400)
  } finally {
    load.stop()
  }
  assert.equal(await load.settled(10_000), 0)
  t.diagnostic(`SCRIPT FLUSH replies: ${JSON.stringify(flushes)}`)
  assert.deepEqual(flushes, ['+OK', '+OK', '+OK', '+OK'])
  for (const name of Object.keys(limiters)) {
    const recs = load.records.filter((r) => r.name === name)
    t.diagnostic(`${name}: ${JSON.stringify(outcomes(recs))}`)
    assert.ok(recs.length > 100)
    assert.deepEqual(outcomes(recs), { ok: recs.length }, `${name}: every call answered normally`)
  }
  // Pending background writes (cachedFixedWindow) also survived.
  const pendings = load.records.filter((r) => r.result).map((r) => r.result.pending)
  const failed = (await Promise.allSettled(pendings)).filter((p) => p.status === 'rejected')
  assert.equal(failed.length, 0, `pending writes rejected: ${failed.slice(0, 2).map((f) => f.reason?.message)}`)
  assert.deepEqual(unhandled.seen, [])
})

test('Redis restart (stop + start on the same port and password) under load: what callers see per phase', async (t) => {
  const limiter = () => Ratelimit.slidingWindow(1_000_000, '1 h')
  const limiters = {
    default5s: make(ours(), limiter()), // upstream defaults: timeout 5000, fail-open
    timeout200: make(ours(), limiter(), { timeout: 200 }),
    failClosed: make(ours(), limiter(), { failClosed: true }),
    upstashClient: make(upstash(), limiter()),
    compatClient: make(compat(), limiter()),
  }
  const load = steadyLoad(limiters, { tickMs: 10, perTick: 1, keys: 50 })
  let tDown
  let tUp
  try {
    await sleep(800)
    tDown = Date.now()
    await redis.stop() // SIGTERM, waits for the exit
    const stoppedIn = Date.now() - tDown
    await sleep(Math.max(0, 1500 - (Date.now() - tDown)))
    reborn = await startRedisOn(redis.port, redis.password)
    tUp = Date.now()
    t.diagnostic(`Redis down for ${tUp - tDown} ms (SIGTERM to exit: ${stoppedIn} ms; tUp = first PONG of the new redis-server)`)
    await sleep(3000)
  } finally {
    load.stop()
  }
  assert.equal(await load.settled(10_000), 0, 'every call settled')
  noSecrets(load.records)

  for (const name of Object.keys(limiters)) {
    const recs = load.records.filter((r) => r.name === name)
    const before = recs.filter((r) => r.end < tDown)
    const during = recs.filter((r) => r.start >= tDown && r.start < tUp)
    const afterUp = recs.filter((r) => r.start >= tUp)
    const straddle = recs.filter((r) => r.start < tDown && r.end >= tDown)
    t.diagnostic(`${name}: before ${JSON.stringify(outcomes(before))}`)
    t.diagnostic(`${name}: in flight at the stop ${JSON.stringify(outcomes(straddle))}`)
    t.diagnostic(`${name}: issued while down ${JSON.stringify(outcomes(during))}`)
    t.diagnostic(`${name}: issued after Redis is back ${JSON.stringify(outcomes(afterUp))}`)
    const ms = afterUp.map((r) => r.ms).sort((a, b) => a - b)
    t.diagnostic(`${name}: after-up latency p50 ${ms[ms.length >> 1]?.toFixed(1)} max ${ms[ms.length - 1]?.toFixed(1)} ms`)

    assert.deepEqual(outcomes(before), { ok: before.length }, `${name}: normal before the stop`)
    // Issued once Redis is back: no error reaches the caller (timeouts of a 200 ms limiter
    // right after the restart are answers, not errors, and only allowed in the first second).
    const errors = afterUp.filter((r) => r.error || r.result?.error)
    assert.equal(errors.length, 0, `${name}: errors after Redis is back: ${errors.slice(0, 3).map((r) => outcomeOf(r))}`)
    const lateNonOk = afterUp.filter((r) => r.start >= tUp + 1000 && outcomeOf(r) !== 'ok')
    assert.equal(lateNonOk.length, 0, `${name}: from 1 s after the restart every answer is normal: ${JSON.stringify(outcomes(lateNonOk))}`)
    // While down: each outcome is one of the documented ones.
    for (const r of during) {
      const o = outcomeOf(r)
      const allowed =
        o === 'ok' ||
        (name === 'timeout200' && o === 'timeout (fail-open)') ||
        (name === 'failClosed' && (o === 'failClosed (timeout)' || o.startsWith('failClosed+error'))) ||
        (name !== 'failClosed' && o.startsWith('rejected: '))
      assert.ok(allowed, `${name}: unexpected outcome while down: ${o}`)
      if (o.startsWith('rejected: ') || o.startsWith('failClosed+error')) {
        assert.match(o, /Redis|unreachable|connect|HTTP 50\d|ECONNREFUSED|closed/i, `${name}: the error says what failed: ${o}`)
      }
    }
  }
  assert.deepEqual(unhandled.seen, [])
})
