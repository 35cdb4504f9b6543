// Child process for accuracy.test.mjs: one limiter on a shared REST server, `calls` concurrent
// limit() calls on one identifier fired at `startAt` (so two children overlap). Prints one JSON
// line: { admitted, outcomes }. Config comes from the RLN_CHILD environment variable (JSON).
import { createRequire } from 'node:module'
const require = createRequire(import.meta.url)
const { Ratelimit, Redis } = require('..')

const cfg = JSON.parse(process.env.RLN_CHILD)
const redis = new Redis({ url: cfg.url, token: cfg.token })
const rl = new Ratelimit({ redis, limiter: Ratelimit[cfg.algorithm](...cfg.params), prefix: cfg.prefix, timeout: 30000 })
// Warm the connection (a different identifier), then wait for the common start time.
await rl.limit('warm-' + process.pid)
const wait = cfg.startAt - Date.now()
if (wait > 0) await new Promise((r) => setTimeout(r, wait))
const results = await Promise.allSettled(Array.from({ length: cfg.calls }, () => rl.limit(cfg.identifier)))
const outcomes = {}
let admitted = 0
for (const r of results) {
  const k = r.status === 'rejected' ? `rejected: ${r.reason?.message}` : r.value.success ? 'ok' : `blocked ${r.value.reason ?? ''}`
  outcomes[k] = (outcomes[k] ?? 0) + 1
  if (r.status === 'fulfilled' && r.value.success) admitted++
}
process.stdout.write(JSON.stringify({ admitted, outcomes, lateMs: -wait }) + '\n')
