// A mixed fleet: the published `@upstash/ratelimit` 2.2.0 and our Ratelimit (on each of its three
// store paths) sharing ONE prefix on one Redis behave as a single limiter — same keys, same
// values, same arithmetic — whether the calls alternate or run concurrently.
// Date.now is frozen (both libraries read it) so no window boundary falls inside a test.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { Ratelimit as UpstreamRatelimit } from '@upstash/ratelimit'
import { Redis as UpstashRedis } from '@upstash/redis'
import { Ratelimit, Redis } from '../index.js'
import { startStack } from './helpers/servers.mjs'
import { mulberry32, parseReplies, redisBatch, redisOne, keysOf, hash } from './helpers/direct-redis.mjs'

const fresh = () => `rlf${randomBytes(5).toString('hex')}`
const omitPending = ({ pending, ...rest }) => rest

const realNow = Date.now
const clock = {
  t: 0,
  install(t) {
    clock.t = t
    Date.now = () => clock.t
  },
  restore() {
    Date.now = realNow
  },
}
async function withClock(t, fn) {
  clock.install(t)
  try {
    return await fn()
  } finally {
    clock.restore()
  }
}
const midWindow = (windowMs) => Math.floor(realNow() / windowMs) * windowMs + Math.floor(windowMs / 2)

let stack
const upstash = () => new UpstashRedis({ url: stack.rest.url, token: stack.rest.token, enableTelemetry: false })
const OUR_CLIENTS = {
  upstash: () => upstash(),
  own: () => new Redis({ url: stack.rest.url, token: stack.rest.token }),
  compat: () => {
    const inner = upstash()
    return {
      evalsha: (...a) => inner.evalsha(...a),
      eval: (...a) => inner.eval(...a),
      get: (...a) => inner.get(...a),
      set: (...a) => inner.set(...a),
      del: (...a) => inner.del(...a),
    }
  },
}

before(async () => {
  stack = await startStack()
})
after(async () => {
  clock.restore()
  await stack?.stop()
})

const ALGORITHMS = {
  fixedWindow: { make: (R) => R.fixedWindow(10, '60 s'), reset: (now) => (Math.floor(now / 60000) + 1) * 60000 },
  slidingWindow: { make: (R) => R.slidingWindow(10, '60 s'), reset: (now) => (Math.floor(now / 60000) + 1) * 60000 },
  tokenBucket: { make: (R) => R.tokenBucket(1, '60 s', 10), reset: (now) => now + 60000 },
}

/** [upstream, ours…] on one prefix. */
function fleet(make, prefix, ourPaths, options = {}) {
  const opts = { prefix, ephemeralCache: false, ...options }
  return [
    { name: 'upstream', rl: new UpstreamRatelimit({ redis: upstash(), limiter: make(UpstreamRatelimit), ...opts }) },
    ...ourPaths.map((p) => ({ name: `ours/${p}`, rl: new Ratelimit({ redis: OUR_CLIENTS[p](), limiter: make(Ratelimit), ...opts }) })),
  ]
}

const FLEETS = {
  'upstream + ours(@upstash/redis)': ['upstash'],
  'upstream + ours(own Redis)': ['own'],
  'upstream + ours(plain object)': ['compat'],
  'upstream + all three of ours': ['upstash', 'own', 'compat'],
}

for (const [algo, { make, reset: resetAt }] of Object.entries(ALGORITHMS)) {
  describe(`fleet: ${algo}(10)`, () => {
    for (const [fleetName, paths] of Object.entries(FLEETS)) {
      test(`${fleetName}: 20 alternating calls → exactly the first 10 pass, remaining counts down across all`, async () => {
        const now = midWindow(60000)
        await withClock(now, async () => {
          const P = fresh()
          const members = fleet(make, P, paths)
          const reset = resetAt(now)
          const got = []
          for (let i = 0; i < 20; i++) got.push(omitPending(await members[i % members.length].rl.limit('u')))
          const expected = Array.from({ length: 20 }, (_, i) => ({ success: i < 10, limit: 10, remaining: Math.max(0, 9 - i), reset }))
          assert.deepEqual(got, expected)
          for (const m of members) assert.deepEqual(await m.rl.getRemaining('u'), { remaining: 0, reset, limit: 10 }, m.name)
          // a reset by any member is seen by all
          const last = members[members.length - 1]
          await last.rl.resetUsedTokens('u')
          for (const m of members) assert.deepEqual(await m.rl.getRemaining('u'), { remaining: 10, reset: algo === 'tokenBucket' ? now + 60000 : reset, limit: 10 }, m.name)
          assert.deepEqual(omitPending(await members[0].rl.limit('u', { rate: 4 })), { success: true, limit: 10, remaining: 6, reset })
          assert.deepEqual(omitPending(await last.rl.limit('u', { rate: 4 })), { success: true, limit: 10, remaining: 2, reset })
          await members[0].rl.resetUsedTokens('u')
          assert.deepEqual(await last.rl.getRemaining('u'), { remaining: 10, reset: algo === 'tokenBucket' ? now + 60000 : reset, limit: 10 })
        })
      })
    }

    test('50 concurrent calls split between upstream and ours admit exactly 10', async () => {
      const now = midWindow(60000)
      await withClock(now, async () => {
        const P = fresh()
        const members = fleet(make, P, ['upstash', 'own', 'compat'])
        const results = await Promise.all(Array.from({ length: 50 }, (_, i) => members[i % members.length].rl.limit('u')))
        const successes = results.filter((r) => r.success)
        assert.equal(successes.length, 10)
        assert.deepEqual(successes.map((r) => r.remaining).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        for (const r of results) {
          assert.equal(r.limit, 10)
          assert.equal(r.reset, resetAt(now))
          if (!r.success) assert.equal(r.remaining, 0)
        }
        // both implementations got some of the admitted calls' answers
        const byMember = members.map((m, k) => results.filter((_, i) => i % members.length === k).length)
        assert.deepEqual(byMember, [13, 13, 12, 12])
        const state = algo === 'tokenBucket' ? await redisBatch(stack.redis, [['HGET', `${P}:u`, 'tokens']]) : await redisBatch(stack.redis, [['GET', `${P}:u:${Math.floor(now / 60000)}`]])
        assert.deepEqual(state, [algo === 'tokenBucket' ? '0' : algo === 'fixedWindow' ? '50' : '10'])
      })
    })

    test('50 concurrent calls with the ephemeral cache on every member still admit exactly 10', async () => {
      const now = midWindow(60000)
      await withClock(now, async () => {
        const members = fleet(make, fresh(), ['upstash', 'own', 'compat'], { ephemeralCache: undefined })
        const first = await Promise.all(Array.from({ length: 50 }, (_, i) => members[i % members.length].rl.limit('u')))
        assert.equal(first.filter((r) => r.success).length, 10)
        // after the flood every member has seen a rejection from Redis → a cacheBlock next
        const again = await Promise.all(members.map((m) => m.rl.limit('u')))
        for (const r of again) assert.deepEqual(omitPending(r), { success: false, limit: 10, remaining: 0, reset: resetAt(now), reason: 'cacheBlock' })
      })
    })

    test('a seeded mixed sequence on the fleet equals the same sequence on upstream alone', async () => {
      const rnd = mulberry32(algo.length * 7919)
      const rates = [1, 1, 1, 2, 3, 0, -1, -2, 5, 12]
      const ops = Array.from({ length: 80 }, () => {
        const x = rnd()
        if (x < 0.7) return { op: 'limit', id: rnd() < 0.5 ? 'a' : 'b', rate: rates[Math.floor(rnd() * rates.length)] }
        if (x < 0.85) return { op: 'getRemaining', id: rnd() < 0.5 ? 'a' : 'b' }
        return { op: 'advance', ms: Math.floor(rnd() * 9000) }
      })
      // One start time for both runs: each reading the real clock itself, the two runs fell
      // into different minutes when they straddled one (every reset then 60 s apart).
      const start = Math.floor(realNow() / 60000) * 60000 + 777
      const run = async (members) => {
        const out = []
        clock.install(start)
        try {
          for (let i = 0; i < ops.length; i++) {
            const op = ops[i]
            const m = members[i % members.length].rl
            if (op.op === 'advance') clock.t += op.ms
            else if (op.op === 'limit') out.push(omitPending(await m.limit(op.id, { rate: op.rate })))
            else out.push(await m.getRemaining(op.id))
          }
        } finally {
          clock.restore()
        }
        return out
      }
      const alone = await run([{ rl: new UpstreamRatelimit({ redis: upstash(), limiter: make(UpstreamRatelimit), prefix: fresh(), ephemeralCache: false }) }])
      const mixed = await run(fleet(make, fresh(), ['upstash', 'own', 'compat']))
      assert.ok(alone.some((r) => r.success === false), 'the sequence hits the limit')
      assert.deepEqual(mixed, alone)
    })
  })
}

describe('fleet: dynamic limits are shared', () => {
  test('a dynamic limit set by upstream applies to ours and vice versa', async () => {
    const now = midWindow(60000)
    await withClock(now, async () => {
      const P = fresh()
      const [up, ...ours] = fleet(ALGORITHMS.fixedWindow.make, P, ['upstash', 'own', 'compat'], { dynamicLimits: true })
      await up.rl.setDynamicLimit({ limit: 3 })
      for (const o of ours) assert.deepEqual(await o.rl.getDynamicLimit(), { dynamicLimit: 3 }, o.name)
      const got = []
      for (const m of [up, ...ours]) got.push(omitPending(await m.rl.limit('u')))
      const reset = ALGORITHMS.fixedWindow.reset(now)
      assert.deepEqual(got, [
        { success: true, limit: 3, remaining: 2, reset },
        { success: true, limit: 3, remaining: 1, reset },
        { success: true, limit: 3, remaining: 0, reset },
        { success: false, limit: 3, remaining: 0, reset },
      ])
      await ours[0].rl.setDynamicLimit({ limit: 7 })
      assert.deepEqual(await up.rl.getDynamicLimit(), { dynamicLimit: 7 })
      assert.deepEqual(await up.rl.getRemaining('u'), { remaining: 3, reset, limit: 7 })
      await ours[1].rl.setDynamicLimit({ limit: false })
      assert.deepEqual(await up.rl.getDynamicLimit(), { dynamicLimit: null })
      assert.deepEqual(await ours[2].rl.getRemaining('u'), { remaining: 6, reset, limit: 10 })
    })
  })
})
