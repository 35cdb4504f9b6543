// `new Redis({ url: "redis://…" })`: plain Redis over TCP (RESP), no REST server in between.
// Against ONE real redis-server that the published @upstash/ratelimit 2.2.0 (the oracle) also
// uses through the project's REST server:
//   - the same call sequence gives the same answers over TCP as upstream gives over REST;
//   - both libraries share one database: calls alternating between them on the same prefix
//     count in the same keys, exactly as one limiter would;
//   - protection + analytics, getRemaining, resetUsedTokens and MultiRegionRatelimit work over TCP;
//   - concurrency is exact, and the password never shows (url property, errors).
// The clock is faked through Date.now, which both libraries read.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { Ratelimit as UpstreamRatelimit } from '@upstash/ratelimit'
import { Redis as UpstashRedis } from '@upstash/redis'
import { MultiRegionRatelimit, Ratelimit, Redis } from '../index.js'
import { freePort, startRedis, startStack } from './helpers/servers.mjs'
import { redisBatch } from './helpers/direct-redis.mjs'
import { engine, nativeOnly } from './helpers/engine.mjs'

const T = { timeout: 30000 }
const tag = () => randomBytes(4).toString('hex')
const omitPending = ({ pending, ...rest }) => rest

const realNow = Date.now
const clock = {
  set(t) {
    Date.now = () => t
  },
  restore() {
    Date.now = realNow
  },
}

let stack
let upstash
let tcp
before(async () => {
  if (engine !== 'native') return // Redis over TCP is the native engine's
  stack = await startStack()
  upstash = new UpstashRedis({ url: stack.rest.url, token: stack.rest.token, enableTelemetry: false })
  tcp = new Redis({ url: stack.redis.url })
})
after(async () => {
  clock.restore()
  await stack?.stop()
})

const ALGORITHMS = {
  fixedWindow: (R) => R.fixedWindow(5, '10 s'),
  slidingWindow: (R) => R.slidingWindow(5, '10 s'),
  tokenBucket: (R) => R.tokenBucket(2, '2 s', 5),
}

/** A deterministic sequence: [time offset ms, identifier, rate]. */
function sequence() {
  const steps = []
  let t = 0
  for (let i = 0; i < 40; i++) {
    t += [0, 150, 900, 2600][i % 4]
    steps.push([t, `id${i % 3}`, i % 7 === 0 ? 2 : 1])
  }
  return steps
}

describe('redis:// store', nativeOnly, () => {
  test('url never shows the password, and the store is our native one', () => {
    assert.equal(tcp.url, `redis://127.0.0.1:${stack.redis.port}`)
    assert.ok(!JSON.stringify(tcp).includes(stack.redis.password))
  })

  for (const [name, make] of Object.entries(ALGORITHMS)) {
    test(`${name}: same answers over TCP as upstream over REST, and one shared database`, T, async () => {
      const start = 1_800_000_000_000 + Math.floor(Math.random() * 1e6) * 10_000
      const run = async (limiterFor, prefix) => {
        const answers = []
        for (const [offset, id, rate] of sequence()) {
          clock.set(start + offset)
          const r = await limiterFor(answers.length).limit(id, { rate })
          answers.push(omitPending(r))
        }
        clock.restore()
        return answers
      }
      const p = `tcp-${name}-${tag()}`
      const upstream = new UpstreamRatelimit({ redis: upstash, limiter: make(UpstreamRatelimit), prefix: `${p}-up`, analytics: false })
      const ours = new Ratelimit({ redis: tcp, limiter: make(Ratelimit), prefix: `${p}-us` })
      const expected = await run(() => upstream, `${p}-up`)
      assert.deepEqual(await run(() => ours, `${p}-us`), expected, 'ours over TCP = upstream over REST')

      // Alternating libraries on ONE prefix: the same answers as one limiter alone.
      const upShared = new UpstreamRatelimit({ redis: upstash, limiter: make(UpstreamRatelimit), prefix: `${p}-sh`, analytics: false })
      const usShared = new Ratelimit({ redis: tcp, limiter: make(Ratelimit), prefix: `${p}-sh` })
      const mixed = await run((i) => (i % 2 === 0 ? usShared : upShared), `${p}-sh`)
      assert.deepEqual(mixed, expected, 'alternating TCP (ours) and REST (upstream) on the same keys')
    })
  }

  test('getRemaining and resetUsedTokens over TCP agree with upstream on the same keys', T, async () => {
    const prefix = `tcp-rem-${tag()}`
    const ours = new Ratelimit({ redis: tcp, limiter: Ratelimit.slidingWindow(4, '60 s'), prefix })
    const upstream = new UpstreamRatelimit({ redis: upstash, limiter: UpstreamRatelimit.slidingWindow(4, '60 s'), prefix, analytics: false })
    for (let i = 0; i < 3; i++) await ours.limit('user')
    assert.deepEqual(await ours.getRemaining('user'), await upstream.getRemaining('user'))
    assert.equal((await ours.getRemaining('user')).remaining, 1)
    await ours.resetUsedTokens('user')
    assert.equal((await upstream.getRemaining('user')).remaining, 4)
  })

  test('protection + analytics: one composed script on stock Redis, same stored data', T, async () => {
    const prefix = `tcp-pa-${tag()}`
    await redisBatch(stack.redis, [['SADD', `${prefix}:denyList:all`, 'blocked-user'], ['SET', `${prefix}:ipDenyListStatus`, 'valid', 'EX', 3600]])
    const ours = new Ratelimit({ redis: tcp, limiter: Ratelimit.fixedWindow(3, '60 s'), prefix, analytics: true, enableProtection: true })
    const allowed = await ours.limit('someone')
    await allowed.pending
    assert.equal(allowed.success, true)
    const denied = await ours.limit('blocked-user')
    await denied.pending
    assert.equal(denied.success, false)
    assert.equal(denied.reason, 'denyList')
    assert.equal(denied.deniedValue, 'blocked-user')
    const events = await redisBatch(stack.redis, [['KEYS', `${prefix}:*events*`]])
    assert.ok(events[0].length >= 1, `analytics events written: ${JSON.stringify(events)}`)
  })

  test('500 concurrent calls on one key with limit 100: exactly 100 allowed', T, async () => {
    const rl = new Ratelimit({ redis: tcp, limiter: Ratelimit.fixedWindow(100, '60 s'), prefix: `tcp-c-${tag()}`, ephemeralCache: false })
    const results = await Promise.all(Array.from({ length: 500 }, () => rl.limit('hot')))
    assert.equal(results.filter((r) => r.success).length, 100)
    assert.equal(Math.min(...results.map((r) => r.remaining)), 0)
  })

  test('MultiRegionRatelimit over two redis:// regions', T, async () => {
    const second = await startRedis()
    try {
      const regions = [tcp, new Redis({ url: second.url })]
      const rl = new MultiRegionRatelimit({ redis: regions, limiter: MultiRegionRatelimit.fixedWindow(3, '60 s'), prefix: `tcp-mr-${tag()}` })
      const answers = []
      for (let i = 0; i < 5; i++) {
        const r = await rl.limit('u')
        await r.pending
        answers.push(r.success)
      }
      assert.deepEqual(answers, [true, true, true, false, false])
    } finally {
      await second.stop()
    }
  })

  test('a wrong password or a dead port: an error without the password (or the timeout answer)', T, async () => {
    const secret = `not-${stack.redis.password}`
    const wrong = new Redis({ url: `redis://:${secret}@127.0.0.1:${stack.redis.port}` })
    const failing = new Ratelimit({ redis: wrong, limiter: Ratelimit.fixedWindow(3, '60 s'), timeout: 0 })
    await assert.rejects(failing.limit('x'), (err) => !String(err.message).includes(secret) && /127\.0\.0\.1/.test(err.message))

    const dead = new Redis({ url: `redis://:${secret}@127.0.0.1:${await freePort()}` })
    const openOnTimeout = new Ratelimit({ redis: dead, limiter: Ratelimit.fixedWindow(3, '60 s'), timeout: 300 })
    const r = await openOnTimeout.limit('x')
    assert.equal(r.success, true)
    assert.equal(r.reason, 'timeout')
  })

  test('bad redis URLs are refused without echoing the password', () => {
    for (const url of ['rediss://:s3cret-pw@/0', 'redis://:s3cret-pw@/0']) {
      assert.throws(
        () => new Redis({ url }),
        (err) => !err.message.includes('s3cret-pw') && /ratelimit-native|Redis URL|rediss/.test(err.message),
      )
    }
  })
})
