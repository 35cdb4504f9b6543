// Redis Cluster, against a real 3-master / 3-replica cluster on loopback: our own client
// (`new Redis({ url, cluster: true })`, native engine), an ioredis Cluster and a node-redis
// createCluster() client (both engines). Every algorithm exact under bursts — also 1000 calls
// from 2 processes at once — with identifiers spread over every master; the cluster key layout
// (`P:{I}:…`: one identifier's keys in one slot); one database shared by all three clients;
// dynamic limits, the deny list and analytics, whose keys live in other slots.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, test } from 'node:test'
import IORedis from 'ioredis'
import { createCluster } from 'redis'
import { Analytics, MultiRegionRatelimit, Ratelimit, Redis } from '../index.js'
import { engine } from './helpers/engine.mjs'
import { startRedisCluster } from './helpers/cluster.mjs'
import { track, stopChild } from './helpers/servers.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const T = { timeout: 60_000 }
const fresh = () => `cl${randomBytes(4).toString('hex')}`
const limiters = {
  fixedWindow: (n = 10) => Ratelimit.fixedWindow(n, '60 s'),
  slidingWindow: (n = 10) => Ratelimit.slidingWindow(n, '60 s'),
  tokenBucket: (n = 10) => Ratelimit.tokenBucket(1, '60 s', n),
}

let cluster
let admin
const clients = {}
const clientNames = engine === 'native' ? ['ours', 'ioredis', 'node-redis'] : ['ioredis', 'node-redis']

before(async () => {
  cluster = await startRedisCluster()
  const roots = cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port }))
  admin = new IORedis.Cluster(roots, { redisOptions: { password: cluster.password } })
  clients.ioredis = new IORedis.Cluster(roots, { redisOptions: { password: cluster.password } })
  clients['node-redis'] = createCluster({ rootNodes: roots.map((r) => ({ url: `redis://127.0.0.1:${r.port}` })), defaults: { password: cluster.password } })
  await clients['node-redis'].connect()
  if (engine === 'native') clients.ours = new Redis({ url: cluster.urls[0], cluster: true })
})
after(async () => {
  admin?.disconnect()
  clients.ioredis?.disconnect()
  await clients['node-redis']?.close().catch(() => {})
  await cluster?.stop()
})

for (const name of clientNames) {
  describe(`${name} on a Redis Cluster`, () => {
    for (const [algorithm, make] of Object.entries(limiters)) {
      test(`${algorithm}: 40 identifiers (every master) × 15 calls at once against 10 admit exactly 10 each; getRemaining, resetUsedTokens`, T, async () => {
        const rl = new Ratelimit({ redis: clients[name], limiter: make(), prefix: fresh(), ephemeralCache: false })
        const ids = Array.from({ length: 40 }, (_, i) => `user-${i}`)
        const results = await Promise.all(ids.flatMap((id) => Array.from({ length: 15 }, () => rl.limit(id).then((r) => [id, r]))))
        for (const id of ids) {
          const mine = results.filter(([who]) => who === id).map(([, r]) => r)
          assert.equal(mine.filter((r) => r.success).length, 10, id)
        }
        assert.equal((await rl.getRemaining('user-3')).remaining, 0)
        await rl.resetUsedTokens('user-3')
        assert.equal((await rl.getRemaining('user-3')).remaining, 10)
        assert.equal((await rl.getRemaining('user-4')).remaining, 0)
      })
    }

    test('keys carry the identifier as a hash tag: one slot per identifier', T, async () => {
      const prefix = fresh()
      const rl = new Ratelimit({ redis: clients[name], limiter: limiters.slidingWindow(), prefix, ephemeralCache: false })
      await rl.limit('alice')
      const bucket = Math.floor(Date.now() / 60_000)
      const counted = await admin.get(`${prefix}:{alice}:${bucket}`)
      assert.equal(counted, '1')
      assert.equal(await admin.get(`${prefix}:alice:${bucket}`), null)
      assert.equal(rl.getKey('alice'), `${prefix}:{alice}`)
    })

    test('dynamic limits (global in another slot, per identifier in its own), deny list and analytics', T, async () => {
      const prefix = fresh()
      const dynamic = new Ratelimit({ redis: clients[name], limiter: limiters.fixedWindow(10), prefix, dynamicLimits: { perIdentifier: true }, ephemeralCache: false })
      await dynamic.setDynamicLimit({ limit: 2 })
      assert.deepEqual(await dynamic.getDynamicLimit(), { dynamicLimit: 2 })
      await dynamic.setDynamicLimit({ identifier: 'vip', limit: 4 })
      assert.equal(await admin.get(`${prefix}:dynamic:id:{vip}`), '4')
      const run = async (id, n) => {
        const out = []
        for (let i = 0; i < n; i++) out.push((await dynamic.limit(id)).success)
        return out
      }
      assert.deepEqual(await run('d', 3), [true, true, false])
      assert.deepEqual(await run('vip', 5), [true, true, true, true, false])
      assert.equal((await dynamic.getRemaining('d')).limit, 2)
      await dynamic.setDynamicLimit({ limit: false })
      assert.equal((await dynamic.getRemaining('d')).limit, 10)

      const guardedPrefix = fresh()
      await admin.sadd(`${guardedPrefix}:denyList:all`, '192.0.2.66')
      await admin.set(`${guardedPrefix}:ipDenyListStatus`, 'disabled')
      const guarded = new Ratelimit({ redis: clients[name], limiter: limiters.slidingWindow(5), prefix: guardedPrefix, analytics: true, enableProtection: true })
      const allowed = await guarded.limit('user', { ip: '192.0.2.1' })
      await allowed.pending
      const denied = await guarded.limit('user', { ip: '192.0.2.66' })
      await denied.pending
      assert.deepEqual([allowed.success, allowed.remaining, denied.success, denied.reason, denied.deniedValue], [true, 4, false, 'denyList', '192.0.2.66'])
      const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000
      const events = await admin.zrange(`${guardedPrefix}:events:${hour}`, 0, -1, 'WITHSCORES')
      assert.deepEqual(events.filter((_, i) => i % 2 === 0).map((m) => JSON.parse(m)).map((e) => [e.identifier, e.success]).sort(), [['192.0.2.66', 'denied'], ['user', true]])

      // Analytics read back bucket by bucket (the hours live in different slots).
      const analytics = new Analytics({ redis: clients[name], prefix: guardedPrefix })
      await analytics.record({ identifier: 'user', time: Date.now(), success: false })
      assert.deepEqual(await analytics.getUsage(Date.now() - 3_600_000), { user: { success: 1, blocked: 1 }, '192.0.2.66': { success: 1, blocked: 0 } })
      assert.deepEqual(await analytics.getMostAllowedBlocked(2), {
        allowed: [{ identifier: 'user', count: 1 }],
        ratelimited: [{ identifier: 'user', count: 1 }],
        denied: [{ identifier: '192.0.2.66', count: 1 }],
      })
      const [thisHour, lastHour] = await analytics.getUsageOverTime(2, 'identifier')
      assert.deepEqual([thisHour.identifier, Object.keys(lastHour)], [{ user: 2, '192.0.2.66': 1 }, ['time']])

      // A missing IP-list status: marked pending, and the list refreshed through the client,
      // its keys in three slots (the list itself from a local stand-in for the download).
      // (A value per client: the deny cache is shared by every limiter of the process.)
      const listedIp = `198.51.100.${20 + clientNames.indexOf(name)}`
      const listPrefix = fresh()
      await admin.sadd(`${listPrefix}:denyList:all`, '198.51.100.9')
      const listed = new Ratelimit({ redis: clients[name], limiter: limiters.fixedWindow(5), prefix: listPrefix, enableProtection: true })
      const realFetch = globalThis.fetch
      globalThis.fetch = async () => new Response(`${listedIp}\n198.51.100.9\n`, { status: 200 })
      try {
        const first = await listed.limit('someone', { ip: listedIp })
        assert.equal(first.success, true)
        await first.pending
      } finally {
        globalThis.fetch = realFetch
      }
      assert.equal(await admin.get(`${listPrefix}:ipDenyListStatus`), 'valid')
      assert.deepEqual((await admin.smembers(`${listPrefix}:denyList:all`)).sort(), ['198.51.100.9', listedIp].sort())
      assert.deepEqual(await admin.smembers(`${listPrefix}:denyList:ipDenyList`), [listedIp])
      const second = await listed.limit('someone-else', { ip: listedIp })
      assert.deepEqual([second.success, second.reason], [false, 'denyList'])
      const { IpDenyList } = await import('../index.js')
      assert.deepEqual(await IpDenyList.disableIpDenyList(clients[name], listPrefix), [1, 1, 'OK'])
      assert.deepEqual(await admin.smembers(`${listPrefix}:denyList:all`), ['198.51.100.9'])
      assert.equal(await admin.get(`${listPrefix}:ipDenyListStatus`), 'disabled')
    })
  })
}

test('MultiRegionRatelimit over cluster clients (both regions on the one test cluster)', T, async (t) => {
  // The second region keeps its keys apart (an ioredis keyPrefix, outside the hash tag): two
  // regions sharing keys would each see the other's writes at once, and which region answers
  // first would decide a call (a race, not what regions are).
  const roots = cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port }))
  const secondRegion = new IORedis.Cluster(roots, { keyPrefix: 'region2:', redisOptions: { password: cluster.password } })
  t.after(() => secondRegion.disconnect())
  const rl = new MultiRegionRatelimit({ redis: [clients[clientNames[0]], secondRegion], limiter: MultiRegionRatelimit.slidingWindow(3, '30 s'), prefix: fresh() })
  const results = []
  for (let i = 0; i < 4; i++) {
    const r = await rl.limit('u')
    await r.pending
    results.push(r.success)
  }
  assert.deepEqual(results, [true, true, true, false])
  assert.equal(rl.getKey('u').endsWith(':{u}'), true)
})

test('one database for all three clients: their calls count together', { ...T, skip: engine === 'native' ? false : 'our cluster client needs the native engine' }, async () => {
  const prefix = fresh()
  const on = (client) => new Ratelimit({ redis: client, limiter: limiters.slidingWindow(9), prefix, ephemeralCache: false })
  const outcomes = []
  for (const name of ['ours', 'ioredis', 'node-redis']) {
    for (let i = 0; i < 4; i++) outcomes.push((await on(clients[name]).limit('shared')).success)
  }
  assert.equal(outcomes.filter(Boolean).length, 9)
  assert.deepEqual(outcomes.slice(9), [false, false, false])
})

test('our cluster client on the WebAssembly engine: a clear error', { skip: engine === 'wasm' ? false : 'the WebAssembly engine only' }, () => {
  assert.throws(() => new Redis({ url: cluster.urls[0], cluster: true }), /Redis Cluster needs the native engine/)
})

test('bad cluster options are refused at construction', () => {
  assert.throws(() => new Redis({ url: 'https://example.invalid', cluster: true }), /redis:\/\/ or rediss:\/\/ URL/)
  assert.throws(() => new Redis({ url: [], cluster: true }), /redis:\/\/ or rediss:\/\/ URL/)
  assert.throws(() => new Redis({ url: 'redis://127.0.0.1:1', cluster: 'yes' }), /`cluster` must be true or false/)
})

/** Runs the burst fixture in `processes` processes at once; resolves with the total admitted. */
async function burst({ client, algorithm, processes, perProcess, limit }) {
  const prefix = fresh()
  const args = JSON.stringify({ client, algorithm, urls: cluster.urls, password: cluster.password, prefix, n: perProcess, limit })
  const children = Array.from({ length: processes }, () => track(spawn(process.execPath, [join(HERE, 'fixtures', 'cluster-burst.mjs'), args], { stdio: ['pipe', 'pipe', 'inherit'], env: process.env })))
  try {
    const lines = children.map((child) => {
      let out = ''
      const ready = new Promise((resolve, reject) => {
        child.stdout.on('data', (d) => {
          out += d
          if (out.includes('ready\n')) resolve()
        })
        child.once('exit', (code) => reject(new Error(`burst process exited with ${code}`)))
      })
      const done = new Promise((resolve, reject) => {
        child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out.split('\n').filter(Boolean).pop())) : reject(new Error(`burst process exited with ${code}: ${out}`))))
      })
      return { ready, done }
    })
    await Promise.all(lines.map((l) => l.ready))
    for (const child of children) child.stdin.write('go\n')
    const results = await Promise.all(lines.map((l) => l.done))
    return { admitted: results.reduce((sum, r) => sum + r.admitted, 0), reasons: [...new Set(results.flatMap((r) => r.reasons))] }
  } finally {
    await Promise.all(children.map((child) => stopChild(child)))
  }
}

describe('1000-way bursts from 2 processes against a 100-token limit', () => {
  for (const client of clientNames) {
    for (const algorithm of Object.keys(limiters)) {
      test(`${client}, ${algorithm}: exactly 100 admitted`, T, async () => {
        const { admitted, reasons } = await burst({ client, algorithm, processes: 2, perProcess: 500, limit: 100 })
        assert.deepEqual(reasons, ['ok'])
        assert.equal(admitted, 100)
      })
    }
  }
})
