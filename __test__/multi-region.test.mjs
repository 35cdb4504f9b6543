// MultiRegionRatelimit on two real regions: two redis-servers, each behind its own local
// Upstash REST server. Covers the conformance scenarios 15–17 of the reference
// (upstash-ratelimit-behaviour.md §9), our deliberate differences (ephemeralCache honoured,
// resetUsedTokens waits for every region, pending never unhandled by itself), and a
// differential run against the published @upstash/ratelimit 2.2.0 `MultiRegionRatelimit` on the
// same two databases (other prefix; request ids differ, so hashes are compared by shape).

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { after, before, describe, test } from 'node:test'
import { MultiRegionRatelimit as UpstreamMultiRegion } from '@upstash/ratelimit'
import { Redis as UpstashRedis } from '@upstash/redis'
import { Redis } from '../index.js'
import { MultiRegionRatelimit } from '../lib/multi-region.js'
import { startStack } from './helpers/servers.mjs'

// ---------------------------------------------------------------------------------------------
// Direct Redis access (RESP over a socket), to inspect what each region stores.

/** Parses one RESP value at `buf[pos]`; returns [value, next] or null when incomplete. */
function parseValue(buf, pos) {
  const end = buf.indexOf('\r\n', pos)
  if (end < 0) return null
  const kind = buf[pos]
  const head = buf.toString('utf8', pos + 1, end)
  let next = end + 2
  if (kind === 0x2b) return [head, next] // +
  if (kind === 0x2d) return [{ error: head }, next] // -
  if (kind === 0x3a) return [Number(head), next] // :
  if (kind === 0x24) {
    // $
    const n = Number(head)
    if (n < 0) return [null, next]
    if (buf.length < next + n + 2) return null
    return [buf.toString('utf8', next, next + n), next + n + 2]
  }
  if (kind === 0x2a) {
    // *
    const n = Number(head)
    if (n < 0) return [null, next]
    const items = []
    for (let i = 0; i < n; i++) {
      const parsed = parseValue(buf, next)
      if (!parsed) return null
      items.push(parsed[0])
      next = parsed[1]
    }
    return [items, next]
  }
  throw new Error(`unexpected RESP type ${String.fromCharCode(kind)}`)
}

/** Runs commands on a region's redis-server directly; resolves with their replies. */
function direct(stack, commands, timeoutMs = 5000) {
  const { port, password } = stack.redis
  const encode = (parts) => `*${parts.length}\r\n` + parts.map((p) => `$${Buffer.byteLength(String(p))}\r\n${p}\r\n`).join('')
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let buf = Buffer.alloc(0)
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error('direct redis command timed out'))
    }, timeoutMs)
    socket.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    socket.on('connect', () => socket.write(encode(['AUTH', password]) + commands.map(encode).join('')))
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk])
      const replies = []
      let pos = 0
      for (let i = 0; i <= commands.length; i++) {
        const parsed = parseValue(buf, pos)
        if (!parsed) return
        replies.push(parsed[0])
        pos = parsed[1]
      }
      clearTimeout(timer)
      socket.end()
      resolve(replies.slice(1))
    })
  })
}
const one = async (stack, ...args) => (await direct(stack, [args]))[0]

/** A hash as `{ fields: [[id, value], …], pttl }` (pttl -2 when missing). */
async function hashOf(stack, key) {
  const [flat, pttl] = await direct(stack, [['HGETALL', key], ['PTTL', key]])
  const fields = []
  for (let i = 0; i < flat.length; i += 2) fields.push([flat[i], flat[i + 1]])
  return { fields, pttl }
}

/** Every key under `prefix:` → { suffix: { type, count, values (sorted), pttl } }. */
async function shapeOf(stack, prefix) {
  const keys = ((await one(stack, 'KEYS', `${prefix}:*`)) ?? []).sort()
  const shape = {}
  if (keys.length === 0) return shape
  const replies = await direct(stack, keys.flatMap((k) => [['TYPE', k], ['PTTL', k], ['HGETALL', k]]))
  keys.forEach((k, j) => {
    const [type, pttl, flat] = replies.slice(3 * j, 3 * j + 3)
    const values = Array.isArray(flat) ? flat.filter((_, i) => i % 2 === 1).sort() : []
    shape[k.slice(prefix.length)] = { type, count: values.length, values, pttl }
  })
  return shape
}

// ---------------------------------------------------------------------------------------------
// Fixtures

let regionA
let regionB
const stacks = () => [regionA, regionB]

before(async () => {
  regionA = await startStack()
  regionB = await startStack()
})
after(async () => {
  Date.now = realNow
  await regionA?.stop()
  await regionB?.stop()
})

const realNow = Date.now
/** Puts Date.now at `offset` ms into a fresh 10 s window (far from its end), for `fn`. */
async function atFixedTime(fn, offset = 1234) {
  const t = Math.floor(realNow() / 10000) * 10000 + offset
  Date.now = () => t
  try {
    return await fn(t)
  } finally {
    Date.now = realNow
  }
}
const windowEnd = (t, w = 10000) => (Math.floor(t / w) + 1) * w
const bucketKey = (prefix, id, t, w = 10000) => `${prefix}:${id}:${Math.floor(t / w)}`
const freshPrefix = (tag) => `mr-${tag}-${randomBytes(4).toString('hex')}`
const omitPending = ({ pending, ...rest }) => rest
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const upstashClient = (stack) => new UpstashRedis({ url: stack.rest.url, token: stack.rest.token, enableTelemetry: false })
const ownClient = (stack) => new Redis({ url: stack.rest.url, token: stack.rest.token })

/** Resolves once `client` has had no call in flight across a macrotask (bounded). */
async function idle(client) {
  for (let i = 0; i < 5000; i++) {
    if (client.inFlight === 0) {
      await new Promise((r) => setImmediate(r))
      if (client.inFlight === 0) return
    } else {
      await sleep(1)
    }
  }
  throw new Error('the other region never became idle')
}

/**
 * A plain client object (compat path) around @upstash/redis, with switches: `down` makes every
 * call throw `error`, `delayMs` delays scripts, `after` (another such client) holds every answer
 * back until that client is idle, so that one always answers first whatever the machine's load
 * (its EVALSHA → EVAL fallback included); `calls` counts method calls.
 */
function compatClient(stack, { name = 'region' } = {}) {
  const inner = upstashClient(stack)
  const client = {
    down: false,
    delayMs: 0,
    after: null,
    inFlight: 0,
    error: new Error(`${name} down`),
    calls: { evalsha: 0, eval: 0, hset: 0 },
  }
  const guard = async (method, fn) => {
    client.calls[method] = (client.calls[method] ?? 0) + 1
    client.inFlight++
    try {
      if (client.delayMs > 0) await sleep(client.delayMs)
      if (client.down) throw client.error
      return await fn()
    } finally {
      client.inFlight--
      if (client.after) await idle(client.after)
    }
  }
  client.evalsha = (...a) => guard('evalsha', () => inner.evalsha(...a))
  client.eval = (...a) => guard('eval', () => inner.eval(...a))
  client.hset = (...a) => guard('hset', () => inner.hset(...a))
  client.get = (...a) => inner.get(...a)
  client.set = (...a) => inner.set(...a)
  client.del = (...a) => inner.del(...a)
  return client
}

/** A client whose every script call fails. */
function brokenClient(message) {
  const error = new Error(message)
  const fail = async () => {
    throw error
  }
  return { error, evalsha: fail, eval: fail, hset: fail, get: fail, set: fail, del: fail }
}

const CLIENT_KINDS = {
  'our Redis (native)': ownClient,
  '@upstash/redis (native)': upstashClient,
  'plain object (compat)': (stack) => compatClient(stack),
}

/** `limit` five times for `u`, awaiting `pending` each time. */
async function fiveCalls(rl) {
  const out = []
  for (let i = 0; i < 5; i++) {
    const r = await rl.limit('u')
    await r.pending
    out.push(r)
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Scenario 15: fixed window over two regions

describe('scenario 15: MultiRegionRatelimit.fixedWindow(3, "10 s")', () => {
  for (const [kind, makeClient] of Object.entries(CLIENT_KINDS)) {
    test(`${kind}: remaining 2, 1, 0, -1, then a cache block; every region holds the ids`, async () => {
      const prefix = freshPrefix('f15')
      await atFixedTime(async (t) => {
        const rl = new MultiRegionRatelimit({ redis: stacks().map(makeClient), limiter: MultiRegionRatelimit.fixedWindow(3, '10 s'), prefix })
        const rs = await fiveCalls(rl)
        assert.deepEqual(
          rs.map((r) => r.remaining),
          [2, 1, 0, -1, 0],
        )
        assert.deepEqual(
          rs.map((r) => r.success),
          [true, true, true, false, false],
        )
        for (const r of rs) assert.equal(r.reset, windowEnd(t))
        assert.deepEqual(omitPending(rs[3]), { success: false, limit: 3, remaining: -1, reset: windowEnd(t) })
        assert.deepEqual(omitPending(rs[4]), { success: false, limit: 3, remaining: 0, reset: windowEnd(t), reason: 'cacheBlock' })

        const key = bucketKey(prefix, 'u', t)
        const [a, b] = await Promise.all(stacks().map((s) => hashOf(s, key)))
        for (const h of [a, b]) {
          assert.equal(h.fields.length, 4)
          for (const [id, value] of h.fields) {
            assert.match(id, /^[A-Za-z0-9]{16}$/)
            assert.equal(value, '1')
          }
          assert.ok(h.pttl > 0 && h.pttl <= 10000, `PTTL ${h.pttl}`)
        }
        assert.deepEqual(a.fields.map(([id]) => id).sort(), b.fields.map(([id]) => id).sort(), 'same request ids in both regions')
        assert.deepEqual(await rl.getRemaining('u'), { remaining: 0, reset: windowEnd(t), limit: 3 })
      })
    })
  }

  test('ephemeralCache: false is honoured (upstream ignores it): the fifth call reaches Redis, remaining -2', async () => {
    const prefix = freshPrefix('f15nc')
    await atFixedTime(async (t) => {
      const rl = new MultiRegionRatelimit({ redis: stacks().map(ownClient), limiter: MultiRegionRatelimit.fixedWindow(3, '10 s'), prefix, ephemeralCache: false })
      assert.equal(rl.ctx.cache, undefined)
      const rs = await fiveCalls(rl)
      assert.deepEqual(
        rs.map((r) => r.remaining),
        [2, 1, 0, -1, -2],
      )
      assert.ok(rs.every((r) => r.reason === undefined))
      for (const s of stacks()) {
        const h = await hashOf(s, bucketKey(prefix, 'u', t))
        assert.equal(h.fields.length, 5)
        assert.ok(h.fields.every(([, v]) => v === '1'))
        assert.ok(h.pttl > 0 && h.pttl <= 10000)
      }
    })
  })

  test('a user-supplied ephemeralCache Map is used (upstream ignores it)', async () => {
    const prefix = freshPrefix('f15map')
    const map = new Map()
    await atFixedTime(async (t) => {
      const rl = new MultiRegionRatelimit({ redis: stacks().map(ownClient), limiter: MultiRegionRatelimit.fixedWindow(1, '10 s'), prefix, ephemeralCache: map })
      await (await rl.limit('u')).pending
      await (await rl.limit('u')).pending
      assert.deepEqual([...map], [[`${prefix}:u`, windowEnd(t)]])
      const blocked = await rl.limit('u')
      assert.equal(blocked.reason, 'cacheBlock')
      // A refund clears the block, like the single-region limiter.
      const refund = await rl.limit('u', { rate: -5 })
      await refund.pending
      assert.equal(refund.success, true)
      assert.equal(map.size, 0)
    })
  })
})

// ---------------------------------------------------------------------------------------------
// Scenario 16: sliding window over two regions

describe('scenario 16: MultiRegionRatelimit.slidingWindow(3, "10 s")', () => {
  for (const [kind, makeClient] of Object.entries(CLIENT_KINDS)) {
    test(`${kind}: remaining 2, 1, 0, 0, then a cache block`, async () => {
      const prefix = freshPrefix('s16')
      await atFixedTime(async (t) => {
        const rl = new MultiRegionRatelimit({ redis: stacks().map(makeClient), limiter: MultiRegionRatelimit.slidingWindow(3, '10 s'), prefix })
        const rs = await fiveCalls(rl)
        assert.deepEqual(
          rs.map((r) => [r.success, r.remaining]),
          [
            [true, 2],
            [true, 1],
            [true, 0],
            [false, 0],
            [false, 0],
          ],
        )
        assert.equal(rs[3].reason, undefined)
        assert.deepEqual(omitPending(rs[4]), { success: false, limit: 3, remaining: 0, reset: windowEnd(t), reason: 'cacheBlock' })
        assert.deepEqual(await rl.getRemaining('u'), { remaining: 0, reset: windowEnd(t), limit: 3 })
        for (const s of stacks()) {
          const h = await hashOf(s, bucketKey(prefix, 'u', t))
          assert.equal(h.fields.length, 3, 'the refused fourth request is not recorded')
          assert.ok(h.fields.every(([id, v]) => /^[A-Za-z0-9]{16}$/.test(id) && v === '1'))
          assert.ok(h.pttl > 10000 && h.pttl <= 21000, `PTTL ${h.pttl}`)
        }
      })
    })
  }

  test('the previous window counts, weighted (ceil on the client, floor in getRemaining)', async () => {
    const prefix = freshPrefix('s16w')
    const rl = new MultiRegionRatelimit({ redis: stacks().map(ownClient), limiter: MultiRegionRatelimit.slidingWindow(10, '10 s'), prefix, ephemeralCache: false })
    const base = Math.floor(realNow() / 10000) * 10000
    try {
      Date.now = () => base + 5000
      for (let i = 0; i < 4; i++) await (await rl.limit('u', { rate: 2 })).pending // 8 in this window
      Date.now = () => base + 10000 + 2500 // 75 % of the previous window still covered: 6
      const r = await rl.limit('u')
      await r.pending
      assert.deepEqual(omitPending(r), { success: true, limit: 10, remaining: 3, reset: base + 20000 })
      assert.deepEqual(await rl.getRemaining('u'), { remaining: 3, reset: base + 20000, limit: 10 })
      const refused = await rl.limit('u', { rate: 4 }) // 6 + 1 + 4 > 10: refused, not recorded
      await refused.pending
      assert.equal(refused.success, false)
      assert.equal((await hashOf(regionA, `${prefix}:u:${Math.floor((base + 12500) / 10000)}`)).fields.length, 1)
    } finally {
      Date.now = realNow
    }
  })
})

// ---------------------------------------------------------------------------------------------
// Scenario 17: failures

describe('scenario 17: failing regions', () => {
  test('one region throws: the answer comes from the other, pending rejects with its error', async () => {
    for (const algorithm of ['fixedWindow', 'slidingWindow']) {
      const prefix = freshPrefix('f17')
      const broken = brokenClient('region A is down')
      await atFixedTime(async (t) => {
        const rl = new MultiRegionRatelimit({ redis: [broken, ownClient(regionB)], limiter: MultiRegionRatelimit[algorithm](3, '10 s'), prefix })
        const r = await rl.limit('u')
        assert.deepEqual(omitPending(r), { success: true, limit: 3, remaining: 2, reset: windowEnd(t) }, algorithm)
        await assert.rejects(r.pending, (err) => err === broken.error)
        assert.equal((await hashOf(regionB, bucketKey(prefix, 'u', t))).fields.length, 1)
        assert.deepEqual(await rl.getRemaining('u'), { remaining: 2, reset: windowEnd(t), limit: 3 })
      })
    }
  })

  test('a region whose REST endpoint is unreachable (native path) is handled the same way', async () => {
    const prefix = freshPrefix('f17n')
    const dead = new Redis({ url: 'http://127.0.0.1:9', token: 'x' })
    const rl = new MultiRegionRatelimit({ redis: [ownClient(regionA), dead], limiter: MultiRegionRatelimit.fixedWindow(3, '10 s'), prefix })
    const r = await rl.limit('u')
    assert.equal(r.success, true)
    assert.equal(r.remaining, 2)
    await assert.rejects(r.pending, /127\.0\.0\.1:9/)
  })

  test('an ignored pending that rejects is not an unhandled rejection', async () => {
    const unhandled = []
    const onUnhandled = (reason) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      const rl = new MultiRegionRatelimit({
        redis: [brokenClient('ignored'), ownClient(regionB)],
        limiter: MultiRegionRatelimit.fixedWindow(3, '10 s'),
        prefix: freshPrefix('f17u'),
        analytics: false,
      })
      const r = await rl.limit('u') // pending not awaited, not caught
      assert.equal(r.success, true)
      // Also when the timeout wins and the real response (with its pending) is dropped.
      const slow = compatClient(regionA)
      slow.delayMs = 150
      const slowDown = brokenClient('slow and down')
      const rl2 = new MultiRegionRatelimit({ redis: [slow, { ...slowDown, evalsha: async () => (await sleep(100), slowDown.evalsha()) }], limiter: MultiRegionRatelimit.fixedWindow(3, '10 s'), prefix: freshPrefix('f17t'), timeout: 20 })
      const timedOut = await rl2.limit('u')
      assert.equal(timedOut.reason, 'timeout')
      await sleep(400)
      await new Promise((r) => setImmediate(r))
      assert.deepEqual(unhandled, [])
      // The original promise still rejects for whoever awaits it.
      await assert.rejects(r.pending, /ignored/)
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
  })

  test('every region throws: limit and getRemaining reject with AggregateError', async () => {
    for (const algorithm of ['fixedWindow', 'slidingWindow']) {
      const a = brokenClient('A down')
      const b = brokenClient('B down')
      const rl = new MultiRegionRatelimit({ redis: [a, b], limiter: MultiRegionRatelimit[algorithm](3, '10 s'), prefix: freshPrefix('f17a') })
      await assert.rejects(rl.limit('u'), (err) => {
        assert.ok(err instanceof AggregateError)
        assert.equal(err.message, 'All promises were rejected')
        assert.deepEqual(err.errors, [a.error, b.error])
        return true
      })
      await assert.rejects(rl.getRemaining('u'), (err) => err instanceof AggregateError && err.message === 'All promises were rejected')
    }
  })

  test('back-fill: a region that missed a request gets it later, with the later call\'s rate', async () => {
    const prefix = freshPrefix('fill')
    const a = compatClient(regionA, { name: 'A' })
    const b = compatClient(regionB, { name: 'B' })
    b.after = a // A always answers first
    await atFixedTime(async (t) => {
      const rl = new MultiRegionRatelimit({ redis: [a, b], limiter: MultiRegionRatelimit.fixedWindow(10, '10 s'), prefix, ephemeralCache: false })
      await (await rl.limit('u')).pending // id1 in both
      b.down = true
      const r2 = await rl.limit('u') // id2 in A only
      await assert.rejects(r2.pending, (err) => err === b.error)
      b.down = false
      const r3 = await rl.limit('u', { rate: 2 }) // id3 (2) in both; B gets id2 back-filled with 2
      assert.deepEqual([r3.success, r3.remaining], [true, 6])
      await r3.pending
      const key = bucketKey(prefix, 'u', t)
      const [ha, hb] = await Promise.all([hashOf(regionA, key), hashOf(regionB, key)])
      const [id1, id2, id3] = ha.fields.map(([id]) => id)
      assert.deepEqual(ha.fields, [
        [id1, '1'],
        [id2, '1'],
        [id3, '2'],
      ])
      assert.deepEqual(hb.fields, [
        [id1, '1'],
        [id3, '2'],
        [id2, '2'],
      ])
      assert.equal(b.calls.hset, 1)
      assert.equal(a.calls.hset, 0)
    })
  })
})

// ---------------------------------------------------------------------------------------------
// resetUsedTokens, dynamic limits, the instance shape

describe('resetUsedTokens', () => {
  test('resolves only after every region deleted the keys (upstream does not wait)', async () => {
    for (const algorithm of ['fixedWindow', 'slidingWindow']) {
      const prefix = freshPrefix('reset')
      const slow = compatClient(regionB)
      const rl = new MultiRegionRatelimit({ redis: [ownClient(regionA), slow], limiter: MultiRegionRatelimit[algorithm](2, '10 s'), prefix })
      await atFixedTime(async (t) => {
        for (let i = 0; i < 3; i++) await (await rl.limit('u')).pending
        assert.equal((await rl.limit('u')).reason, 'cacheBlock')
        await (await rl.limit('u:1')).pending
        for (const s of stacks()) assert.equal((await one(s, 'KEYS', `${prefix}:u:*`)).length, 2, 'u and u:1')
        slow.delayMs = 200
        await rl.resetUsedTokens('u')
        for (const s of stacks()) {
          assert.deepEqual(await one(s, 'KEYS', `${prefix}:u:*`), [bucketKey(prefix, 'u:1', t)], algorithm)
        }
        slow.delayMs = 0
        const after = await rl.limit('u')
        assert.equal(after.success, true, 'the cache block is gone too')
        assert.equal(after.remaining, 1)
      })
    }
  })

  test('for contrast: upstream resolves before a slow region has deleted anything (Q9)', async () => {
    const prefix = freshPrefix('resetup')
    const slow = compatClient(regionB)
    const up = new UpstreamMultiRegion({ redis: [upstashClient(regionA), slow], limiter: UpstreamMultiRegion.fixedWindow(2, '10 s'), prefix, enableTelemetry: false })
    await (await up.limit('u')).pending
    slow.delayMs = 1000
    await up.resetUsedTokens('u')
    assert.equal((await one(regionB, 'KEYS', `${prefix}:u:*`)).length, 1, 'still there right after it resolved')
    await untilGone(prefix, 'u')
  })

  test('a failing region makes resetUsedTokens reject, after the other region is done', async () => {
    const prefix = freshPrefix('resetfail')
    const b = compatClient(regionB, { name: 'B' })
    const rl = new MultiRegionRatelimit({ redis: [ownClient(regionA), b], limiter: MultiRegionRatelimit.fixedWindow(2, '10 s'), prefix })
    await (await rl.limit('u')).pending
    b.down = true
    await assert.rejects(rl.resetUsedTokens('u'), (err) => err === b.error)
    assert.deepEqual(await one(regionA, 'KEYS', `${prefix}:*`), [])
    assert.equal((await one(regionB, 'KEYS', `${prefix}:*`)).length, 1)
  })
})

describe('dynamic limits and the instance', () => {
  test('dynamicLimits: the constructor warns; set/get use redis[0] only; limits are not affected', async () => {
    const prefix = freshPrefix('dyn')
    const warnings = []
    const warn = console.warn
    console.warn = (...args) => warnings.push(args.join(' '))
    let rl
    try {
      rl = new MultiRegionRatelimit({ redis: stacks().map(ownClient), limiter: MultiRegionRatelimit.fixedWindow(5, '10 s'), prefix, dynamicLimits: true })
    } finally {
      console.warn = warn
    }
    assert.deepEqual(warnings, [
      'Warning: Dynamic limits are not yet supported for multi-region rate limiters. The dynamicLimits option will be ignored.',
    ])
    assert.deepEqual(await rl.getDynamicLimit(), { dynamicLimit: null })
    await rl.setDynamicLimit({ limit: 2 })
    assert.equal(await one(regionA, 'GET', `${prefix}:dynamic:global`), '2')
    assert.equal(await one(regionB, 'GET', `${prefix}:dynamic:global`), null)
    assert.deepEqual(await rl.getDynamicLimit(), { dynamicLimit: 2 })
    const r = await rl.limit('u')
    assert.deepEqual([r.limit, r.remaining], [5, 4])
    await rl.setDynamicLimit({ limit: false })
    assert.deepEqual(await rl.getDynamicLimit(), { dynamicLimit: null })

    const off = new MultiRegionRatelimit({ redis: stacks().map(ownClient), limiter: MultiRegionRatelimit.fixedWindow(5, '10 s'), prefix })
    await assert.rejects(off.setDynamicLimit({ limit: 1 }), { message: 'dynamicLimits must be enabled in the Ratelimit constructor to use setDynamicLimit()' })
    await assert.rejects(off.getDynamicLimit(), { message: 'dynamicLimits must be enabled in the Ratelimit constructor to use getDynamicLimit()' })
  })

  test('methods are own arrow properties (destructuring works); options are validated', async () => {
    const rl = new MultiRegionRatelimit({ redis: stacks().map(ownClient), limiter: MultiRegionRatelimit.fixedWindow(5, '10 s'), prefix: freshPrefix('shape') })
    for (const m of ['limit', 'blockUntilReady', 'resetUsedTokens', 'getRemaining', 'setDynamicLimit', 'getDynamicLimit']) {
      assert.ok(Object.hasOwn(rl, m), m)
    }
    assert.equal(rl.primaryRedis, rl.ctx.regionContexts[0].redis)
    assert.equal(rl.ctx.regionContexts[1].prefix, rl.prefix)
    const { limit } = rl
    assert.equal((await limit('x')).success, true)
    await assert.rejects(limit('x', { rate: Number.NaN }), /rate must be a finite number/)
    assert.throws(() => new MultiRegionRatelimit({ redis: [], limiter: MultiRegionRatelimit.fixedWindow(1, '1 s') }), TypeError)
    assert.throws(() => new MultiRegionRatelimit({ redis: [Redis.memory()], limiter: MultiRegionRatelimit.fixedWindow(1, '1 s') }), /Redis\.memory\(\)/)
    assert.throws(() => MultiRegionRatelimit.fixedWindow(1, '1 sec'), { message: 'Unable to parse window size: 1 sec' })
    assert.throws(() => MultiRegionRatelimit.slidingWindow(0, '1 s'), /tokens must be a positive, finite number/)
  })

  test('blockUntilReady waits for the next window', async () => {
    const rl = new MultiRegionRatelimit({ redis: stacks().map(ownClient), limiter: MultiRegionRatelimit.fixedWindow(1, '1 s'), prefix: freshPrefix('block') })
    await (await rl.limit('u')).pending
    const started = realNow()
    const r = await rl.blockUntilReady('u', 3000)
    assert.equal(r.success, true)
    assert.ok(realNow() - started <= 2500)
    await assert.rejects(rl.blockUntilReady('u', 0), { message: 'timeout must be positive' })
  })

  test('analytics are recorded on redis[0] only', async () => {
    const prefix = freshPrefix('an')
    const rl = new MultiRegionRatelimit({ redis: stacks().map(ownClient), limiter: MultiRegionRatelimit.fixedWindow(5, '10 s'), prefix, analytics: true })
    const r = await rl.limit('u')
    await r.pending
    const [keyA] = await one(regionA, 'KEYS', `${prefix}:events:*`)
    assert.ok(keyA)
    assert.deepEqual(await one(regionA, 'ZRANGE', keyA, 0, -1, 'WITHSCORES'), ['{"identifier":"u","success":true}', '1'])
    assert.deepEqual(await one(regionB, 'KEYS', `${prefix}:events:*`), [])
  })
})

// ---------------------------------------------------------------------------------------------
// Differential: the published @upstash/ratelimit MultiRegionRatelimit on the same databases

function mulberry32(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

const IDS = ['alice', 'bob', 'c:1']
const RATES = [undefined, undefined, undefined, 1, 1, 2, 3, 0, -1, -2, 1.5, 0.1, 5]

function sequence(seed, steps, { failures }) {
  const rnd = mulberry32(seed)
  const pick = (list) => list[Math.floor(rnd() * list.length)]
  const ops = []
  let down = false
  for (let i = 0; i < steps; i++) {
    const x = rnd()
    const id = pick(IDS)
    if (x < 0.6) ops.push({ op: 'limit', id, rate: pick(RATES) })
    else if (x < 0.72) ops.push({ op: 'getRemaining', id })
    else if (x < 0.77 && !down) ops.push({ op: 'resetUsedTokens', id })
    else if (failures && x < 0.85) {
      down = !down
      ops.push({ op: 'region', down })
    } else ops.push({ op: 'advance', ms: 50 + Math.floor(rnd() * 4000) })
  }
  return ops
}

async function outcome(promise) {
  try {
    return { value: await promise }
  } catch (error) {
    return { rejected: `${error?.name}: ${error?.message}` }
  }
}

/** Waits (bounded) until no key of `id` is left in any region (upstream's reset does not wait). */
async function untilGone(prefix, id) {
  for (let i = 0; i < 300; i++) {
    const left = await Promise.all(stacks().map((s) => one(s, 'KEYS', `${prefix}:${id}:*`)))
    if (left.every((keys) => keys.length === 0)) return
    await sleep(10)
  }
  throw new Error(`upstream's reset of ${id} did not finish`)
}

const TTL_TOLERANCE_MS = 1000

const numbers = (texts) => texts.map(Number).sort((x, y) => x - y)

/**
 * Same keys, types, field counts, values and TTL presence. With `exactText` off, values are
 * compared as numbers: when either region can answer first, the back-fill re-writes the
 * request in the other one as `String(rate)` ("0.1") over the script's "%.17g" text
 * ("0.10000000000000001"), and which region that is differs from run to run.
 */
function assertSameShape(up, ours, where, { exactText }) {
  assert.deepEqual(Object.keys(ours).sort(), Object.keys(up).sort(), `${where}: same keys`)
  for (const k of Object.keys(up)) {
    const a = up[k]
    const b = ours[k]
    assert.equal(b.type, a.type, `${where}: type of ${k}`)
    assert.equal(b.count, a.count, `${where}: field count of ${k}`)
    if (exactText) assert.deepEqual(b.values, a.values, `${where}: values of ${k}`)
    else assert.deepEqual(numbers(b.values), numbers(a.values), `${where}: values of ${k}`)
    assert.equal(b.pttl > 0, a.pttl > 0, `${where}: TTL presence of ${k} (upstream ${a.pttl}, ours ${b.pttl})`)
    if (a.pttl > 0) assert.ok(Math.abs(a.pttl - b.pttl) <= TTL_TOLERANCE_MS, `${where}: PTTL of ${k}: upstream ${a.pttl}, ours ${b.pttl}`)
  }
}

async function differential({ name, algorithm, client, steps, failures = false }) {
  const suffix = randomBytes(4).toString('hex')
  const [upPrefix, ourPrefix] = [`mrd-up-${suffix}`, `mrd-us-${suffix}`]
  // When regions can diverge, region B answers only after A, so "the first region" is always A.
  const upClients = stacks().map((s, i) => compatClient(s, { name: `region ${i}` }))
  const ourClients = client === 'compat' ? stacks().map((s, i) => compatClient(s, { name: `region ${i}` })) : stacks().map(ownClient)
  if (failures) {
    upClients[1].after = upClients[0]
    ourClients[1].after = ourClients[0]
  }
  const up = new UpstreamMultiRegion({ redis: upClients, limiter: UpstreamMultiRegion[algorithm](5, '10 s'), prefix: upPrefix, enableTelemetry: false })
  const ours = new MultiRegionRatelimit({ redis: ourClients, limiter: MultiRegionRatelimit[algorithm](5, '10 s'), prefix: ourPrefix })
  const ops = sequence([...name].reduce((h, c) => (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0, 7), steps, { failures })
  const summary = { success: 0, rejected: 0, cacheBlock: 0, pendingRejected: 0, reset: 0, backFills: 0 }
  let t = Math.floor(realNow() / 60000) * 60000 + 1234
  Date.now = () => t
  try {
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]
      const where = `${name} step ${i} ${JSON.stringify(op)}`
      if (op.op === 'advance') {
        t += op.ms
        continue
      }
      if (op.op === 'region') {
        upClients[1].down = op.down
        if (client === 'compat') ourClients[1].down = op.down
        continue
      }
      let a
      let b
      if (op.op === 'limit') {
        const req = op.rate === undefined ? undefined : { rate: op.rate }
        // Upstream's pending rejects unobserved otherwise (Q10): watch it at once.
        const watch = (o) => (o.value ? { ...o, settled: outcome(o.value.pending) } : o)
        a = watch(await outcome(up.limit(op.id, req)))
        b = watch(await outcome(ours.limit(op.id, req)))
        for (const o of [a, b]) {
          if (o.value) {
            o.pending = (await o.settled).rejected ?? 'resolved'
            o.value = omitPending(o.value)
            delete o.settled
          }
        }
        assert.equal(b.pending, a.pending, `${where}: pending`)
        if (a.value) {
          summary[a.value.success ? 'success' : 'rejected']++
          if (a.value.reason === 'cacheBlock') summary.cacheBlock++
          if (a.pending !== 'resolved') summary.pendingRejected++
        }
      } else if (op.op === 'getRemaining') {
        a = await outcome(up.getRemaining(op.id))
        b = await outcome(ours.getRemaining(op.id))
      } else {
        a = await outcome(up.resetUsedTokens(op.id))
        await untilGone(upPrefix, op.id)
        b = await outcome(ours.resetUsedTokens(op.id))
        summary.reset++
      }
      assert.deepEqual(b.value, a.value, `${where}: same response`)
      assert.equal(b.rejected, a.rejected, `${where}: same rejection`)
      for (const s of stacks()) {
        assertSameShape(await shapeOf(s, upPrefix), await shapeOf(s, ourPrefix), `${where} (${s === regionA ? 'A' : 'B'})`, {
          exactText: failures,
        })
      }
      if (client === 'compat') {
        for (let r = 0; r < 2; r++) {
          assert.equal(ourClients[r].calls.hset, upClients[r].calls.hset, `${where}: back-fill HSETs in region ${r}`)
        }
      }
    }
  } finally {
    Date.now = realNow
    upClients[1].down = false
  }
  summary.backFills = upClients[0].calls.hset + upClients[1].calls.hset
  return summary
}

describe('differential against @upstash/ratelimit 2.2.0 MultiRegionRatelimit', () => {
  for (const algorithm of ['fixedWindow', 'slidingWindow']) {
    test(`${algorithm}: our Redis (native path), both regions healthy`, async () => {
      const s = await differential({ name: `${algorithm}/own`, algorithm, client: 'own', steps: 120 })
      assert.ok(s.success > 5 && s.rejected > 3 && s.cacheBlock > 0 && s.reset > 0, JSON.stringify(s))
    })

    test(`${algorithm}: plain-object clients (compat path), a region going down and up`, async () => {
      const s = await differential({ name: `${algorithm}/compat`, algorithm, client: 'compat', steps: 120, failures: true })
      assert.ok(s.success > 5 && s.rejected > 3 && s.pendingRejected > 0 && s.backFills > 0, JSON.stringify(s))
    })
  }
})
