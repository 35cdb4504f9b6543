// Conformance scenarios for the drop-in `Ratelimit`, from
// /work/shared/reference/upstash-ratelimit-behaviour.md §9 (items 1–10, 18–21, 23, 24), plus the
// API-shape and error-handling rules of §1.3–§1.6, §3.3 and §3.4 and our deliberate differences
// (docs/COMPATIBILITY.md: escaped reset globs, a TTL on cachedFixedWindow keys, validated factory
// numbers, "Window size is too large").
//
// Every Redis-backed scenario runs on the three ways of handing our Ratelimit a store:
//   upstash — an `@upstash/redis` instance (native fast path)
//   own     — this package's `Redis` (native fast path)
//   compat  — a plain object whose evalsha/eval/get/set/del forward to an `@upstash/redis`
//             instance (our code must call those methods; the calls are counted)
// State is read directly from redis-server (not through the REST server).

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import { performance } from 'node:perf_hooks'
import { after, before, describe, test } from 'node:test'
import { Redis as UpstashRedis } from '@upstash/redis'
import { Ratelimit, Redis } from '../index.js'
import { startStack } from './helpers/servers.mjs'
import { parseReplies, redisBatch, redisOne, keysOf, hash } from './helpers/direct-redis.mjs'

// ---------------------------------------------------------------------------------------------
// helpers

const fresh = () => `rls${randomBytes(5).toString('hex')}`
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const omitPending = ({ pending, ...rest }) => rest

/** Date.now is read by our JS layer and by upstream; freezing it makes windows deterministic. */
const realNow = Date.now
const clock = {
  set(t) {
    Date.now = () => t
  },
  restore() {
    Date.now = realNow
  },
}
/** Runs `fn` with Date.now frozen at `t`; always restores the real clock. */
async function frozenAt(t, fn) {
  clock.set(t)
  try {
    return await fn()
  } finally {
    clock.restore()
  }
}
/** The middle of the current aligned window of `windowMs`: far from both boundaries. */
const midWindow = (windowMs) => Math.floor(realNow() / windowMs) * windowMs + Math.floor(windowMs / 2)
const W = (now, windowMs) => (Math.floor(now / windowMs) + 1) * windowMs

/** `INFO commandstats` → calls of evalsha and eval. */
async function scriptCalls(stack) {
  const text = await redisOne(stack.redis, 'INFO', 'commandstats')
  const calls = (name) => Number(text.match(new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm'))?.[1] ?? 0)
  return { evalsha: calls('evalsha'), eval: calls('eval') }
}
const delta = (a, b) => ({ evalsha: b.evalsha - a.evalsha, eval: b.eval - a.eval })

/** A plain-object client forwarding to `inner`, counting the calls of each method. */
function forwardingClient(inner) {
  const calls = { evalsha: 0, eval: 0, get: 0, set: 0, del: 0 }
  const client = {
    evalsha: (...a) => (calls.evalsha++, inner.evalsha(...a)),
    eval: (...a) => (calls.eval++, inner.eval(...a)),
    get: (...a) => (calls.get++, inner.get(...a)),
    set: (...a) => (calls.set++, inner.set(...a)),
    del: (...a) => (calls.del++, inner.del(...a)),
  }
  return { client, calls }
}

// ---------------------------------------------------------------------------------------------

let stack
const upstash = () => new UpstashRedis({ url: stack.rest.url, token: stack.rest.token, enableTelemetry: false })
const PATHS = {
  upstash: () => ({ redis: upstash(), calls: null }),
  own: () => ({ redis: new Redis({ url: stack.rest.url, token: stack.rest.token }), calls: null }),
  compat: () => {
    const { client, calls } = forwardingClient(upstash())
    return { redis: client, calls }
  },
}

before(async () => {
  stack = await startStack()
})
after(async () => {
  clock.restore()
  await stack?.stop()
})

// ---------------------------------------------------------------------------------------------
// §1.3 / §1.5 / Q16 / §9 item 24: shape

describe('API shape', () => {
  test('Ratelimit.name is "RegionRatelimit" and the methods are own enumerable arrow functions', () => {
    assert.equal(Ratelimit.name, 'RegionRatelimit')
    const rl = new Ratelimit({ redis: upstash(), limiter: Ratelimit.fixedWindow(1, '1 s') })
    const keys = Object.keys(rl)
    for (const m of ['limit', 'blockUntilReady', 'resetUsedTokens', 'getRemaining', 'setDynamicLimit', 'getDynamicLimit']) {
      assert.ok(keys.includes(m), `${m} is an own enumerable property`)
      assert.equal(typeof rl[m], 'function')
      assert.equal(rl[m].prototype, undefined, `${m} is an arrow function`)
      assert.equal(Object.hasOwn(Ratelimit.prototype, m), false, `${m} is not on the prototype`)
    }
    for (const f of ['fixedWindow', 'slidingWindow', 'tokenBucket', 'cachedFixedWindow']) {
      assert.equal(typeof Ratelimit[f], 'function')
    }
  })

  test('defaults: prefix "@upstash/ratelimit", timeout 5000, dynamicLimits false', () => {
    const rl = new Ratelimit({ redis: upstash(), limiter: Ratelimit.fixedWindow(1, '1 s') })
    assert.equal(rl.prefix, '@upstash/ratelimit')
    assert.equal(rl.timeout, 5000)
    assert.equal(rl.dynamicLimits, false)
  })

  for (const [path, make] of Object.entries(PATHS)) {
    test(`[${path}] item 24: destructured methods work without \`this\``, async () => {
      const { redis } = make()
      const { limit, getRemaining, resetUsedTokens } = new Ratelimit({
        redis,
        limiter: Ratelimit.fixedWindow(5, '1 h'),
        prefix: fresh(),
        ephemeralCache: false,
      })
      const r = await limit('x')
      assert.equal(r.success, true)
      assert.equal(r.limit, 5)
      assert.equal(r.remaining, 4)
      assert.equal((await getRemaining('x')).remaining, 4)
      assert.equal(await resetUsedTokens('x'), undefined)
      assert.equal((await getRemaining('x')).remaining, 5)
    })
  }
})

// ---------------------------------------------------------------------------------------------
// construction errors (ours: validated, thrown synchronously)

describe('construction errors are synchronous and clear', () => {
  test('missing config, missing redis, non-function limiter', () => {
    const limiter = Ratelimit.fixedWindow(1, '1 s')
    assert.throws(() => new Ratelimit(), Error)
    assert.throws(() => new Ratelimit({ limiter }), /redis/)
    assert.throws(() => new Ratelimit({ redis: undefined, limiter }), /redis/)
    assert.throws(() => new Ratelimit({ redis: null, limiter }), /redis/)
    assert.throws(() => new Ratelimit({ redis: upstash() }), /limiter/)
    assert.throws(() => new Ratelimit({ redis: upstash(), limiter: 'fixedWindow' }), /limiter/)
    assert.throws(() => new Ratelimit({ redis: upstash(), limiter: {} }), /limiter/)
  })

  for (const bad of [0, -1, NaN, Infinity, -Infinity]) {
    test(`factories reject tokens/refillRate/maxTokens = ${bad}`, () => {
      assert.throws(() => Ratelimit.fixedWindow(bad, '10 s'), /tokens/)
      assert.throws(() => Ratelimit.slidingWindow(bad, '10 s'), /tokens/)
      assert.throws(() => Ratelimit.cachedFixedWindow(bad, '10 s'), /tokens/)
      assert.throws(() => Ratelimit.tokenBucket(bad, '10 s', 5), /refillRate/)
      assert.throws(() => Ratelimit.tokenBucket(1, '10 s', bad), /maxTokens/)
    })
  }
})

// ---------------------------------------------------------------------------------------------
// §9 item 1: durations

describe('item 1: durations', () => {
  const accepted = {
    '10 s': 10000,
    '10s': 10000,
    '1.5 s': 1500,
    '0.5ms': 1,
    '1.5ms': 2,
    '1 w': 604800000,
    '2d': 172800000,
    '1 m': 60000,
    '1 h': 3600000,
    '1\ts': 1000,
  }

  test('accepted windows have the upstream value in ms (tokenBucket getRemaining reset = now + interval)', async () => {
    const redis = upstash()
    const now = 1_000_000
    await frozenAt(now, async () => {
      for (const [d, ms] of Object.entries(accepted)) {
        const rl = new Ratelimit({ redis, limiter: Ratelimit.tokenBucket(1, d, 5), prefix: fresh(), ephemeralCache: false })
        const r = await rl.getRemaining('fresh')
        assert.deepEqual(r, { remaining: 5, reset: now + ms, limit: 5 }, d)
      }
    })
  })

  test('accepted windows give fixedWindow reset = window (Date.now frozen at 0)', async () => {
    const redis = upstash()
    await frozenAt(0, async () => {
      for (const d of ['10 s', '10s', '1.5 s', '0.5ms', '1.5ms', '1 w', '2d']) {
        const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(3, d), prefix: fresh(), ephemeralCache: false })
        const r = await rl.limit('u')
        assert.deepEqual(omitPending(r), { success: true, limit: 3, remaining: 2, reset: accepted[d] }, d)
      }
    })
  })

  test('"at least 1 ms" errors are thrown synchronously by every factory', () => {
    for (const d of ['0 s', '0.4 ms', '0ms', '0 w']) {
      const message = `Window size must be at least 1 ms, got: ${d}`
      assert.throws(() => Ratelimit.fixedWindow(1, d), { message })
      assert.throws(() => Ratelimit.slidingWindow(1, d), { message })
      assert.throws(() => Ratelimit.cachedFixedWindow(1, d), { message })
      assert.throws(() => Ratelimit.tokenBucket(1, d, 1), { message })
    }
  })

  test('"Unable to parse" errors are thrown synchronously by every factory', () => {
    for (const d of ['10 sec', ' 1 s', '1 S', '1e3 ms', '-1 s', '1  s', '.5 s', '1. s', '', '10', 's']) {
      const message = `Unable to parse window size: ${d}`
      assert.throws(() => Ratelimit.fixedWindow(1, d), { message })
      assert.throws(() => Ratelimit.slidingWindow(1, d), { message })
      assert.throws(() => Ratelimit.cachedFixedWindow(1, d), { message })
      assert.throws(() => Ratelimit.tokenBucket(1, d, 1), { message })
    }
  })

  test('ours: durations above 2^53 ms throw "Window size is too large: …"', () => {
    assert.doesNotThrow(() => Ratelimit.fixedWindow(1, '9007199254740991 ms'))
    assert.doesNotThrow(() => Ratelimit.tokenBucket(1, '1000 w', 1))
    for (const d of ['20000000 w', '99999999999999999 ms', '200000000000 d']) {
      for (const make of [
        () => Ratelimit.fixedWindow(1, d),
        () => Ratelimit.slidingWindow(1, d),
        () => Ratelimit.cachedFixedWindow(1, d),
        () => Ratelimit.tokenBucket(1, d, 1),
      ]) {
        assert.throws(make, (err) => {
          assert.ok(err.message.startsWith('Window size is too large: '), err.message)
          assert.ok(err.message.includes(d), err.message)
          return true
        })
      }
    }
  })
})

// ---------------------------------------------------------------------------------------------
// Redis-backed scenarios, on every path

for (const [path, make] of Object.entries(PATHS)) {
  describe(`[${path}]`, () => {
    test('item 2: fixedWindow, cache off', async () => {
      const { redis } = make()
      const P = fresh()
      const now = midWindow(10000)
      const reset = W(now, 10000)
      await frozenAt(now, async () => {
        const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(3, '10 s'), prefix: P, ephemeralCache: false })
        const got = []
        for (let i = 0; i < 5; i++) got.push(omitPending(await rl.limit('u')))
        assert.deepEqual(got, [
          { success: true, limit: 3, remaining: 2, reset },
          { success: true, limit: 3, remaining: 1, reset },
          { success: true, limit: 3, remaining: 0, reset },
          { success: false, limit: 3, remaining: 0, reset },
          { success: false, limit: 3, remaining: 0, reset },
        ])
        const key = `${P}:u:${Math.floor(now / 10000)}`
        assert.deepEqual(await keysOf(stack.redis, `${P}:*`), [key])
        const [value, pttl] = await redisBatch(stack.redis, [['GET', key], ['PTTL', key]])
        assert.equal(value, '5')
        assert.ok(pttl > 0 && pttl <= 10000, `PTTL ${pttl}`)
        assert.deepEqual(await rl.getRemaining('u'), { remaining: 0, reset, limit: 3 })
        assert.equal(await rl.resetUsedTokens('u'), undefined)
        assert.deepEqual(await keysOf(stack.redis, `${P}:*`), [])
        assert.deepEqual(await rl.getRemaining('u'), { remaining: 3, reset, limit: 3 })
      })
    })

    test('item 3: fixedWindow with the cache: 4th call rejected by Redis, 5th a cacheBlock; 4 EVALSHAs', async () => {
      const { redis, calls } = make()
      const P = fresh()
      const now = midWindow(10000)
      const reset = W(now, 10000)
      const map = new Map()
      await frozenAt(now, async () => {
        const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(3, '10 s'), prefix: P, ephemeralCache: map })
        await rl.limit('warm-up') // loads the script, so every following call is one EVALSHA
        await rl.resetUsedTokens('warm-up')
        const s0 = await scriptCalls(stack)
        const c0 = calls && { ...calls }
        const got = []
        for (let i = 0; i < 5; i++) got.push(await rl.limit('u'))
        const d = delta(s0, await scriptCalls(stack))
        assert.deepEqual(got.map(omitPending), [
          { success: true, limit: 3, remaining: 2, reset },
          { success: true, limit: 3, remaining: 1, reset },
          { success: true, limit: 3, remaining: 0, reset },
          { success: false, limit: 3, remaining: 0, reset },
          { success: false, limit: 3, remaining: 0, reset, reason: 'cacheBlock' },
        ])
        for (const r of got) assert.ok(r.pending instanceof Promise)
        assert.deepEqual(d, { evalsha: 4, eval: 0 })
        if (calls) assert.equal(calls.evalsha - c0.evalsha, 4)
        assert.equal(await redisOne(stack.redis, 'GET', `${P}:u:${Math.floor(now / 10000)}`), '4')
        // §3.1: a user-supplied Map is used directly and holds "P:I" → reset
        assert.deepEqual([...map], [[`${P}:u`, reset]])
        // a second limiter sharing the Map is blocked without any Redis call
        const other = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(3, '10 s'), prefix: P, ephemeralCache: map })
        const s1 = await scriptCalls(stack)
        assert.deepEqual(omitPending(await other.limit('u')), { success: false, limit: 3, remaining: 0, reset, reason: 'cacheBlock' })
        assert.deepEqual(delta(s1, await scriptCalls(stack)), { evalsha: 0, eval: 0 })
        // Q12: rate 0 bypasses the cache check (goes to Redis, no cacheBlock reason)
        assert.deepEqual(omitPending(await rl.limit('u', { rate: 0 })), { success: false, limit: 3, remaining: 0, reset })
        // resetUsedTokens clears the block
        await rl.resetUsedTokens('u')
        assert.deepEqual([...map], [])
        assert.deepEqual(omitPending(await rl.limit('u')), { success: true, limit: 3, remaining: 2, reset })
      })
    })

    test('item 4: slidingWindow rate quirk (rate ignored by the pre-check, tokens stay consumed)', async () => {
      const { redis } = make()
      const P = fresh()
      const now = midWindow(60000)
      const reset = W(now, 60000)
      await frozenAt(now, async () => {
        const rl = new Ratelimit({ redis, limiter: Ratelimit.slidingWindow(10, '60 s'), prefix: P, ephemeralCache: false })
        assert.deepEqual(omitPending(await rl.limit('u', { rate: 8 })), { success: true, limit: 10, remaining: 2, reset })
        assert.deepEqual(omitPending(await rl.limit('u', { rate: 5 })), { success: false, limit: 10, remaining: 0, reset })
        assert.deepEqual(omitPending(await rl.limit('u', { rate: 1 })), { success: false, limit: 10, remaining: 0, reset })
        const key = `${P}:u:${Math.floor(now / 60000)}`
        assert.deepEqual(await keysOf(stack.redis, `${P}:*`), [key])
        const [value, pttl] = await redisBatch(stack.redis, [['GET', key], ['PTTL', key]])
        assert.equal(value, '13')
        assert.ok(pttl > 120000 && pttl <= 121000, `PTTL ${pttl}`)
        assert.deepEqual(await rl.getRemaining('u'), { remaining: 0, reset, limit: 10 })
      })
    })

    test('item 4b: slidingWindow weighs the previous window', async () => {
      const { redis } = make()
      const P = fresh()
      const start = Math.floor(realNow() / 10000) * 10000 + 1000
      const rl = new Ratelimit({ redis, limiter: Ratelimit.slidingWindow(10, '10 s'), prefix: P, ephemeralCache: false })
      await frozenAt(start, () => rl.limit('u', { rate: 8 }))
      // next window at 25%: previous 8 * 0.75 = 6 → 4 left
      const now = start - 1000 + 10000 + 2500
      await frozenAt(now, async () => {
        assert.deepEqual(await rl.getRemaining('u'), { remaining: 4, reset: W(now, 10000), limit: 10 })
        assert.deepEqual(omitPending(await rl.limit('u', { rate: 3 })), { success: true, limit: 10, remaining: 1, reset: W(now, 10000) })
        assert.deepEqual(omitPending(await rl.limit('u')), { success: true, limit: 10, remaining: 0, reset: W(now, 10000) })
        assert.deepEqual(omitPending(await rl.limit('u')), { success: false, limit: 10, remaining: 0, reset: W(now, 10000) })
      })
    })

    test('item 5: tokenBucket', async () => {
      const { redis } = make()
      const P = fresh()
      const now = realNow()
      await frozenAt(now, async () => {
        const rl = new Ratelimit({ redis, limiter: Ratelimit.tokenBucket(1, '10 s', 5), prefix: P, ephemeralCache: false })
        assert.deepEqual(await rl.getRemaining('u'), { remaining: 5, reset: now + 10000, limit: 5 })
        const reset = now + 10000
        const got = []
        for (const rate of [3, 3, 2, 1]) got.push(omitPending(await rl.limit('u', { rate })))
        assert.deepEqual(got, [
          { success: true, limit: 5, remaining: 2, reset },
          { success: false, limit: 5, remaining: 0, reset },
          { success: true, limit: 5, remaining: 0, reset },
          { success: false, limit: 5, remaining: 0, reset },
        ])
        assert.deepEqual(await keysOf(stack.redis, `${P}:*`), [`${P}:u`])
        const [flat, pttl] = await redisBatch(stack.redis, [['HGETALL', `${P}:u`], ['PTTL', `${P}:u`]])
        assert.deepEqual(hash(flat), { refilledAt: String(now), tokens: '0' })
        assert.ok(pttl > 49000 && pttl <= 50000, `PTTL ${pttl}`)
        assert.deepEqual(await rl.getRemaining('u'), { remaining: 0, reset, limit: 5 })
        assert.deepEqual(omitPending(await rl.limit('u', { rate: -10 })), { success: true, limit: 5, remaining: 10, reset })
        assert.equal(hash(await redisOne(stack.redis, 'HGETALL', `${P}:u`)).tokens, '10')
      })
      // 2.5 intervals later: 2 refills, tokens = min(5, 10 + 2) = 5, refilledAt = now + 20000
      await frozenAt(now + 25000, async () => {
        const rl = new Ratelimit({ redis, limiter: Ratelimit.tokenBucket(1, '10 s', 5), prefix: P, ephemeralCache: false })
        assert.deepEqual(omitPending(await rl.limit('u')), { success: true, limit: 5, remaining: 4, reset: now + 30000 })
        // Q5: getRemaining applies no refill and reports refilledAt + interval
        assert.deepEqual(await rl.getRemaining('u'), { remaining: 4, reset: now + 30000, limit: 5 })
      })
    })

    test('item 6: cachedFixedWindow (ours: the key gets a TTL of one window)', async () => {
      const { redis } = make()
      const P = fresh()
      const now = midWindow(10000)
      const reset = W(now, 10000)
      await frozenAt(now, async () => {
        const rl = new Ratelimit({ redis, limiter: Ratelimit.cachedFixedWindow(3, '10 s'), prefix: P })
        const got = []
        for (let i = 0; i < 5; i++) {
          const r = await rl.limit('u')
          assert.ok(r.pending instanceof Promise)
          await r.pending
          got.push(omitPending(r))
        }
        assert.deepEqual(got, [
          { success: true, limit: 3, remaining: 2, reset },
          { success: true, limit: 3, remaining: 1, reset },
          { success: true, limit: 3, remaining: 0, reset },
          { success: false, limit: 3, remaining: -1, reset },
          { success: false, limit: 3, remaining: -2, reset },
        ])
        const key = `${P}:u:${Math.floor(now / 10000)}`
        const [value, pttl] = await redisBatch(stack.redis, [['GET', key], ['PTTL', key]])
        assert.equal(value, '3')
        assert.ok(pttl > 0 && pttl <= 10000, `ours sets a TTL of one window, got PTTL ${pttl}`)
        assert.deepEqual(await rl.getRemaining('u'), { remaining: 0, reset, limit: 3 })

        const second = new Ratelimit({ redis, limiter: Ratelimit.cachedFixedWindow(3, '10 s'), prefix: P })
        const r = await second.limit('u')
        await r.pending
        assert.deepEqual(omitPending(r), { success: false, limit: 3, remaining: -1, reset })
        assert.deepEqual(await second.getRemaining('u'), { remaining: 0, reset, limit: 3 })

        // reset: forgets the local count and the Redis key; the next call starts from 1
        await rl.resetUsedTokens('u')
        assert.deepEqual(await keysOf(stack.redis, `${P}:*`), [])
        const again = await rl.limit('u')
        await again.pending
        assert.deepEqual(omitPending(again), { success: true, limit: 3, remaining: 2, reset })

        const noCache = new Ratelimit({ redis, limiter: Ratelimit.cachedFixedWindow(3, '10 s'), prefix: P, ephemeralCache: false })
        await assert.rejects(noCache.limit('u'), { message: 'This algorithm requires a cache' })
        await assert.rejects(noCache.getRemaining('u'), { message: 'This algorithm requires a cache' })
        await assert.rejects(noCache.resetUsedTokens('u'), { message: 'This algorithm requires a cache' })
      })
    })

    test('item 9: dynamic limits', async () => {
      const { redis, calls } = make()
      const P = fresh()
      const now = midWindow(100000)
      const reset = W(now, 100000)
      await frozenAt(now, async () => {
        const rl = new Ratelimit({
          redis,
          limiter: Ratelimit.fixedWindow(10, '100 s'),
          prefix: P,
          ephemeralCache: false,
          dynamicLimits: true,
        })
        assert.deepEqual(await rl.getDynamicLimit(), { dynamicLimit: null })
        assert.equal(await rl.setDynamicLimit({ limit: 3 }), undefined)
        assert.equal(await redisOne(stack.redis, 'GET', `${P}:dynamic:global`), '3')
        assert.deepEqual(await rl.getDynamicLimit(), { dynamicLimit: 3 })
        assert.deepEqual(omitPending(await rl.limit('u', { rate: 2 })), { success: true, limit: 3, remaining: 1, reset })
        assert.deepEqual(omitPending(await rl.limit('u', { rate: 2 })), { success: false, limit: 3, remaining: 0, reset })
        assert.deepEqual(await rl.getRemaining('u'), { remaining: 0, reset, limit: 3 })
        assert.equal(await rl.setDynamicLimit({ limit: false }), undefined)
        assert.equal(await redisOne(stack.redis, 'EXISTS', `${P}:dynamic:global`), 0)
        assert.deepEqual(await rl.getDynamicLimit(), { dynamicLimit: null })
        // back to the static limit: 4 used of 10
        assert.deepEqual(await rl.getRemaining('u'), { remaining: 6, reset, limit: 10 })

        await rl.setDynamicLimit({ limit: 2.5 })
        assert.deepEqual(await rl.getDynamicLimit(), { dynamicLimit: 2.5 })
        assert.deepEqual(omitPending(await rl.limit('v')), { success: true, limit: 2, remaining: 1, reset })

        // dynamic 0 blocks everything
        await rl.setDynamicLimit({ limit: 0 })
        assert.deepEqual(omitPending(await rl.limit('w')), { success: false, limit: 0, remaining: 0, reset })
        await rl.setDynamicLimit({ limit: false })
        if (calls) {
          assert.ok(calls.get >= 4, `get called ${calls.get} times`)
          assert.ok(calls.set >= 3, `set called ${calls.set} times`)
          assert.ok(calls.del >= 2, `del called ${calls.del} times`)
        }

        const off = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '100 s'), prefix: P, ephemeralCache: false })
        await assert.rejects(off.setDynamicLimit({ limit: 3 }), {
          message: 'dynamicLimits must be enabled in the Ratelimit constructor to use setDynamicLimit()',
        })
        await assert.rejects(off.getDynamicLimit(), {
          message: 'dynamicLimits must be enabled in the Ratelimit constructor to use getDynamicLimit()',
        })
        // without dynamicLimits the dynamic key is ignored
        await redisOne(stack.redis, 'SET', `${P}:dynamic:global`, '1')
        assert.deepEqual(omitPending(await off.limit('z')), { success: true, limit: 10, remaining: 9, reset })
      })
    })

    test('item 9b: dynamic limits on slidingWindow and tokenBucket', async () => {
      const { redis } = make()
      const P = fresh()
      const now = midWindow(100000)
      await frozenAt(now, async () => {
        const sw = new Ratelimit({ redis, limiter: Ratelimit.slidingWindow(10, '100 s'), prefix: P, ephemeralCache: false, dynamicLimits: true })
        const tb = new Ratelimit({ redis, limiter: Ratelimit.tokenBucket(1, '100 s', 10), prefix: P, ephemeralCache: false, dynamicLimits: true })
        await sw.setDynamicLimit({ limit: 3 })
        assert.deepEqual(omitPending(await sw.limit('s', { rate: 3 })), { success: true, limit: 3, remaining: 0, reset: W(now, 100000) })
        assert.deepEqual(omitPending(await sw.limit('s', { rate: 1 })), { success: false, limit: 3, remaining: 0, reset: W(now, 100000) })
        assert.deepEqual(await sw.getRemaining('s'), { remaining: 0, reset: W(now, 100000), limit: 3 })
        assert.deepEqual(omitPending(await tb.limit('t', { rate: 3 })), { success: true, limit: 3, remaining: 0, reset: now + 100000 })
        assert.deepEqual(omitPending(await tb.limit('t', { rate: 5 })), { success: false, limit: 3, remaining: 0, reset: now + 100000 })
        assert.deepEqual(await tb.getRemaining('t'), { remaining: 0, reset: now + 100000, limit: 3 })
        await tb.setDynamicLimit({ limit: false })
        // upstream dynamic-limits test: with the dynamic limit removed, fixed/sliding see the
        // static limit again; the bucket still has 0 tokens
        assert.deepEqual(omitPending(await sw.limit('s', { rate: 3 })), { success: true, limit: 10, remaining: 4, reset: W(now, 100000) })
        assert.deepEqual(omitPending(await tb.limit('t', { rate: 3 })), { success: false, limit: 10, remaining: 0, reset: now + 100000 })
      })
    })

    test('item 10: dynamic limit with a cache block (cacheBlock reports the static limit)', async () => {
      const { redis } = make()
      const P = fresh()
      const now = realNow()
      await frozenAt(now, async () => {
        const rl = new Ratelimit({ redis, limiter: Ratelimit.tokenBucket(1, '10 s', 10), prefix: P, dynamicLimits: true })
        await rl.setDynamicLimit({ limit: 2 })
        const reset = now + 10000
        assert.deepEqual(omitPending(await rl.limit('u', { rate: 2 })), { success: true, limit: 2, remaining: 0, reset })
        assert.deepEqual(omitPending(await rl.limit('u')), { success: false, limit: 2, remaining: 0, reset })
        assert.deepEqual(omitPending(await rl.limit('u')), { success: false, limit: 10, remaining: 0, reset, reason: 'cacheBlock' })
      })
    })

    test('item 18 (ours): resetUsedTokens escapes glob characters — fixedWindow / slidingWindow', async () => {
      const { redis } = make()
      for (const factory of ['fixedWindow', 'slidingWindow']) {
        const P = fresh()
        const now = midWindow(100000)
        await frozenAt(now, async () => {
          const rl = new Ratelimit({ redis, limiter: Ratelimit[factory](10, '100 s'), prefix: P, ephemeralCache: false })
          const ids = ['user', 'user:1', 'userX', 'a*', 'ab', 'a', 'b?', 'bc', '[cd]', 'c', 'e\\f', 'ef']
          for (const id of ids) await rl.limit(id)
          const b = Math.floor(now / 100000)
          const all = ids.map((id) => `${P}:${id}:${b}`).sort()
          assert.deepEqual(await keysOf(stack.redis, `${P}:*`), all)
          const expectGone = async (id) => {
            await rl.resetUsedTokens(id)
            const gone = `${P}:${id}:${b}`
            const remaining = all.filter((k) => k !== gone)
            all.splice(0, all.length, ...remaining)
            assert.deepEqual(await keysOf(stack.redis, `${P}:*`), all, `${factory}: reset of ${JSON.stringify(id)}`)
            assert.equal((await rl.getRemaining(id)).remaining, 10)
          }
          for (const id of ['user', 'a*', 'b?', '[cd]', 'e\\f']) await expectGone(id)
          assert.equal((await rl.getRemaining('user:1')).remaining, 9)
          assert.equal((await rl.getRemaining('ab')).remaining, 9)
        })
      }
    })

    test('item 18 (ours): resetUsedTokens escapes glob characters — tokenBucket / cachedFixedWindow', async () => {
      const { redis } = make()
      const now = realNow()
      await frozenAt(now, async () => {
        const P = fresh()
        const tb = new Ratelimit({ redis, limiter: Ratelimit.tokenBucket(1, '100 s', 5), prefix: P, ephemeralCache: false })
        for (const id of ['a*', 'ab', 'a', 'x?', 'xy']) await tb.limit(id)
        await tb.resetUsedTokens('a*')
        assert.deepEqual(await keysOf(stack.redis, `${P}:*`), [`${P}:a`, `${P}:ab`, `${P}:x?`, `${P}:xy`].sort())
        await tb.resetUsedTokens('x?')
        assert.deepEqual(await keysOf(stack.redis, `${P}:*`), [`${P}:a`, `${P}:ab`, `${P}:xy`].sort())
        await tb.resetUsedTokens('a')
        assert.deepEqual(await keysOf(stack.redis, `${P}:*`), [`${P}:ab`, `${P}:xy`].sort())
        assert.deepEqual((await tb.getRemaining('ab')).remaining, 4)

        const Q = fresh()
        const b = Math.floor(now / 100000)
        const cf = new Ratelimit({ redis, limiter: Ratelimit.cachedFixedWindow(5, '100 s'), prefix: Q })
        for (const id of ['user', 'user:1', 'u*', 'uv']) await (await cf.limit(id)).pending
        await cf.resetUsedTokens('user')
        await cf.resetUsedTokens('u*')
        assert.deepEqual(await keysOf(stack.redis, `${Q}:*`), [`${Q}:user:1:${b}`, `${Q}:uv:${b}`].sort())
      })
    })

    test('item 19: float and zero rates', async () => {
      const { redis } = make()
      const now = midWindow(100000)
      await frozenAt(now, async () => {
        const P = fresh()
        const NOT_INT = /ERR value is not an integer or out of range/
        for (const factory of ['fixedWindow', 'slidingWindow']) {
          const rl = new Ratelimit({ redis, limiter: Ratelimit[factory](3, '100 s'), prefix: P, ephemeralCache: false })
          await assert.rejects(rl.limit(`${factory}-f`, { rate: 1.5 }), NOT_INT)
        }
        const cf = new Ratelimit({ redis, limiter: Ratelimit.cachedFixedWindow(3, '100 s'), prefix: P })
        await assert.rejects(cf.limit('cached-f', { rate: 1.5 }), NOT_INT)

        const tb = new Ratelimit({ redis, limiter: Ratelimit.tokenBucket(1, '10 s', 5), prefix: P, ephemeralCache: false })
        assert.deepEqual(omitPending(await tb.limit('tb-f', { rate: 1.5 })), { success: true, limit: 5, remaining: 3, reset: now + 10000 })
        assert.equal(hash(await redisOne(stack.redis, 'HGETALL', `${P}:tb-f`)).tokens, '3.5')

        // rate 0: accepted, nothing consumed
        const reset = W(now, 100000)
        for (const factory of ['fixedWindow', 'slidingWindow']) {
          const rl = new Ratelimit({ redis, limiter: Ratelimit[factory](3, '100 s'), prefix: P, ephemeralCache: false })
          assert.deepEqual(omitPending(await rl.limit(`${factory}-z`)), { success: true, limit: 3, remaining: 2, reset })
          assert.deepEqual(omitPending(await rl.limit(`${factory}-z`, { rate: 0 })), { success: true, limit: 3, remaining: 2, reset })
          assert.deepEqual(await rl.getRemaining(`${factory}-z`), { remaining: 2, reset, limit: 3 })
        }
        assert.deepEqual(omitPending(await tb.limit('tb-z')), { success: true, limit: 5, remaining: 4, reset: now + 10000 })
        assert.deepEqual(omitPending(await tb.limit('tb-z', { rate: 0 })), { success: true, limit: 5, remaining: 4, reset: now + 10000 })
        await (await cf.limit('cached-z')).pending
        const z = await cf.limit('cached-z', { rate: 0 })
        await z.pending
        assert.deepEqual(omitPending(z), { success: true, limit: 3, remaining: 2, reset })
      })
    })

    test('item 20: negative rates refund (limit 10, window "2d", every algorithm)', async () => {
      const { redis } = make()
      const now = midWindow(172800000)
      const limiters = {
        fixedWindow: () => Ratelimit.fixedWindow(10, '2d'),
        slidingWindow: () => Ratelimit.slidingWindow(10, '2d'),
        tokenBucket: () => Ratelimit.tokenBucket(10, '2d', 10),
        cachedFixedWindow: () => Ratelimit.cachedFixedWindow(10, '2d'),
      }
      await frozenAt(now, async () => {
        for (const [name, limiter] of Object.entries(limiters)) {
          const cached = name === 'cachedFixedWindow'
          const rl = new Ratelimit({ redis, limiter: limiter(), prefix: fresh(), ...(cached ? {} : { ephemeralCache: false }) })
          const call = async (id, rate) => {
            const r = await rl.limit(id, { rate })
            await r.pending
            return r
          }
          // fresh, rate -3 → remaining 13
          let r = await call('a', -3)
          assert.equal(r.success, true, name)
          assert.equal(r.remaining, 13, name)
          assert.equal((await rl.getRemaining('a')).remaining, 13, name)
          // 10, then -3 → 3
          assert.equal((await call('b', 10)).remaining, 0, name)
          r = await call('b', -3)
          assert.deepEqual([r.success, r.remaining], [true, 3], name)
          // 8, -2, -3 → getRemaining 2, 4, 7; then 5 → {T, 2}
          const seen = []
          for (const rate of [8, -2, -3]) {
            await call('c', rate)
            seen.push((await rl.getRemaining('c')).remaining)
          }
          assert.deepEqual(seen, [2, 4, 7], name)
          r = await call('c', 5)
          assert.deepEqual([r.success, r.remaining], [true, 2], name)
        }
        // limit+1 (blocked), then rate 1 → cacheBlock (except cached), -5 → success, 2 → success
        const expected = {
          fixedWindow: [[false, 0, undefined], [false, 0, 'cacheBlock'], [true, 4, undefined], [true, 2, undefined]],
          slidingWindow: [[false, 0, undefined], [false, 0, 'cacheBlock'], [true, 4, undefined], [true, 2, undefined]],
          tokenBucket: [[false, 0, undefined], [false, 0, 'cacheBlock'], [true, 15, undefined], [true, 13, undefined]],
          cachedFixedWindow: [[false, -1, undefined], [false, -2, undefined], [true, 3, undefined], [true, 1, undefined]],
        }
        for (const [name, limiter] of Object.entries(limiters)) {
          const rl = new Ratelimit({ redis, limiter: limiter(), prefix: fresh() })
          const got = []
          for (const rate of [11, 1, -5, 2]) {
            const r = await rl.limit('d', { rate })
            await r.pending
            got.push([r.success, r.remaining, r.reason])
          }
          assert.deepEqual(got, expected[name], name)
        }
      })
    })

    test('item 21: script transport — cold EVALSHA+EVAL, warm EVALSHA only, 3 concurrent cold calls → 3+3', async () => {
      const now = midWindow(100000)
      await frozenAt(now, async () => {
        for (const factory of ['fixedWindow', 'slidingWindow', 'tokenBucket']) {
          const { redis, calls } = make() // a fresh client (and native store) per algorithm
          const limiter = factory === 'tokenBucket' ? Ratelimit.tokenBucket(1, '100 s', 10) : Ratelimit[factory](10, '100 s')
          const rl = new Ratelimit({ redis, limiter, prefix: fresh(), ephemeralCache: false })
          assert.match(await redisOne(stack.redis, 'SCRIPT', 'FLUSH'), /OK/)
          const s0 = await scriptCalls(stack)
          const c0 = calls && { ...calls }
          assert.equal((await rl.limit('u')).success, true)
          const s1 = await scriptCalls(stack)
          assert.deepEqual(delta(s0, s1), { evalsha: 1, eval: 1 }, `${factory} cold`)
          if (calls) assert.deepEqual([calls.evalsha - c0.evalsha, calls.eval - c0.eval], [1, 1])
          assert.equal((await rl.limit('u')).success, true)
          const s2 = await scriptCalls(stack)
          assert.deepEqual(delta(s1, s2), { evalsha: 1, eval: 0 }, `${factory} warm`)
          if (calls) assert.deepEqual([calls.evalsha - c0.evalsha, calls.eval - c0.eval], [2, 1])
          // getRemaining: EVALSHA first (EVAL only if its script is not loaded yet), then warm
          assert.equal((await rl.getRemaining('u')).remaining, 8)
          const s3 = await scriptCalls(stack)
          assert.equal(delta(s2, s3).evalsha, 1, `${factory} getRemaining`)
          assert.ok(delta(s2, s3).eval <= 1, `${factory} getRemaining`)
          assert.equal((await rl.getRemaining('u')).remaining, 8)
          assert.deepEqual(delta(s3, await scriptCalls(stack)), { evalsha: 1, eval: 0 }, `${factory} getRemaining warm`)
        }
        // N concurrent cold calls → N EVALSHA + N EVAL
        const { redis } = make()
        const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '100 s'), prefix: fresh(), ephemeralCache: false })
        await redisOne(stack.redis, 'SCRIPT', 'FLUSH')
        const s0 = await scriptCalls(stack)
        const rs = await Promise.all([rl.limit('a'), rl.limit('b'), rl.limit('c')])
        assert.deepEqual(rs.map((r) => r.success), [true, true, true])
        assert.deepEqual(delta(s0, await scriptCalls(stack)), { evalsha: 3, eval: 3 })
      })
    })

    test('item 23: blockUntilReady resolves right after the next window starts', async () => {
      const { redis } = make()
      const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(1, '1 s'), prefix: fresh(), ephemeralCache: false })
      // start between 100 and 600 ms into a second (bounded wait)
      for (let i = 0; i < 20 && !(realNow() % 1000 >= 100 && realNow() % 1000 <= 600); i++) await sleep(50)
      const first = await rl.limit('u')
      assert.equal(first.success, true)
      assert.equal((await rl.limit('u')).success, false)
      const r = await rl.blockUntilReady('u', 3000)
      const at = Date.now()
      assert.deepEqual(omitPending(r), { success: true, limit: 1, remaining: 0, reset: first.reset + 1000 })
      assert.ok(at >= first.reset, `resolved at ${at}, window started at ${first.reset}`)
      assert.ok(at - first.reset < 500, `resolved ${at - first.reset} ms after the window started`)
    })

    test('blockUntilReady gives up after its timeout and returns the last (rejected) response', async () => {
      const { redis } = make()
      const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(1, '1 h'), prefix: fresh(), ephemeralCache: false })
      await rl.limit('u')
      const t0 = performance.now()
      const r = await rl.blockUntilReady('u', 300)
      const took = performance.now() - t0
      assert.equal(r.success, false)
      assert.equal(r.limit, 1)
      assert.ok(took >= 290 && took < 1000, `took ${took} ms`)
      await assert.rejects(rl.blockUntilReady('u', 0), { message: 'timeout must be positive' })
      await assert.rejects(rl.blockUntilReady('u', -1), { message: 'timeout must be positive' })
    })

    test('Redis errors reject limit() with Redis\' text and never leak the token', async () => {
      const { redis } = make()
      const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(3, '100 s'), prefix: fresh(), ephemeralCache: false })
      const err = await rl.limit('u', { rate: 1.5 }).then(
        () => assert.fail('should reject'),
        (e) => e,
      )
      assert.ok(err instanceof Error)
      assert.match(err.message, /ERR value is not an integer or out of range/)
      assert.ok(!(inspect(err, { depth: 10 }) + String(err.stack)).includes(stack.rest.token), 'the token does not appear in the error')
      // the same for sliding window and a cached fixed window (cache miss → awaited Redis call)
      const sw = new Ratelimit({ redis, limiter: Ratelimit.slidingWindow(3, '100 s'), prefix: fresh(), ephemeralCache: false })
      await assert.rejects(sw.limit('u', { rate: 2.5 }), (e) => {
        assert.match(e.message, /ERR value is not an integer or out of range/)
        assert.ok(!(inspect(e, { depth: 10 }) + String(e.stack)).includes(stack.rest.token))
        return true
      })
    })
  })
}

// ---------------------------------------------------------------------------------------------
// wrong credentials: the error never contains the token (native paths)

describe('authentication errors never contain the token', () => {
  for (const [path, makeRedis] of Object.entries({
    upstash: (token) => new UpstashRedis({ url: stack.rest.url, token, enableTelemetry: false, retry: false }),
    own: (token) => new Redis({ url: stack.rest.url, token }),
  })) {
    test(`[${path}] limit / getRemaining / resetUsedTokens reject; token absent from the error`, async () => {
      const token = `wrong-${randomBytes(12).toString('hex')}`
      const rl = new Ratelimit({ redis: makeRedis(token), limiter: Ratelimit.fixedWindow(3, '100 s'), prefix: fresh(), ephemeralCache: false, timeout: 0 })
      for (const call of [() => rl.limit('u'), () => rl.getRemaining('u'), () => rl.resetUsedTokens('u')]) {
        const err = await call().then(
          () => assert.fail('should reject'),
          (e) => e,
        )
        assert.ok(err instanceof Error, 'rejects with an Error')
        const text = inspect(err, { depth: 10 }) + String(err.stack)
        assert.ok(!text.includes(token), `the token leaked: ${text}`)
        assert.ok(!text.includes(stack.rest.token))
      }
    })
  }
})

// ---------------------------------------------------------------------------------------------
// every Promise-returning method rejects (never throws synchronously) on bad input

describe('bad input rejects, never throws synchronously', () => {
  const rejectsAsync = async (fn, expected) => {
    let p
    assert.doesNotThrow(() => {
      p = fn()
    })
    assert.ok(p instanceof Promise)
    if (expected) await assert.rejects(p, expected)
    else await assert.rejects(p)
  }

  for (const [path, make] of Object.entries(PATHS)) {
    test(`[${path}]`, async () => {
      const { redis } = make()
      const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(3, '100 s'), prefix: fresh(), ephemeralCache: false })
      const dyn = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(3, '100 s'), prefix: fresh(), ephemeralCache: false, dynamicLimits: true })
      const sym = Symbol('id')
      await rejectsAsync(() => rl.limit(sym))
      await rejectsAsync(() => rl.limit('u', { rate: 'abc' }))
      await rejectsAsync(() => rl.limit('u', { rate: NaN }))
      await rejectsAsync(() => rl.limit('u', { rate: 1.5 }))
      await rejectsAsync(() => rl.getRemaining(sym))
      await rejectsAsync(() => rl.resetUsedTokens(sym))
      await rejectsAsync(() => rl.blockUntilReady('u', 0), { message: 'timeout must be positive' })
      await rejectsAsync(() => rl.blockUntilReady(sym, 100))
      await rejectsAsync(() => rl.setDynamicLimit({ limit: 1 }), /dynamicLimits must be enabled/)
      await rejectsAsync(() => rl.getDynamicLimit(), /dynamicLimits must be enabled/)
      await rejectsAsync(() => dyn.setDynamicLimit())
      await rejectsAsync(() => dyn.setDynamicLimit(null))
      const cf = new Ratelimit({ redis, limiter: Ratelimit.cachedFixedWindow(3, '100 s'), prefix: fresh(), ephemeralCache: false })
      await rejectsAsync(() => cf.limit('u'), { message: 'This algorithm requires a cache' })
      // the limiter still works afterwards
      assert.equal((await rl.limit('ok')).success, true)
    })
  }
})

// ---------------------------------------------------------------------------------------------
// §9 items 7 and 8: timeout and errors, with hand-made clients (compat path)

describe('items 7 and 8: hand-made clients', () => {
  /** Forwards to a real client after `delayMs`. */
  const slowClient = (delayMs) => {
    const inner = upstash()
    const calls = { evalsha: 0, eval: 0 }
    return {
      calls,
      evalsha: async (...a) => {
        calls.evalsha++
        await sleep(delayMs)
        return inner.evalsha(...a)
      },
      eval: async (...a) => {
        calls.eval++
        await sleep(delayMs)
        return inner.eval(...a)
      },
      get: (k) => inner.get(k),
      set: (k, v) => inner.set(k, v),
      del: (k) => inner.del(k),
    }
  }

  test('item 7: timeout 200 ms with a 600 ms Redis → fail-open timeout response; the work is not cancelled', async () => {
    const P = fresh()
    const now = midWindow(100000)
    await frozenAt(now, async () => {
      // warm the script so the slow client needs one EVALSHA only
      await new Ratelimit({ redis: upstash(), limiter: Ratelimit.fixedWindow(1, '100 s'), prefix: P, ephemeralCache: false }).limit('warm')
      const redis = slowClient(600)
      const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(1, '100 s'), prefix: P, ephemeralCache: false, timeout: 200 })
      const t0 = performance.now()
      const r = await rl.limit('u')
      const took = performance.now() - t0
      assert.ok(r.pending instanceof Promise)
      assert.deepEqual(omitPending(r), { success: true, limit: 0, remaining: 0, reset: 0, reason: 'timeout' })
      assert.ok(took >= 190 && took < 1000, `answered after ${took} ms`)
      assert.ok(redis.calls.evalsha >= 1, 'the client was called')
      // the background request still lands
      const key = `${P}:u:${Math.floor(now / 100000)}`
      let value = null
      for (let i = 0; i < 40 && value === null; i++) {
        await sleep(50)
        value = await redisOne(stack.redis, 'GET', key)
      }
      assert.equal(value, '1')
    })
  })

  test('item 7: timeout 0 and a negative timeout disable it → the real result after ≈600 ms', async () => {
    const P = fresh()
    const now = midWindow(100000)
    const reset = W(now, 100000)
    await frozenAt(now, async () => {
      await new Ratelimit({ redis: upstash(), limiter: Ratelimit.fixedWindow(1, '100 s'), prefix: P, ephemeralCache: false }).limit('warm')
      for (const timeout of [0, -1]) {
        const rl = new Ratelimit({ redis: slowClient(600), limiter: Ratelimit.fixedWindow(1, '100 s'), prefix: P, ephemeralCache: false, timeout })
        const t0 = performance.now()
        const r = await rl.limit(`u${timeout}`)
        const took = performance.now() - t0
        assert.deepEqual(omitPending(r), { success: true, limit: 1, remaining: 0, reset })
        assert.ok(took >= 590, `answered after ${took} ms`)
      }
    })
  })

  test('item 7: the timeout does not apply to getRemaining', async () => {
    const P = fresh()
    const rl = new Ratelimit({ redis: slowClient(400), limiter: Ratelimit.fixedWindow(4, '100 s'), prefix: P, ephemeralCache: false, timeout: 100 })
    const r = await rl.getRemaining('u')
    assert.equal(r.remaining, 4)
    assert.equal(r.limit, 4)
  })

  test('item 8: a throwing evalsha rejects limit / getRemaining / resetUsedTokens with that very error', async () => {
    const boom = new Error('boom')
    let called = 0
    const clients = {
      rejecting: {
        evalsha: async () => {
          called++
          throw boom
        },
        eval: async () => assert.fail('eval must not be called for a non-NOSCRIPT error'),
        get: async () => null,
        set: async () => 'OK',
        del: async () => 0,
      },
      'throwing synchronously': {
        evalsha: () => {
          called++
          throw boom
        },
        eval: () => assert.fail('eval must not be called for a non-NOSCRIPT error'),
        get: async () => null,
        set: async () => 'OK',
        del: async () => 0,
      },
    }
    for (const [name, redis] of Object.entries(clients)) {
      for (const limiter of [Ratelimit.fixedWindow(1, '10 s'), Ratelimit.slidingWindow(1, '10 s'), Ratelimit.tokenBucket(1, '10 s', 1)]) {
        const rl = new Ratelimit({ redis, limiter, prefix: fresh(), ephemeralCache: false })
        const before = called
        for (const call of [() => rl.limit('u'), () => rl.getRemaining('u'), () => rl.resetUsedTokens('u')]) {
          await assert.rejects(call(), (e) => e === boom, name)
        }
        assert.equal(called - before, 3, name)
      }
    }
  })

  test('item 8: errors are not fail-open even with the cache (nothing is cached on an error)', async () => {
    const boom = new Error('boom')
    const redis = { evalsha: async () => Promise.reject(boom), eval: async () => Promise.reject(boom), get: async () => null, set: async () => 'OK', del: async () => 0 }
    const map = new Map()
    const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(1, '10 s'), prefix: fresh(), ephemeralCache: map })
    await assert.rejects(rl.limit('u'), (e) => e === boom)
    await assert.rejects(rl.limit('u'), (e) => e === boom)
    assert.equal(map.size, 0)
  })
})
