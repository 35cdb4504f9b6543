// Per-identifier dynamic limits (a ratelimit-native addition):
//   dynamicLimits: { perIdentifier: true } lets setDynamicLimit({ identifier, limit }) /
//   getDynamicLimit({ identifier }) store `P:dynamic:id:<identifier>`; the limit that applies is
//   the identifier's own when set, else the global `P:dynamic:global`, else the static one.
//   dynamicLimits: true behaves exactly as upstream (the global key only; reference
//   /work/shared/reference/upstash-ratelimit-behaviour.md §1.5, §3.7, §9 items 9–10).
// Runs on fixedWindow, slidingWindow and tokenBucket, on three stores: an @upstash/redis instance
// (REST), our own Redis (REST) and Redis.memory(). Redis state is read directly from redis-server.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { after, afterEach, before, describe, test } from 'node:test'
import { Ratelimit as UpstreamRatelimit } from '@upstash/ratelimit'
import { Redis as UpstashRedis } from '@upstash/redis'
import { Ratelimit, Redis } from '../index.js'
import { startStack } from './helpers/servers.mjs'

const T = { timeout: 20000 }
const fresh = () => `rdi${randomBytes(5).toString('hex')}`
const omitPending = ({ pending, ...rest }) => rest
const WINDOW = 100_000

const realNow = Date.now
/** Date.now frozen in the middle of the current 100 s window (no window or refill boundary crossed). */
function freeze() {
  const t = Math.floor(realNow() / WINDOW) * WINDOW + WINDOW / 2
  Date.now = () => t
  return t
}

// --- direct redis-server access ----------------------------------------------------------------

function redisCommand(args, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(stack.redis.port, '127.0.0.1')
    const encode = (parts) => `*${parts.length}\r\n` + parts.map((p) => `$${Buffer.byteLength(String(p))}\r\n${p}\r\n`).join('')
    let buf = ''
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error('direct redis command timed out'))
    }, timeoutMs)
    socket.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    socket.on('connect', () => socket.write(encode(['AUTH', stack.redis.password]) + encode(args)))
    socket.on('data', (chunk) => {
      buf += chunk
      // +OK for AUTH, then one simple reply: a bulk string, nil, integer or status line
      const m = buf.match(/^\+OK\r\n(\$-1\r\n|\$(\d+)\r\n([\s\S]*)\r\n|:(-?\d+)\r\n|\+([^\r]*)\r\n|-([^\r]*)\r\n)$/)
      if (!m) return
      if (m[2] !== undefined && Buffer.byteLength(m[3]) !== Number(m[2])) return
      clearTimeout(timer)
      socket.end()
      if (m[1] === '$-1\r\n') resolve(null)
      else if (m[2] !== undefined) resolve(m[3])
      else if (m[4] !== undefined) resolve(Number(m[4]))
      else if (m[5] !== undefined) resolve(m[5])
      else resolve({ error: m[6] })
    })
  })
}

async function getCalls() {
  const text = await redisCommand(['INFO', 'commandstats'])
  return Number(text.match(/^cmdstat_get:calls=(\d+)/m)?.[1] ?? 0)
}

// --- setup ---------------------------------------------------------------------------------------

let stack
const upstash = () => new UpstashRedis({ url: stack.rest.url, token: stack.rest.token, enableTelemetry: false })
const STORES = {
  upstash: { make: () => upstash(), redis: true },
  own: { make: () => new Redis({ url: stack.rest.url, token: stack.rest.token }), redis: true },
  memory: { make: () => Redis.memory(), redis: false },
}
const ALGOS = {
  fixedWindow: (lib) => lib.fixedWindow(10, '100 s'),
  slidingWindow: (lib) => lib.slidingWindow(10, '100 s'),
  tokenBucket: (lib) => lib.tokenBucket(1, '100 s', 10),
}

before(async () => {
  stack = await startStack()
})
afterEach(() => {
  Date.now = realNow
})
after(async () => {
  Date.now = realNow
  await stack?.stop()
})

const pick = (r) => ({ success: r.success, limit: r.limit, remaining: r.remaining })
const remainingOf = async (rl, id) => {
  const { remaining, limit } = await rl.getRemaining(id)
  return { remaining, limit }
}

// =================================================================================================

describe('precedence: own > global > static', () => {
  for (const [storeName, store] of Object.entries(STORES)) {
    for (const [algo, make] of Object.entries(ALGOS)) {
      test(`[${storeName}] ${algo}`, T, async () => {
        const P = fresh()
        freeze()
        const rl = new Ratelimit({ redis: store.make(), limiter: make(Ratelimit), prefix: P, ephemeralCache: false, dynamicLimits: { perIdentifier: true } })
        assert.equal(rl.dynamicLimits, true)
        assert.deepEqual(await rl.getDynamicLimit(), { dynamicLimit: null })
        assert.deepEqual(await rl.getDynamicLimit({ identifier: 'vip' }), { dynamicLimit: null })

        // static
        assert.deepEqual(pick(await rl.limit('s1')), { success: true, limit: 10, remaining: 9 })

        // global 5, vip's own 8
        assert.equal(await rl.setDynamicLimit({ limit: 5 }), undefined)
        assert.equal(await rl.setDynamicLimit({ identifier: 'vip', limit: 8 }), undefined)
        await rl.setDynamicLimit({ identifier: 'vip2', limit: 2 })
        if (store.redis) {
          assert.equal(await redisCommand(['GET', `${P}:dynamic:global`]), '5')
          assert.equal(await redisCommand(['GET', `${P}:dynamic:id:vip`]), '8')
          assert.equal(await redisCommand(['GET', `${P}:dynamic:id:vip2`]), '2')
          assert.equal(await redisCommand(['TTL', `${P}:dynamic:id:vip`]), -1, 'no TTL, like the global key')
        }
        assert.deepEqual(await rl.getDynamicLimit({ identifier: 'vip' }), { dynamicLimit: 8 })
        assert.deepEqual(await rl.getDynamicLimit({ identifier: undefined }), { dynamicLimit: 5 })
        assert.deepEqual(await rl.getDynamicLimit(), { dynamicLimit: 5 })
        assert.deepEqual(await rl.getDynamicLimit({ identifier: 'nobody' }), { dynamicLimit: null })

        assert.deepEqual(pick(await rl.limit('vip')), { success: true, limit: 8, remaining: 7 })
        assert.deepEqual(await remainingOf(rl, 'vip'), { remaining: 7, limit: 8 })
        assert.deepEqual(pick(await rl.limit('normal')), { success: true, limit: 5, remaining: 4 })
        assert.deepEqual(await remainingOf(rl, 'normal'), { remaining: 4, limit: 5 })
        assert.deepEqual(await remainingOf(rl, 'untouched'), { remaining: 5, limit: 5 })
        assert.deepEqual(await remainingOf(rl, 'vip2'), { remaining: 2, limit: 2 })

        // removing vip's own limit: the global one applies again
        await rl.setDynamicLimit({ identifier: 'vip', limit: false })
        assert.deepEqual(await rl.getDynamicLimit({ identifier: 'vip' }), { dynamicLimit: null })
        if (store.redis) assert.equal(await redisCommand(['EXISTS', `${P}:dynamic:id:vip`]), 0)
        assert.deepEqual(await rl.getDynamicLimit(), { dynamicLimit: 5 }, 'the global one is untouched')
        // token bucket: the stored tokens (7) are not clamped to the new limit before a refill
        const afterOwnRemoved = { fixedWindow: 3, slidingWindow: 3, tokenBucket: 6 }[algo]
        assert.deepEqual(pick(await rl.limit('vip')), { success: true, limit: 5, remaining: afterOwnRemoved })
        assert.deepEqual(await remainingOf(rl, 'vip'), { remaining: afterOwnRemoved, limit: 5 })

        // removing the global one: the static limit applies
        await rl.setDynamicLimit({ limit: false })
        if (store.redis) assert.equal(await redisCommand(['EXISTS', `${P}:dynamic:global`]), 0)
        const afterGlobalRemoved = { fixedWindow: 7, slidingWindow: 7, tokenBucket: 5 }[algo]
        assert.deepEqual(pick(await rl.limit('vip')), { success: true, limit: 10, remaining: afterGlobalRemoved })
        assert.deepEqual(await remainingOf(rl, 'untouched'), { remaining: 10, limit: 10 })
        // vip2's own limit still applies without any global one
        assert.deepEqual(pick(await rl.limit('vip2')), { success: true, limit: 2, remaining: 1 })
        assert.deepEqual(pick(await rl.limit('vip2')), { success: true, limit: 2, remaining: 0 })
        assert.deepEqual(pick(await rl.limit('vip2')), { success: false, limit: 2, remaining: 0 })
        assert.deepEqual(await remainingOf(rl, 'vip2'), { remaining: 0, limit: 2 })
      })
    }
  }
})

describe('edge cases of the identifier key', () => {
  for (const [storeName, store] of Object.entries(STORES)) {
    test(`[${storeName}] own limit 0 blocks; identifiers with ":" and "" get their own key`, T, async () => {
      const P = fresh()
      freeze()
      for (const [algo, make] of Object.entries(ALGOS)) {
        const Q = `${P}${algo}`
        const rl = new Ratelimit({ redis: store.make(), limiter: make(Ratelimit), prefix: Q, ephemeralCache: false, dynamicLimits: { perIdentifier: true } })
        await rl.setDynamicLimit({ identifier: 'zero', limit: 0 })
        assert.deepEqual(pick(await rl.limit('zero')), { success: false, limit: 0, remaining: 0 }, `${algo}: "0" is set, so it applies`)
        await rl.setDynamicLimit({ identifier: 'org:42', limit: 4 })
        if (store.redis) assert.equal(await redisCommand(['GET', `${Q}:dynamic:id:org:42`]), '4')
        assert.deepEqual(pick(await rl.limit('org:42')), { success: true, limit: 4, remaining: 3 }, algo)
        assert.deepEqual(pick(await rl.limit('org')), { success: true, limit: 10, remaining: 9 }, algo)
        await rl.setDynamicLimit({ identifier: '', limit: 3 })
        if (store.redis) assert.equal(await redisCommand(['GET', `${Q}:dynamic:id:`]), '3')
        assert.deepEqual(await rl.getDynamicLimit({ identifier: '' }), { dynamicLimit: 3 })
        assert.deepEqual(pick(await rl.limit('')), { success: true, limit: 3, remaining: 2 }, algo)
      }
    })
  }

  test('[upstash] cacheBlock still reports the static limit (Q7), with an own dynamic limit', T, async () => {
    const P = fresh()
    const t = freeze()
    const rl = new Ratelimit({ redis: upstash(), limiter: Ratelimit.fixedWindow(10, '100 s'), prefix: P, dynamicLimits: { perIdentifier: true } })
    await rl.setDynamicLimit({ identifier: 'b', limit: 1 })
    assert.deepEqual(pick(await rl.limit('b')), { success: true, limit: 1, remaining: 0 })
    assert.deepEqual(pick(await rl.limit('b')), { success: false, limit: 1, remaining: 0 })
    const blocked = await rl.limit('b')
    assert.deepEqual(omitPending(blocked), { success: false, limit: 10, remaining: 0, reset: (Math.floor(t / WINDOW) + 1) * WINDOW, reason: 'cacheBlock' })
  })
})

describe('with analytics and protection (the composed one-request script)', () => {
  for (const storeName of ['upstash', 'own']) {
    test(`[${storeName}] the own limit applies there too`, T, async () => {
      const P = fresh()
      freeze()
      await redisCommand(['SET', `${P}:ipDenyListStatus`, 'disabled'])
      for (const [algo, make] of Object.entries(ALGOS)) {
        const rl = new Ratelimit({ redis: STORES[storeName].make(), limiter: make(Ratelimit), prefix: P, ephemeralCache: false, analytics: true, enableProtection: true, dynamicLimits: { perIdentifier: true } })
        await rl.setDynamicLimit({ limit: 5 })
        await rl.setDynamicLimit({ identifier: `vip-${algo}`, limit: 8 })
        const own = await rl.limit(`vip-${algo}`, { ip: '203.0.113.9' })
        assert.deepEqual(pick(own), { success: true, limit: 8, remaining: 7 }, algo)
        await own.pending
        const global = await rl.limit(`n-${algo}`, { ip: '203.0.113.9' })
        assert.deepEqual(pick(global), { success: true, limit: 5, remaining: 4 }, algo)
        await global.pending
        await rl.setDynamicLimit({ limit: false })
      }
    })
  }
})

describe('dynamicLimits: true stays upstream-compatible (the global key only)', () => {
  for (const [storeName, store] of Object.entries(STORES)) {
    test(`[${storeName}] ours with dynamicLimits: true ignores per-identifier keys`, T, async () => {
      const P = fresh()
      freeze()
      for (const [algo, make] of Object.entries(ALGOS)) {
        const Q = `${P}${algo}`
        const redis = store.make()
        const per = new Ratelimit({ redis, limiter: make(Ratelimit), prefix: Q, ephemeralCache: false, dynamicLimits: { perIdentifier: true } })
        const plain = new Ratelimit({ redis, limiter: make(Ratelimit), prefix: Q, ephemeralCache: false, dynamicLimits: true })
        await per.setDynamicLimit({ identifier: 'vip', limit: 8 })
        assert.deepEqual(pick(await plain.limit('vip')), { success: true, limit: 10, remaining: 9 }, `${algo}: static, not the own 8`)
        await plain.setDynamicLimit({ limit: 5 })
        assert.deepEqual(await per.getDynamicLimit(), { dynamicLimit: 5 }, 'same global key')
        assert.deepEqual(pick(await plain.limit('vip2')), { success: true, limit: 5, remaining: 4 }, algo)
        assert.deepEqual((await plain.getRemaining('vip')).limit, 5, algo)
        assert.deepEqual(pick(await per.limit('vip2')), { success: true, limit: 5, remaining: 3 }, algo)
        assert.deepEqual(pick(await per.limit('vip3')), { success: true, limit: 5, remaining: 4 }, algo)
        await per.setDynamicLimit({ identifier: 'vip3', limit: 9 })
        assert.deepEqual((await per.getRemaining('vip3')).limit, 9)
        assert.deepEqual((await plain.getRemaining('vip3')).limit, 5)
      }
    })
  }

  test('upstream instances on the same prefix (dynamicLimits: true) see only the global limit', T, async () => {
    const P = fresh()
    freeze()
    for (const [algo, make] of Object.entries(ALGOS)) {
      const Q = `${P}${algo}`
      const ours = new Ratelimit({ redis: upstash(), limiter: make(Ratelimit), prefix: Q, ephemeralCache: false, dynamicLimits: { perIdentifier: true } })
      const theirs = new UpstreamRatelimit({ redis: upstash(), limiter: make(UpstreamRatelimit), prefix: Q, ephemeralCache: false, dynamicLimits: true })
      await ours.setDynamicLimit({ identifier: 'vip', limit: 8 })
      assert.deepEqual(pick(await theirs.limit('vip')), { success: true, limit: 10, remaining: 9 }, algo)
      assert.deepEqual(await theirs.getDynamicLimit(), { dynamicLimit: null })
      await theirs.setDynamicLimit({ limit: 5 })
      assert.deepEqual(await ours.getDynamicLimit(), { dynamicLimit: 5 })
      assert.deepEqual(pick(await theirs.limit('u1')), { success: true, limit: 5, remaining: 4 }, algo)
      assert.deepEqual(pick(await ours.limit('u1')), { success: true, limit: 5, remaining: 3 }, `${algo}: shared state`)
      // vip: ours applies the own 8 on the state upstream wrote; upstream keeps the global 5
      assert.deepEqual((await ours.getRemaining('vip')).limit, 8)
      assert.deepEqual((await theirs.getRemaining('vip')).limit, 5)
      await theirs.setDynamicLimit({ limit: false })
      assert.deepEqual(await ours.getDynamicLimit(), { dynamicLimit: null })
      assert.deepEqual(await ours.getDynamicLimit({ identifier: 'vip' }), { dynamicLimit: 8 }, 'upstream never touches own keys')
    }
  })

  test('KEYS sent: true → [...algorithm keys, P:dynamic:global]; perIdentifier → [..., P:dynamic:id:<id>, P:dynamic:global]', T, async () => {
    const P = fresh()
    freeze()
    const inner = upstash()
    const seen = []
    const client = {
      evalsha: (sha, keys, args) => (seen.push(keys), inner.evalsha(sha, keys, args)),
      eval: (script, keys, args) => (seen.push(keys), inner.eval(script, keys, args)),
      get: (...a) => inner.get(...a),
      set: (...a) => inner.set(...a),
      del: (...a) => inner.del(...a),
    }
    const last = () => seen[seen.length - 1]
    const bucket = Math.floor(Date.now() / WINDOW)
    const plain = new Ratelimit({ redis: client, limiter: Ratelimit.fixedWindow(10, '100 s'), prefix: P, ephemeralCache: false, dynamicLimits: true })
    const per = new Ratelimit({ redis: client, limiter: Ratelimit.fixedWindow(10, '100 s'), prefix: P, ephemeralCache: false, dynamicLimits: { perIdentifier: true } })
    await plain.limit('u')
    assert.deepEqual(last(), [`${P}:u:${bucket}`, `${P}:dynamic:global`])
    await per.limit('u')
    assert.deepEqual(last(), [`${P}:u:${bucket}`, `${P}:dynamic:id:u`, `${P}:dynamic:global`])
    await per.limit('a:b')
    assert.deepEqual(last(), [`${P}:a:b:${bucket}`, `${P}:dynamic:id:a:b`, `${P}:dynamic:global`])
    await per.getRemaining('u')
    assert.deepEqual(last(), [`${P}:u:${bucket}`, `${P}:dynamic:id:u`, `${P}:dynamic:global`])
    const sliding = new Ratelimit({ redis: client, limiter: Ratelimit.slidingWindow(10, '100 s'), prefix: P, ephemeralCache: false, dynamicLimits: { perIdentifier: true } })
    await sliding.limit('s')
    assert.deepEqual(last(), [`${P}:s:${bucket}`, `${P}:s:${bucket - 1}`, `${P}:dynamic:id:s`, `${P}:dynamic:global`])
    const bucketTb = new Ratelimit({ redis: client, limiter: Ratelimit.tokenBucket(1, '100 s', 10), prefix: P, ephemeralCache: false, dynamicLimits: { perIdentifier: true } })
    await bucketTb.limit('t')
    assert.deepEqual(last(), [`${P}:t`, `${P}:dynamic:id:t`, `${P}:dynamic:global`])
  })

  test('GETs inside the fixedWindow script: true → 1; perIdentifier → 1 when the own key is set, 2 otherwise', T, async () => {
    const P = fresh()
    freeze()
    const redis = upstash()
    const plain = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '100 s'), prefix: P, ephemeralCache: false, dynamicLimits: true })
    const per = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '100 s'), prefix: P, ephemeralCache: false, dynamicLimits: { perIdentifier: true } })
    await plain.limit('warm')
    await per.limit('warm')
    await per.setDynamicLimit({ identifier: 'own', limit: 4 })
    const N = 5
    const count = async (fn) => {
      const before = await getCalls()
      for (let i = 0; i < N; i++) await fn()
      return (await getCalls()) - before
    }
    assert.equal(await count(() => plain.limit('x')), N)
    assert.equal(await count(() => per.limit('own')), N)
    assert.equal(await count(() => per.limit('x')), 2 * N)
  })
})

describe('misuse errors (rejections, never synchronous throws)', () => {
  test('identifier without perIdentifier, no dynamicLimits at all, non-string identifiers', T, async () => {
    const P = fresh()
    const redis = upstash()
    const perMessage = (m) => `per-identifier dynamic limits must be enabled with dynamicLimits: { perIdentifier: true } to use ${m}({ identifier })`
    for (const dynamicLimits of [true, {}, { perIdentifier: false }, { perIdentifier: 'yes' }]) {
      const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '100 s'), prefix: P, dynamicLimits })
      assert.equal(rl.dynamicLimits, true, JSON.stringify(dynamicLimits))
      const set = rl.setDynamicLimit({ identifier: 'x', limit: 3 })
      assert.ok(set instanceof Promise)
      await assert.rejects(set, { name: 'Error', message: perMessage('setDynamicLimit') })
      await assert.rejects(rl.getDynamicLimit({ identifier: 'x' }), { name: 'Error', message: perMessage('getDynamicLimit') })
      await assert.rejects(rl.setDynamicLimit({ identifier: 'x', limit: false }), { message: perMessage('setDynamicLimit') })
      // the global key still works
      await rl.setDynamicLimit({ limit: 2 })
      assert.deepEqual(await rl.getDynamicLimit(), { dynamicLimit: 2 })
      await rl.setDynamicLimit({ limit: false })
    }
    assert.equal(await redisCommand(['EXISTS', `${P}:dynamic:id:x`]), 0, 'nothing written')

    for (const dynamicLimits of [undefined, false]) {
      const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '100 s'), prefix: P, dynamicLimits })
      assert.equal(rl.dynamicLimits, false)
      await assert.rejects(rl.setDynamicLimit({ identifier: 'x', limit: 3 }), {
        message: 'dynamicLimits must be enabled in the Ratelimit constructor to use setDynamicLimit()',
      })
      await assert.rejects(rl.getDynamicLimit({ identifier: 'x' }), {
        message: 'dynamicLimits must be enabled in the Ratelimit constructor to use getDynamicLimit()',
      })
    }

    const per = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '100 s'), prefix: P, dynamicLimits: { perIdentifier: true } })
    for (const bad of [42, null, {}, ['a']]) {
      await assert.rejects(per.setDynamicLimit({ identifier: bad, limit: 3 }), {
        name: 'TypeError',
        message: `ratelimit-native: identifier must be a string, got ${typeof bad}`,
      })
      await assert.rejects(per.getDynamicLimit({ identifier: bad }), { name: 'TypeError' })
    }
    assert.equal(await redisCommand(['EXISTS', `${P}:dynamic:id:42`]), 0)
  })
})
