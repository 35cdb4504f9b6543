// The three ways of giving our Ratelimit a store, and the compat path in detail:
//   - a plain object with evalsha/eval/get/set/del (here forwarding to an `@upstash/redis`
//     instance and counting calls): our code must really call those methods, EVALSHA first with
//     the EVAL fallback on NOSCRIPT (§2.2), with upstream's KEYS shapes (§2.3–§2.6), accepting
//     numeric strings in replies (§4); results and Redis state equal the native fast path's;
//   - an `@upstash/redis` instance (native fast path);
//   - our own `Redis` (`new Redis({url, token})`, `Redis.fromEnv()`).

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { Redis as UpstashRedis } from '@upstash/redis'
import { Ratelimit, Redis } from '../index.js'
import { startStack } from './helpers/servers.mjs'
import { seedOf, mulberry32, parseReplies, redisBatch, redisOne, keysOf, hash } from './helpers/direct-redis.mjs'

const fresh = () => `rlc${randomBytes(5).toString('hex')}`
const omitPending = ({ pending, ...rest }) => rest
const sha1 = (text) => createHash('sha1').update(text).digest('hex')

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

async function dumpState(redis, prefix) {
  const keys = ((await redisBatch(redis, [['KEYS', `${prefix}:*`]]))[0] ?? []).sort()
  if (keys.length === 0) return {}
  const replies = await redisBatch(redis, keys.flatMap((k) => [['TYPE', k], ['PTTL', k], ['GET', k], ['HGETALL', k]]))
  const state = {}
  keys.forEach((k, j) => {
    const [type, pttl, str, flat] = replies.slice(4 * j, 4 * j + 4)
    let value = str
    if (type === 'hash') {
      value = {}
      for (let i = 0; i < flat.length; i += 2) value[flat[i]] = flat[i + 1]
    }
    state[k.slice(prefix.length)] = { type, value, ttl: pttl > 0 ? 'ttl' : pttl }
  })
  return state
}

/** `INFO commandstats` → calls of evalsha and eval. */
async function scriptCalls(stack) {
  const [text] = await redisBatch(stack.redis, [['INFO', 'commandstats']])
  const calls = (name) => Number(text.match(new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm'))?.[1] ?? 0)
  return { evalsha: calls('evalsha'), eval: calls('eval') }
}

/** A plain object forwarding to `inner`, recording every call. `mapReply` post-processes replies. */
function recordingClient(inner, mapReply = (x) => x) {
  const calls = { evalsha: 0, eval: 0, get: 0, set: 0, del: 0 }
  const log = []
  const wrap = (name) => async (...args) => {
    calls[name]++
    log.push({ name, args })
    return mapReply(await inner[name](...args))
  }
  const client = { evalsha: wrap('evalsha'), eval: wrap('eval'), get: wrap('get'), set: wrap('set'), del: wrap('del') }
  return { client, calls, log }
}

/** Numbers in a reply → numeric strings (what a client without auto-deserialisation returns). */
const stringifyNumbers = (v) => (Array.isArray(v) ? v.map(stringifyNumbers) : typeof v === 'number' ? String(v) : v)

let stack
const upstash = () => new UpstashRedis({ url: stack.rest.url, token: stack.rest.token, enableTelemetry: false })
const own = () => new Redis({ url: stack.rest.url, token: stack.rest.token })

before(async () => {
  stack = await startStack()
})
after(async () => {
  clock.restore()
  await stack?.stop()
})

const ALGORITHMS = {
  fixedWindow: { make: () => Ratelimit.fixedWindow(4, '10 s'), cache: false },
  slidingWindow: { make: () => Ratelimit.slidingWindow(4, '10 s'), cache: false },
  tokenBucket: { make: () => Ratelimit.tokenBucket(1, '3 s', 4), cache: false },
  cachedFixedWindow: { make: () => Ratelimit.cachedFixedWindow(4, '10 s'), cache: true },
}

/** A deterministic sequence of every public method, incl. dynamic limits. */
function sequence(seed, steps, dynamic) {
  const rnd = mulberry32(seed)
  const pick = (l) => l[Math.floor(rnd() * l.length)]
  return Array.from({ length: steps }, () => {
    const x = rnd()
    const id = pick(['a', 'b', 'c:d', ''])
    if (x < 0.55) return { op: 'limit', id, rate: pick([undefined, 1, 1, 2, 0, -1, 5]) }
    if (x < 0.7) return { op: 'getRemaining', id }
    if (x < 0.77) return { op: 'resetUsedTokens', id }
    if (dynamic && x < 0.83) return { op: 'setDynamicLimit', limit: pick([false, 2, 6]) }
    if (dynamic && x < 0.86) return { op: 'getDynamicLimit' }
    return { op: 'advance', ms: Math.floor(rnd() * 3000) }
  })
}

async function runOp(rl, op) {
  switch (op.op) {
    case 'limit': {
      const r = op.rate === undefined ? await rl.limit(op.id) : await rl.limit(op.id, { rate: op.rate })
      await r.pending
      return omitPending(r)
    }
    case 'getRemaining':
      return rl.getRemaining(op.id)
    case 'resetUsedTokens':
      return rl.resetUsedTokens(op.id)
    case 'setDynamicLimit':
      return rl.setDynamicLimit({ limit: op.limit })
    case 'getDynamicLimit':
      return rl.getDynamicLimit()
  }
}

/** Runs the same sequence on several limiters (one prefix each); all must agree at every step. */
async function agree(limiters, ops) {
  const results = limiters.map(() => [])
  clock.install(Math.floor(realNow() / 60000) * 60000 + 4321)
  try {
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]
      if (op.op === 'advance') {
        clock.t += op.ms
        continue
      }
      const outs = []
      for (const l of limiters) outs.push(await runOp(l.rl, op))
      const states = []
      for (const l of limiters) states.push(await dumpState(stack.redis, l.prefix))
      for (let k = 1; k < limiters.length; k++) {
        assert.deepEqual(outs[k], outs[0], `step ${i} ${JSON.stringify(op)}: ${limiters[k].name} vs ${limiters[0].name}`)
        assert.deepEqual(states[k], states[0], `step ${i} ${JSON.stringify(op)}: Redis state of ${limiters[k].name} vs ${limiters[0].name}`)
      }
      outs.forEach((o, k) => results[k].push(o))
    }
  } finally {
    clock.restore()
  }
  return results[0]
}

describe('compat path: a plain-object client', () => {
  for (const [algo, { make, cache }] of Object.entries(ALGORITHMS)) {
    test(`${algo}: limit / getRemaining / resetUsedTokens${algo === 'cachedFixedWindow' ? '' : ' / dynamic limits'} equal the fast paths', and the object is really used`, async () => {
      const dynamic = algo !== 'cachedFixedWindow'
      const { client, calls } = recordingClient(upstash())
      const strings = recordingClient(upstash(), stringifyNumbers)
      const opts = { ...(cache ? {} : { ephemeralCache: false }), ...(dynamic ? { dynamicLimits: true } : {}) }
      const limiters = [
        ['fast path (@upstash/redis)', upstash()],
        ['fast path (own Redis)', own()],
        ['compat (plain object)', client],
        ['compat (numeric-string replies)', strings.client],
      ].map(([name, redis]) => {
        const prefix = fresh()
        return { name, prefix, rl: new Ratelimit({ redis, limiter: make(), prefix, ...opts }) }
      })
      const tail = dynamic
        ? [
            { op: 'setDynamicLimit', limit: 3 },
            { op: 'getDynamicLimit' },
            { op: 'limit', id: 'z', rate: 2 },
            { op: 'limit', id: 'z', rate: 2 },
            { op: 'getRemaining', id: 'z' },
            { op: 'setDynamicLimit', limit: false },
            { op: 'getDynamicLimit' },
            { op: 'getRemaining', id: 'z' },
          ]
        : []
      const results = await agree(limiters, [...sequence(seedOf(algo), 70, dynamic), ...tail])
      assert.ok(results.some((r) => r && r.success === false), 'the sequence reaches the limit')
      assert.ok(calls.evalsha > 10, `evalsha called ${calls.evalsha} times`)
      assert.ok(strings.calls.evalsha > 10)
      if (dynamic) {
        assert.ok(calls.get > 0 && calls.set > 0 && calls.del > 0, `get/set/del called: ${JSON.stringify(calls)}`)
      }
    })
  }

  test('cold Redis: first call EVALSHA (NOSCRIPT) then EVAL of the script with that SHA1; second call EVALSHA only', async () => {
    const now = midWindow(10000)
    await withClock(now, async () => {
      for (const [algo, { make, cache }] of Object.entries(ALGORITHMS)) {
        const { client, calls, log } = recordingClient(upstash())
        const rl = new Ratelimit({ redis: client, limiter: make(), prefix: fresh(), ...(cache ? {} : { ephemeralCache: false }) })
        await redisBatch(stack.redis, [['SCRIPT', 'FLUSH']])
        const s0 = await scriptCalls(stack)
        const r1 = await rl.limit('u')
        await r1.pending
        assert.equal(r1.success, true, algo)
        assert.deepEqual({ ...calls }, { evalsha: 1, eval: 1, get: 0, set: 0, del: 0 }, `${algo}: cold`)
        const [shaCall, evalCall] = log
        assert.equal(shaCall.name, 'evalsha')
        assert.equal(evalCall.name, 'eval')
        assert.match(shaCall.args[0], /^[0-9a-f]{40}$/)
        assert.equal(typeof evalCall.args[0], 'string')
        assert.equal(sha1(evalCall.args[0]), shaCall.args[0], `${algo}: EVAL sends the script whose SHA1 EVALSHA used`)
        assert.deepEqual(evalCall.args[1], shaCall.args[1], 'same KEYS')
        assert.deepEqual(evalCall.args[2], shaCall.args[2], 'same ARGV')
        const r2 = await rl.limit('u')
        await r2.pending
        // cachedFixedWindow's second call is a cache hit: its Redis write goes through `pending`
        assert.deepEqual({ ...calls }, { evalsha: 2, eval: 1, get: 0, set: 0, del: 0 }, `${algo}: warm`)
        assert.deepEqual(await scriptCalls(stack), { evalsha: s0.evalsha + 2, eval: s0.eval + 1 }, `${algo}: as seen by Redis`)
      }
    })
  })

  test('NOSCRIPT detection: Error, UpstashError-style text and non-Error rejections all fall back to eval', async () => {
    const now = midWindow(10000)
    await withClock(now, async () => {
      const inner = upstash()
      for (const rejection of [
        new Error('NOSCRIPT No matching script. Please use EVAL.'),
        new Error('Command failed: NOSCRIPT No matching script. Please use EVAL.'),
        'NOSCRIPT No matching script',
      ]) {
        let evalCalls = 0
        const client = {
          evalsha: async () => Promise.reject(rejection),
          eval: async (...a) => {
            evalCalls++
            return inner.eval(...a)
          },
          get: (...a) => inner.get(...a),
          set: (...a) => inner.set(...a),
          del: (...a) => inner.del(...a),
        }
        const rl = new Ratelimit({ redis: client, limiter: Ratelimit.fixedWindow(3, '10 s'), prefix: fresh(), ephemeralCache: false })
        assert.deepEqual(omitPending(await rl.limit('u')), { success: true, limit: 3, remaining: 2, reset: (Math.floor(now / 10000) + 1) * 10000 })
        assert.deepEqual(await rl.getRemaining('u'), { remaining: 2, reset: (Math.floor(now / 10000) + 1) * 10000, limit: 3 })
        await rl.resetUsedTokens('u')
        assert.equal(evalCalls, 3, String(rejection))
        assert.deepEqual(await rl.getRemaining('u'), { remaining: 3, reset: (Math.floor(now / 10000) + 1) * 10000, limit: 3 })
      }
    })
  })

  test('KEYS shapes: upstream\'s keys, the dynamic key appended only when enabled, never ""', async () => {
    const now = midWindow(10000)
    const b = Math.floor(now / 10000)
    await withClock(now, async () => {
      const cases = [
        ['fixedWindow', () => Ratelimit.fixedWindow(3, '10 s'), (P) => [`${P}:u:${b}`]],
        ['slidingWindow', () => Ratelimit.slidingWindow(3, '10 s'), (P) => [`${P}:u:${b}`, `${P}:u:${b - 1}`]],
        ['tokenBucket', () => Ratelimit.tokenBucket(1, '10 s', 3), (P) => [`${P}:u`]],
      ]
      for (const [algo, make, keysFor] of cases) {
        for (const dynamicLimits of [false, true]) {
          const { client, log } = recordingClient(upstash())
          const P = fresh()
          const rl = new Ratelimit({ redis: client, limiter: make(), prefix: P, ephemeralCache: false, dynamicLimits })
          await rl.limit('u')
          await rl.getRemaining('u')
          const expected = [...keysFor(P), ...(dynamicLimits ? [`${P}:dynamic:global`] : [])]
          const scripts = log.filter((c) => c.name === 'evalsha' || c.name === 'eval')
          assert.ok(scripts.length >= 2)
          for (const c of scripts) {
            assert.deepEqual(c.args[1], expected, `${algo} dynamicLimits=${dynamicLimits} ${c.name}`)
            assert.ok(Array.isArray(c.args[2]), 'ARGV is an array')
          }
        }
      }
      // cachedFixedWindow: the window key only, even with dynamicLimits (which it ignores)
      const { client, log } = recordingClient(upstash())
      const P = fresh()
      const warn = console.warn
      const warnings = []
      console.warn = (...a) => warnings.push(a.join(' '))
      try {
        const rl = new Ratelimit({ redis: client, limiter: Ratelimit.cachedFixedWindow(3, '10 s'), prefix: P, dynamicLimits: true })
        await (await rl.limit('u')).pending
        await (await rl.limit('u')).pending
      } finally {
        console.warn = warn
      }
      for (const c of log.filter((c) => c.name === 'evalsha' || c.name === 'eval')) assert.deepEqual(c.args[1], [`${P}:u:${b}`])
      assert.deepEqual(warnings, [
        'Warning: Dynamic limits are not yet supported for cachedFixedWindow algorithm. The dynamicLimits option will be ignored.',
        'Warning: Dynamic limits are not yet supported for cachedFixedWindow algorithm. The dynamicLimits option will be ignored.',
      ])
    })
  })

  test('the ephemeral cache spares the client: a blocked identifier costs no evalsha', async () => {
    const now = midWindow(10000)
    await withClock(now, async () => {
      const { client, calls } = recordingClient(upstash())
      const rl = new Ratelimit({ redis: client, limiter: Ratelimit.fixedWindow(2, '10 s'), prefix: fresh() })
      for (let i = 0; i < 3; i++) await rl.limit('u')
      const before = calls.evalsha
      for (let i = 0; i < 10; i++) assert.equal((await rl.limit('u')).reason, 'cacheBlock')
      assert.equal(calls.evalsha, before)
    })
  })

  test('getDynamicLimit accepts a numeric string from the client', async () => {
    const store = new Map()
    const client = {
      evalsha: async () => assert.fail('not used'),
      eval: async () => assert.fail('not used'),
      get: async (k) => (store.has(k) ? String(store.get(k)) : null),
      set: async (k, v) => (store.set(k, v), 'OK'),
      del: async (k) => (store.delete(k) ? 1 : 0),
    }
    const P = fresh()
    const rl = new Ratelimit({ redis: client, limiter: Ratelimit.fixedWindow(3, '10 s'), prefix: P, dynamicLimits: true })
    assert.deepEqual(await rl.getDynamicLimit(), { dynamicLimit: null })
    await rl.setDynamicLimit({ limit: 7 })
    assert.deepEqual([...store], [[`${P}:dynamic:global`, 7]])
    assert.deepEqual(await rl.getDynamicLimit(), { dynamicLimit: 7 })
    await rl.setDynamicLimit({ limit: false })
    assert.deepEqual([...store], [])
  })
})

describe('an @upstash/redis instance', () => {
  test('works with every algorithm and shares keys with our own Redis', async () => {
    const now = midWindow(10000)
    await withClock(now, async () => {
      const P = fresh()
      const a = new Ratelimit({ redis: upstash(), limiter: Ratelimit.fixedWindow(3, '10 s'), prefix: P, ephemeralCache: false })
      const b = new Ratelimit({ redis: own(), limiter: Ratelimit.fixedWindow(3, '10 s'), prefix: P, ephemeralCache: false })
      const reset = (Math.floor(now / 10000) + 1) * 10000
      assert.deepEqual(omitPending(await a.limit('u')), { success: true, limit: 3, remaining: 2, reset })
      assert.deepEqual(omitPending(await b.limit('u')), { success: true, limit: 3, remaining: 1, reset })
      assert.deepEqual(await a.getRemaining('u'), { remaining: 1, reset, limit: 3 })
      await b.resetUsedTokens('u')
      assert.deepEqual(await a.getRemaining('u'), { remaining: 3, reset, limit: 3 })
      for (const make of [() => Ratelimit.slidingWindow(3, '10 s'), () => Ratelimit.tokenBucket(1, '10 s', 3)]) {
        const rl = new Ratelimit({ redis: upstash(), limiter: make(), prefix: fresh(), ephemeralCache: false })
        const got = []
        for (let i = 0; i < 4; i++) got.push((await rl.limit('u')).remaining)
        assert.deepEqual(got, [2, 1, 0, 0])
      }
    })
  })

  test('is driven by the native fast path: the instance\'s own evalsha/eval are not called', async () => {
    const redis = upstash()
    const called = []
    for (const m of ['evalsha', 'eval']) {
      const orig = redis[m].bind(redis)
      redis[m] = (...a) => (called.push(m), orig(...a))
    }
    const rl = new Ratelimit({ redis, limiter: Ratelimit.tokenBucket(1, '1 h', 5), prefix: fresh(), ephemeralCache: false })
    await redisBatch(stack.redis, [['SCRIPT', 'FLUSH']])
    for (let i = 0; i < 3; i++) assert.equal((await rl.limit('u')).remaining, 4 - i)
    assert.equal((await rl.getRemaining('u')).remaining, 2)
    await rl.resetUsedTokens('u')
    assert.deepEqual(called, [])
  })

  test('an @upstash/redis instance with non-default options (no auto-pipelining, no base64) works', async () => {
    const redis = new UpstashRedis({
      url: stack.rest.url,
      token: stack.rest.token,
      enableTelemetry: false,
      enableAutoPipelining: false,
      responseEncoding: false,
    })
    const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(3, '1 h'), prefix: fresh(), ephemeralCache: false })
    assert.equal((await rl.limit('ü-ñ-🚀')).remaining, 2)
    assert.equal((await rl.getRemaining('ü-ñ-🚀')).remaining, 2)
  })
})

describe('our own Redis', () => {
  const ENV = ['UPSTASH_REDIS_REST_URL', 'UPSTASH_REDIS_REST_TOKEN', 'KV_REST_API_URL', 'KV_REST_API_TOKEN']
  async function withEnv(values, fn) {
    const saved = Object.fromEntries(ENV.map((k) => [k, process.env[k]]))
    for (const k of ENV) delete process.env[k]
    Object.assign(process.env, values)
    try {
      return await fn()
    } finally {
      for (const k of ENV) {
        if (saved[k] === undefined) delete process.env[k]
        else process.env[k] = saved[k]
      }
    }
  }
  const works = async (redis) => {
    const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(2, '1 h'), prefix: fresh(), ephemeralCache: false })
    assert.equal((await rl.limit('u')).remaining, 1)
    assert.equal((await rl.limit('u')).remaining, 0)
    assert.equal((await rl.limit('u')).success, false)
  }

  test('new Redis({ url, token }) runs the commands rate limiting needs', async () => {
    const redis = own()
    assert.equal(redis.url, stack.rest.url.replace(/\/$/, ''))
    const k = `${fresh()}:k`
    assert.equal(await redis.set(k, 3), 'OK')
    assert.equal(await redis.get(k), 3)
    assert.equal(await redis.set(k, 'hello'), 'OK')
    assert.equal(await redis.get(k), 'hello')
    assert.equal(await redis.set(k, 2.5), 'OK')
    assert.equal(await redis.get(k), 2.5)
    assert.equal(await redis.del(k), 1)
    assert.equal(await redis.get(k), null)
    assert.equal(await redis.set(k, 'v', { px: 60000 }), 'OK')
    const [pttl] = await redisBatch(stack.redis, [['PTTL', k]])
    assert.ok(pttl > 0 && pttl <= 60000)
    assert.equal(await redis.eval('return 41 + 1', [], []), 42)
    assert.deepEqual(await redis.eval('return {KEYS[1], ARGV[1]}', ['a'], ['b']), ['a', 'b'])
    const script = `return "${fresh()}"`
    await assert.rejects(redis.evalsha(sha1(script), [], []), /NOSCRIPT/)
    await redis.eval(script, [], [])
    assert.match(await redis.evalsha(sha1(script), [], []), /^rlc/)
    await works(redis)
  })

  test('new Redis() validates url and token synchronously', () => {
    assert.throws(() => new Redis({ url: stack.rest.url }), /token/)
    assert.throws(() => new Redis({ token: 't' }), /url/)
    assert.throws(() => new Redis({ url: '', token: 't' }), /url/)
    assert.throws(() => new Redis({ url: 'not a url', token: 't' }), /URL|url/)
  })

  test('Redis.fromEnv reads UPSTASH_REDIS_REST_URL / _TOKEN', async () => {
    await withEnv({ UPSTASH_REDIS_REST_URL: stack.rest.url, UPSTASH_REDIS_REST_TOKEN: stack.rest.token }, async () => {
      const redis = Redis.fromEnv()
      assert.ok(redis instanceof Redis)
      await works(redis)
    })
  })

  test('Redis.fromEnv falls back to KV_REST_API_URL / _TOKEN', async () => {
    await withEnv({ KV_REST_API_URL: stack.rest.url, KV_REST_API_TOKEN: stack.rest.token }, async () => {
      await works(Redis.fromEnv())
    })
  })

  test('Redis.fromEnv prefers the UPSTASH_* variables over KV_*', async () => {
    await withEnv(
      {
        UPSTASH_REDIS_REST_URL: stack.rest.url,
        UPSTASH_REDIS_REST_TOKEN: stack.rest.token,
        KV_REST_API_URL: 'http://127.0.0.1:1',
        KV_REST_API_TOKEN: 'wrong',
      },
      async () => {
        await works(Redis.fromEnv())
      },
    )
  })

  test('Redis.fromEnv without the variables warns (as @upstash/redis) and every call then rejects with what to set', async () => {
    // Not an error at construction: Next.js evaluates route modules during `next build`,
    // often without the variables, and upstream's client only warns there.
    await withEnv({}, async () => {
      const warnings = []
      const realWarn = console.warn
      console.warn = (...args) => warnings.push(args.join(' '))
      let redis
      try {
        redis = Redis.fromEnv()
      } finally {
        console.warn = realWarn
      }
      assert.equal(warnings.length, 1)
      assert.match(warnings[0], /Redis\.fromEnv\(\) found no UPSTASH_REDIS_REST_URL/)
      const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(1, '10 s') })
      await assert.rejects(rl.limit('x'), /found no UPSTASH_REDIS_REST_URL when this client was made; set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN/)
    })
  })
})
