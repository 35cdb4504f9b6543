import { randomUUID } from 'node:crypto'
import IORedis from 'ioredis'
import { startRedisCluster } from '/work/main/__test__/helpers/cluster.mjs'
import { Ratelimit, Redis } from '/work/main/index.js'
const cluster = await startRedisCluster({ nodeTimeoutMs: 1000 })
const which = process.argv[2] ?? 'ours'
const roots = cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port }))
const io = new IORedis.Cluster(roots, { redisOptions: { password: cluster.password } })
const client = which === 'ours' ? new Redis({ url: cluster.urls, cluster: true }) : io
try {
  const prefix = `cf-${randomUUID()}`
  const rl = new Ratelimit({ redis: client, limiter: Ratelimit.slidingWindow(150, '1 h'), prefix, timeout: 10000, ephemeralCache: false })
  const id = `mig-${randomUUID()}`
  const slot = Number((await cluster.command(cluster.nodes[0].port, ['CLUSTER', 'KEYSLOT', id])).match(/:(\d+)/)[1])
  const masters = await cluster.masters()
  let source
  for (const port of masters) {
    const text = await cluster.command(port, ['CLUSTER', 'NODES'])
    const self = text.split('\n').find((line) => line.includes('myself'))
    if (self.split(' ').slice(8).some((range) => { const [from, to = from] = range.split('-').map(Number); return slot >= from && slot <= to })) source = port
  }
  const target = masters.find((p) => p !== source)
  const idOf = async (port) => (await cluster.command(port, ['CLUSTER', 'MYID'])).split('\r\n')[1]
  const [sourceId, targetId] = [await idOf(source), await idOf(target)]
  console.log({ slot, source, target, sourceId, targetId })
  const show = async (label) => {
    const bucket = Math.floor(Date.now() / 3600000)
    const key = `${prefix}:{${id}}:${bucket}`
    console.log(label, 'ioredis get', await io.get(key).catch((e) => e.message), 'remaining', (await rl.getRemaining(id)).remaining)
  }
  const wave = async (n, label) => { const r = await Promise.all(Array.from({ length: n }, () => rl.limit(id))); console.log(label, r.filter((x) => x.success).length, r.map((x) => x.remaining).slice(0, 3)); await show(label) }
  await wave(40, 'w1')
  console.log(await cluster.command(target, ['CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId]))
  console.log(await cluster.command(source, ['CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId]))
  await wave(40, 'w2')
  const raw = await cluster.command(source, ['CLUSTER', 'GETKEYSINSLOT', slot, 100])
  console.log(JSON.stringify(raw))
  const keys = raw.match(/^[^$*].*$/gm) ?? []
  console.log(keys)
  console.log(await cluster.command(source, ['MIGRATE', '127.0.0.1', target, '', 0, 5000, 'AUTH', cluster.password, 'KEYS', ...keys]))
  await wave(40, 'w3')
  for (const port of masters) console.log(await cluster.command(port, ['CLUSTER', 'SETSLOT', slot, 'NODE', targetId]))
  await wave(40, 'w4')
  await wave(40, 'w5')
} finally { io.disconnect(); await cluster.stop() }
process.exit(0)
