// Memory stays bounded under a flood of distinct identifiers: the default ephemeral cache is
// capped (100,000 entries) and swept, a user's Map is swept but not capped, and the memory store
// refuses new keys at maxKeys (existing keys keep working) and recovers once keys expire.
//
// The flood is driven two ways: through limit() with a client whose script reply always
// blocks (the real code path, 200k identifiers), and straight into the limiter's own cache
// (`ratelimit.ctx.cache.blockUntil`, exactly what limit() calls for a blocked identifier) for
// 1M identifiers, which limit() on any store cannot do in this suite's time budget.

import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import v8 from 'node:v8'
import vm from 'node:vm'

import { Ratelimit, Redis, sleep } from './helpers.mjs'

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc')
const heapAfterGc = () => {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

const CAP = 100_000

/** A user's client whose fixed-window script reply always says "over the limit" ({count 2, limit 1}). */
const blockingClient = () => {
  const calls = { n: 0 }
  const reply = async () => {
    calls.n++
    return [2, 1]
  }
  return { calls, evalsha: reply, eval: reply, get: async () => null, set: async () => 'OK', del: async () => 0 }
}

test('200k distinct blocked identifiers through limit(): the default cache stays at its cap, and the cap costs no extra time per call', async (t) => {
  const client = blockingClient()
  const rl = new Ratelimit({ redis: client, limiter: Ratelimit.fixedWindow(1, '1 h'), prefix: `mem-${randomUUID()}` })
  const perPhase = []
  let id = 0
  const BUDGET_MS = 30_000
  const started = performance.now()
  for (const phase of ['below the cap', 'at the cap']) {
    const t0 = performance.now()
    for (let batch = 0; batch < 10 && performance.now() - started < BUDGET_MS; batch++) {
      const results = await Promise.all(Array.from({ length: 10_000 }, () => rl.limit(`id${id++}`)))
      assert.ok(results.every((r) => !r.success))
      assert.ok(rl.ctx.cache.size() <= CAP, `cache size ${rl.ctx.cache.size()}`)
    }
    perPhase.push({ phase, usPerCall: ((performance.now() - t0) * 1000) / 100_000 })
  }
  t.diagnostic(`through limit(): ${JSON.stringify(perPhase)}; cache size ${rl.ctx.cache.size()}; store calls ${client.calls.n}`)
  assert.equal(id, 200_000, `only ${id} identifiers went through in ${BUDGET_MS} ms`)
  // Past the cap the oldest tenth is dropped in one pass: the size stays within [0.9 × cap, cap].
  assert.ok(rl.ctx.cache.size() <= CAP && rl.ctx.cache.size() >= CAP * 0.9, `cache size ${rl.ctx.cache.size()}`)
  // The newest blocks are the ones kept: the last identifier is answered from the cache.
  const last = await rl.limit(`id${id - 1}`)
  assert.equal(last.reason, 'cacheBlock')
  const [below, atCap] = perPhase.map((p) => p.usPerCall)
  assert.ok(atCap <= below * 2, `per-call cost at the cap ${atCap.toFixed(1)} µs vs ${below.toFixed(1)} µs below it`)
})

test("1M distinct blocked identifiers into the limiter's default cache: size ≤ 100,000 throughout, bounded heap, O(1) per block", async (t) => {
  const rl = new Ratelimit({ redis: blockingClient(), limiter: Ratelimit.fixedWindow(1, '1 h'), prefix: `mem-${randomUUID()}` })
  const cache = rl.ctx.cache
  // It is the cache limit() uses: a block put there answers limit() without the store.
  cache.blockUntil(`${rl.prefix}:probe`, Date.now() + 60_000)
  assert.equal((await rl.limit('probe')).reason, 'cacheBlock')
  cache.empty()

  const heap0 = heapAfterGc()
  const reset = Date.now() + 3_600_000
  const BUDGET_MS = 20_000
  const started = performance.now()
  const chunks = []
  let n = 0
  while (n < 1_000_000 && performance.now() - started < BUDGET_MS) {
    const t0 = performance.now()
    for (let i = 0; i < 100_000; i++) cache.blockUntil(`${rl.prefix}:flood${n++}`, reset)
    chunks.push(+(performance.now() - t0).toFixed(1))
    assert.ok(cache.size() <= CAP, `size ${cache.size()} after ${n}`)
  }
  const heapGrowth = heapAfterGc() - heap0
  t.diagnostic(`ms per 100k blocks: ${JSON.stringify(chunks)}; size ${cache.size()}; heap +${(heapGrowth / 1e6).toFixed(1)} MB`)
  assert.equal(n, 1_000_000, `only ${n} blocks in ${BUDGET_MS} ms: blocking past the cap is not O(1) (ms per 100k: ${chunks})`)
  assert.ok(cache.size() <= CAP && cache.size() >= CAP * 0.9, `cache size ${cache.size()}`)
  assert.ok(heapGrowth < 40e6, `heap grew ${(heapGrowth / 1e6).toFixed(1)} MB for a 100k-entry cache`)
  const below = chunks[0]
  const worst = Math.max(...chunks.slice(1))
  assert.ok(worst <= Math.max(5 * below, 250), `100k blocks past the cap took ${worst} ms vs ${below} ms below it`)
})

test('expired blocks are swept from the default cache without waiting for the cap', async (t) => {
  const rl = new Ratelimit({ redis: blockingClient(), limiter: Ratelimit.fixedWindow(1, '1 h'), prefix: `mem-${randomUUID()}` })
  const cache = rl.ctx.cache
  const soon = Date.now() + 300
  for (let i = 0; i < 30_000; i++) cache.blockUntil(`short${i}`, soon)
  await sleep(Math.max(0, soon - Date.now()) + 50)
  const later = Date.now() + 3_600_000
  for (let i = 0; i < 30_000; i++) cache.blockUntil(`long${i}`, later)
  t.diagnostic(`after 30k expired + 30k live blocks: size ${cache.size()}`)
  assert.equal(cache.size(), 30_000, 'every expired block was swept, every live one kept')
})

test("a user's Map is swept but not capped", async (t) => {
  const map = new Map()
  const rl = new Ratelimit({ redis: blockingClient(), limiter: Ratelimit.fixedWindow(1, '1 h'), prefix: `mem-${randomUUID()}`, ephemeralCache: map })
  const later = Date.now() + 3_600_000
  for (let i = 0; i < 150_000; i++) rl.ctx.cache.blockUntil(`live${i}`, later)
  assert.equal(map.size, 150_000, 'not capped')
  const soon = Date.now() + 300
  for (let i = 0; i < 50_000; i++) rl.ctx.cache.blockUntil(`short${i}`, soon)
  await sleep(Math.max(0, soon - Date.now()) + 50)
  for (let i = 0; i < 200_000; i++) rl.ctx.cache.blockUntil(`more${i}`, later)
  const now = Date.now()
  const expired = [...map.values()].filter((reset) => reset < now).length
  t.diagnostic(`user Map: size ${map.size}, expired entries left ${expired}`)
  assert.equal(expired, 0, 'expired entries swept')
  assert.equal(map.size, 350_000)
  // Through limit(): blocks land in the user's Map.
  await rl.limit('via-limit')
  assert.ok(map.has(`${rl.prefix}:via-limit`))
})

test('memory store with maxKeys 10,000: refuses new keys when full (loudly), existing keys keep working, recovers after expiry', async (t) => {
  const redis = Redis.memory({ maxKeys: 10_000 })
  try {
    const mk = (prefix = `cap-${randomUUID()}`) => new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(1, '1 s'), prefix, ephemeralCache: false })
    const rl = mk()
    // Start just after a 1 s window begins: the checks below need every key still in the window
    // it was first counted in (across a boundary `k0` would be a new key, refused as one).
    await sleep(1000 - (Date.now() % 1000) + 5)
    let admitted = 0
    let firstError
    for (let i = 0; i < 10_100 && !firstError; i++) {
      try {
        if ((await rl.limit(`k${i}`)).success) admitted++
      } catch (error) {
        firstError = { i, error }
      }
    }
    t.diagnostic(`admitted ${admitted} new keys, then: ${firstError?.error.message}`)
    assert.ok(firstError, 'a new key beyond maxKeys is refused')
    assert.equal(admitted, 10_000, 'exactly maxKeys keys admitted (no other memory-store keys in this process)')
    assert.match(firstError.error.message, /memory store is full \(10000 live keys\).*maxKeys/)
    // Existing keys keep working (and still limit).
    const existing = await rl.limit('k0')
    assert.equal(existing.success, false, 'k0 is over its limit of 1')
    // The cap is process-wide: another limiter is refused too.
    await assert.rejects(mk().limit('other'), /memory store is full/)
    // Recovers by itself once the 1 s windows expire.
    const t0 = Date.now()
    let recovered = false
    while (!recovered && Date.now() - t0 < 4000) {
      await sleep(100)
      recovered = await rl.limit(`fresh-${Date.now()}`).then(
        (r) => r.success,
        () => false,
      )
    }
    t.diagnostic(`new keys accepted again ${Date.now() - t0} ms after the store filled`)
    assert.ok(recovered, 'new keys accepted again after expiry')
    // And the whole capacity is back (expired keys are gone, not just one slot).
    let again = 0
    for (let i = 0; i < 9_000; i++) if ((await rl.limit(`again${i}`)).success) again++
    assert.equal(again, 9_000)
  } finally {
    Redis.memory({ maxKeys: 1_000_000 }) // the default again (the setting is process-wide)
  }
})
