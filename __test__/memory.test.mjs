// The embedded memory store through the public API: the same answers as the algorithms give on
// Redis, one store shared by the whole process (worker threads included), atomic under
// concurrency, and a key cap that refuses new keys loudly instead of evicting live limits.

import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { Worker } from 'node:worker_threads'
import { createRequire } from 'node:module'
import { nativeOnly } from './helpers/engine.mjs'

const require = createRequire(import.meta.url)
const { Ratelimit, Redis } = require('..')

const prefix = () => `mem-${randomUUID()}`

test('every algorithm limits, reports and resets on Redis.memory()', async () => {
  const redis = Redis.memory()
  const cases = [
    ['fixedWindow', Ratelimit.fixedWindow(3, '60 s'), [2, 1, 0, 0, 0]],
    ['slidingWindow', Ratelimit.slidingWindow(3, '60 s'), [2, 1, 0, 0, 0]],
    ['tokenBucket', Ratelimit.tokenBucket(1, '60 s', 3), [2, 1, 0, 0, 0]],
    ['cachedFixedWindow', Ratelimit.cachedFixedWindow(3, '60 s'), [2, 1, 0, -1, -2]],
  ]
  for (const [name, limiter, expectedRemaining] of cases) {
    const rl = new Ratelimit({ redis, limiter, prefix: prefix(), ephemeralCache: name === 'cachedFixedWindow' ? new Map() : false })
    const results = []
    for (let i = 0; i < 5; i++) results.push(await rl.limit('user'))
    assert.deepEqual(results.map((r) => r.success), [true, true, true, false, false], name)
    assert.deepEqual(results.map((r) => r.remaining), expectedRemaining, name)
    assert.ok(results.every((r) => r.limit === 3 && r.reset > Date.now()), name)
    assert.equal((await rl.getRemaining('user')).remaining, 0, name)
    await rl.resetUsedTokens('user')
    assert.equal((await rl.getRemaining('user')).remaining, 3, `${name} after reset`)
  }
})

test('the ephemeral cache, refunds, zero rates and dynamic limits work on memory', async () => {
  const rl = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.fixedWindow(2, '60 s'), prefix: prefix(), dynamicLimits: true })
  await rl.limit('a')
  await rl.limit('a')
  assert.equal((await rl.limit('a')).reason, undefined)
  assert.equal((await rl.limit('a')).reason, 'cacheBlock')
  assert.equal((await rl.limit('a', { rate: 0 })).remaining, 0, 'rate 0 bypasses the cache and reads')
  const refund = await rl.limit('a', { rate: -3 })
  assert.equal(refund.success, true)
  assert.equal(refund.remaining, 2)
  await rl.setDynamicLimit({ limit: 5 })
  assert.deepEqual(await rl.getDynamicLimit(), { dynamicLimit: 5 })
  const withDynamic = await rl.limit('b')
  assert.equal(withDynamic.limit, 5)
  assert.equal(withDynamic.remaining, 4)
  await rl.setDynamicLimit({ limit: false })
  assert.deepEqual(await rl.getDynamicLimit(), { dynamicLimit: null })
  await assert.rejects(rl.limit('c', { rate: 1.5 }), /ERR value is not an integer or out of range/)
})

test('windows follow the caller clock (Date.now), so fake timers work', async (t) => {
  const realNow = Date.now
  let now = Math.floor(realNow() / 60_000) * 60_000 + 1_000
  t.after(() => {
    Date.now = realNow
  })
  Date.now = () => now
  const rl = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.fixedWindow(1, '60 s'), prefix: prefix(), ephemeralCache: false })
  assert.equal((await rl.limit('u')).success, true)
  assert.equal((await rl.limit('u')).success, false)
  now += 60_000
  const next = await rl.limit('u')
  assert.equal(next.success, true, 'a new window after the fake clock moved')
  assert.equal(next.reset, Math.floor(now / 60_000) * 60_000 + 60_000)
})

test('concurrent calls admit exactly the limit', async () => {
  for (const limiter of [Ratelimit.fixedWindow(100, '60 s'), Ratelimit.slidingWindow(100, '60 s'), Ratelimit.tokenBucket(1, '60 s', 100)]) {
    const rl = new Ratelimit({ redis: Redis.memory(), limiter, prefix: prefix(), ephemeralCache: false })
    const results = await Promise.all(Array.from({ length: 1000 }, () => rl.limit('hot')))
    assert.equal(results.filter((r) => r.success).length, 100)
  }
})

// On the WebAssembly engine each worker thread has its own module, and so its own store.
test('worker threads share the one process-wide store, atomically', nativeOnly, async () => {
  const shared = prefix()
  const workerCode = `
    const { parentPort, workerData } = require('node:worker_threads')
    const { Ratelimit, Redis } = require(workerData.root)
    const rl = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.fixedWindow(100, '60 s'), prefix: workerData.prefix, ephemeralCache: false })
    Promise.all(Array.from({ length: 100 }, () => rl.limit('shared')))
      .then((rs) => parentPort.postMessage(rs.filter((r) => r.success).length))
  `
  const root = require.resolve('..')
  const counts = await Promise.all(
    Array.from({ length: 4 }, () => {
      const worker = new Worker(workerCode, { eval: true, workerData: { root, prefix: shared } })
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('worker timed out')), 20_000)
        worker.once('message', (n) => {
          clearTimeout(timer)
          worker.terminate().then(() => resolve(n))
        })
        worker.once('error', reject)
      })
    }),
  )
  assert.equal(counts.reduce((a, b) => a + b, 0), 100, `per worker: ${counts.join(', ')}`)
  const rl = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.fixedWindow(100, '60 s'), prefix: shared })
  assert.equal((await rl.getRemaining('shared')).remaining, 0, 'the main thread sees the workers\' counts')
})

test('a full store refuses new keys with a clear error and keeps serving existing ones', async (t) => {
  t.after(() => Redis.memory({ maxKeys: 1_000_000 }))
  const redis = Redis.memory()
  const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '60 s'), prefix: prefix(), ephemeralCache: false })
  await rl.limit('existing')
  const live = require('../lib/engine.js').NativeStore.memory().size
  Redis.memory({ maxKeys: live })
  await assert.rejects(rl.limit(`new-${randomUUID()}`), /memory store is full .*maxKeys/)
  assert.equal((await rl.limit('existing')).remaining, 8, 'existing keys keep working')
  assert.throws(() => Redis.memory({ maxKeys: 0 }), /maxKeys must be a positive integer/)
})

test('the memory store refuses scripts it cannot run, with a clear error', async () => {
  const redis = Redis.memory()
  await assert.rejects(redis.evalsha('abc', [], []), /not supported by the memory store/)
  assert.equal(await redis.set(`k-${randomUUID()}`, 5), 'OK')
})
