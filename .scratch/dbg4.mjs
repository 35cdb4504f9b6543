import { readFileSync } from 'node:fs'
import { startRedisCluster } from '/work/main/__test__/helpers/cluster.mjs'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const cluster = await startRedisCluster({ nodeTimeoutMs: 1000 })
const [victim] = await cluster.masters()
const replica = await cluster.replicaOf(victim)
console.log((await cluster.command(replica, ['INFO', 'replication'])).slice(0, 300))
cluster.kill(victim)
await sleep(5000)
const node = cluster.nodes.find((n) => n.port === replica)
console.log(readFileSync(node.dir + '/redis.log', 'utf8').split('\n').slice(-25).join('\n'))
await cluster.stop()
process.exit(0)
