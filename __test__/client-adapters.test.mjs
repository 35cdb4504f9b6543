// The Redis clients users already have as `redis:` — ioredis and node-redis (v5), against a real
// redis-server: recognised without configuration, every algorithm exact under a burst, the same
// keys and results as our own redis:// client (one database shared), NOSCRIPT → EVAL, dynamic
// limits, getRemaining / resetUsedTokens, analytics and the deny list through the client's own
// methods; an object no limiter can call is refused at construction.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import IORedis from 'ioredis'
import { createClient } from 'redis'
import { Analytics, MultiRegionRatelimit, Ratelimit, Redis } from '../index.js'
import { nativeOnly } from './helpers/engine.mjs'
import { startRedis } from './helpers/servers.mjs'

const T = { timeout: 30_000 }
const fresh = () => `ca${randomBytes(4).toString('hex')}`
const limiters = {
  fixedWindow: () => Ratelimit.fixedWindow(10, '30 s'),
  slidingWindow: () => Ratelimit.slidingWindow(10, '30 s'),
  tokenBucket: () => Ratelimit.tokenBucket(1, '30 s', 10),
}

let redis
const clients = {}
before(async () => {
  redis = await startRedis()
  clients.ioredis = new IORedis({ host: '127.0.0.1', port: redis.port, password: redis.password, lazyConnect: false, maxRetriesPerRequest: 1 })
  clients['node-redis'] = createClient({ url: redis.url })
  await clients['node-redis'].connect()
})
after(async () => {
  clients.ioredis?.disconnect()
  await clients['node-redis']?.quit().catch(() => {})
  await redis?.stop()
})

for (const name of ['ioredis', 'node-redis']) {
  describe(`${name} as the client`, () => {
    for (const [algorithm, make] of Object.entries(limiters)) {
      test(`${algorithm}: 15 calls at once against 10 admit exactly 10; getRemaining and resetUsedTokens`, T, async () => {
        const rl = new Ratelimit({ redis: clients[name], limiter: make(), prefix: fresh(), ephemeralCache: false })
        const results = await Promise.all(Array.from({ length: 15 }, () => rl.limit('user')))
        assert.equal(results.filter((r) => r.success).length, 10)
        assert.equal((await rl.getRemaining('user')).remaining, 0)
        await rl.resetUsedTokens('user')
        assert.equal((await rl.getRemaining('user')).remaining, 10)
      })
    }

    test('the scripts run without the key-locking line from the first call, NOSCRIPT → EVAL', T, async () => {
      await redis.command(['SCRIPT', 'FLUSH'])
      const before = await commandCalls(['eval', 'evalsha'])
      const rl = new Ratelimit({ redis: clients[name], limiter: Ratelimit.slidingWindow(5, '30 s'), prefix: fresh() })
      assert.equal((await rl.limit('u')).remaining, 4)
      assert.equal((await rl.limit('u')).remaining, 3)
      const after = await commandCalls(['eval', 'evalsha'])
      // First call: EVALSHA (NOSCRIPT) then EVAL; second: EVALSHA. No failed shebang round.
      assert.deepEqual({ eval: after.eval - before.eval, evalsha: after.evalsha - before.evalsha }, { eval: 1, evalsha: 2 })
    })

    test('dynamic limits, analytics and the deny list go through the client', T, async () => {
      const prefix = fresh()
      const dynamic = new Ratelimit({ redis: clients[name], limiter: Ratelimit.fixedWindow(10, '30 s'), prefix, dynamicLimits: true, ephemeralCache: false })
      await dynamic.setDynamicLimit({ limit: 2 })
      assert.deepEqual(await dynamic.getDynamicLimit(), { dynamicLimit: 2 })
      const statuses = []
      for (let i = 0; i < 3; i++) statuses.push((await dynamic.limit('d')).success)
      assert.deepEqual(statuses, [true, true, false])

      const protectedPrefix = fresh()
      await redis.command(['SADD', `${protectedPrefix}:denyList:all`, '192.0.2.66'])
      await redis.command(['SET', `${protectedPrefix}:ipDenyListStatus`, 'disabled'])
      const guarded = new Ratelimit({ redis: clients[name], limiter: Ratelimit.fixedWindow(5, '30 s'), prefix: protectedPrefix, analytics: true, enableProtection: true })
      const allowed = await guarded.limit('user', { ip: '192.0.2.1' })
      await allowed.pending
      const denied = await guarded.limit('user', { ip: '192.0.2.66' })
      await denied.pending
      assert.deepEqual([allowed.success, denied.success, denied.reason, denied.deniedValue], [true, false, 'denyList', '192.0.2.66'])
      const analytics = new Analytics({ redis: clients[name], prefix: protectedPrefix })
      const usage = await analytics.getUsage(Date.now() - 3_600_000)
      // Both events written through the client: the allowed call under its identifier, the
      // denied one under the denied value (as upstream records it; getUsage counts it as success).
      assert.deepEqual(usage.user, { success: 1, blocked: 0 })
      assert.deepEqual(usage['192.0.2.66'], { success: 1, blocked: 0 })
    })

    test('MultiRegionRatelimit over two such clients', T, async () => {
      const rl = new MultiRegionRatelimit({ redis: [clients[name], clients[name === 'ioredis' ? 'node-redis' : 'ioredis']], limiter: MultiRegionRatelimit.fixedWindow(3, '30 s'), prefix: fresh() })
      const results = []
      for (let i = 0; i < 4; i++) {
        const r = await rl.limit('u')
        await r.pending
        results.push(r.success)
      }
      assert.deepEqual(results, [true, true, true, false])
    })

    test('the same keys and counts as our own redis:// client on the same database', { ...T, ...nativeOnly }, async () => {
      const prefix = fresh()
      const theirs = new Ratelimit({ redis: clients[name], limiter: Ratelimit.slidingWindow(10, '30 s'), prefix, ephemeralCache: false })
      const ours = new Ratelimit({ redis: new Redis({ url: redis.url }), limiter: Ratelimit.slidingWindow(10, '30 s'), prefix, ephemeralCache: false })
      for (let i = 0; i < 4; i++) await theirs.limit('shared')
      assert.equal((await ours.limit('shared')).remaining, 5)
      assert.equal((await theirs.limit('shared')).remaining, 4)
    })
  })
}

describe('our native connection in place of a standalone client', () => {
  const methodOf = { ioredis: 'evalsha', 'node-redis': 'evalSha' }
  for (const name of ['ioredis', 'node-redis']) {
    test(`${name}: a limiter reaches the client's server over our own connection; the client's methods are not called`, { ...T, ...nativeOnly }, async (t) => {
      const proto = Object.getPrototypeOf(clients[name])
      const owner = Object.prototype.hasOwnProperty.call(proto, methodOf[name]) ? proto : Object.getPrototypeOf(proto)
      t.mock.method(owner, methodOf[name])
      const prefix = fresh()
      const rl = new Ratelimit({ redis: clients[name], limiter: Ratelimit.fixedWindow(3, '30 s'), prefix, ephemeralCache: false })
      const results = await Promise.all(Array.from({ length: 5 }, () => rl.limit('u')))
      assert.equal(results.filter((r) => r.success).length, 3)
      assert.equal(owner[methodOf[name]].mock.callCount(), 0)
      assert.equal(await redis.command(['GET', `${prefix}:u:${Math.floor(Date.now() / 30_000)}`]), `$1\r\n5\r\n`)
    })
  }

  test("a client whose method the user replaced, or with an ioredis keyPrefix, keeps being called", T, async () => {
    let calls = 0
    const replaced = new IORedis({ host: '127.0.0.1', port: redis.port, password: redis.password, maxRetriesPerRequest: 1 })
    const original = replaced.evalsha.bind(replaced)
    replaced.evalsha = (...args) => {
      calls++
      return original(...args)
    }
    const prefixed = new IORedis({ host: '127.0.0.1', port: redis.port, password: redis.password, keyPrefix: 'kp:', maxRetriesPerRequest: 1 })
    try {
      const prefix = fresh()
      const a = new Ratelimit({ redis: replaced, limiter: Ratelimit.fixedWindow(3, '30 s'), prefix, ephemeralCache: false })
      assert.equal((await a.limit('u')).remaining, 2)
      assert.ok(calls >= 1)
      const b = new Ratelimit({ redis: prefixed, limiter: Ratelimit.fixedWindow(3, '30 s'), prefix, ephemeralCache: false })
      assert.equal((await b.limit('u')).remaining, 2)
      assert.equal(await redis.command(['GET', `kp:${prefix}:u:${Math.floor(Date.now() / 30_000)}`]), `$1\r\n1\r\n`)
    } finally {
      replaced.disconnect()
      prefixed.disconnect()
    }
  })
})

test('an object no limiter can call is refused at construction, with what is accepted', () => {
  for (const bad of [{}, { get: () => null, set: () => 'OK' }, { evalsha: 1, get: () => null, set: () => 'OK' }]) {
    assert.throws(
      () => new Ratelimit({ redis: bad, limiter: Ratelimit.fixedWindow(1, '1 s') }),
      /`redis` is not a Redis client this package can call\. Accepted: .*an ioredis Redis or Cluster, a node-redis client/,
    )
  }
  assert.throws(() => new MultiRegionRatelimit({ redis: [{}], limiter: MultiRegionRatelimit.fixedWindow(1, '1 s') }), /redis\[0\] is not a Redis client/)
})

/** Calls of each command so far (INFO commandstats). */
async function commandCalls(names) {
  const text = await redis.command(['INFO', 'commandstats'])
  const calls = {}
  for (const name of names) calls[name] = Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(text)?.[1] ?? 0)
  return calls
}
