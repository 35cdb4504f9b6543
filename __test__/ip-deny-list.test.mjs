// lib/ip-deny-list.js against the published @upstash/ratelimit 2.2.0 `IpDenyList` (the oracle),
// on a real redis-server behind the project's REST server. The ipsum download is never real:
// globalThis.fetch is replaced by a stub for raw.githubusercontent.com URLs (everything else,
// i.e. the REST calls of @upstash/redis, goes to the real fetch), and restored after each test.
// Reference: /work/shared/reference/upstash-ratelimit-behaviour.md §1.8, §3.6, §9 items 12–14.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import { after, afterEach, before, describe, test } from 'node:test'
import { IpDenyList as UpstreamIpDenyList } from '@upstash/ratelimit'
import { Redis as UpstashRedis } from '@upstash/redis'
import { startStack } from './helpers/servers.mjs'

const require = createRequire(import.meta.url)
const { IpDenyList, ThresholdError, updateIpDenyList, disableIpDenyList, getIpListTTL, ipListUrl, denyListKeys } = require('../lib/ip-deny-list.js')

const T = { timeout: 30000 }
const H = 3_600_000
const DAY = 24 * H
const IPSUM = 'https://raw.githubusercontent.com/stamparm/ipsum/master/levels/'
const fresh = () => `ipd${randomBytes(6).toString('hex')}`
const realFetch = globalThis.fetch

/**
 * Replaces globalThis.fetch: ipsum URLs are answered by `respond(url)` (and logged), all other
 * URLs go to the real fetch. Returns the log of ipsum URLs requested.
 */
function stubIpsum(respond) {
  const requested = []
  globalThis.fetch = async (input, init) => {
    const url = String(input instanceof Request ? input.url : input)
    if (!url.startsWith('https://raw.githubusercontent.com/')) return realFetch(input, init)
    requested.push(url)
    return respond(url)
  }
  return requested
}

const listOf = (n, base = 10) => Array.from({ length: n }, (_, i) => `${base}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`)
const textOf = (ips) => ips.join('\n') + '\n'

describe('IpDenyList (lib/ip-deny-list.js) vs @upstash/ratelimit IpDenyList', () => {
  let stack
  let redis

  before(async () => {
    stack = await startStack()
    redis = new UpstashRedis({ url: stack.rest.url, token: stack.rest.token, enableTelemetry: false })
  })

  afterEach(() => {
    globalThis.fetch = realFetch
  })

  after(async () => {
    globalThis.fetch = realFetch
    await stack?.stop()
  })

  const members = async (key) => (await redis.smembers(key)).map(String).sort()

  /** The deny-list state of a prefix: set members, status value and its TTL class. */
  async function state(prefix) {
    const keys = denyListKeys(prefix)
    return {
      all: await members(keys.all),
      ip: await members(keys.ip),
      status: await redis.get(keys.status),
      pttl: await redis.pttl(keys.status),
    }
  }

  test('namespace shape, ThresholdError, helpers', () => {
    assert.deepEqual(Object.keys(IpDenyList), Object.keys(UpstreamIpDenyList))
    assert.deepEqual(Object.keys(IpDenyList), ['ThresholdError', 'disableIpDenyList', 'updateIpDenyList'])
    assert.ok(Object.isFrozen(IpDenyList))
    assert.equal(IpDenyList.ThresholdError, ThresholdError)
    assert.equal(IpDenyList.updateIpDenyList, updateIpDenyList)
    assert.equal(IpDenyList.disableIpDenyList, disableIpDenyList)

    const ours = new ThresholdError(9)
    const theirs = new UpstreamIpDenyList.ThresholdError(9)
    assert.ok(ours instanceof Error)
    assert.equal(ours.name, 'ThresholdError')
    assert.equal(ours.name, theirs.name)
    assert.equal(ours.message, 'Allowed threshold values are from 1 to 8, 1 and 8 included. Received: 9')
    assert.equal(ours.message, theirs.message)
    assert.equal(String(ours), String(theirs))
    assert.deepEqual(Object.keys(ours), Object.keys(theirs))

    assert.equal(ipListUrl(3), `${IPSUM}3.txt`)
    assert.deepEqual(denyListKeys('P'), { all: 'P:denyList:all', ip: 'P:denyList:ipDenyList', status: 'P:ipDenyListStatus' })

    const day = Date.UTC(2026, 10, 22)
    assert.equal(getIpListTTL(day + 2 * H), DAY, 'exactly 02:00 UTC → 24 h')
    assert.equal(getIpListTTL(day + H), H, '01:00 → 1 h')
    assert.equal(getIpListTTL(day + 2 * H + 1), DAY - 1)
    assert.equal(getIpListTTL(day), 2 * H, 'midnight → 2 h')
    assert.equal(getIpListTTL(day + 23 * H + 30 * 60_000), 2.5 * H)
    // No time (or 0, as upstream's `time || Date.now()`) means now.
    for (const t of [undefined, 0]) {
      const before = getIpListTTL(Date.now())
      const got = getIpListTTL(t)
      assert.ok(Math.abs(before - got) < 1000 || Math.abs(before - got) > DAY - 1000, `${t}: ${got} vs ${before}`)
    }
  })

  test('threshold validation rejects with ThresholdError before any fetch or Redis call', T, async () => {
    const requested = stubIpsum(() => new Response(''))
    let redisCalls = 0
    const spy = new Proxy({}, { get: () => { redisCalls++; return () => { throw new Error('no Redis call expected') } } })
    for (const threshold of [0, 9, -1, 8.0001, 0.999, '3', undefined, null, Infinity]) {
      const ours = updateIpDenyList(spy, 'P', threshold)
      assert.ok(ours instanceof Promise, 'rejects, does not throw synchronously')
      const theirs = UpstreamIpDenyList.updateIpDenyList(spy, 'P', threshold)
      const [a, b] = await Promise.allSettled([ours, theirs])
      assert.equal(a.status, 'rejected')
      assert.equal(b.status, 'rejected')
      assert.ok(a.reason instanceof ThresholdError, String(a.reason))
      assert.equal(a.reason.name, 'ThresholdError')
      assert.equal(a.reason.message, `Allowed threshold values are from 1 to 8, 1 and 8 included. Received: ${threshold}`)
      assert.equal(a.reason.message, b.reason.message)
    }
    assert.deepEqual(requested, [])
    assert.equal(redisCalls, 0)
  })

  test('update: same 6-reply transaction, same sets, status "valid" until the next 02:00 UTC', T, async () => {
    const ips = listOf(74)
    const requested = stubIpsum(() => new Response(textOf(ips)))
    const [A, B] = [fresh(), fresh()]
    const userEntries = ['bad-id', 'evil-agent']
    for (const P of [A, B]) await redis.sadd(denyListKeys(P).all, userEntries[0], ...userEntries.slice(1))

    const ours = await updateIpDenyList(redis, A, 6)
    const expectedTTL = getIpListTTL(Date.now())
    const theirs = await UpstreamIpDenyList.updateIpDenyList(redis, B, 6)
    assert.deepStrictEqual(ours, theirs)
    // [SDIFFSTORE all all ip, DEL ip, SADD ip …, SDIFFSTORE ip ip all, SUNIONSTORE all all ip, SET]
    assert.deepStrictEqual(ours, [2, 0, 74, 74, 76, 'OK'])
    assert.deepEqual(requested, [`${IPSUM}6.txt`, `${IPSUM}6.txt`])

    const [a, b] = [await state(A), await state(B)]
    assert.deepEqual(a.all, [...userEntries, ...ips].sort())
    assert.deepEqual(a.ip, [...ips].sort())
    assert.equal(a.status, 'valid')
    assert.deepEqual({ ...a, pttl: 0 }, { ...b, pttl: 0 })
    for (const { pttl } of [a, b]) {
      const wrapped = expectedTTL > DAY - 60_000 // 02:00 UTC passed during the test
      assert.ok(wrapped || (pttl <= expectedTTL && pttl > expectedTTL - 10_000), `PTTL ${pttl} vs ${expectedTTL}`)
    }
    assert.equal(await redis.scard(denyListKeys(A).ip), (await redis.scard(denyListKeys(A).all)) - userEntries.length)
  })

  test('update: IPs already user-denied stay user entries; a refresh replaces the previous list', T, async () => {
    const first = listOf(30)
    const second = [...listOf(10), ...listOf(5, 20)] // 10 kept, 20 dropped, 5 new
    let body = textOf(first)
    stubIpsum(() => new Response(body))
    const [A, B] = [fresh(), fresh()]
    const userEntries = ['bad-id', first[3], second[12]] // one overlaps each list
    for (const P of [A, B]) await redis.sadd(denyListKeys(P).all, userEntries[0], ...userEntries.slice(1))

    const runs = []
    for (const [update, P] of [[updateIpDenyList, A], [UpstreamIpDenyList.updateIpDenyList, B]]) {
      body = textOf(first)
      const r1 = await update(redis, P, 3, 60_000)
      const s1 = await state(P)
      body = textOf(second)
      const r2 = await update(redis, P, 3, 90_000)
      const s2 = await state(P)
      runs.push({ r1, r2, s1, s2 })
    }
    const [ours, theirs] = runs
    assert.deepStrictEqual(ours.r1, theirs.r1)
    assert.deepStrictEqual(ours.r2, theirs.r2)
    assert.deepStrictEqual(ours.r1, [3, 0, 30, 29, 32, 'OK'])
    assert.deepStrictEqual(ours.r2, [3, 1, 15, 13, 16, 'OK']) // 2 of the new IPs are user entries
    for (const key of ['all', 'ip', 'status']) {
      assert.deepEqual(ours.s1[key], theirs.s1[key])
      assert.deepEqual(ours.s2[key], theirs.s2[key])
    }
    assert.deepEqual(ours.s2.all, [...new Set([...userEntries, ...second])].sort())
    assert.deepEqual(ours.s2.ip, second.filter((ip) => !userEntries.includes(ip)).sort())
    // An explicit ttl is used as the PX of the status key.
    assert.ok(ours.s1.pttl <= 60_000 && ours.s1.pttl > 50_000, String(ours.s1.pttl))
    assert.ok(ours.s2.pttl <= 90_000 && ours.s2.pttl > 80_000, String(ours.s2.pttl))
  })

  test('update: empty lines are dropped; "\\r" is kept as upstream does', T, async () => {
    stubIpsum(() => new Response('\n1.1.1.1\n\n2.2.2.2\r\n3.3.3.3'))
    const [A, B] = [fresh(), fresh()]
    const ours = await updateIpDenyList(redis, A, 1)
    const theirs = await UpstreamIpDenyList.updateIpDenyList(redis, B, 1)
    assert.deepStrictEqual(ours, theirs)
    assert.deepStrictEqual(ours, [0, 0, 3, 3, 3, 'OK'])
    assert.deepEqual((await state(A)).ip, (await state(B)).ip)
    assert.deepEqual((await state(A)).ip, ['1.1.1.1', '2.2.2.2\r', '3.3.3.3'])
  })

  test('disable: same replies; IP list removed, user entries kept, status "disabled" without TTL', T, async () => {
    const ips = listOf(20)
    stubIpsum(() => new Response(textOf(ips)))
    const [A, B] = [fresh(), fresh()]
    for (const P of [A, B]) await redis.sadd(denyListKeys(P).all, 'bad-id', '6.6.6.6')
    await updateIpDenyList(redis, A, 2)
    await UpstreamIpDenyList.updateIpDenyList(redis, B, 2)

    const ours = await disableIpDenyList(redis, A)
    const theirs = await UpstreamIpDenyList.disableIpDenyList(redis, B)
    assert.deepStrictEqual(ours, theirs)
    assert.deepStrictEqual(ours, [2, 1, 'OK'])
    const [a, b] = [await state(A), await state(B)]
    assert.deepStrictEqual(a, b)
    assert.deepStrictEqual(a, { all: ['6.6.6.6', 'bad-id'], ip: [], status: 'disabled', pttl: -1 })

    // On a fresh prefix (nothing there yet), as in §9 item 12's setup.
    const [C, D] = [fresh(), fresh()]
    assert.deepStrictEqual(await disableIpDenyList(redis, C), await UpstreamIpDenyList.disableIpDenyList(redis, D))
    assert.deepStrictEqual(await state(C), { all: [], ip: [], status: 'disabled', pttl: -1 })
  })

  test('fetch failures: same wrapped messages, Redis untouched', T, async () => {
    const cases = [
      ['rejects', () => Promise.reject(new TypeError('fetch failed')), 'Failed to fetch ip deny list: TypeError: fetch failed'],
      ['404', () => new Response('nope', { status: 404, statusText: 'Not Found' }), 'Failed to fetch ip deny list: Error: Error fetching data: Not Found'],
      ['500 no text', () => new Response('', { status: 500 }), 'Failed to fetch ip deny list: Error: Error fetching data: '],
      ['body fails', () => ({ ok: true, text: () => Promise.reject(new Error('stream broke')) }), 'Failed to fetch ip deny list: Error: stream broke'],
      ['throws', () => { throw new RangeError('sync boom') }, 'Failed to fetch ip deny list: RangeError: sync boom'],
    ]
    for (const [label, respond, message] of cases) {
      const requested = stubIpsum(respond)
      const [A, B] = [fresh(), fresh()]
      const [a, b] = await Promise.allSettled([updateIpDenyList(redis, A, 4), UpstreamIpDenyList.updateIpDenyList(redis, B, 4)])
      assert.equal(a.status, 'rejected', label)
      assert.equal(b.status, 'rejected', label)
      assert.equal(a.reason.message, message, label)
      assert.equal(a.reason.message, b.reason.message, label)
      assert.equal(a.reason.constructor, Error, label)
      assert.deepEqual(requested, [`${IPSUM}4.txt`, `${IPSUM}4.txt`], label)
      assert.deepEqual(await state(A), { all: [], ip: [], status: null, pttl: -2 }, label)
    }
  })

  test('fetch is looked up at call time (a stub installed later is used)', T, async () => {
    const A = fresh()
    const requested = stubIpsum(() => new Response('9.9.9.9\n'))
    assert.deepStrictEqual(await updateIpDenyList(redis, A, 8), [0, 0, 1, 1, 1, 'OK'])
    assert.deepEqual(requested, [`${IPSUM}8.txt`])
  })

  test('NaN and fractional thresholds pass validation and are put in the URL, as upstream', T, async () => {
    for (const threshold of [NaN, 2.5]) {
      const requested = stubIpsum(() => new Response('', { status: 404, statusText: 'Not Found' }))
      const [a, b] = await Promise.allSettled([updateIpDenyList(redis, fresh(), threshold), UpstreamIpDenyList.updateIpDenyList(redis, fresh(), threshold)])
      assert.equal(a.reason.message, 'Failed to fetch ip deny list: Error: Error fetching data: Not Found')
      assert.equal(a.reason.message, b.reason.message)
      assert.deepEqual(requested, [`${IPSUM}${threshold}.txt`, `${IPSUM}${threshold}.txt`])
    }
  })

  test('a client without multi(): one eval with the same replies and the same effect', T, async () => {
    const ips = listOf(9000) // more than one SADD chunk inside the script
    let body = textOf(ips)
    stubIpsum(() => new Response(body))
    const calls = []
    const evalOnly = {
      eval: (script, keys, args) => {
        calls.push({ keys, argc: args.length })
        return redis.eval(script, keys, args)
      },
    }
    const [A, B] = [fresh(), fresh()]
    for (const P of [A, B]) await redis.sadd(denyListKeys(P).all, 'bad-id', ips[100])

    const ours = await updateIpDenyList(evalOnly, A, 5)
    const theirs = await UpstreamIpDenyList.updateIpDenyList(redis, B, 5)
    assert.deepStrictEqual(ours, theirs)
    assert.deepStrictEqual(ours, [2, 0, 9000, 8999, 9001, 'OK'])
    assert.equal(calls.length, 1)
    assert.deepEqual(calls[0].keys, [`${A}:denyList:all`, `${A}:denyList:ipDenyList`, `${A}:ipDenyListStatus`])
    const [a, b] = [await state(A), await state(B)]
    assert.deepEqual({ ...a, pttl: 0 }, { ...b, pttl: 0 })
    assert.ok(Math.abs(a.pttl - b.pttl) < 5000)

    body = textOf(listOf(3, 7))
    assert.deepStrictEqual(await updateIpDenyList(evalOnly, A, 5), await UpstreamIpDenyList.updateIpDenyList(redis, B, 5))
    assert.deepEqual({ ...(await state(A)), pttl: 0 }, { ...(await state(B)), pttl: 0 })

    assert.deepStrictEqual(await disableIpDenyList(evalOnly, A), await UpstreamIpDenyList.disableIpDenyList(redis, B))
    assert.deepStrictEqual(await state(A), await state(B))
    assert.equal(calls.length, 3)
  })

  test("the project's own Redis client (no multi today) works through eval", T, async () => {
    const { Redis } = require('../lib/redis.js')
    const own = new Redis({ url: stack.rest.url, token: stack.rest.token })
    stubIpsum(() => new Response(textOf(listOf(12))))
    const [A, B] = [fresh(), fresh()]
    assert.deepStrictEqual(await updateIpDenyList(own, A, 7), await UpstreamIpDenyList.updateIpDenyList(redis, B, 7))
    assert.deepEqual({ ...(await state(A)), pttl: 0 }, { ...(await state(B)), pttl: 0 })
    assert.deepStrictEqual(await disableIpDenyList(own, A), await UpstreamIpDenyList.disableIpDenyList(redis, B))
    assert.deepStrictEqual(await state(A), await state(B))
  })
})
