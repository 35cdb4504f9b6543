// Differential tests: the same deterministic call sequences on the published
// `@upstash/ratelimit` 2.2.0 (the oracle) and on ours, against ONE redis-server behind the local
// Upstash REST server, each with its own prefix, with Date.now controlled identically for both
// (a fake clock shared by both libraries: both read globalThis.Date.now).
// After every step the responses must be equal (success, limit, remaining, reset, reason; not
// `pending`) and so must the Redis state (same keys modulo the prefix, same types and values,
// TTL present or not and the same within a small tolerance).
// resetUsedTokens is skipped for identifiers with glob characters (our deliberate fix, see
// docs/COMPATIBILITY.md); so is the TTL comparison for cachedFixedWindow keys (ours expire).

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { Ratelimit as UpstreamRatelimit } from '@upstash/ratelimit'
import { Redis as UpstashRedis } from '@upstash/redis'
import { Ratelimit, Redis } from '../index.js'
import { startStack } from './helpers/servers.mjs'
import { seedOf, mulberry32, parseReplies, redisBatch, redisOne, keysOf, hash } from './helpers/direct-redis.mjs'

const omitPending = ({ pending, ...rest }) => rest
/** Two prefixes of the same shape, so keys compare modulo the prefix. */
const freshPair = () => {
  const id = randomBytes(4).toString('hex')
  return [`rld-up-${id}`, `rld-us-${id}`]
}

/** A fake clock shared by both libraries (restored after every run). */
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

/** Deterministic PRNG (mulberry32). */

/** Every key under `prefix:` → { suffix: { type, value, pttl } }. */
async function dumpState(redis, prefix) {
  const keys = ((await redisBatch(redis, [['KEYS', `${prefix}:*`]]))[0] ?? []).sort()
  if (keys.length === 0) return {}
  const replies = await redisBatch(
    redis,
    keys.flatMap((k) => [['TYPE', k], ['PTTL', k], ['GET', k], ['HGETALL', k]]),
  )
  const state = {}
  keys.forEach((k, j) => {
    const [type, pttl, str, flat] = replies.slice(4 * j, 4 * j + 4)
    let value
    if (type === 'string') value = str
    else if (type === 'hash') {
      value = {}
      for (let i = 0; i < flat.length; i += 2) value[flat[i]] = flat[i + 1]
    } else value = `<${type}>`
    state[k.slice(prefix.length)] = { type, value, pttl }
  })
  return state
}

const TTL_TOLERANCE_MS = 500

/** Compares two dumps: same keys, types, values; TTL both absent or both present and close. */
function assertSameState(up, ours, where, { oursExpiresWhereUpstreamDoesNot = false } = {}) {
  assert.deepEqual(Object.keys(ours).sort(), Object.keys(up).sort(), `${where}: same keys`)
  for (const k of Object.keys(up)) {
    const a = up[k]
    const b = ours[k]
    assert.equal(b.type, a.type, `${where}: type of ${k}`)
    assert.deepEqual(b.value, a.value, `${where}: value of ${k}`)
    if (oursExpiresWhereUpstreamDoesNot && a.pttl === -1) {
      assert.ok(b.pttl > 0, `${where}: ours gives ${k} a TTL (got ${b.pttl})`)
      continue
    }
    assert.equal(b.pttl > 0, a.pttl > 0, `${where}: TTL presence of ${k} (upstream ${a.pttl}, ours ${b.pttl})`)
    if (a.pttl > 0) {
      assert.ok(Math.abs(a.pttl - b.pttl) <= TTL_TOLERANCE_MS, `${where}: PTTL of ${k}: upstream ${a.pttl}, ours ${b.pttl}`)
    }
  }
}

const GLOB = /[*?[\]\\]/
const IDS = ['alice', 'bob', 'c:1', 'x*', 'q?', '']
const RATES = [undefined, undefined, 1, 1, 1, 2, 3, 0, -1, -2, 4, 7, 12]

/** A deterministic op sequence. */
function sequence(seed, steps, { dynamic = false, maxAdvanceMs = 4000 } = {}) {
  const rnd = mulberry32(seed)
  const pick = (list) => list[Math.floor(rnd() * list.length)]
  const ops = []
  for (let i = 0; i < steps; i++) {
    const x = rnd()
    const id = pick(IDS)
    if (x < 0.55) ops.push({ op: 'limit', id, rate: pick(RATES) })
    else if (x < 0.68) ops.push({ op: 'getRemaining', id })
    else if (x < 0.76) ops.push(GLOB.test(id) ? { op: 'getRemaining', id } : { op: 'resetUsedTokens', id })
    else if (dynamic && x < 0.8) ops.push({ op: 'setDynamicLimit', limit: pick([false, 1, 3, 8, 20, false]) })
    else if (dynamic && x < 0.83) ops.push({ op: 'getDynamicLimit' })
    else ops.push({ op: 'advance', ms: 50 + Math.floor(rnd() * maxAdvanceMs) })
  }
  return ops
}

async function runOp(rl, op) {
  try {
    switch (op.op) {
      case 'limit': {
        const r = op.rate === undefined ? await rl.limit(op.id) : await rl.limit(op.id, { rate: op.rate })
        assert.ok(r.pending instanceof Promise, 'pending is a Promise')
        await r.pending
        return { value: omitPending(r) }
      }
      case 'getRemaining':
        return { value: await rl.getRemaining(op.id) }
      case 'resetUsedTokens':
        return { value: await rl.resetUsedTokens(op.id) }
      case 'setDynamicLimit':
        return { value: await rl.setDynamicLimit({ limit: op.limit }) }
      case 'getDynamicLimit':
        return { value: await rl.getDynamicLimit() }
      default:
        throw new Error(`unknown op ${op.op}`)
    }
  } catch (error) {
    return { rejected: String(error?.message ?? error) }
  }
}

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

const ALGORITHMS = {
  fixedWindow: (R) => R.fixedWindow(5, '10 s'),
  slidingWindow: (R) => R.slidingWindow(5, '10 s'),
  tokenBucket: (R) => R.tokenBucket(2, '5 s', 6),
}

before(async () => {
  stack = await startStack()
})
after(async () => {
  clock.restore()
  await stack?.stop()
})

/**
 * Runs `ops` on upstream and ours side by side; compares responses and Redis state after every
 * step. Returns a summary (counts of each outcome), so the caller can check the sequence really
 * exercised rejections, cache blocks, refunds, …
 */
async function differential({ name, algorithm, client, steps, cache, dynamic = false, ttlFix = false, maxAdvanceMs }) {
  const [upPrefix, ourPrefix] = freshPair()
  const cacheOption = cache ? {} : { ephemeralCache: false }
  const dyn = dynamic ? { dynamicLimits: true } : {}
  const up = new UpstreamRatelimit({ redis: upstash(), limiter: algorithm(UpstreamRatelimit), prefix: upPrefix, ...cacheOption, ...dyn })
  const ours = new Ratelimit({ redis: OUR_CLIENTS[client](), limiter: algorithm(Ratelimit), prefix: ourPrefix, ...cacheOption, ...dyn })
  const ops = sequence(seedOf(name), steps, { dynamic, maxAdvanceMs })
  const summary = { success: 0, rejected: 0, cacheBlock: 0, refund: 0, zero: 0, reset: 0, getRemaining: 0, dynamic: 0 }
  clock.install(Math.floor(realNow() / 60000) * 60000 + 1234)
  try {
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]
      const where = `${name} step ${i} ${JSON.stringify(op)} at t=${clock.t}`
      if (op.op === 'advance') {
        clock.t += op.ms
        continue
      }
      const a = await runOp(up, op)
      const b = await runOp(ours, op)
      assert.equal(a.rejected, undefined, `${where}: upstream rejected: ${a.rejected}`)
      assert.equal(b.rejected, undefined, `${where}: ours rejected: ${b.rejected}`)
      assert.deepEqual(b.value, a.value, `${where}: same response`)
      assertSameState(await dumpState(stack.redis, upPrefix), await dumpState(stack.redis, ourPrefix), where, {
        oursExpiresWhereUpstreamDoesNot: ttlFix,
      })
      if (op.op === 'limit') {
        if (a.value.success) summary.success++
        else summary.rejected++
        if (a.value.reason === 'cacheBlock') summary.cacheBlock++
        if (op.rate < 0) summary.refund++
        if (op.rate === 0) summary.zero++
      } else if (op.op === 'resetUsedTokens') summary.reset++
      else if (op.op === 'getRemaining') summary.getRemaining++
      else summary.dynamic++
    }
  } finally {
    clock.restore()
  }
  return summary
}

const STEPS = 150

for (const [algo, algorithm] of Object.entries(ALGORITHMS)) {
  describe(`differential: ${algo}`, () => {
    test('cache off, @upstash/redis instance', async () => {
      const s = await differential({ name: `${algo}/nocache/upstash`, algorithm, client: 'upstash', steps: STEPS, cache: false })
      assert.ok(s.success > 5 && s.rejected > 5, JSON.stringify(s))
      assert.ok(s.refund > 0 && s.zero > 0 && s.reset > 0 && s.getRemaining > 0, JSON.stringify(s))
      assert.equal(s.cacheBlock, 0)
    })

    test('cache on (default per-instance Map) on both', async () => {
      const s = await differential({ name: `${algo}/cache/upstash`, algorithm, client: 'upstash', steps: STEPS, cache: true })
      assert.ok(s.cacheBlock > 0, `the sequence produced cache blocks: ${JSON.stringify(s)}`)
    })

    test('cache off, our own Redis', async () => {
      await differential({ name: `${algo}/nocache/own`, algorithm, client: 'own', steps: STEPS, cache: false })
    })

    test('cache off, plain-object client (compat path)', async () => {
      await differential({ name: `${algo}/nocache/compat`, algorithm, client: 'compat', steps: STEPS, cache: false })
    })

    test('dynamic limits set and removed during the sequence', async () => {
      const s = await differential({ name: `${algo}/dynamic/upstash`, algorithm, client: 'upstash', steps: STEPS, cache: false, dynamic: true })
      assert.ok(s.dynamic > 0, JSON.stringify(s))
    })
  })
}

describe('differential: cachedFixedWindow', () => {
  test('responses and counters equal; ours gives the keys a TTL (deliberate fix)', async () => {
    const s = await differential({
      name: 'cachedFixedWindow/upstash',
      algorithm: (R) => R.cachedFixedWindow(5, '10 s'),
      client: 'upstash',
      steps: STEPS,
      cache: true,
      ttlFix: true,
    })
    assert.ok(s.success > 5 && s.rejected > 5, JSON.stringify(s))
  })
})

describe('differential: long sequences without clock moves across a window', () => {
  // small clock steps: many calls per window, so counts reach the limit and rejections pile up
  for (const [algo, algorithm] of Object.entries(ALGORITHMS)) {
    test(`${algo}: cache on, small steps`, async () => {
      const s = await differential({ name: `${algo}/small/cache`, algorithm, client: 'upstash', steps: 60, cache: true, maxAdvanceMs: 300 })
      assert.ok(s.rejected > 0, JSON.stringify(s))
    })
  }
})
