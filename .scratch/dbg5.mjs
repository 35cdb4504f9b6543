import { randomUUID } from 'node:crypto'
import { startRedisCluster } from '/work/main/__test__/helpers/cluster.mjs'
import { Ratelimit, Redis } from '/work/main/index.js'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const cluster = await startRedisCluster({ nodeTimeoutMs: 1000 })
const client = new Redis({ url: cluster.urls, cluster: true })
try {
  for (const limiter of [Ratelimit.slidingWindow(150, '1 h'), Ratelimit.tokenBucket(1, '1 h', 150), Ratelimit.slidingWindow(150, '1 h'), Ratelimit.tokenBucket(1, '1 h', 150)]) {
  const rl = new Ratelimit({ redis: client, limiter, prefix: `cf-${randomUUID()}`, timeout: 10000, ephemeralCache: false })
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
  const t0 = Date.now()
  const wave = (n, label) => Promise.all(Array.from({ length: n }, () => rl.limit(id).catch((e) => ({ error: e.message })))).then((r) => console.log(label, Date.now() - t0, r.filter((x) => x.success).length, [...new Set(r.map((x) => x.error ?? x.reason ?? 'ok'))]))
  await wave(40, 'w1')
  await cluster.command(target, ['CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId])
  await cluster.command(source, ['CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId])
  const moving = wave(40, 'moving')
  await sleep(20)
  const keys = (await cluster.command(source, ['CLUSTER', 'GETKEYSINSLOT', slot, 100])).split('\r\n').filter((line) => line !== '' && !/^[$*+-]/.test(line))
  if (keys.length > 0) console.log(await cluster.command(source, ['MIGRATE', '127.0.0.1', target, '', 0, 5000, 'AUTH', cluster.password, 'KEYS', ...keys]))
  const handing = wave(40, 'handing')
  for (const port of masters) await cluster.command(port, ['CLUSTER', 'SETSLOT', slot, 'NODE', targetId])
  console.log('slot moved', Date.now() - t0)
  await Promise.all([moving, handing])
  await wave(40, 'w4')
  }
} finally { await cluster.stop() }
process.exit(0)
