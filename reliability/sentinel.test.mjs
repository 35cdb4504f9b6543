// Failovers of a Redis Sentinel group under steady load, through our client (a fresh group per
// test: a master, its replica, three sentinels): graceful (SENTINEL FAILOVER: the old master is
// demoted to a replica, so READONLY is what a stale connection gets) and hard (the master
// SIGKILLed: the sentinels agree it is down after 1 s, then promote the replica). Every call
// settles within its timeout with the answer or the fail-open / failClosed one; READONLY never
// surfaces; calls made 2 s after the sentinels name the new master get normal answers; the
// password appears in nothing callers see; no unhandled rejection.

import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, test } from 'node:test'

import { startSentinelGroup } from '../__test__/helpers/sentinel.mjs'
import { Ratelimit, Redis, everyView, outcomeOf, outcomes, sleep, steadyLoad, watchUnhandled } from './helpers.mjs'

const TIMEOUT = 1000

let unhandled
before(() => {
  unhandled = watchUnhandled()
})
after(() => {
  unhandled.dispose()
  assert.deepEqual(unhandled.seen, [], 'no unhandled rejection or uncaught exception')
})

const make = (redis, limiter, extra = {}) => new Ratelimit({ redis, limiter, prefix: `sf-${randomUUID()}`, timeout: TIMEOUT, ephemeralCache: false, ...extra })

/** Resolves (with Date.now()) once the sentinels name a master other than `old`. */
async function newMaster(group, old, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    try {
      if ((await group.master()) !== old) return Date.now()
    } catch {}
    await sleep(50)
  }
  throw new Error('the sentinels named no new master')
}

for (const kind of ['graceful', 'hard']) {
  test(`sentinel failover (${kind === 'graceful' ? 'SENTINEL FAILOVER' : 'master SIGKILLed'}) under load: answers in time, normal 2 s after the new master`, { timeout: 60_000 }, async (t) => {
    const group = await startSentinelGroup()
    try {
      const redis = new Redis({ sentinels: group.sentinels, name: group.name, password: group.password })
      const limiters = {
        fixed: make(redis, Ratelimit.fixedWindow(1_000_000, '1 h')),
        slidingFailClosed: make(redis, Ratelimit.slidingWindow(1_000_000, '1 h'), { failClosed: true }),
        bucket: make(redis, Ratelimit.tokenBucket(1000, '1 s', 1_000_000)),
      }
      const load = steadyLoad(limiters, { tickMs: 20, perTick: 1, keys: 50 })
      await sleep(1000)
      const old = await group.master()
      if (kind === 'graceful') await group.failover()
      else group.kill(old)
      const named = await newMaster(group, old)
      await sleep(3000)
      load.stop()
      assert.equal(await load.settled(TIMEOUT + 2000), 0, 'every call settled')
      const { records } = load
      t.diagnostic(`${records.length} calls; new master named ${named - records[0].start} ms after the first: ${JSON.stringify(outcomes(records))}`)
      assert.deepEqual(records.filter((r) => r.ms > TIMEOUT + 750).map((r) => `${r.name}: ${Math.round(r.ms)} ms ${outcomeOf(r)}`), [])
      for (const r of records) {
        const outcome = outcomeOf(r)
        assert.ok(outcome === 'ok' || outcome === 'timeout (fail-open)' || outcome === 'failClosed (timeout)', `${r.name}: ${outcome}`)
        assert.ok(!everyView(r.error ?? r.result?.error).includes(group.password))
      }
      const late = records.filter((r) => r.start >= named + 2000)
      assert.ok(late.length > 50)
      assert.deepEqual(outcomes(late), { ok: late.length }, 'normal answers 2 s after the new master')
    } finally {
      await group.stop()
    }
  })
}
