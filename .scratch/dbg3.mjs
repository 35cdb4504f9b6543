import { randomUUID } from 'node:crypto'
import IORedis from 'ioredis'
import { createCluster } from 'redis'
import { startRedisCluster } from '/work/main/__test__/helpers/cluster.mjs'
import { Ratelimit, Redis, outcomes, sleep, steadyLoad } from '/work/main/reliability/helpers.mjs'
const kind = process.argv[2] ?? 'hard'
const only = process.argv[3]
const cluster = await startRedisCluster({ nodeTimeoutMs: 1000 })
const roots = cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port }))
const ioredis = new IORedis.Cluster(roots, { redisOptions: { password: cluster.password } })
ioredis.on('error', () => {})
const nodeRedis = createCluster({ rootNodes: roots.map((r) => ({ url: `redis://127.0.0.1:${r.port}` })), defaults: { password: cluster.password } })
nodeRedis.on('error', () => {})
await nodeRedis.connect()
const clients = { ours: new Redis({ url: cluster.urls, cluster: true }), ioredis, nodeRedis }
const make = (client, limiter, extra = {}) => new Ratelimit({ redis: client, limiter, prefix: `cf-${randomUUID()}`, timeout: 1000, ephemeralCache: false, ...extra })
const limiters = {}
for (const [name, client] of Object.entries(clients)) {
  if (only && name !== only) continue
  limiters[`${name}Fixed`] = make(client, Ratelimit.fixedWindow(1_000_000, '1 h'))
  limiters[`${name}SlidingFailClosed`] = make(client, Ratelimit.slidingWindow(1_000_000, '1 h'), { failClosed: true })
}
const load = steadyLoad(limiters, { tickMs: 20, perTick: 1, keys: 60 })
await sleep(1000)
const [victim] = await cluster.masters()
const replica = await cluster.replicaOf(victim)
console.log({ victim, replica, masters: await cluster.masters() })
const t0 = Date.now()
if (kind === 'graceful') await cluster.command(replica, ['CLUSTER', 'FAILOVER'])
else cluster.kill(victim)
const tookOver = await cluster.waitForMaster(replica)
console.log('took over after', tookOver - t0)
await sleep(3000)
load.stop()
console.log('unsettled', await load.settled(3000))
for (const name of Object.keys(limiters)) {
  const recs = load.records.filter((r) => r.name === name)
  const late = recs.filter((r) => r.start >= tookOver + 2000)
  const slow = recs.filter((r) => r.ms > 1750 || r.ms === undefined)
  console.log(name, JSON.stringify(outcomes(recs)), 'late:', JSON.stringify(outcomes(late)), 'slow:', slow.length, slow.slice(0, 2).map((r) => Math.round(r.ms)))
}
ioredis.disconnect(); await nodeRedis.close().catch(() => {}); await cluster.stop()
process.exit(0)
