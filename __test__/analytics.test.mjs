// lib/analytics.js against the published @upstash/ratelimit 2.2.0 `Analytics` (the oracle), on a
// real redis-server behind the project's REST server. Events are recorded by ours into one
// prefix and by upstream into another; the raw zsets must be identical and every query, run by
// either implementation on either prefix, must give the same answer.
// Reference: /work/shared/reference/upstash-ratelimit-behaviour.md §1.7, §3.5, §9 item 11.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { after, before, describe, test } from 'node:test'
import { Analytics as UpstreamAnalytics } from '@upstash/ratelimit'
import { Redis as UpstashRedis } from '@upstash/redis'
import { startStack } from './helpers/servers.mjs'

const require = createRequire(import.meta.url)
const { Analytics, analyticsEvent, hourBucket } = require('../lib/analytics.js')

const T = { timeout: 60000 }
const H = 3_600_000
const fresh = () => `an${randomBytes(6).toString('hex')}`
const bucketOf = (t) => Math.floor(t / H) * H

/**
 * Runs `fn` again if the hour rolled over while it ran (bucket arithmetic depends on "now");
 * at most 3 tries, then the last outcome stands.
 */
async function inOneHour(fn) {
  for (let attempt = 0; ; attempt++) {
    const hour = Math.floor(Date.now() / H)
    let outcome
    try {
      outcome = { value: await fn() }
    } catch (error) {
      outcome = { error }
    }
    if (Math.floor(Date.now() / H) === hour || attempt >= 2) {
      if ('error' in outcome) throw outcome.error
      return outcome.value
    }
  }
}

/**
 * A client that speaks the REST protocol itself and returns raw values (no JSON deserialisation,
 * no base64): strings, integers, null. It has only `eval`, like a minimal hand-made client.
 */
function rawEvalClient(rest, log) {
  const call = async (command) => {
    log?.push(command[0])
    const response = await fetch(rest.url, {
      method: 'POST',
      headers: { authorization: `Bearer ${rest.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(command.map((part) => (typeof part === 'string' ? part : JSON.stringify(part)))),
    })
    const body = await response.json()
    if (body.error) throw new Error(body.error)
    return body.result
  }
  return { eval: (script, keys, args) => call(['EVAL', script, keys.length, ...keys, ...args]) }
}

/** A varied set of events over several hours (relative to `now`). */
function dataset(now) {
  const events = []
  const geos = [{ country: 'DE', city: 'Berlin' }, { country: 'US', city: 'NYC', region: 'NY' }, { country: 'FR' }, {}]
  const outcomes = [true, true, true, false, 'denied']
  const hours = [0, 0, 0, 1, 2, 5, 47, 48, 49, 60]
  for (let i = 0; i < 60; i++) {
    events.push({
      identifier: `id${(i * 7) % 9}`,
      time: now - hours[i % hours.length] * H - (i % 5),
      success: outcomes[(i * 3) % outcomes.length],
      ...geos[(i * 5) % geos.length],
    })
  }
  // Extra weight on a few identifiers so the top lists have clear winners and ties.
  for (let i = 0; i < 8; i++) events.push({ identifier: 'heavy', time: now, success: true, country: 'DE' })
  for (let i = 0; i < 5; i++) events.push({ identifier: 'blocked-a', time: now - H, success: false, country: 'US' })
  for (let i = 0; i < 3; i++) events.push({ identifier: 'denied-a', time: now, success: 'denied', country: 'FR' })
  // Numeric-looking identifiers and values go through the clients' deserialisers.
  events.push({ identifier: '123', time: now, success: true, country: '1e3' })
  events.push({ identifier: '0042', time: now, success: false, country: 'true' })
  return events
}

/** Every event also has a `country` (for group-by queries that require the field everywhere). */
const withCountry = (events) => events.map((e) => ({ country: 'XX', ...e }))

describe('Analytics (lib/analytics.js) vs @upstash/ratelimit Analytics', () => {
  let stack
  let redis

  before(async () => {
    stack = await startStack()
    redis = new UpstashRedis({ url: stack.rest.url, token: stack.rest.token, enableTelemetry: false })
  })

  after(async () => {
    await stack?.stop()
  })

  /** Zset contents of every `<prefix>:events:*` key, keyed by the bucket suffix. */
  async function snapshot(prefix) {
    const keys = (await redis.keys(`${prefix}:events:*`)).sort()
    const out = {}
    for (const key of keys) {
      out[key.slice(prefix.length)] = await redis.zrange(key, 0, -1, { withScores: true })
    }
    return out
  }

  /** Records `events` through ours into prefix A and through upstream into prefix B. */
  async function recordBoth(events) {
    const A = fresh()
    const B = fresh()
    const ours = new Analytics({ redis, prefix: A })
    const theirs = new UpstreamAnalytics({ redis, prefix: B })
    await Promise.all(events.map((e) => ours.record(e)))
    await Promise.all(events.map((e) => theirs.record(e)))
    return { A, B }
  }

  /**
   * Runs `query` on ours and upstream over both prefixes; all four outcomes must agree (equal
   * values, or all rejected). Returns the common value (or the rejection reasons).
   */
  async function agree(prefixes, query, label) {
    return inOneHour(async () => {
      const runs = []
      for (const prefix of prefixes) {
        runs.push(['ours', prefix, query(new Analytics({ redis, prefix }))])
        runs.push(['upstream', prefix, query(new UpstreamAnalytics({ redis, prefix }))])
      }
      const settled = await Promise.allSettled(runs.map((r) => r[2]))
      const rejected = settled.filter((s) => s.status === 'rejected')
      if (rejected.length > 0) {
        assert.equal(rejected.length, settled.length, `${label}: some rejected, some not: ${settled.map((s) => s.status)} ${rejected[0].reason}`)
        return { rejected: settled.map((s) => s.reason) }
      }
      const [first, ...rest] = settled.map((s) => s.value)
      rest.forEach((value, i) => assert.deepStrictEqual(value, first, `${label}: ${runs[i + 1][0]} on ${runs[i + 1][1]}`))
      return { value: first }
    })
  }

  test('record writes ZINCRBY <prefix>:events:<hour> 1 <event JSON without time>, no TTL', T, async () => {
    const prefix = fresh()
    const a = new Analytics({ redis, prefix })
    const time = Date.now()
    assert.equal(await a.record({ identifier: 'u', time, success: true, country: 'DE', city: 'Berlin' }), undefined)
    await a.record({ identifier: 'u', time, success: true, country: 'DE', city: 'Berlin' })
    await a.record({ identifier: 'u', time: time - H, success: 'denied' })
    const key = `${prefix}:events:${bucketOf(time)}`
    assert.deepEqual(await redis.keys(`${prefix}:*`).then((k) => k.sort()), [`${prefix}:events:${bucketOf(time - H)}`, key].sort())
    const raw = await stack.redis.command(['ZRANGE', key, '0', '-1', 'WITHSCORES'])
    const member = '{"identifier":"u","success":true,"country":"DE","city":"Berlin"}'
    assert.equal(raw, `*2\r\n$${member.length}\r\n${member}\r\n$1\r\n2\r\n`)
    assert.equal(await stack.redis.command(['TTL', key]), ':-1\r\n')
    assert.equal(await stack.redis.command(['TTL', `${prefix}:events:${bucketOf(time - H)}`]), ':-1\r\n')
    assert.deepEqual(await redis.zrange(`${prefix}:events:${bucketOf(time - H)}`, 0, -1, { withScores: true }), [{ identifier: 'u', success: 'denied' }, 1])
  })

  test('record without time uses the current hour; the default prefix is @upstash/ratelimit', T, async () => {
    const a = new Analytics({ redis })
    const id = fresh()
    await inOneHour(async () => {
      await a.record({ identifier: id, success: false })
      const key = `@upstash/ratelimit:events:${bucketOf(Date.now())}`
      assert.equal(await redis.zscore(key, JSON.stringify({ identifier: id, success: false })), 1)
      await redis.zrem(key, JSON.stringify({ identifier: id, success: false }))
    })
  })

  test('analyticsEvent gives the exact key and member record() (and upstream) writes', T, async () => {
    const time = 1_700_000_123_456
    const expectedKey = `P:events:${bucketOf(time)}`
    assert.deepEqual(analyticsEvent({ prefix: 'P', identifier: 'u', success: true, geo: { country: 'DE', city: 'Berlin' }, time }), {
      key: expectedKey,
      member: '{"identifier":"u","success":true,"country":"DE","city":"Berlin"}',
    })
    assert.deepEqual(analyticsEvent({ identifier: 'x', success: 'denied', time }), {
      key: `@upstash/ratelimit:events:${bucketOf(time)}`,
      member: '{"identifier":"x","success":"denied"}',
    })
    assert.equal(hourBucket(time), bucketOf(time))
    assert.equal(hourBucket(3 * H), 3 * H)
    assert.equal(hourBucket(3 * H - 1), 2 * H)

    // Through Redis: the same events via ours, upstream, and analyticsEvent + a plain ZINCRBY.
    const cases = [
      { identifier: 'u', success: true, geo: { country: 'DE', city: 'Berlin' } },
      { identifier: 'w', success: false, geo: undefined },
      { identifier: 'd', success: 'denied', geo: { region: 'x', ip: '1.2.3.4', country: 'FR' } },
      { identifier: 'g', success: true, geo: { identifier: 'from-geo', success: 'geo' } },
    ]
    const now = Date.now()
    const [A, B, C] = [fresh(), fresh(), fresh()]
    for (const c of cases) {
      const event = { identifier: c.identifier, time: now, success: c.success, ...c.geo }
      await new Analytics({ redis, prefix: A }).record(event)
      await new UpstreamAnalytics({ redis, prefix: B }).record(event)
      const { key, member } = analyticsEvent({ prefix: C, identifier: c.identifier, success: c.success, geo: c.geo, time: now })
      await redis.zincrby(key, 1, member)
    }
    const [a, b, c] = await Promise.all([snapshot(A), snapshot(B), snapshot(C)])
    assert.deepStrictEqual(a, b)
    assert.deepStrictEqual(c, b)
    assert.equal(Object.keys(a).length, 1)
  })

  test('extractGeo: req.geo, else req.cf, else {} (as upstream)', () => {
    const ours = new Analytics({ redis: {} })
    const theirs = new UpstreamAnalytics({ redis: {} })
    const geo = { country: 'DE' }
    const cf = { country: 'US', city: 'NYC' }
    for (const req of [{ geo, cf }, { cf }, { geo: null, cf }, { geo: undefined, cf }, {}, { ip: '1.1.1.1' }]) {
      assert.deepStrictEqual(ours.extractGeo(req), theirs.extractGeo(req))
    }
    assert.equal(ours.extractGeo({ geo, cf }), geo)
    assert.equal(ours.extractGeo({ cf }), cf)
  })

  test('the same events recorded by ours and by upstream give identical Redis data', T, async () => {
    const events = dataset(Date.now())
    const { A, B } = await recordBoth(events)
    const [a, b] = await Promise.all([snapshot(A), snapshot(B)])
    assert.ok(Object.keys(a).length >= 8)
    assert.deepStrictEqual(a, b)
  })

  test('getUsage: same answers (denied counts as success; last member wins; ≤ 256 hours)', T, async () => {
    const now = Date.now()
    const events = dataset(now)
    // Beyond the 256-bucket cap, and exactly at its edge.
    events.push({ identifier: 'ancient', time: now - 300 * H, success: true })
    events.push({ identifier: 'edge', time: now - 255 * H, success: false })
    events.push({ identifier: 'too-old', time: now - 256 * H, success: false })
    const { A, B } = await recordBoth(events)
    const all = await agree([A, B], (x) => x.getUsage(), 'getUsage()')
    assert.ok(all.value)
    assert.deepEqual(all.value['denied-a'], { success: 3, blocked: 0 })
    assert.deepEqual(all.value.heavy.blocked, 0)
    assert.equal(all.value.edge.blocked, 1)
    assert.equal(all.value.ancient, undefined)
    assert.equal(all.value['too-old'], undefined)
    for (const cutoff of [0, now - 2 * H, now - 3 * H, now - 48 * H, now - 50 * H, now - 255 * H, now - 1000 * H, -5]) {
      await agree([A, B], (x) => x.getUsage(cutoff), `getUsage(${cutoff})`)
    }
    // A cutoff in the current hour (or later) means zero buckets: ZUNION rejects.
    for (const cutoff of [now, now + 5 * H]) {
      const out = await agree([A, B], (x) => x.getUsage(cutoff), `getUsage(${cutoff})`)
      assert.ok(out.rejected, `getUsage(${cutoff}) should reject`)
      for (const reason of out.rejected) assert.match(String(reason), /at least 1 input key/)
    }
  })

  test('getUsageOverTime: same per-hour aggregates for every field, count and chunking', T, async () => {
    const now = Date.now()
    const events = withCountry(dataset(now))
    events.push({ identifier: 'late', time: now - 100 * H, success: true, country: 'JP' })
    const { A, B } = await recordBoth(events)
    for (const field of ['success', 'identifier', 'country']) {
      for (const count of [1, 3, 48, 49, 96, 120, 2.5, 50.5, 0, -1, NaN, '3']) {
        const out = await agree([A, B], (x) => x.getUsageOverTime(count, field), `getUsageOverTime(${count}, ${field})`)
        assert.ok(out.value, `getUsageOverTime(${count}, ${field}) resolved`)
        if (count === 120) {
          assert.equal(out.value.length, 120)
          assert.equal(out.value[0].time, bucketOf(Date.now()))
          assert.equal(out.value[1].time, bucketOf(Date.now()) - H)
        }
        if (count === 50.5) assert.equal(out.value.length, 48)
        if (count === 2.5) assert.deepEqual(out.value, [])
      }
    }
    const bySuccess = await agree([A, B], (x) => x.getUsageOverTime(3, 'success'), 'success')
    const keys = new Set(bySuccess.value.flatMap((b) => Object.keys(b.success ?? {})))
    assert.deepEqual([...keys].sort(), ['denied', 'false', 'true'])
  })

  test('getUsageOverTime / series reject alike when a member lacks the grouped field', T, async () => {
    const { A, B } = await recordBoth(dataset(Date.now()))
    for (const field of ['city', 'region', 'nope']) {
      const out = await agree([A, B], (x) => x.getUsageOverTime(3, field), `getUsageOverTime(3, ${field})`)
      assert.ok(out.rejected)
      assert.match(String(out.rejected[0]), /table index is nil/)
    }
  })

  test('series: same answers from the current hour back to the cutoff (≤ 256)', T, async () => {
    const now = Date.now()
    const { A, B } = await recordBoth(withCountry(dataset(now)))
    for (const cutoff of [now - 3 * H, now - 49 * H, now - 61 * H, 0, now, now + H, now - 400 * H]) {
      const out = await agree([A, B], (x) => x.series('success', cutoff), `series(success, ${cutoff})`)
      if (cutoff === 0) assert.equal(out.value.length, 256)
      if (cutoff === now) assert.deepEqual(out.value, [])
    }
    await agree([A, B], (x) => x.series('identifier', now - 10 * H), 'series(identifier)')
  })

  test('getMostAllowedBlocked: same top lists for every getTop / checkAtMost', T, async () => {
    const now = Date.now()
    const { A, B } = await recordBoth(dataset(now))
    const top = await agree([A, B], (x) => x.getMostAllowedBlocked(3), 'getMostAllowedBlocked(3)')
    assert.deepEqual(top.value.allowed[0], { identifier: 'heavy', count: 8 })
    assert.deepEqual(top.value.denied[0], { identifier: 'denied-a', count: 3 })
    for (const [count, getTop, checkAtMost] of [
      [1, undefined, undefined],
      [24, undefined, undefined],
      [50, 2, undefined],
      [50, 10, undefined],
      [50, 100, 1000],
      [50, 3, 2],
      [50, 2.5, 7.5],
      [50, 0, undefined],
      [50, 5, 0],
      [300, 5, undefined],
      ['3', '2', undefined],
    ]) {
      const out = await agree([A, B], (x) => x.getMostAllowedBlocked(count, getTop, checkAtMost), `getMostAllowedBlocked(${count}, ${getTop}, ${checkAtMost})`)
      assert.ok(out.value, `getMostAllowedBlocked(${count}, ${getTop}, ${checkAtMost}) resolved`)
    }
    // Zero, negative or fractional bucket counts are refused by ZUNION (numkeys), in both.
    for (const [count, message] of [[0, /at least 1 input key/], [-1, /at least 1 input key/], [2.7, /not an integer/], [48.5, /not an integer/]]) {
      const out = await agree([A, B], (x) => x.getMostAllowedBlocked(count), `getMostAllowedBlocked(${count})`)
      assert.ok(out.rejected, `getMostAllowedBlocked(${count}) should reject`)
      for (const reason of out.rejected) assert.match(String(reason), message)
    }
  })

  test('an empty prefix: every query answers like upstream', T, async () => {
    const P = fresh()
    await agree([P], (x) => x.getUsage(), 'getUsage')
    const over = await agree([P], (x) => x.getUsageOverTime(5, 'success'), 'getUsageOverTime')
    assert.deepEqual(over.value.map((b) => Object.keys(b)), [['time'], ['time'], ['time'], ['time'], ['time']])
    await agree([P], (x) => x.getMostAllowedBlocked(5), 'getMostAllowedBlocked')
    await agree([P], (x) => x.series('identifier', Date.now() - 5 * H), 'series')
  })

  test('a raw client with only eval (strings, no deserialisation) gives the same answers', T, async () => {
    const now = Date.now()
    const events = withCountry(dataset(now))
    const log = []
    const raw = rawEvalClient(stack.rest, log)
    const R = fresh()
    const oursRaw = new Analytics({ redis: raw, prefix: R })
    // Without zincrby, record sends the ZINCRBY through eval.
    await Promise.all(events.map((e) => oursRaw.record(e)))
    assert.ok(log.length === events.length && log.every((c) => c === 'EVAL'))
    const B = fresh()
    const theirs = new UpstreamAnalytics({ redis, prefix: B })
    await Promise.all(events.map((e) => theirs.record(e)))
    assert.deepStrictEqual(await snapshot(R), await snapshot(B))

    await inOneHour(async () => {
      assert.deepStrictEqual(await oursRaw.getUsage(), await theirs.getUsage())
      assert.deepStrictEqual(await oursRaw.getUsage(now - 3 * H), await theirs.getUsage(now - 3 * H))
      for (const field of ['success', 'identifier', 'country']) {
        assert.deepStrictEqual(await oursRaw.getUsageOverTime(60, field), await theirs.getUsageOverTime(60, field))
      }
      assert.deepStrictEqual(await oursRaw.series('success', now - 6 * H), await theirs.series('success', now - 6 * H))
      for (const getTop of [1, 3, 20]) {
        assert.deepStrictEqual(await oursRaw.getMostAllowedBlocked(60, getTop), await theirs.getMostAllowedBlocked(60, getTop))
      }
    })
  })

  test("the project's own Redis client (eval only) gives the same answers", T, async () => {
    const { Redis } = require('../lib/redis.js')
    const own = new Redis({ url: stack.rest.url, token: stack.rest.token })
    const now = Date.now()
    const events = withCountry(dataset(now))
    const R = fresh()
    const B = fresh()
    const ours = new Analytics({ redis: own, prefix: R })
    const theirs = new UpstreamAnalytics({ redis, prefix: B })
    for (const e of events) await ours.record(e)
    await Promise.all(events.map((e) => theirs.record(e)))
    assert.deepStrictEqual(await snapshot(R), await snapshot(B))
    await inOneHour(async () => {
      assert.deepStrictEqual(await ours.getUsage(), await theirs.getUsage())
      assert.deepStrictEqual(await ours.getUsageOverTime(50, 'success'), await theirs.getUsageOverTime(50, 'success'))
      assert.deepStrictEqual(await ours.getUsageOverTime(50, 'country'), await theirs.getUsageOverTime(50, 'country'))
      assert.deepStrictEqual(await ours.getMostAllowedBlocked(50, 4), await theirs.getMostAllowedBlocked(50, 4))
    })
  })

  test('record errors reject (e.g. WRONGTYPE), like upstream', T, async () => {
    const prefix = fresh()
    const time = Date.now()
    await redis.set(`${prefix}:events:${bucketOf(time)}`, 'not a zset')
    const event = { identifier: 'u', time, success: true }
    await assert.rejects(new Analytics({ redis, prefix }).record(event), /WRONGTYPE/)
    await assert.rejects(new UpstreamAnalytics({ redis, prefix }).record(event), /WRONGTYPE/)
    await assert.rejects(new Analytics({ redis, prefix }).record(undefined), TypeError)
  })
})
