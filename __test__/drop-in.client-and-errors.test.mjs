// Code written for @upstash/ratelimit 2.2.0, with only the import changed, on two points where
// a user's own code touches the client:
//   - a client object whose methods the user replaced (a spread copy with its own `evalsha`, a
//     mutated instance, a subclass) is the user's: its methods are called, as upstream calls
//     them; only an unmodified @upstash/redis instance (or our own Redis) takes the native path;
//   - what Redis rejects reaches the caller as upstream's error: name "UpstashError", message
//     "Command failed: …", on the REST and TCP paths, with `UpstashError` exported for instanceof.
// The published @upstash/ratelimit runs beside ours as the oracle, on the same servers.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { Redis as UpstashRedis } from '@upstash/redis'
import { Ratelimit as UpstreamRatelimit, MultiRegionRatelimit as UpstreamMultiRegion } from '@upstash/ratelimit'
import { Ratelimit, MultiRegionRatelimit, Redis, Analytics, IpDenyList, UpstashError } from '../index.js'
import { startStack } from './helpers/servers.mjs'
import { redisBatch } from './helpers/direct-redis.mjs'
import { engine, nativeOnly, wasmOnly } from './helpers/engine.mjs'

const T = { timeout: 30_000 }
const fresh = () => `rld${randomBytes(5).toString('hex')}`
const omitPending = ({ pending, ...rest }) => rest
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Runs `fn` with Date.now() fixed in the middle of a 10 s window. Upstream and ours are compared
 * call by call on sliding windows: called a millisecond apart across a window boundary, the two
 * limiters weigh the previous window differently (seen once in CI), so both read one clock.
 */
async function midWindow(fn) {
  const realNow = Date.now
  const now = Math.floor(realNow() / 10_000) * 10_000 + 5_000
  Date.now = () => now
  try {
    return await fn()
  } finally {
    Date.now = realNow
  }
}

let stack
const upstash = () => new UpstashRedis({ url: stack.rest.url, token: stack.rest.token, enableTelemetry: false })
const ours = () => new Redis({ url: stack.rest.url, token: stack.rest.token })
const tcp = () => new Redis({ url: stack.redis.url })

before(async () => {
  stack = await startStack()
})
after(async () => {
  await stack?.stop()
})

/** `fn` with a counter of its calls. */
function counted(fn) {
  const wrapper = (...args) => {
    wrapper.calls++
    return fn(...args)
  }
  wrapper.calls = 0
  return wrapper
}

// =================================================================================================
// 1. a client whose methods the user replaced
// =================================================================================================

describe("a client whose methods the user replaced: the user's methods are called", () => {
  test('a spread @upstash/redis instance with a slow evalsha: the timeout answer after ~1 s, as upstream', T, async () => {
    const make = () => {
      const base = upstash()
      return { ...base, evalsha: (...args) => sleep(2000).then(() => base.evalsha(...args)) }
    }
    const P = fresh()
    const answers = {}
    for (const [name, Limiter] of [['upstream', UpstreamRatelimit], ['ours', Ratelimit]]) {
      const rl = new Limiter({ redis: make(), limiter: Limiter.fixedWindow(5, '10 s'), prefix: `${P}${name}`, timeout: 1000 })
      const started = performance.now()
      const response = await rl.limit('u')
      answers[name] = { response: omitPending(response), ms: performance.now() - started }
    }
    assert.deepEqual(answers.ours.response, { success: true, limit: 0, remaining: 0, reset: 0, reason: 'timeout' })
    assert.deepEqual(answers.ours.response, answers.upstream.response)
    assert.ok(answers.ours.ms >= 950 && answers.ours.ms < 1900, `answered after ${answers.ours.ms} ms`)
    await sleep(1200) // let both slow scripts finish before the servers stop
  })

  const variants = {
    'a spread @upstash/redis instance': (wrap) => {
      const base = upstash()
      return { ...base, evalsha: wrap((...args) => base.evalsha(...args)) }
    },
    // (With auto-pipelining on, the default, reading `evalsha` goes through @upstash/redis' Proxy,
    // which hands out its pipeline's evalsha: upstream never calls a replaced one there, nor do we.)
    'an @upstash/redis instance (no auto-pipelining) whose evalsha was replaced': (wrap) => {
      const client = new UpstashRedis({ url: stack.rest.url, token: stack.rest.token, enableTelemetry: false, enableAutoPipelining: false })
      const original = client.evalsha
      client.evalsha = wrap((...args) => original(...args))
      return client
    },
    'a subclass of @upstash/redis overriding evalsha': (wrap) => {
      class Logged extends UpstashRedis {
        // The base class' evalsha is a field, set before this one: wrap it.
        evalsha = ((original) => wrap((...args) => original(...args)))(this.evalsha)
      }
      return new Logged({ url: stack.rest.url, token: stack.rest.token, enableTelemetry: false, enableAutoPipelining: false })
    },
    'a spread of our Redis': (wrap) => {
      const base = ours()
      return { ...base, evalsha: wrap((...args) => base.evalsha(...args)) }
    },
    'our Redis with evalsha replaced': (wrap) => {
      const client = ours()
      const original = client.evalsha
      client.evalsha = wrap((...args) => original(...args))
      return client
    },
    'our redis:// Redis with evalsha replaced': (wrap) => {
      const client = tcp()
      const original = client.evalsha
      client.evalsha = wrap((...args) => original(...args))
      return client
    },
  }

  for (const [name, make] of Object.entries(variants)) {
    const options = name.includes('redis://') ? { ...T, ...nativeOnly } : T
    test(`${name}: its evalsha runs every limit, with upstream's results`, options, () => midWindow(async () => {
      let calls = 0
      const client = make((fn) => (...args) => {
        calls++
        return fn(...args)
      })
      const [A, B] = [fresh(), fresh()]
      const up = new UpstreamRatelimit({ redis: upstash(), limiter: UpstreamRatelimit.slidingWindow(3, '10 s'), prefix: A })
      const us = new Ratelimit({ redis: client, limiter: Ratelimit.slidingWindow(3, '10 s'), prefix: B, ephemeralCache: false })
      // Every call goes through it (on stock Redis, the first one of each script twice: the
      // flagged script is refused, then the stock one is sent).
      const through = async (what) => {
        const before = calls
        const result = await what()
        assert.ok(calls > before, 'the client\'s evalsha was not called')
        return result
      }
      for (let i = 0; i < 5; i++) {
        const a = await up.limit('u')
        const b = await through(() => us.limit('u'))
        assert.equal(b.success, a.success, `call ${i}`)
        assert.equal(b.remaining, a.remaining, `call ${i}`)
      }
      const remaining = await through(() => us.getRemaining('u'))
      assert.equal(remaining.remaining, 0)
      await through(() => us.resetUsedTokens('u'))
      assert.equal((await us.getRemaining('u')).remaining, 3)
    }))
  }

  test('an unmodified @upstash/redis instance stays on the native path (a Proxy counting reads sees no evalsha)', { ...T, ...nativeOnly }, async () => {
    const reads = []
    const client = new Proxy(upstash(), {
      get(target, name, receiver) {
        reads.push(name)
        return Reflect.get(target, name, receiver)
      },
    })
    const rl = new Ratelimit({ redis: client, limiter: Ratelimit.fixedWindow(2, '10 s'), prefix: fresh() })
    const results = []
    for (let i = 0; i < 3; i++) results.push((await rl.limit('u')).success)
    assert.deepEqual(results, [true, true, false])
    assert.ok(!reads.includes('evalsha') && !reads.includes('eval'), `read: ${reads.join(', ')}`)
  })

  test('MultiRegionRatelimit: a region given as a spread copy with its own evalsha has it called', T, async () => {
    const second = await startStack() // (its start-up waits on the real clock)
    try {
      await midWindow(async () => {
        const region2 = () => new UpstashRedis({ url: second.rest.url, token: second.rest.token, enableTelemetry: false })
        const base = region2()
        const evalsha = counted((...args) => base.evalsha(...args))
        const [A, B] = [fresh(), fresh()]
        const up = new UpstreamMultiRegion({ redis: [upstash(), region2()], limiter: UpstreamMultiRegion.slidingWindow(3, '10 s'), prefix: A })
        const us = new MultiRegionRatelimit({ redis: [upstash(), { ...base, evalsha }], limiter: MultiRegionRatelimit.slidingWindow(3, '10 s'), prefix: B })
        for (let i = 0; i < 4; i++) {
          const a = await up.limit('u')
          const b = await us.limit('u')
          await Promise.all([a.pending, b.pending])
          assert.equal(b.success, a.success, `call ${i}`)
          assert.equal(b.remaining, a.remaining, `call ${i}`)
        }
        assert.equal(evalsha.calls, 4)
        await us.getRemaining('u')
        assert.equal(evalsha.calls, 5)
      })
    } finally {
      await second.stop()
    }
  })

  test("Analytics and IpDenyList call the client's own zincrby and multi", T, async () => {
    const base = upstash()
    const zincrby = counted((...args) => base.zincrby(...args))
    const multi = counted(() => base.multi())
    const client = { ...base, zincrby, multi }
    const P = fresh()
    await new Analytics({ redis: client, prefix: P }).record({ identifier: 'u', time: Date.now(), success: true })
    assert.equal(zincrby.calls, 1)
    await IpDenyList.disableIpDenyList(client, P)
    assert.equal(multi.calls, 1)
    const [status] = await redisBatch(stack.redis, [['GET', `${P}:ipDenyListStatus`]])
    assert.equal(status, 'disabled')
  })
})

// =================================================================================================
// 3. errors carry upstream's name and shape
// =================================================================================================

describe("what Redis rejects reaches the caller as upstream's UpstashError", () => {
  const paths = {
    '@upstash/redis instance (native)': () => upstash(),
    'our Redis, REST': () => ours(),
    'our Redis, redis://': () => tcp(),
    'compat path (a forwarding object)': () => {
      const base = upstash()
      return { evalsha: (...a) => base.evalsha(...a), eval: (...a) => base.eval(...a), get: (k) => base.get(k), set: (...a) => base.set(...a) }
    },
  }

  async function rejection(promise) {
    try {
      await promise
    } catch (error) {
      return error
    }
    assert.fail('expected a rejection')
  }

  test('upstream (oracle): rate 1.5 on fixedWindow rejects with UpstashError "Command failed: ERR value is not an integer…"', T, async () => {
    const rl = new UpstreamRatelimit({ redis: upstash(), limiter: UpstreamRatelimit.fixedWindow(5, '10 s'), prefix: fresh() })
    const error = await rejection(rl.limit('u', { rate: 1.5 }))
    assert.equal(error.name, 'UpstashError')
    assert.match(error.message, /^Command failed: ERR value is not an integer or out of range/)
  })

  for (const [name, make] of Object.entries(paths)) {
    if (name.includes('redis://') && engine !== 'native') continue
    test(`${name}: limit with rate 1.5 on fixedWindow`, T, async () => {
      const rl = new Ratelimit({ redis: make(), limiter: Ratelimit.fixedWindow(5, '10 s'), prefix: fresh() })
      const error = await rejection(rl.limit('u', { rate: 1.5 }))
      assert.equal(error.name, 'UpstashError')
      assert.ok(error instanceof UpstashError)
      assert.ok(error instanceof Error)
      assert.match(error.message, /^Command failed: ERR value is not an integer or out of range/)
      assert.match(String(error), /^UpstashError: Command failed: ERR value is not an integer/)
    })

    test(`${name}: getRemaining on a key of the wrong type, and failClosed's error`, T, async () => {
      const P = fresh()
      const bucket = Math.floor(Date.now() / 10_000)
      await redisBatch(stack.redis, [['HSET', `${P}:u:${bucket}`, 'x', '1'], ['HSET', `${P}:u:${bucket + 1}`, 'x', '1']])
      const rl = new Ratelimit({ redis: make(), limiter: Ratelimit.fixedWindow(5, '10 s'), prefix: P })
      const error = await rejection(rl.getRemaining('u'))
      assert.ok(error instanceof Error)
      assert.equal(error.name, 'UpstashError')
      assert.match(error.message, /^Command failed: WRONGTYPE/)
      const closed = new Ratelimit({ redis: make(), limiter: Ratelimit.fixedWindow(5, '10 s'), prefix: P, failClosed: true, ephemeralCache: false })
      const response = await closed.limit('u')
      assert.equal(response.success, false)
      assert.equal(response.error.name, 'UpstashError')
      assert.match(response.error.message, /^Command failed: WRONGTYPE/)
    })
  }

  test('the analytics failure warning prints UpstashError: Command failed: WRONGTYPE…, as upstream', T, async () => {
    const warnings = {}
    const realWarn = console.warn
    try {
      for (const [name, Limiter, make] of [
        ['upstream', UpstreamRatelimit, upstash],
        ['ours (REST)', Ratelimit, ours],
        ['ours (redis://)', Ratelimit, tcp],
        ['ours (@upstash/redis)', Ratelimit, upstash],
      ].filter(([name]) => engine === 'native' || !name.includes('redis://'))) {
        const P = fresh()
        const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000
        await redisBatch(stack.redis, [['SET', `${P}:events:${hour}`, 'not a zset']])
        const seen = []
        console.warn = (...args) => seen.push(args)
        const rl = new Limiter({ redis: make(), limiter: Limiter.fixedWindow(5, '10 s'), prefix: P, analytics: true })
        const response = await rl.limit('u')
        await response.pending
        console.warn = realWarn
        assert.equal(response.success, true, name)
        assert.equal(seen.length, 1, `${name}: ${JSON.stringify(seen)}`)
        const error = seen[0][1]
        warnings[name] = { message: seen[0][0], error: `${error}`, name: error.name }
      }
    } finally {
      console.warn = realWarn
    }
    const expected = warnings.upstream
    assert.equal(expected.name, 'UpstashError')
    assert.match(expected.error, /^UpstashError: Command failed: WRONGTYPE/)
    for (const name of Object.keys(warnings).filter((n) => n !== 'upstream')) assert.deepEqual(warnings[name], expected, name)
  })
})

describe('the WebAssembly engine', () => {
  test('a redis:// URL is refused with a clear error that names where it runs', wasmOnly, () => {
    assert.throws(() => new Redis({ url: stack.redis.url }), /redis:\/\/ and rediss:\/\/ URLs need the native engine \(Redis over TCP\).*WebAssembly engine/)
    assert.throws(() => new Redis({ url: stack.redis.url }), (error) => !error.message.includes(stack.redis.password))
  })
})
