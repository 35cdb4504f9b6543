// One contender × one workload, in its own process:
//   node --expose-gc bench/contender.mjs <contender> <workload>   (settings: env BENCH_CONFIG, JSON)
// Warms up, then measures for a bounded time and call count, and prints one JSON line on stdout.
// Imported by bench/run.mjs for the CONTENDERS / WORKLOADS tables only.

import { createRequire } from 'node:module'
import http from 'node:http'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { redisCommand } from '../__test__/helpers/servers.mjs'
import { Histogram, processCpuMicros } from './stats.mjs'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)

/** peer: which rate-limiter-flexible contender an "ours" row is compared with. */
export const CONTENDERS = {
  'native-rest': { label: 'ratelimit-native, own Redis (REST)', ours: true, rest: true, peer: 'rlflex-redis' },
  'native-upstash-redis': { label: 'ratelimit-native, @upstash/redis instance', ours: true, rest: true, peer: 'rlflex-redis' },
  'native-tcp': { label: 'ratelimit-native, Redis over TCP (redis://, no REST server)', ours: true, peer: 'rlflex-redis' },
  'native-compat': { label: 'ratelimit-native, compat path (plain object → @upstash/redis)', ours: true, rest: true, peer: 'rlflex-redis' },
  'native-memory': { label: 'ratelimit-native, Redis.memory()', ours: true, memory: true, peer: 'rlflex-memory' },
  'wasm-rest': { label: 'ratelimit-native on WebAssembly, own Redis (REST)', ours: true, rest: true, peer: 'rlflex-redis' },
  'wasm-memory': { label: 'ratelimit-native on WebAssembly, Redis.memory()', ours: true, memory: true, peer: 'rlflex-memory' },
  // Redis Cluster (the 3+3 cluster bench/run.mjs starts when a cluster workload is selected).
  'native-cluster': { label: 'ratelimit-native, Redis Cluster (new Redis({ url: [6 nodes], cluster: true }))', ours: true, cluster: true, peer: 'rlflex-cluster' },
  // Bring your own client: our Ratelimit over the user's ioredis / node-redis client, each against
  // rate-limiter-flexible over the same kind of client (same options), on the standalone redis-server.
  'native-ioredis': { label: 'ratelimit-native, your ioredis client (redis: new IORedis(…))', ours: true, byo: true, byoOnly: true, peer: 'rlflex-redis' },
  'native-node-redis': { label: 'ratelimit-native, your node-redis client (redis: createClient(…))', ours: true, byo: true, byoOnly: true, peer: 'rlflex-node-redis' },
  'upstash-js': { label: '@upstash/ratelimit 2.2.0 + @upstash/redis 1.39', rest: true },
  'rlflex-redis': { label: 'rate-limiter-flexible RateLimiterRedis (ioredis)', fixedOnly: true, byo: true },
  'rlflex-memory': { label: 'rate-limiter-flexible RateLimiterMemory', memory: true, fixedOnly: true },
  'rlflex-cluster': { label: 'rate-limiter-flexible RateLimiterRedis (ioredis Cluster)', cluster: true, fixedOnly: true },
  'rlflex-node-redis': { label: 'rate-limiter-flexible RateLimiterRedis (node-redis, useRedisPackage)', fixedOnly: true, byo: true, byoOnly: true },
}

const NEVER = 1e9 // a limit no workload reaches: every call takes the full path
export const WORKLOADS = {
  'c1-fixed': { title: 'c=1, 10k keys, fixedWindow', concurrency: 1, keys: 10_000, algorithm: 'fixed', limit: NEVER },
  'c1-sliding': { title: 'c=1, 10k keys, slidingWindow', concurrency: 1, keys: 10_000, algorithm: 'sliding', limit: NEVER },
  'c64-fixed': { title: 'c=64, 10k keys, fixedWindow', concurrency: 64, keys: 10_000, algorithm: 'fixed', limit: NEVER },
  'c64-sliding': { title: 'c=64, 10k keys, slidingWindow', concurrency: 64, keys: 10_000, algorithm: 'sliding', limit: NEVER },
  'c1024-fixed': { title: 'c=1024, 10k keys, fixedWindow', concurrency: 1024, keys: 10_000, algorithm: 'fixed', limit: NEVER },
  'c1024-sliding': { title: 'c=1024, 10k keys, slidingWindow', concurrency: 1024, keys: 10_000, algorithm: 'sliding', limit: NEVER },
  'hot64': { title: 'c=64, one hot key, fixedWindow', concurrency: 64, keys: 1, algorithm: 'fixed', limit: NEVER },
  'flood64': {
    title: 'c=64, over-limit flood on one key (limit 10 / 60 s, ephemeral cache / inMemoryBlockOnConsumed on)',
    concurrency: 64, keys: 1, algorithm: 'fixed', limit: 10, flood: true,
  },
  'keys1m': {
    title: 'distinct keys, memory stores (limit 10 / 60 s, c=64, one call per key)',
    concurrency: 64, distinct: 1_000_000, algorithm: 'fixed', limit: 10, memoryOnly: true,
  },
  'analytics64': {
    title: 'c=64, 10k keys, fixedWindow, analytics + enableProtection',
    concurrency: 64, keys: 10_000, algorithm: 'fixed', limit: NEVER, analytics: true,
  },
  'cluster-c1-fixed': {
    title: 'Redis Cluster (3 masters + 3 replicas on loopback), c=1, 10k keys, fixedWindow',
    concurrency: 1, keys: 10_000, algorithm: 'fixed', limit: NEVER, cluster: true,
  },
  'cluster-c64-fixed': {
    title: 'Redis Cluster (3 masters + 3 replicas on loopback), c=64, 10k keys, fixedWindow',
    concurrency: 64, keys: 10_000, algorithm: 'fixed', limit: NEVER, cluster: true,
  },
  'byo-c1-fixed': {
    title: 'your own client (ioredis / node-redis) on the standalone redis-server, c=1, 10k keys, fixedWindow',
    concurrency: 1, keys: 10_000, algorithm: 'fixed', limit: NEVER, byo: true,
  },
  'byo-c64-fixed': {
    title: 'your own client (ioredis / node-redis) on the standalone redis-server, c=64, 10k keys, fixedWindow',
    concurrency: 64, keys: 10_000, algorithm: 'fixed', limit: NEVER, byo: true,
    // `--quick` (the CI smoke test) runs one pair of this workload only: the ioredis pair.
    quick: ['native-ioredis', 'rlflex-redis'],
  },
}

export function applicable(contender, workload) {
  const c = CONTENDERS[contender]
  const w = WORKLOADS[workload]
  // The cluster workloads hold the cluster contenders only, and those run nowhere else; the
  // bring-your-own-client workloads hold the client pairs, whose extra members run nowhere else.
  if (w.cluster || c.cluster) return Boolean(w.cluster && c.cluster)
  if (w.byo) return Boolean(c.byo)
  if (c.byoOnly) return false
  if (w.memoryOnly) return Boolean(c.memory)
  if (w.analytics) return ['native-rest', 'native-tcp', 'wasm-rest', 'upstash-js'].includes(contender)
  if (w.algorithm === 'sliding') return !c.fixedOnly
  return true
}

const WINDOW = '60 s'
const REJECTED = 0
const ALLOWED = 1
const TIMED_OUT = 2

/** Builds `limit(key) → ALLOWED | REJECTED | TIMED_OUT` for a contender, or a string when unavailable. */
async function makeLimiter(name, w, cfg) {
  const restOpts = { url: cfg.restUrl, token: cfg.restToken }
  const upstashStyle = (Ratelimit, redis, extra = {}) => {
    const limiter = w.algorithm === 'sliding' ? Ratelimit.slidingWindow(w.limit, WINDOW) : Ratelimit.fixedWindow(w.limit, WINDOW)
    const rl = new Ratelimit({ redis, limiter, ...(w.analytics ? { analytics: true, enableProtection: true } : {}), ...extra })
    return async (key) => {
      const r = await rl.limit(key)
      return r.reason === 'timeout' ? TIMED_OUT : r.success ? ALLOWED : REJECTED
    }
  }
  const rlflex = (Limiter, opts) => {
    const rl = new Limiter({ points: w.limit, duration: 60, ...opts })
    return async (key) => {
      try {
        await rl.consume(key)
        return ALLOWED
      } catch (err) {
        if (err instanceof Error) throw err // a real failure; rejections are RateLimiterRes objects
        return REJECTED
      }
    }
  }

  // The clients a user already has, built the same way for ours and for rate-limiter-flexible.
  const ioredisClient = async () => {
    const { default: IORedis } = await import('ioredis')
    const client = new IORedis({ host: '127.0.0.1', port: cfg.redisPort, password: cfg.redisPassword, enableOfflineQueue: false })
    await new Promise((resolve, reject) => {
      client.once('ready', resolve)
      client.once('error', reject)
    })
    return client
  }
  const nodeRedisClient = async () => {
    const { createClient } = await import('redis')
    const client = createClient({ url: `redis://:${cfg.redisPassword}@127.0.0.1:${cfg.redisPort}` })
    await client.connect()
    return client
  }

  if (name.startsWith('wasm-')) {
    // The WebAssembly engine on Node.js, as an Edge runtime or a Next.js bundle runs it.
    process.env.RATELIMIT_NATIVE_ENGINE = 'wasm'
    const { Ratelimit, Redis, engine } = require(ROOT)
    if (engine !== 'wasm') return `the WebAssembly engine did not load (engine: ${engine})`
    if (name === 'wasm-rest') return upstashStyle(Ratelimit, new Redis(restOpts))
    return upstashStyle(Ratelimit, w.distinct ? Redis.memory({ maxKeys: distinctCap(w, cfg) }) : Redis.memory())
  }
  if (name.startsWith('native-')) {
    const { Ratelimit, Redis } = require(ROOT)
    const { Redis: UpstashRedis } = await import('@upstash/redis')
    if (name === 'native-rest') return upstashStyle(Ratelimit, new Redis(restOpts))
    if (name === 'native-tcp') return upstashStyle(Ratelimit, new Redis({ url: `redis://:${cfg.redisPassword}@127.0.0.1:${cfg.redisPort}` }))
    if (name === 'native-upstash-redis') return upstashStyle(Ratelimit, new UpstashRedis(restOpts))
    if (name === 'native-cluster') {
      if (!cfg.cluster) throw new Error('no Redis Cluster in the benchmark config')
      return upstashStyle(Ratelimit, new Redis({ url: cfg.cluster.urls, cluster: true }))
    }
    if (name === 'native-ioredis') return upstashStyle(Ratelimit, await ioredisClient())
    if (name === 'native-node-redis') return upstashStyle(Ratelimit, await nodeRedisClient())
    if (name === 'native-compat') {
      const u = new UpstashRedis(restOpts)
      const plain = {
        evalsha: (sha, keys, args) => u.evalsha(sha, keys, args),
        eval: (script, keys, args) => u.eval(script, keys, args),
        get: (key) => u.get(key),
        set: (key, value, opts) => u.set(key, value, opts),
      }
      return upstashStyle(Ratelimit, plain)
    }
    if (name === 'native-memory') {
      if (typeof Redis.memory !== 'function') return 'Redis.memory() is not in this build'
      // Room for every key of the distinct-keys workload (its default cap is 1M live keys).
      return upstashStyle(Ratelimit, w.distinct ? Redis.memory({ maxKeys: distinctCap(w, cfg) }) : Redis.memory())
    }
  }
  if (name === 'upstash-js') {
    const { Ratelimit } = await import('@upstash/ratelimit')
    const { Redis: UpstashRedis } = await import('@upstash/redis')
    return upstashStyle(Ratelimit, new UpstashRedis(restOpts)) // default options: auto-pipelining on
  }
  if (name === 'rlflex-redis') {
    const { RateLimiterRedis } = await import('rate-limiter-flexible')
    return rlflex(RateLimiterRedis, { storeClient: await ioredisClient(), ...(w.flood ? { inMemoryBlockOnConsumed: w.limit } : {}) })
  }
  if (name === 'rlflex-node-redis') {
    const { RateLimiterRedis } = await import('rate-limiter-flexible')
    return rlflex(RateLimiterRedis, { storeClient: await nodeRedisClient(), useRedisPackage: true })
  }
  if (name === 'rlflex-cluster') {
    if (!cfg.cluster) throw new Error('no Redis Cluster in the benchmark config')
    const { RateLimiterRedis } = await import('rate-limiter-flexible')
    const { default: IORedis } = await import('ioredis')
    // rate-limiter-flexible takes any ioredis client as storeClient: on a Cluster its script is
    // defined with defineCommand (one key per call), so ioredis routes each call by slot.
    const roots = cfg.cluster.urls.map((u) => ({ host: new URL(u).hostname, port: Number(new URL(u).port) }))
    const client = new IORedis.Cluster(roots, { redisOptions: { password: cfg.cluster.password } })
    await new Promise((resolve, reject) => {
      client.once('ready', resolve)
      client.once('error', reject)
    })
    return rlflex(RateLimiterRedis, { storeClient: client })
  }
  if (name === 'rlflex-memory') {
    const { RateLimiterMemory } = await import('rate-limiter-flexible')
    return rlflex(RateLimiterMemory, {})
  }
  throw new Error(`unknown contender ${name}`)
}

const DISTINCT_WARMUP_KEYS = 10_000
const distinctCap = (w, cfg) => Math.min(w.distinct, cfg.distinctKeys ?? w.distinct) + DISTINCT_WARMUP_KEYS

/** No request may leave the machine (protection would download an IP list from GitHub). */
function loopbackOnlyFetch() {
  const original = globalThis.fetch
  globalThis.fetch = (input, init) => {
    const href = typeof input === 'string' ? input : String(input?.url ?? input)
    if (!/^https?:\/\/(127\.0\.0\.1|localhost)[:/]/.test(href)) {
      return Promise.reject(new Error(`benchmark: refusing a request to ${href.slice(0, 60)}`))
    }
    return original(input, init)
  }
}

/** Runs `concurrency` loops of awaited calls until the deadline or maxOps calls were started. */
async function drive(limit, { concurrency, nextKey, deadline, maxOps, hist }) {
  const counts = { ops: 0, allowed: 0, rejected: 0, timeouts: 0 }
  const worker = async () => {
    // Two clock reads per call: the one that ends a call's latency also checks the deadline
    // (a third read cost ~2 % of a memory-store call, for every contender alike).
    let now = performance.now()
    while (counts.ops < maxOps && now < deadline) {
      counts.ops++
      const key = nextKey()
      const t0 = performance.now()
      const outcome = await limit(key)
      now = performance.now()
      if (hist) hist.record((now - t0) * 1e6)
      if (outcome === ALLOWED) counts.allowed++
      else if (outcome === REJECTED) counts.rejected++
      else counts.timeouts++
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return counts
}

/** Sum of `calls` in INFO commandstats, without the commands the benchmark itself sends. */
async function redisCalls(port, password) {
  let info = ''
  for (let attempt = 0; attempt < 3; attempt++) {
    // The helper returns at the first chunk ending in CRLF: check the bulk length is all there.
    info = await redisCommand(port, password, ['INFO', 'commandstats'])
    const m = /^\$(\d+)\r\n/.exec(info)
    if (m && Buffer.byteLength(info) >= m[0].length + Number(m[1]) + 2) break
    if (attempt === 2) throw new Error(`incomplete INFO reply: ${info.slice(0, 80)}`)
  }
  let sum = 0
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (!['auth', 'info', 'ping', 'hello', 'client', 'command', 'select'].includes(m[1])) sum += Number(m[2])
  }
  return sum
}

/** The counting proxy's request count (bench/run.mjs), when this run goes through it. */
function httpCount(url) {
  if (!url) return Promise.resolve(null)
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve(Number(body)))
    }).on('error', reject)
  })
}

/** CPU µs of several processes together, or null when one is unreadable. */
function cpuOf(pids) {
  const each = pids.map(processCpuMicros)
  return each.includes(null) ? null : each.reduce((a, b) => a + b, 0)
}

async function snapshot(cfg, w) {
  // On the cluster: commands summed over its masters (a replica's commandstats count what it
  // replays), CPU over all six nodes (replication is work the calls cause).
  const cluster = w.cluster ? cfg.cluster : null
  return {
    redisCalls: cluster
      ? (await Promise.all(cluster.masterPorts.map((port) => redisCalls(port, cluster.password)))).reduce((a, b) => a + b, 0)
      : await redisCalls(cfg.redisPort, cfg.redisPassword),
    http: await httpCount(cfg.counterUrl),
    restCpu: processCpuMicros(cfg.restPid),
    redisCpu: cluster ? cpuOf(cluster.pids) : processCpuMicros(cfg.redisPid),
    cpu: process.cpuUsage(),
    t: performance.now(),
  }
}

function gcMemory() {
  for (let i = 0; i < 3; i++) globalThis.gc?.()
  const { rss, heapUsed, external, arrayBuffers } = process.memoryUsage()
  return { rss, heap: heapUsed + external + arrayBuffers }
}

async function main() {
  const [name, workload] = process.argv.slice(2)
  const w = WORKLOADS[workload]
  if (!CONTENDERS[name] || !w) throw new Error(`usage: contender.mjs <${Object.keys(CONTENDERS).join('|')}> <${Object.keys(WORKLOADS).join('|')}>`)
  const cfg = JSON.parse(process.env.BENCH_CONFIG)
  if (w.analytics) loopbackOnlyFetch()
  const limit = await makeLimiter(name, w, cfg)
  if (typeof limit === 'string') return { contender: name, workload, unavailable: limit }

  const id = `${cfg.runId}`
  let seq = 0
  const nextKey = w.distinct
    ? () => `u${id}:${seq++}`
    : w.flood
      ? () => `flood:${id}` // a fresh key per run: every run starts under the limit
      : w.keys === 1
        ? () => 'hot'
        : () => `k${(Math.random() * w.keys) | 0}`
  const warmKey = w.distinct ? () => `w${id}:${seq++}` : nextKey

  const warmupMaxOps = w.distinct ? DISTINCT_WARMUP_KEYS : cfg.warmupMaxOps
  await drive(limit, { concurrency: w.concurrency, nextKey: warmKey, deadline: performance.now() + cfg.warmupMs, maxOps: warmupMaxOps })
  const memBefore = w.distinct ? gcMemory() : null
  const hist = new Histogram()
  const before = await snapshot(cfg, w)
  const maxOps = w.distinct ? distinctCap(w, cfg) - DISTINCT_WARMUP_KEYS : cfg.maxOps
  const deadline = before.t + (w.distinct ? cfg.distinctMaxMs : cfg.durationMs)
  const counts = await drive(limit, { concurrency: w.concurrency, nextKey, deadline, maxOps, hist })
  const after = await snapshot(cfg, w)
  const memAfter = w.distinct ? gcMemory() : null

  const diff = (k) => (after[k] === null || before[k] === null ? null : after[k] - before[k])
  const cpu = process.cpuUsage(before.cpu)
  return {
    contender: name,
    workload,
    ...counts,
    elapsedMs: after.t - before.t,
    cpuMicros: cpu.user + cpu.system,
    redisCalls: diff('redisCalls'),
    httpRequests: diff('http'),
    restCpuMicros: diff('restCpu'),
    redisCpuMicros: diff('redisCpu'),
    memory: memAfter && { rssDelta: memAfter.rss - memBefore.rss, heapDelta: memAfter.heap - memBefore.heap },
    hist: hist.toJSON(),
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (result) => process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0)),
    (err) => {
      process.stderr.write(`contender ${process.argv.slice(2).join(' ')}: ${err && err.stack ? err.stack : err}\n`)
      process.exit(1)
    },
  )
}
