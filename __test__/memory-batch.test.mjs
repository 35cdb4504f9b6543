// limit() calls made in one turn on Redis.memory() share one native call (lib/memory-batch.js).
// These tests pin what that must not change: every call gets the answer it would get alone, in
// the order the calls were made; the store's other operations see every call made before them;
// and a refused call fails alone (rejects, or failClosed's answer) without touching its
// neighbours.

import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { Ratelimit, Redis } = require('..')

const prefix = () => `batch-${randomUUID()}`
const strip = ({ success, limit, remaining, reset }) => ({ success, limit, remaining, reset })

/** The same calls (limiter index, identifier, rate) on fresh prefixes: all in one turn, and
 * awaited one at a time. */
async function bothWays(makeLimiters, calls) {
  const run = async (inOneTurn) => {
    const limiters = makeLimiters(prefix())
    if (inOneTurn) return (await Promise.all(calls.map(([i, id, rate]) => limiters[i].limit(id, rate === undefined ? undefined : { rate })))).map(strip)
    const out = []
    for (const [i, id, rate] of calls) out.push(strip(await limiters[i].limit(id, rate === undefined ? undefined : { rate })))
    return out
  }
  return { together: await run(true), alone: await run(false) }
}

test('calls made in one turn get the answers they get one at a time, in call order', async (t) => {
  const realNow = Date.now
  const frozen = realNow()
  // One clock for both runs, so windows and resets compare exactly.
  Date.now = () => frozen
  t.after(() => (Date.now = realNow))
  const redis = Redis.memory()
  const makeLimiters = (p) => [
    new Ratelimit({ redis, prefix: p, limiter: Ratelimit.fixedWindow(3, '10 s'), ephemeralCache: false }),
    new Ratelimit({ redis, prefix: `${p}-s`, limiter: Ratelimit.slidingWindow(4, '10 s'), ephemeralCache: false }),
    new Ratelimit({ redis, prefix: `${p}-b`, limiter: Ratelimit.tokenBucket(1, '10 s', 5), ephemeralCache: false }),
  ]
  const calls = []
  for (let n = 0; n < 60; n++) calls.push([n % 3, `id-${n % 4}`, n % 7 === 0 ? 2 : undefined])
  calls.push([0, 'id-0', -3], [0, 'id-0', undefined], [1, 'ünïcödé-🔑', undefined], [2, '', 0])
  const { together, alone } = await bothWays(makeLimiters, calls)
  assert.deepEqual(together, alone)
  assert.ok(together.some((r) => r.success) && together.some((r) => !r.success), 'both outcomes occur')
})

test('a turn of calls on one key admits exactly the limit, the first ones', async () => {
  const rl = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.fixedWindow(50, '60 s'), prefix: prefix(), ephemeralCache: false })
  const results = await Promise.all(Array.from({ length: 200 }, () => rl.limit('hot')))
  assert.deepEqual(results.map((r) => r.success), Array.from({ length: 200 }, (_, i) => i < 50))
  assert.deepEqual(results.slice(0, 50).map((r) => r.remaining), Array.from({ length: 50 }, (_, i) => 49 - i))
})

test('getRemaining, resetUsedTokens, commands and dynamic-limit calls see the calls made before them', async () => {
  const redis = Redis.memory()
  const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '60 s'), prefix: prefix(), ephemeralCache: false })
  const first = [rl.limit('a'), rl.limit('a'), rl.limit('a')]
  const remaining = rl.getRemaining('a')
  const more = [rl.limit('a'), rl.limit('a')]
  const reset = rl.resetUsedTokens('a')
  const afterReset = rl.limit('a')
  assert.deepEqual((await Promise.all(first)).map((r) => r.remaining), [9, 8, 7])
  assert.equal((await remaining).remaining, 7)
  assert.deepEqual((await Promise.all(more)).map((r) => r.remaining), [6, 5])
  await reset
  assert.equal((await afterReset).remaining, 9)

  // A limiter with dynamic limits takes its own crossing: it still comes after earlier calls.
  const p = prefix()
  const plain = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '60 s'), prefix: p, ephemeralCache: false })
  const dynamic = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '60 s'), prefix: p, ephemeralCache: false, dynamicLimits: true })
  const calls = [plain.limit('d'), plain.limit('d'), dynamic.limit('d'), plain.limit('d')]
  assert.deepEqual((await Promise.all(calls)).map((r) => r.remaining), [9, 8, 7, 6])

  // The store's commands too: a key written by a command right after a turn's calls.
  const key = `${p}:seen`
  const before = [plain.limit('e'), plain.limit('e')]
  await redis.set(key, 'x')
  assert.equal(await redis.get(key), 'x')
  assert.deepEqual((await Promise.all(before)).map((r) => r.remaining), [9, 8])
})

test('a refused call in a turn fails alone; failClosed answers it instead', async () => {
  const redis = Redis.memory()
  for (const failClosed of [false, true]) {
    const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(5, '60 s'), prefix: prefix(), ephemeralCache: false, failClosed })
    const settled = await Promise.allSettled([rl.limit('x'), rl.limit('x', { rate: Number.NaN }), rl.limit('x'), rl.limit('x', { rate: Infinity }), rl.limit('x')])
    assert.deepEqual(settled.map((s) => s.status), failClosed ? ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled'] : ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled'])
    const ok = [settled[0], settled[2], settled[4]].map((s) => s.value.remaining)
    assert.deepEqual(ok, [4, 3, 2], 'the neighbours counted as if the refused calls were not there')
    if (failClosed) {
      for (const s of [settled[1], settled[3]]) {
        assert.equal(s.value.success, false)
        assert.match(s.value.error.message, /rate must be a finite number/)
      }
    } else {
      assert.match(settled[1].reason.message, /rate must be a finite number, got NaN/)
      assert.match(settled[3].reason.message, /rate must be a finite number, got Infinity/)
    }
  }
})

test('a full store refuses the new keys of a turn and answers the rest', async (t) => {
  t.after(() => Redis.memory({ maxKeys: 1_000_000 }))
  const redis = Redis.memory()
  const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '60 s'), prefix: prefix(), ephemeralCache: false })
  await rl.limit('existing')
  const live = require('../lib/engine.js').NativeStore.memory().size
  Redis.memory({ maxKeys: live + 1 })
  const settled = await Promise.allSettled([rl.limit('existing'), rl.limit('new-1'), rl.limit('new-2'), rl.limit('existing'), rl.limit('new-3')])
  assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'rejected'])
  assert.deepEqual([settled[0], settled[3]].map((s) => s.value.remaining), [8, 7])
  assert.equal(settled[1].value.remaining, 9)
  assert.match(settled[2].reason.message, /memory store is full .*maxKeys/)
})

test('calls in one turn read the clock when they are made', async (t) => {
  const realNow = Date.now
  t.after(() => (Date.now = realNow))
  let now = realNow()
  now -= now % 10_000 // the start of a 10 s window
  Date.now = () => now
  const rl = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.fixedWindow(1, '10 s'), prefix: prefix(), ephemeralCache: false })
  const first = rl.limit('clock')
  const second = rl.limit('clock')
  now += 10_000 // the next window, before the turn ends
  const third = rl.limit('clock')
  assert.deepEqual((await Promise.all([first, second, third])).map((r) => r.success), [true, false, true])
})

test('the one-argument memory call (memoryLimitIo): long and non-ASCII keys, bad numbers refused clearly', async () => {
  const engine = require('../lib/engine')
  // An array of the test's own, as a second copy of the facade on this thread would have.
  const io = new Float64Array(new ArrayBuffer(64))
  const handle = engine.memoryIo(io)
  assert.notEqual(handle, require('../lib/memory-batch').ioHandleOf())
  const call = (kind, key, now = Date.now(), rate = 1) => {
    io.set([kind, 2, 10_000, 0, now, rate])
    engine.memoryLimitIo(key, handle)
    return Array.from(io.subarray(0, 4))
  }
  // Past the stack buffer of short keys (192 bytes), and characters of every UTF-8 length.
  for (const key of [`${prefix()}:${'x'.repeat(500)}`, `${prefix()}:é€😀`]) {
    assert.deepEqual(call(0, key).slice(0, 3), [1, 2, 1])
    assert.deepEqual(call(0, key).slice(0, 3), [1, 2, 0])
    assert.deepEqual(call(0, key).slice(0, 3), [0, 2, 0])
  }
  assert.throws(() => call(7, `${prefix()}:a`), /unknown algorithm kind/)
  assert.throws(() => call(0.5, `${prefix()}:a`), /unknown algorithm kind/)
  assert.throws(() => call(0, `${prefix()}:a`, Number.NaN), /./)
  assert.throws(() => engine.memoryLimitIo(42, handle), /string/i)
  assert.throws(() => engine.memoryLimitIo(`${prefix()}:a`, 1_000_000), /handle/)
  // The facade's own array still answers its calls.
  const limiter = new Ratelimit({ redis: Redis.memory(), prefix: prefix(), limiter: Ratelimit.fixedWindow(1, '10 s') })
  assert.equal((await limiter.limit('a')).success, true)
  assert.equal((await limiter.limit('a')).success, false)
})

test('calls awaited one by one, then a burst in one turn, then one by one again: exact and in order', async () => {
  const limiter = new Ratelimit({ redis: Redis.memory(), prefix: prefix(), limiter: Ratelimit.fixedWindow(150, '60 s'), ephemeralCache: false })
  // Many turns of one call each (turns then stop being marked), a burst, then single calls.
  for (let i = 0; i < 40; i++) assert.equal((await limiter.limit('a')).remaining, 149 - i)
  const burst = await Promise.all(Array.from({ length: 200 }, () => limiter.limit('a')))
  assert.deepEqual(
    burst.map((r) => r.success),
    Array.from({ length: 200 }, (_, i) => i < 110),
    'the first 110 of the burst, in call order',
  )
  assert.deepEqual(burst.slice(0, 110).map((r) => r.remaining), Array.from({ length: 110 }, (_, i) => 109 - i))
  assert.equal((await limiter.limit('a')).success, false)
  assert.equal((await limiter.getRemaining('a')).remaining, 0)
})
