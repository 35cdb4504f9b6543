import { startSentinelGroup } from '/work/main/__test__/helpers/sentinel.mjs'
const t = Date.now()
const g = await startSentinelGroup()
console.log('up in', Date.now() - t, await g.master(), g.servers)
await g.stop()
process.exit(0)
