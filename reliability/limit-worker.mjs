// Worker thread for accuracy.test.mjs: hammers one identifier on the process-wide memory store.
// workerData: { algorithm, params, prefix, identifier, calls, barrier: SharedArrayBuffer(Int32 x1), parties }
import { workerData, parentPort } from 'node:worker_threads'
import { createRequire } from 'node:module'
const require = createRequire(import.meta.url)
const { Ratelimit, Redis } = require('..')

const { algorithm, params, prefix, identifier, calls, barrier, parties } = workerData
const rl = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit[algorithm](...params), prefix, ephemeralCache: false })
// Barrier: every worker starts hammering at the same moment (bounded wait: 10 s).
const flag = new Int32Array(barrier)
Atomics.add(flag, 0, 1)
Atomics.notify(flag, 0)
const deadline = Date.now() + 10_000
while (Atomics.load(flag, 0) < parties && Date.now() < deadline) Atomics.wait(flag, 0, Atomics.load(flag, 0), 50)
let admitted = 0
let errors = 0
const results = await Promise.allSettled(Array.from({ length: calls }, () => rl.limit(identifier)))
for (const r of results) {
  if (r.status === 'rejected') errors++
  else if (r.value.success) admitted++
}
parentPort.postMessage({ admitted, errors })
