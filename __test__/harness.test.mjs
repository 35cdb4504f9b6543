import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startStack } from './helpers/servers.mjs'

test('the harness starts a password-protected redis-server and a REST server, and stops both', async () => {
  const stack = await startStack()
  try {
    assert.match(await stack.redis.command(['PING']), /^\+PONG/)
    const res = await fetch(stack.rest.url, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.rest.token}` },
      body: JSON.stringify(['ping']),
    })
    assert.equal(res.status, 200)
    assert.deepEqual(await res.json(), { result: 'PONG' })
  } finally {
    await stack.stop()
  }
  assert.notEqual(stack.redis.process.exitCode ?? stack.redis.process.signalCode, null)
  assert.notEqual(stack.rest.process.exitCode ?? stack.rest.process.signalCode, null)
})

test('benchmark tables round a number before choosing its unit', async () => {
  const { fmt } = await import('../bench/stats.mjs')
  assert.equal(fmt(999_700), '1.00M')
  assert.equal(fmt(999_400), '999k')
  assert.equal(fmt(9_999.6), '10.0k')
  assert.equal(fmt(1_234_567), '1.23M')
  assert.equal(fmt(150.4), '150')
  assert.equal(fmt(0.1234), '0.123')
  assert.equal(fmt(null), 'n/a')
})

test('benchmark latency histogram: every value lands in the bucket that holds it (≤ 6.25 % wide)', async () => {
  const { Histogram } = await import('../bench/stats.mjs')
  // Values around each power of two (where the integer path and the float path for ≥ 2^31 ns
  // meet their edges) and spread over the whole range; each quantile of a one-value histogram
  // is its bucket's midpoint, which must be within the bucket width of the value.
  const values = [0, 1, 15, 16, 17, 31, 32, 33]
  for (let e = 5; e <= 33; e++) values.push(2 ** e - 1, 2 ** e, 2 ** e + 1, 1.5 * 2 ** e)
  values.push(2 ** 34 - 1, 2 ** 34) // the top of the range (slower calls are clamped to it)
  for (let i = 0; i < 2000; i++) values.push(Math.round(2 ** (Math.random() * 34)))
  for (const ns of values) {
    const h = new Histogram()
    h.record(ns)
    const mid = h.quantile(0.5)
    const tolerance = Math.max(1, ns * 0.0625)
    assert.ok(Math.abs(mid - ns) <= tolerance, `${ns} ns read back as ${mid}`)
  }
  // Buckets are ordered: a larger value never lands in a lower bucket.
  const a = new Histogram()
  let last = -1
  for (let ns = 0; ns < 200_000; ns += 7) {
    a.record(ns)
    const bucket = a.toJSON().at(-1)[0]
    assert.ok(bucket >= last, `bucket of ${ns} went down`)
    last = bucket
  }
})

test('the benchmark refuses an unknown pinning before it starts anything', async () => {
  const { spawnSync } = await import('node:child_process')
  const run = spawnSync(process.execPath, [new URL('../bench/run.mjs', import.meta.url).pathname, '--pin', 'both'], { encoding: 'utf8', timeout: 20_000 })
  assert.equal(run.status, 2)
  assert.match(run.stderr, /--pin takes split or one-core, not both/)
  assert.doesNotMatch(run.stderr, /starting redis-server/)
})
