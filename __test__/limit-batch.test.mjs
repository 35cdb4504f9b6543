// limit() on a native remote store is buffered in JS and handed to Rust once per flush
// (lib/redis.js LimitBatch → src/limit_batch.rs). These tests pin what that must not change,
// against one real redis-server, both through the project's REST server and over TCP:
//   - calls keep the order they were made in, with the calls that are not buffered
//     (resetUsedTokens, getRemaining) in between;
//   - keys with any characters (accents, astral emoji, lone surrogates) land in the same Redis
//     keys as upstream's through REST, and as our per-call path's;
//   - limiters with different algorithms interleaved in one batch each get their own answers;
//   - a batch whose records are malformed fails those calls (as errors), never others.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { Ratelimit as UpstreamRatelimit } from '@upstash/ratelimit'
import { Redis as UpstashRedis } from '@upstash/redis'
import { Ratelimit, Redis } from '../index.js'
import { createRequire } from 'node:module'
import { engine, nativeOnly } from './helpers/engine.mjs'
// Buffered batches are the native engine's (the WebAssembly engine sends through fetch). The
// installed engine is what the facade calls (a test replaces its limitBatch).
const native = engine === 'native' ? createRequire(import.meta.url)('../lib/engine.js') : null
import { startStack } from './helpers/servers.mjs'
import { keysOf } from './helpers/direct-redis.mjs'

const T = { timeout: 30000 }
const tag = () => randomBytes(4).toString('hex')

let stack
const stores = {}
before(async () => {
  if (engine !== 'native') return
  stack = await startStack()
  stores.rest = new Redis({ url: stack.rest.url, token: stack.rest.token })
  stores.tcp = new Redis({ url: stack.redis.url })
})
after(async () => {
  await stack?.stop()
})

for (const path of ['rest', 'tcp']) {
  describe(`limit batches (${path})`, nativeOnly, () => {
    test('calls keep their order around the calls that are not buffered', T, async () => {
      const rl = new Ratelimit({ redis: stores[path], limiter: Ratelimit.fixedWindow(10, '60 s'), prefix: `order-${tag()}` })
      // Scripts loaded first: a script Redis does not know yet is re-sent as EVAL after its
      // NOSCRIPT reply, a round trip later than the calls around it (as upstream's is).
      await rl.resetUsedTokens('warm')
      await rl.limit('warm')
      await rl.getRemaining('warm')
      // One tick: three limits, a reset, one more limit, then a read. Handed over in the order
      // made, the reset clears the first three and the read sees only the last one.
      const calls = [rl.limit('u'), rl.limit('u'), rl.limit('u'), rl.resetUsedTokens('u'), rl.limit('u'), rl.getRemaining('u')]
      const results = await Promise.all(calls)
      assert.deepEqual(
        results.slice(0, 3).map((r) => r.remaining),
        [9, 8, 7],
      )
      assert.equal(results[4].remaining, 9)
      assert.equal(results[5].remaining, 9)
    })

    test('limiters with different algorithms in one batch each get their own answers', T, async () => {
      const prefix = `mixed-${tag()}`
      const fixed = new Ratelimit({ redis: stores[path], limiter: Ratelimit.fixedWindow(3, '60 s'), prefix: `${prefix}-f` })
      const sliding = new Ratelimit({ redis: stores[path], limiter: Ratelimit.slidingWindow(5, '60 s'), prefix: `${prefix}-s` })
      const bucket = new Ratelimit({ redis: stores[path], limiter: Ratelimit.tokenBucket(1, '60 s', 7), prefix: `${prefix}-b` })
      const calls = []
      for (let i = 0; i < 8; i++) calls.push(fixed.limit('u'), sliding.limit('u'), bucket.limit('u'))
      const results = await Promise.all(calls)
      const of = (k) => results.filter((_, i) => i % 3 === k)
      assert.deepEqual(
        of(0).map((r) => [r.limit, r.success]),
        Array.from({ length: 8 }, (_, i) => [3, i < 3]),
      )
      assert.deepEqual(
        of(1).map((r) => [r.limit, r.success]),
        Array.from({ length: 8 }, (_, i) => [5, i < 5]),
      )
      assert.deepEqual(
        of(2).map((r) => [r.limit, r.success]),
        Array.from({ length: 8 }, (_, i) => [7, i < 7]),
      )
    })

    test('3000 calls waiting at once (the pending table grows) are each answered once, exactly', T, async () => {
      const rl = new Ratelimit({ redis: stores[path], limiter: Ratelimit.fixedWindow(10, '60 s'), prefix: `many-${tag()}` })
      const calls = []
      for (let round = 0; round < 10; round++) for (let k = 0; k < 300; k++) calls.push(rl.limit(`k${k}`))
      const results = await Promise.all(calls)
      const byKey = new Map()
      results.forEach((r, i) => {
        const key = i % 300
        byKey.set(key, [...(byKey.get(key) ?? []), r.remaining])
      })
      // Batches travel as concurrent requests (REST: up to 4 in flight, on separate connections),
      // so one key's calls from different batches may run in either order; each runs once.
      for (const remaining of byKey.values()) {
        assert.deepEqual(
          remaining.sort((a, b) => b - a),
          [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
        )
      }
    })

    test('identifiers with any characters use the same keys as upstream', T, async () => {
      const ids = ['plain', 'ünïcödé', 'emoji 😀🎉', '中文标识', 'sp ace:colon', 'x'.repeat(300)]
      const ours = `chars-ours-${tag()}`
      const theirs = `chars-theirs-${tag()}`
      const rl = new Ratelimit({ redis: stores[path], limiter: Ratelimit.fixedWindow(5, '60 s'), prefix: ours })
      const upstash = new UpstashRedis({ url: stack.rest.url, token: stack.rest.token, enableTelemetry: false })
      const upstream = new UpstreamRatelimit({ redis: upstash, limiter: UpstreamRatelimit.fixedWindow(5, '60 s'), prefix: theirs })
      // All of ours in one batch (one tick), twice each.
      const results = await Promise.all(ids.flatMap((id) => [rl.limit(id), rl.limit(id)]))
      assert.deepEqual(
        results.map((r) => r.remaining),
        ids.flatMap(() => [4, 3]),
      )
      for (const id of ids) {
        await upstream.limit(id)
        await upstream.limit(id)
      }
      const strip = (keys, prefix) => keys.map((k) => k.slice(prefix.length))
      assert.deepEqual(strip(await keysOf(stack.redis, `${ours}:*`), ours), strip(await keysOf(stack.redis, `${theirs}:*`), theirs))
      assert.equal((await keysOf(stack.redis, `${ours}:*`)).length, ids.length)
    })

    test('a lone surrogate is stored as U+FFFD (as napi\'s UTF-8 conversion of a call\'s own argument does)', T, async () => {
      const prefix = `surrogate-${tag()}`
      const rl = new Ratelimit({ redis: stores[path], limiter: Ratelimit.fixedWindow(5, '60 s'), prefix })
      const [a, b] = await Promise.all([rl.limit('a\ud800b'), rl.limit('a\ufffdb')])
      // Both spell the same UTF-8 key, so they count together.
      assert.deepEqual([a.remaining, b.remaining], [4, 3])
      const keys = await keysOf(stack.redis, `${prefix}:*`)
      assert.equal(keys.length, 1)
      assert.ok(keys[0].startsWith(`${prefix}:a\ufffdb:`), keys[0])
    })
  })
}

describe('a hand-over that throws', nativeOnly, () => {
  test('answers its calls (rejected with the error, or failClosed\'s answer) and the process goes on', T, async () => {
    const original = native.limitBatch
    native.limitBatch = () => {
      throw new Error('hand-over refused')
    }
    try {
      const rl = new Ratelimit({ redis: stores.tcp, limiter: Ratelimit.fixedWindow(5, '60 s'), prefix: `throws-${tag()}` })
      const results = await Promise.allSettled([rl.limit('a'), rl.limit('b')])
      assert.deepEqual(
        results.map((r) => [r.status, r.reason?.message]),
        [
          ['rejected', 'hand-over refused'],
          ['rejected', 'hand-over refused'],
        ],
      )
      const closed = new Ratelimit({ redis: stores.tcp, limiter: Ratelimit.fixedWindow(5, '60 s'), prefix: `throws-${tag()}`, failClosed: true })
      const refused = await closed.limit('a')
      assert.equal(refused.success, false)
    } finally {
      native.limitBatch = original
    }
    // The store still works once hand-overs do.
    const rl = new Ratelimit({ redis: stores.tcp, limiter: Ratelimit.fixedWindow(5, '60 s'), prefix: `after-${tag()}` })
    assert.equal((await rl.limit('a')).remaining, 4)
  })
})

describe('limitBatch, called directly', nativeOnly, () => {
  /** The store's completions as they arrive; `until(n)` waits (at most 5 s) for n answers. */
  function collect(store) {
    const delivered = []
    let wake = () => {}
    const answered = () => delivered.reduce((n, d) => n + d.failures.length / 2 + countData(d.data), 0)
    store.onCompletions((completions) => {
      delivered.push(completions)
      wake()
    })
    const until = (n) =>
      new Promise((resolve) => {
        const timer = setTimeout(resolve, 5000)
        wake = () => {
          if (answered() >= n) {
            clearTimeout(timer)
            resolve()
          }
        }
        wake()
      })
    return { delivered, until }
  }

  test('malformed records fail their own calls with a message and leave the others', T, async () => {
    const store = native.NativeStore.redisTcp(stack.redis.url)
    const { delivered, until } = collect(store)
    const key = `direct-${tag()}:u`
    const record = (id, kind, rate, keyLength) => [id, kind, 5, 60000, 0, Date.now(), rate, 0, keyLength]
    const records = new Float64Array([
      ...record(1, 0, 1, key.length), // fine
      ...record(2, 7, 1, 0), // unknown algorithm
      ...record(3, 0, Number.POSITIVE_INFINITY, 0), // rate refused
      ...record(4, 0, 1, 1000), // a key longer than what was sent: refused, not read past the end
    ])
    native.limitBatch(store, records, 4, key)
    store.flush()
    await until(4)
    const failures = delivered.flatMap((d) => d.failures)
    const byId = new Map()
    for (let i = 0; i < failures.length; i += 2) byId.set(failures[i], failures[i + 1])
    assert.deepEqual([...byId.keys()].sort(), ['2', '3', '4'])
    assert.match(byId.get('2'), /unknown algorithm kind/)
    assert.match(byId.get('3'), /rate must be a finite number, got Infinity/)
    assert.match(byId.get('4'), /keys are shorter than the records say/)
    const data = delivered.flatMap((d) => [...d.data])
    assert.deepEqual(data.slice(0, 5), [1, 4, 1, 5, 4])
    assert.throws(() => native.limitBatch(store, new Float64Array(9), 2, ''), /fewer records than count/)
  })
})
/** Calls answered in a completions' `data` (`[id, n, value × n]` each). */
function countData(data) {
  let calls = 0
  for (let i = 0; i < data.length; i += 2 + data[i + 1]) calls++
  return calls
}
