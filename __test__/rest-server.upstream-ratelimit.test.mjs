// The PUBLISHED @upstash/ratelimit 2.2.0 (with @upstash/redis 1.39, default options) through the
// local REST server against a real redis-server. Its Lua scripts start with the Upstash-only
// `#!lua flags=allow-key-locking` shebang, so this only works if the server strips the flag; the
// INFO commandstats checks prove that the original SHA1s are mapped, so warm calls are EVALSHA
// hits with no further EVAL. Reference: /work/shared/reference/upstash-rest-protocol.md §1.7, §3.2.

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { after, before, describe, test } from 'node:test'
import { Ratelimit } from '@upstash/ratelimit'
import { Redis } from '@upstash/redis'
import { startStack } from './helpers/servers.mjs'

const T = { timeout: 20000 }
const sha1 = (text) => createHash('sha1').update(text).digest('hex')
const fresh = () => `rl${randomBytes(6).toString('hex')}`

/** `INFO commandstats` → { eval, evalsha }, each { calls, failed, rejected }. */
async function commandStats(stack) {
  const text = await stack.redis.command(['INFO', 'commandstats'])
  const read = (name) => {
    const m = text.match(new RegExp(`^cmdstat_${name}:(.*)$`, 'm'))
    if (!m) return { calls: 0, failed: 0, rejected: 0 }
    const f = Object.fromEntries(m[1].trim().split(',').map((kv) => kv.split('=')))
    return { calls: Number(f.calls ?? 0), failed: Number(f.failed_calls ?? 0), rejected: Number(f.rejected_calls ?? 0) }
  }
  return { eval: read('eval'), evalsha: read('evalsha') }
}

/** The script text and hard-coded hash of one of the package's scripts, read from its dist. */
function publishedScript(varName, hash) {
  const require = createRequire(import.meta.url)
  const dist = readFileSync(require.resolve('@upstash/ratelimit'), 'utf8')
  const m = dist.match(new RegExp(`var ${varName} = \`([^\`]*)\`;`))
  assert.ok(m, `${varName} not found in the published dist`)
  assert.equal(sha1(m[1]), hash, `${varName} as read must hash to the package's hard-coded SHA1`)
  assert.ok(m[1].startsWith('#!lua flags=allow-key-locking\n'))
  return m[1]
}

/**
 * Runs `fn` (which uses fresh identifiers each time) again if the fixed window rolled over while
 * it ran, since counts legitimately restart then; at most 3 tries, then the last outcome stands.
 */
async function inOneWindow(windowMs, fn) {
  for (let attempt = 0; ; attempt++) {
    const bucket = Math.floor(Date.now() / windowMs)
    let outcome
    try {
      outcome = { value: await fn() }
    } catch (error) {
      outcome = { error }
    }
    const rolledOver = Math.floor(Date.now() / windowMs) !== bucket
    if (!rolledOver || attempt >= 2) {
      if ('error' in outcome) throw outcome.error
      return outcome.value
    }
  }
}

describe('@upstash/ratelimit 2.2.0 through the REST server', () => {
  let stack
  let redis

  before(async () => {
    stack = await startStack()
    redis = new Redis({ url: stack.rest.url, token: stack.rest.token, enableTelemetry: false })
  })

  after(async () => {
    await stack?.stop()
  })

  const limiter = (limiterFn, extra = {}) =>
    new Ratelimit({ redis, limiter: limiterFn, prefix: fresh(), ephemeralCache: false, enableTelemetry: false, ...extra })

  test('fixedWindow: limit, getRemaining, resetUsedTokens', T, async () => {
    await inOneWindow(3600_000, async () => {
      const rl = limiter(Ratelimit.fixedWindow(3, '1 h'))
      const id = 'user-1'
      const results = []
      for (let i = 0; i < 5; i++) results.push(await rl.limit(id))
      assert.deepEqual(
        results.map((r) => [r.success, r.remaining, r.limit, r.reason]),
        [
          [true, 2, 3, undefined],
          [true, 1, 3, undefined],
          [true, 0, 3, undefined],
          [false, 0, 3, undefined],
          [false, 0, 3, undefined],
        ],
      )
      const windowEnd = (Math.floor(Date.now() / 3600_000) + 1) * 3600_000
      assert.equal(results[0].reset, windowEnd)
      const remaining = await rl.getRemaining(id)
      assert.deepEqual(remaining, { remaining: 0, reset: windowEnd, limit: 3 })
      // The counter lives in Redis under the package's key layout.
      const key = `${rl.prefix}:${id}:${Math.floor(Date.now() / 3600_000)}`
      assert.equal(await redis.get(key), 5)

      await rl.resetUsedTokens(id)
      assert.equal(await redis.get(key), null)
      assert.deepEqual(await rl.getRemaining(id), { remaining: 3, reset: windowEnd, limit: 3 })
      const again = await rl.limit(id, { rate: 2 })
      assert.deepEqual([again.success, again.remaining, again.limit], [true, 1, 3])
      // Another identifier is independent.
      const other = await rl.limit('user-2')
      assert.deepEqual([other.success, other.remaining], [true, 2])
    })
  })

  test('slidingWindow: limit, getRemaining, resetUsedTokens', T, async () => {
    await inOneWindow(3600_000, async () => {
      const rl = limiter(Ratelimit.slidingWindow(3, '1 h'))
      const id = 'user-1'
      const results = []
      for (let i = 0; i < 5; i++) results.push(await rl.limit(id))
      assert.deepEqual(
        results.map((r) => [r.success, r.remaining, r.limit, r.reason]),
        [
          [true, 2, 3, undefined],
          [true, 1, 3, undefined],
          [true, 0, 3, undefined],
          [false, 0, 3, undefined],
          [false, 0, 3, undefined],
        ],
      )
      const windowEnd = (Math.floor(Date.now() / 3600_000) + 1) * 3600_000
      assert.equal(results[4].reset, windowEnd)
      const remaining = await rl.getRemaining(id)
      assert.deepEqual(remaining, { remaining: 0, reset: windowEnd, limit: 3 })
      const key = `${rl.prefix}:${id}:${Math.floor(Date.now() / 3600_000)}`
      assert.equal(await redis.get(key), 3, 'rejected requests are not counted')

      await rl.resetUsedTokens(id)
      assert.equal(await redis.exists(key), 0)
      assert.deepEqual(await rl.getRemaining(id), { remaining: 3, reset: windowEnd, limit: 3 })
      const again = await rl.limit(id)
      assert.deepEqual([again.success, again.remaining, again.limit], [true, 2, 3])
    })
  })

  test('tokenBucket: limit, getRemaining, resetUsedTokens', T, async () => {
    const rl = limiter(Ratelimit.tokenBucket(1, '1 h', 3))
    const id = 'user-1'
    const started = Date.now()
    const results = []
    for (let i = 0; i < 5; i++) results.push(await rl.limit(id))
    assert.deepEqual(
      results.map((r) => [r.success, r.remaining, r.limit, r.reason]),
      [
        [true, 2, 3, undefined],
        [true, 1, 3, undefined],
        [true, 0, 3, undefined],
        [false, 0, 3, undefined],
        [false, 0, 3, undefined],
      ],
    )
    // Refill happens one interval after the bucket was created.
    assert.ok(results[3].reset >= started + 3600_000 && results[3].reset <= Date.now() + 3600_000, String(results[3].reset))
    const remaining = await rl.getRemaining(id)
    assert.equal(remaining.remaining, 0)
    assert.equal(remaining.limit, 3)
    assert.equal(remaining.reset, results[3].reset)
    const key = `${rl.prefix}:${id}`
    assert.deepEqual(await redis.hget(key, 'tokens'), 0)

    await rl.resetUsedTokens(id)
    assert.equal(await redis.exists(key), 0)
    const afterReset = await rl.getRemaining(id)
    assert.equal(afterReset.remaining, 3)
    assert.equal(afterReset.limit, 3)
    const again = await rl.limit(id, { rate: 3 })
    assert.deepEqual([again.success, again.remaining], [true, 0])
  })

  test('dynamic limits and the default ephemeral cache also work through the server', T, async () => {
    await inOneWindow(3600_000, async () => {
      const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(2, '1 h'), prefix: fresh(), dynamicLimits: true, enableTelemetry: false })
      assert.deepEqual(await rl.getDynamicLimit(), { dynamicLimit: null })
      await rl.setDynamicLimit({ limit: 4 })
      assert.deepEqual(await rl.getDynamicLimit(), { dynamicLimit: 4 })
      const results = []
      for (let i = 0; i < 6; i++) results.push(await rl.limit('d'))
      assert.deepEqual(
        results.map((r) => [r.success, r.remaining, r.reason]),
        [
          [true, 3, undefined],
          [true, 2, undefined],
          [true, 1, undefined],
          [true, 0, undefined],
          [false, 0, undefined],
          // The in-memory cache now blocks without asking Redis.
          [false, 0, 'cacheBlock'],
        ],
      )
      assert.equal(results[0].limit, 4)
      assert.deepEqual(await rl.getRemaining('d'), { remaining: 0, reset: results[0].reset, limit: 4 })
      await rl.setDynamicLimit({ limit: false })
      assert.deepEqual(await rl.getDynamicLimit(), { dynamicLimit: null })
      await rl.resetUsedTokens('d')
      assert.deepEqual(await rl.getRemaining('d'), { remaining: 2, reset: results[0].reset, limit: 2 })
    })
  })
})

describe('shebang stripping and SHA1 mapping, measured in Redis INFO commandstats', () => {
  let stack
  let redis

  before(async () => {
    stack = await startStack()
    redis = new Redis({ url: stack.rest.url, token: stack.rest.token, enableTelemetry: false })
  })

  after(async () => {
    await stack?.stop()
  })

  test('a cold limit() costs EVALSHA(NOSCRIPT) + EVAL; warm calls are EVALSHA hits with no EVAL', T, async () => {
    const limitScript = publishedScript('fixedWindowLimitScript', 'b2efc02798c8e9b471a10f9b1d5745db89923ff3')
    const stripped = limitScript.replace(/^#!lua flags=allow-key-locking\n/, '#!lua\n')
    const exists = async (...shas) => stack.redis.command(['SCRIPT', 'EXISTS', ...shas])

    await inOneWindow(3600_000, async () => {
      // This stack is fresh: Redis knows no script yet.
      assert.equal(await exists(sha1(limitScript), sha1(stripped)), '*2\r\n:0\r\n:0\r\n')
      const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(100, '1 h'), prefix: fresh(), ephemeralCache: false, enableTelemetry: false })

      const s0 = await commandStats(stack)
      const cold = await rl.limit('x')
      assert.deepEqual([cold.success, cold.remaining, cold.reason], [true, 99, undefined])
      const s1 = await commandStats(stack)
      assert.equal(s1.evalsha.calls + s1.evalsha.failed + s1.evalsha.rejected > s0.evalsha.calls + s0.evalsha.failed + s0.evalsha.rejected, true, 'the cold call tried EVALSHA first')
      assert.equal(s1.eval.calls - s0.eval.calls, 1, 'the cold call fell back to exactly one EVAL')
      assert.equal(s1.eval.failed, s0.eval.failed, 'that EVAL succeeded (the shebang was stripped)')

      // Redis holds the stripped script, never the original text.
      assert.equal(await exists(sha1(limitScript), sha1(stripped)), '*2\r\n:0\r\n:1\r\n')
      // The client-facing SCRIPT EXISTS answers for the original SHA1 the package hard-codes.
      assert.deepEqual(await redis.scriptExists(sha1(limitScript)), [1])

      for (let i = 0; i < 5; i++) {
        const r = await rl.limit('x')
        assert.deepEqual([r.success, r.remaining, r.reason], [true, 98 - i, undefined])
      }
      const s2 = await commandStats(stack)
      assert.equal(s2.eval.calls, s1.eval.calls, 'warm calls do not EVAL')
      assert.equal(s2.evalsha.calls - s1.evalsha.calls, 5, 'each warm call is one EVALSHA')
      assert.equal(s2.evalsha.failed + s2.evalsha.rejected, s1.evalsha.failed + s1.evalsha.rejected, 'and none of them is a NOSCRIPT')

      // getRemaining: cold once, then warm.
      assert.equal((await rl.getRemaining('x')).remaining, 94)
      const s3 = await commandStats(stack)
      assert.equal(s3.eval.calls - s2.eval.calls, 1)
      for (let i = 0; i < 3; i++) assert.equal((await rl.getRemaining('x')).remaining, 94)
      const s4 = await commandStats(stack)
      assert.equal(s4.eval.calls, s3.eval.calls)
      assert.equal(s4.evalsha.calls - s3.evalsha.calls, 3)
      assert.equal(s4.evalsha.failed + s4.evalsha.rejected, s3.evalsha.failed + s3.evalsha.rejected)

      // A second limiter instance with the same algorithm reuses the cached script: no EVAL at all.
      const rl2 = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(100, '1 h'), prefix: fresh(), ephemeralCache: false, enableTelemetry: false })
      assert.equal((await rl2.limit('y')).remaining, 99)
      const s5 = await commandStats(stack)
      assert.equal(s5.eval.calls, s4.eval.calls)
      assert.equal(s5.evalsha.calls - s4.evalsha.calls, 1)
    })
  })

  test('after Redis SCRIPT FLUSH behind the server’s back, the package recovers via NOSCRIPT → EVAL', T, async () => {
    const rl = new Ratelimit({ redis, limiter: Ratelimit.slidingWindow(10, '1 h'), prefix: fresh(), ephemeralCache: false, enableTelemetry: false })
    await inOneWindow(3600_000, async () => {
      assert.equal((await rl.limit('z')).remaining, 9)
      assert.match(await stack.redis.command(['SCRIPT', 'FLUSH']), /^\+OK/)
      const s0 = await commandStats(stack)
      const r = await rl.limit('z')
      assert.deepEqual([r.success, r.remaining, r.reason], [true, 8, undefined])
      const s1 = await commandStats(stack)
      assert.equal(s1.eval.calls - s0.eval.calls, 1)
      const w = await rl.limit('z')
      assert.equal(w.remaining, 7)
      const s2 = await commandStats(stack)
      assert.equal(s2.eval.calls, s1.eval.calls)
    })
  })
})
