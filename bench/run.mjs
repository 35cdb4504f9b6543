#!/usr/bin/env node
// `npm run bench [-- --quick] [--rounds N] [--warmup S] [--duration S] [--keys N]
//                 [--workloads a,b] [--contenders a,b] [--pin split|one-core] [--out RESULTS.x.md]`
// Starts a throwaway redis-server and the project's REST server (pinned to core 1 when taskset
// works), runs every contender × workload in its own process (`bench/contender.mjs`, pinned to
// core 0), round by round in a random order, then one short pass per REST contender through a
// counting proxy for HTTP requests per call. Prints the tables and writes bench/RESULTS.md.
// `--pin one-core` is a diagnostic, never the judged run: everything shares core 1, so no call
// wakes the other core (what that costs a call on this machine), and the results go to
// bench/RESULTS.one-core.md. `--out RESULTS.x.md` sends a partial run's tables to bench/RESULTS.x.md.
// When a Redis Cluster workload is selected, a throwaway 3-master/3-replica cluster is started
// once for the run (its nodes pinned with redis-server) and stopped at the end, also on errors.
// Exits non-zero only on errors (a crash, a rejected call that should pass), never on numbers.

import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { startRedisCluster } from '../__test__/helpers/cluster.mjs'
import { startStack } from '../__test__/helpers/servers.mjs'
import { CONTENDERS, WORKLOADS, applicable } from './contender.mjs'
import { Histogram, fmt, median } from './stats.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const log = (msg) => process.stderr.write(`[bench] ${msg}\n`)

const { values: opt } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    warmup: { type: 'string' },
    duration: { type: 'string' },
    keys: { type: 'string' },
    workloads: { type: 'string' },
    contenders: { type: 'string' },
    pin: { type: 'string', default: 'split' },
    // Where a partial run writes its tables (a file name under bench/), so it does not replace
    // the full run's RESULTS.md.
    out: { type: 'string' },
  },
})
if (opt.out !== undefined && !/^RESULTS\.[\w-]+\.md$/.test(opt.out)) die(`--out takes a name like RESULTS.wasm.md, not ${opt.out}`)
const list = (s, all) => (s ? s.split(',').filter((x) => all.includes(x) || die(`unknown name ${x}`)) : null)
const die = (msg) => {
  log(msg)
  process.exit(2)
}
const S = {
  rounds: Number(opt.rounds ?? (opt.quick ? 1 : 3)),
  warmupMs: Number(opt.warmup ?? (opt.quick ? 0.3 : 1)) * 1000,
  durationMs: Number(opt.duration ?? (opt.quick ? 1 : 3)) * 1000,
  distinctKeys: Number(opt.keys ?? (opt.quick ? 100_000 : 1_000_000)),
  distinctMaxMs: opt.quick ? 20_000 : 90_000,
  warmupMaxOps: 5_000_000,
  maxOps: 50_000_000,
  countWarmupMs: 300, // the HTTP-counting pass: short, not timed
  countDurationMs: opt.quick ? 300 : 1000,
}
const workloads =
  list(opt.workloads, Object.keys(WORKLOADS)) ??
  (opt.quick ? ['c1-fixed', 'c64-fixed', 'flood64', 'keys1m', 'cluster-c64-fixed', 'byo-c64-fixed'] : Object.keys(WORKLOADS))
const contenders = list(opt.contenders, Object.keys(CONTENDERS)) ?? Object.keys(CONTENDERS)
/** Whether this run measures `name` on `workload`: applicable, and in a --quick run one of the workload's quick pair when it names one. */
const selected = (name, workload) => applicable(name, workload) && (!opt.quick || !WORKLOADS[workload].quick || WORKLOADS[workload].quick.includes(name))
const needsCluster = workloads.some((w) => WORKLOADS[w].cluster && contenders.some((c) => selected(c, w)))
if (!['split', 'one-core'].includes(opt.pin)) die(`--pin takes split or one-core, not ${opt.pin}`)
const ONE_CORE = opt.pin === 'one-core'
/** The core each contender process runs on when pinning applies (the servers are on core 1). */
const CONTENDER_CORE = ONE_CORE ? 1 : 0

// ---------------------------------------------------------------------------------------------
// Processes: pinning, contender runs, a counting proxy, cleanup.

const hasTaskset = spawnSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' }).status === 0
const pinTo = (pid, core) => spawnSync('taskset', ['-a', '-p', '-c', String(core), String(pid)], { stdio: 'ignore' }).status === 0

let current = null // the contender process running now (killed by pid on SIGINT)
let stopping = false // set on SIGINT/SIGTERM: start no further contender

function runContender(name, workload, cfg, pinned) {
  const nodeArgs = ['--expose-gc', join(HERE, 'contender.mjs'), name, workload]
  const [cmd, args] = pinned ? ['taskset', ['-c', String(CONTENDER_CORE), process.execPath, ...nodeArgs]] : [process.execPath, nodeArgs]
  const limitMs = (WORKLOADS[workload].distinct ? cfg.distinctMaxMs : cfg.durationMs) + cfg.warmupMs + 60_000
  return new Promise((resolve, reject) => {
    if (stopping) return reject(new Error('stopping'))
    const child = spawn(cmd, args, { env: { ...process.env, BENCH_CONFIG: JSON.stringify(cfg) }, stdio: ['ignore', 'pipe', 'pipe'] })
    current = child
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    const timer = setTimeout(() => {
      err += `\nkilled after ${limitMs} ms`
      child.kill('SIGKILL')
    }, limitMs)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      current = null
      if (err.trim()) log(`${name} ${workload} stderr: ${err.trim()}`)
      if (code !== 0) return reject(new Error(`${name} ${workload} exited with ${code ?? signal}: ${err.trim()}`))
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()))
      } catch {
        reject(new Error(`${name} ${workload}: no JSON result on stdout: ${out}`))
      }
    })
  })
}

/**
 * A TCP pass-through in front of the REST server that counts HTTP/1.1 requests (headers end at
 * CRLFCRLF, then Content-Length bytes of body), with the count served on a second port. Used only
 * for the untimed counting pass: it adds a hop, so it never sits in front of a timed run.
 */
async function startCountingProxy(targetUrl) {
  const target = new URL(targetUrl)
  let requests = 0
  let unparsable = false
  const sockets = new Set()
  const proxy = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname)
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('close', () => sockets.delete(s))
      s.on('error', () => {
        client.destroy()
        upstream.destroy()
      })
    }
    client.pipe(upstream)
    upstream.pipe(client)
    let head = Buffer.alloc(0)
    let bodyLeft = 0
    client.on('data', (chunk) => {
      let data = chunk
      while (data.length > 0) {
        if (bodyLeft > 0) {
          const n = Math.min(bodyLeft, data.length)
          bodyLeft -= n
          data = data.subarray(n)
          continue
        }
        head = Buffer.concat([head, data])
        const end = head.indexOf('\r\n\r\n')
        if (end < 0) return
        const text = head.subarray(0, end).toString('latin1')
        requests++
        if (/\r\ntransfer-encoding:/i.test(text)) unparsable = true
        bodyLeft = Number(/\r\ncontent-length:\s*(\d+)/i.exec(text)?.[1] ?? 0)
        data = head.subarray(end + 4)
        head = Buffer.alloc(0)
      }
    })
  })
  const control = http.createServer((req, res) => res.end(unparsable ? 'NaN' : String(requests)))
  const listen = (srv) => new Promise((r) => srv.listen(0, '127.0.0.1', () => r(srv.address().port)))
  const [proxyPort, controlPort] = [await listen(proxy), await listen(control)]
  return {
    url: `http://127.0.0.1:${proxyPort}`,
    counterUrl: `http://127.0.0.1:${controlPort}/`,
    stop() {
      for (const s of sockets) s.destroy()
      proxy.close()
      control.close()
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Aggregation and output.

function shuffle(xs) {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[xs[i], xs[j]] = [xs[j], xs[i]]
  }
  return xs
}

function summarize(runs) {
  const sum = (k) => runs.reduce((a, r) => a + (r[k] ?? 0), 0)
  const ops = sum('ops')
  const rates = runs.map((r) => (r.ops / r.elapsedMs) * 1000)
  const hist = runs.reduce((h, r) => h.merge(Histogram.fromJSON(r.hist)), new Histogram())
  const perCall = (k) => (runs.some((r) => r[k] === null) ? null : sum(k) / ops)
  return {
    ops,
    opsPerSec: median(rates),
    min: Math.min(...rates),
    max: Math.max(...rates),
    p50: hist.quantile(0.5) / 1000,
    p99: hist.quantile(0.99) / 1000,
    cpu: sum('cpuMicros') / ops,
    redisCalls: perCall('redisCalls'),
    serverCpu: runs.some((r) => r.restCpuMicros === null || r.redisCpuMicros === null) ? null : (sum('restCpuMicros') + sum('redisCpuMicros')) / ops,
    allowed: sum('allowed'),
    rejected: sum('rejected'),
    timeouts: sum('timeouts'),
    rssPerKey: runs[0].memory ? median(runs.map((r) => r.memory.rssDelta / r.ops)) : null,
    heapPerKey: runs[0].memory ? median(runs.map((r) => r.memory.heapDelta / r.ops)) : null,
  }
}

function ratio(cells, contender, peer) {
  const a = cells[contender]
  const b = cells[peer]
  return a && b && !a.unavailable && !b.unavailable ? a.opsPerSec / b.opsPerSec : null
}
const x = (r) => (r === null ? '—' : `${r.toFixed(2)}×`)

/** Whether the analytics/protection options did measurable Redis work for an "ours" contender. */
function analyticsNote(results, name, cell) {
  const plain = results['c64-fixed']?.[name]
  if (!plain || plain.unavailable || cell.redisCalls === null || plain.redisCalls === null) {
    return 'compare Redis cmds/call with the plain c=64 fixedWindow row to see whether the options do any work'
  }
  const extra = cell.redisCalls - plain.redisCalls
  return extra < 0.25
    ? 'no extra Redis work measured: the options are accepted but not implemented, so this row measures option overhead only'
    : `${fmt(extra)} more Redis cmds/call than the plain c=64 fixedWindow row`
}

function table(workload, cells, results) {
  const w = WORKLOADS[workload]
  const memory = Boolean(w.distinct)
  const header = memory
    ? ['contender', 'ops/s (min–max)', 'p50 µs', 'p99 µs', 'Node CPU µs/call', 'RSS B/key', 'heap B/key', '× rlflex', 'notes']
    : ['contender', 'ops/s (min–max)', 'p50 µs', 'p99 µs', 'Node CPU µs/call', 'REST req/call', 'Redis cmds/call', 'REST+Redis CPU µs/call', '× upstash-js', '× rlflex', 'notes']
  const rows = []
  for (const name of contenders.filter((c) => selected(c, workload))) {
    const c = cells[name]
    if (!c) continue
    const label = CONTENDERS[name].label
    if (c.unavailable) {
      rows.push([label, 'not available', ...header.slice(2, -1).map(() => '—'), c.unavailable])
      continue
    }
    const notes = []
    if (w.flood) notes.push(`${((100 * c.rejected) / c.ops).toFixed(2)}% rejected${c.allowed ? `, ${c.allowed} admitted (a new window began)` : ''}`)
    if (c.timeouts) notes.push(`${c.timeouts} timeout answers`)
    if (w.analytics && CONTENDERS[name].ours) notes.push(analyticsNote(results, name, c))
    if (memory && name === 'native-memory') notes.push(`Redis.memory({ maxKeys: ${(S.distinctKeys + 10_000).toLocaleString('en')} }) (10k warm-up keys)`)
    const ours = CONTENDERS[name].ours
    const common = [label, `${fmt(c.opsPerSec)} (${fmt(c.min)}–${fmt(c.max)})`, fmt(c.p50), fmt(c.p99), fmt(c.cpu)]
    rows.push(
      memory
        ? [...common, fmt(c.rssPerKey), fmt(c.heapPerKey), ours ? x(ratio(cells, name, CONTENDERS[name].peer)) : '', notes.join('; ')]
        : [
            ...common,
            CONTENDERS[name].rest ? fmt(c.httpPerCall) : '0',
            fmt(c.redisCalls),
            fmt(c.serverCpu),
            ours && !CONTENDERS[name].memory && applicable('upstash-js', workload) ? x(ratio(cells, name, 'upstash-js')) : '',
            ours ? x(ratio(cells, name, CONTENDERS[name].peer)) : '',
            notes.join('; '),
          ],
    )
  }
  const title = memory ? `${S.distinctKeys.toLocaleString('en')} ${w.title}` : w.title
  return [`### ${title}`, '', `| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')
}

function targets(results) {
  const cell = (w, c) => results[w]?.[c]
  const ok = (b) => (b ? 'met' : '**NOT met**')
  const out = []
  // Judged per path of ours: the REST path (the drop-in on an Upstash URL, through the same REST
  // server as upstash-js) and the TCP path (redis://, straight to the same redis-server).
  const PATHS = [
    ['native-rest', 'REST path'],
    ['native-tcp', 'TCP path (redis://)'],
  ]
  const vsUpstashFor = (name, wls, min, extra) => {
    const parts = []
    let met = true
    for (const w of wls) {
      const ours = cell(w, name)
      const up = cell(w, 'upstash-js')
      if (!ours || !up || ours.unavailable) continue
      const r = ours.opsPerSec / up.opsPerSec
      met &&= r >= min
      let text = `${WORKLOADS[w].title}: ${r.toFixed(2)}×`
      if (extra) {
        const cpuShare = ours.cpu / up.cpu
        met &&= cpuShare <= 1 / 5
        text += ` ops/s, Node CPU/call ${fmt(ours.cpu)} vs ${fmt(up.cpu)} µs (ours/upstash-js ${cpuShare.toFixed(2)}, target ≤ 0.20)`
      }
      parts.push(text)
    }
    return parts.length ? `${ok(met)} — ${parts.join('; ')}` : null
  }
  const vsUpstash = (wls, min, extra) => {
    const judged = PATHS.map(([name, label]) => [label, vsUpstashFor(name, wls, min, extra)]).filter(([, text]) => text)
    return judged.length ? judged.map(([label, text]) => `${label}: ${text}`).join('<br>') : 'not measured in this run'
  }
  out.push(`- c=1: ≥ 5× upstash-js ops/s — ${vsUpstash(['c1-fixed', 'c1-sliding'], 5)}`)
  out.push(`- c=64: ≥ 3× upstash-js ops/s with Node CPU per call ≤ 1/5 of upstash-js — ${vsUpstash(['c64-fixed', 'c64-sliding'], 3, true)}`)
  out.push(`- over-limit flood: ≥ 2× upstash-js ops/s — ${vsUpstash(['flood64'], 2)}`)
  // The WebAssembly engine (Edge runtimes, Workers, bundles), on Node.js here.
  const wasmVs = (wls, min) => {
    const parts = []
    let met = true
    for (const w of wls) {
      const ours = cell(w, 'wasm-rest')
      const up = cell(w, 'upstash-js')
      if (!ours || !up || ours.unavailable) continue
      const r = ours.opsPerSec / up.opsPerSec
      met &&= r >= min
      parts.push(`${WORKLOADS[w].title}: ${r.toFixed(2)}× (Node CPU/call ${fmt(ours.cpu)} vs ${fmt(up.cpu)} µs)`)
    }
    return parts.length ? `${ok(met)} — ${parts.join('; ')}` : 'not measured in this run'
  }
  out.push(`- WebAssembly engine, REST: c=64 ≥ 1.5× upstash-js ops/s — ${wasmVs(['c64-fixed', 'c64-sliding'], 1.5)}`)
  out.push(`- WebAssembly engine, REST: c=1 never slower than upstash-js — ${wasmVs(['c1-fixed', 'c1-sliding'], 1)}`)

  const mem = cell('keys1m', 'native-memory')
  const rl = cell('keys1m', 'rlflex-memory')
  let memText = 'not measured in this run'
  if (mem?.unavailable) memText = `not measured: ${mem.unavailable}`
  else if (mem && rl) {
    const r = mem.opsPerSec / rl.opsPerSec
    const at = S.distinctKeys === 1_000_000 ? '' : ` (at ${S.distinctKeys.toLocaleString('en')} keys, not 1M)`
    const both = r >= 3 && mem.rssPerKey <= 130
    // Both halves judged: the one met is worth knowing when the other is not.
    memText = `${ok(both)} — ${r.toFixed(2)}× rlflex Memory ops/s (${r >= 3 ? 'met' : 'missed'}), ${fmt(mem.rssPerKey)} B/key RSS (${mem.rssPerKey <= 130 ? 'met' : 'missed'})${at}`
  }
  const [m64, r64] = [cell('c64-fixed', 'native-memory'), cell('c64-fixed', 'rlflex-memory')]
  if (m64 && r64 && !m64.unavailable) memText += ` (for information, c=64 over 10k keys: ${(m64.opsPerSec / r64.opsPerSec).toFixed(2)}×)`
  out.push(`- memory store: ≥ 3× rlflex Memory ops/s and ≤ 130 bytes per key at 1M keys — ${memText}`)

  // Against rate-limiter-flexible on the same Redis through the same kind of client: the ratio of
  // the median ops/s, with both sides' median (min–max) over rounds as in the tables.
  const vsPeer = (name, w, min) => {
    const ours = cell(w, name)
    const peer = cell(w, CONTENDERS[name].peer)
    if (ours?.unavailable) return { met: null, text: `c=${WORKLOADS[w].concurrency}: not measured: ${ours.unavailable}` }
    if (!ours || !peer || peer.unavailable) return null
    const r = ours.opsPerSec / peer.opsPerSec
    const spread = (c) => `${fmt(c.opsPerSec)} (${fmt(c.min)}–${fmt(c.max)})`
    return { met: r >= min, text: `c=${WORKLOADS[w].concurrency}: ${r.toFixed(2)}× (${spread(ours)} vs ${spread(peer)} ops/s)` }
  }
  /** Verdict over the judged workloads ("not measured" when ours did not run on any of them). */
  const verdict = (judged) => {
    const measured = judged.filter((j) => j.met !== null)
    const texts = judged.map((j) => j.text).join('; ')
    if (!judged.length) return 'not measured in this run'
    return measured.length ? `${ok(measured.every((j) => j.met))} — ${texts}` : texts
  }
  const c1 = vsPeer('native-cluster', 'cluster-c1-fixed', 0)
  const clusterText = verdict([vsPeer('native-cluster', 'cluster-c64-fixed', 1.5)].filter(Boolean))
  out.push(`- Redis Cluster: at c=64 ≥ 1.5× rate-limiter-flexible over an ioredis Cluster, ops/s — ${clusterText}${c1 && c1.met !== null ? ` (for information, ${c1.text})` : ''}`)
  const byo = [
    ['native-ioredis', 'ioredis'],
    ['native-node-redis', 'node-redis'],
  ].map(([name, client]) => `${client}: ${verdict(['byo-c64-fixed', 'byo-c1-fixed'].map((w) => vsPeer(name, w, 1)).filter(Boolean))}`)
  out.push(`- your own client (standalone redis-server): no slower than rate-limiter-flexible on the same client, ops/s — ${byo.join('<br>')}`)

  const parts = []
  let met = true
  for (const w of workloads) {
    const c = cell(w, 'native-rest')
    if (!c || c.unavailable || c.httpPerCall === null || c.httpPerCall === undefined) continue
    const good = WORKLOADS[w].concurrency === 1 ? c.httpPerCall === 1 : c.httpPerCall <= 1
    met &&= good
    if (WORKLOADS[w].concurrency === 1 || !good) parts.push(`${WORKLOADS[w].title}: ${c.httpRequests} requests for ${c.countedOps} calls`)
  }
  out.push(
    `- exactly one HTTP request per warm limit() (at c=1; batched below one at higher concurrency) — ${parts.length ? `${ok(met)} — ${parts.join('; ')}` : 'not measured in this run'}`,
  )
  return out.join('\n')
}

function machine(pinned, loads, clusterPinned) {
  const model = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? 'unknown'
  let profile = 'unknown'
  try {
    profile = JSON.parse(readFileSync(join(HERE, '..', 'target', 'ratelimit-native-build.json'), 'utf8')).profile
  } catch {}
  const redisVersion = spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout.match(/v=(\S+)/)?.[1]
  const version = (pkg) => {
    try {
      return JSON.parse(readFileSync(join(HERE, '..', 'node_modules', pkg, 'package.json'), 'utf8')).version
    } catch {
      return 'not installed'
    }
  }
  return [
    `- date: ${new Date().toISOString()}`,
    `- machine: ${os.cpus().length} cores, ${model}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}`,
    `- Node ${process.version}, redis-server ${redisVersion}, addon build profile: ${profile === 'release' ? profile : `**${profile}** (not representative; \`npm run bench\` builds release)`}`,
    `- pinning: ${
      !pinned
        ? 'not applied (taskset missing or fewer than 2 cores)'
        : ONE_CORE
          ? '**one core (`--pin one-core`, a diagnostic)**: redis-server, REST server, this runner and each contender process all on core 1, so no call wakes the other core. The targets are judged on the split pinning, not on this run'
          : 'applied (redis-server + REST server + this runner on core 1, each contender process on core 0)'
    }`,
    ...(clusterPinned === null
      ? []
      : [`- Redis Cluster: 3 masters + 3 replicas of the same redis-server on loopback, started for this run; its six nodes ${clusterPinned ? 'pinned to core 1 with redis-server' : '**not pinned**'}`]),
    `- third-party clients: ioredis ${version('ioredis')}, node-redis (redis) ${version('redis')}, rate-limiter-flexible ${version('rate-limiter-flexible')}`,
    `- load average (1 min) at start ${loads[0]}, at end ${loads[1]}`,
    `- mode: ${opt.quick ? '--quick (CI smoke test)' : 'full'}; ${S.rounds} round(s), warm-up ${S.warmupMs / 1000} s, measured ${S.durationMs / 1000} s per run; contender order randomised per round`,
  ].join('\n')
}

const NOTES = `Notes:
- ops/s is the median over rounds (min–max in brackets); p50/p99 come from log-bucketed histograms (≤ 6.25 % bucket width) merged over rounds.
- Node CPU µs/call is \`process.cpuUsage()\` of the contender process (all its threads, native ones included) over the measured window. REST+Redis CPU µs/call is utime+stime from /proc of the REST server and redis-server (10 ms ticks).
- Redis cmds/call: sum of \`calls\` in \`INFO commandstats\` (script-inner commands included, AUTH/INFO/PING excluded) before/after the measured window; it includes first hits of keys in a new window.
- REST req/call comes from a separate, untimed pass of each REST contender through a counting TCP proxy (the REST server has no request counter); at c ≥ 64 batching depends on round-trip time, and the proxy adds a hop, so treat those values as indicative. Exact at c=1.
- Analytics + protection: both do the real work. ratelimit-native runs the limit, the deny-list check and the analytics write in one composed script (one EVALSHA per call, the extra Redis commands are inside it; the row's note gives how many more than the plain c=64 fixedWindow row); upstash-js sends the deny-list check and the analytics write as separate commands. The IP deny list status is pre-set to "disabled" and \`fetch\` is restricted to loopback in that workload, so nothing downloads the IP list.
- The TCP path (\`new Redis({ url: "redis://…" })\`) talks to the same redis-server directly, like rate-limiter-flexible's ioredis client; the REST rows and upstash-js go through the project's REST server. Upstream has no TCP path (a self-hosted Redis needs a REST bridge for it), so the TCP row answers "what does the same Redis cost without the bridge". Its "REST+Redis CPU" column is Redis alone (the REST server idles).
- rate-limiter-flexible has no sliding window: it is compared on fixed windows only. Its flood run uses \`inMemoryBlockOnConsumed\`.
- Redis Cluster tables: both contenders on the same 3-master/3-replica cluster (six redis-server processes on loopback, started once for the run, pinned with redis-server). ratelimit-native: \`new Redis({ url: [the six node URLs], cluster: true })\` (keys \`prefix:{identifier}:…\`); rate-limiter-flexible: \`RateLimiterRedis\` with \`storeClient: new IORedis.Cluster(nodes, { redisOptions: { password } })\`. Redis cmds/call there is summed over the three masters; "REST+Redis CPU" is the six nodes' CPU (the REST server idles).
- Your own client tables: \`new Ratelimit({ redis: client })\` against rate-limiter-flexible over the same kind of client, built the same way, on the standalone redis-server: ioredis (\`new IORedis({ host, port, password, enableOfflineQueue: false })\`, as in every rate-limiter-flexible (ioredis) row, which is measured again in these tables) and node-redis (\`createClient({ url })\`, connected first; rate-limiter-flexible with \`useRedisPackage: true\`). The × rlflex column compares each with rate-limiter-flexible on its own kind of client. \`--quick\` runs the c=64 ioredis pair only.`

// ---------------------------------------------------------------------------------------------

async function main() {
  const loads = [os.loadavg()[0].toFixed(2)]
  const started = Date.now()
  log(`starting redis-server and the REST server${needsCluster ? ', and a Redis Cluster (3 masters + 3 replicas)' : ''}`)
  // The cluster starts alongside the stack (a few seconds). A long node timeout: a node busy on
  // the shared core must never be voted down into a failover in the middle of a run. A cluster
  // that does not start is reported (its rows not available, the run failed), not fatal here.
  const clusterStarting = needsCluster
    ? startRedisCluster({ nodeTimeoutMs: 15_000 }).then(
        (cluster) => {
          // On SIGINT/SIGTERM the test helpers' own handler SIGKILLs every server and exits before
          // cleanup() below can run: the nodes' data dirs are removed on exit then (a no-op after stop()).
          process.once('exit', () => cluster.nodes.forEach((n) => rmSync(n.dir, { recursive: true, force: true })))
          return cluster
        },
        (err) => err,
      )
    : null
  const stopCluster = async () => {
    const c = await clusterStarting
    if (c && !(c instanceof Error)) await c.stop()
  }
  // The REST server gets pinned to one core below (with Redis): one worker thread, as `serve`
  // itself picks when started on one CPU (a second worker on the same core only adds wakeups).
  const canPin = hasTaskset && os.cpus().length >= 2
  let stack
  try {
    stack = await startStack(canPin ? { env: { ...process.env, RATELIMIT_NATIVE_THREADS: '1' } } : {})
  } catch (err) {
    await stopCluster()
    throw err
  }
  let proxy = null
  const cleanup = async () => {
    if (current) current.kill('SIGKILL')
    proxy?.stop()
    await Promise.all([stack.stop(), stopCluster()])
  }
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
      log(`${sig}: stopping`)
      stopping = true
      cleanup().finally(() => process.exit(130))
    })
  }
  let failures = 0
  try {
    const pinned = canPin && [stack.redis.pid, stack.rest.pid, process.pid].every((pid) => pinTo(pid, 1))
    log(`pinning ${pinned ? 'applied' : 'not applied'}`)
    // Protection on upstash-js would otherwise fetch the IP deny list from GitHub.
    await stack.redis.command(['SET', '@upstash/ratelimit:ipDenyListStatus', 'disabled'])
    const base = {
      restUrl: stack.rest.url,
      restToken: stack.rest.token,
      redisPort: stack.redis.port,
      redisPassword: stack.redis.password,
      redisPid: stack.redis.pid,
      restPid: stack.rest.pid,
      ...S,
    }
    const runs = {} // workload → contender → [result]
    const unavailable = {}
    let clusterPinned = null // null: no cluster in this run
    if (clusterStarting) {
      const cluster = await clusterStarting
      if (cluster instanceof Error) {
        failures++
        const why = cluster.message.trim().replace(/\s*\n\s*/g, ' ')
        log(`ERROR Redis Cluster did not start: ${why}`)
        for (const name of contenders.filter((c) => CONTENDERS[c].cluster)) unavailable[name] = `the Redis Cluster did not start: ${why}`
      } else {
        // Its nodes go where redis-server is (core 1), as the runner's pinning convention has it.
        clusterPinned = pinned && cluster.nodes.every((n) => pinTo(n.pid, 1))
        log(`Redis Cluster on ports ${cluster.nodes.map((n) => n.port).join(', ')}, pinning ${clusterPinned ? 'applied' : 'not applied'}`)
        base.cluster = { urls: cluster.urls, password: cluster.password, masterPorts: await cluster.masters(), pids: cluster.nodes.map((n) => n.pid) }
      }
    }
    let runId = 0
    const once = async (name, workload, cfg) => {
      try {
        const r = await runContender(name, workload, { ...cfg, runId: `${process.pid}-${++runId}` }, pinned)
        if (r.unavailable) unavailable[name] = r.unavailable
        const w = WORKLOADS[workload]
        if (!r.unavailable && !w.flood && r.rejected > 0) throw new Error(`${name} ${workload}: ${r.rejected} calls rejected under a limit that never trips`)
        return r
      } catch (err) {
        failures++
        log(`ERROR ${err.message}`)
        return null
      }
    }

    for (let round = 1; round <= S.rounds; round++) {
      for (const workload of workloads) {
        const order = shuffle(contenders.filter((c) => selected(c, workload) && !unavailable[c]))
        for (const name of order) {
          log(`round ${round}/${S.rounds} ${workload} ${name}`)
          const r = await once(name, workload, base)
          if (r) ((runs[workload] ??= {})[name] ??= []).push(r)
        }
      }
    }

    log('counting HTTP requests per call (untimed pass through a counting proxy)')
    proxy = await startCountingProxy(stack.rest.url)
    const counted = {}
    for (const workload of workloads.filter((w) => !WORKLOADS[w].memoryOnly)) {
      for (const name of contenders.filter((c) => CONTENDERS[c].rest && selected(c, workload))) {
        const cfg = { ...base, restUrl: proxy.url, counterUrl: proxy.counterUrl, warmupMs: S.countWarmupMs, durationMs: S.countDurationMs }
        const r = await once(name, workload, cfg)
        if (r) (counted[workload] ??= {})[name] = r
      }
    }

    const results = {}
    for (const workload of workloads) {
      results[workload] = {}
      for (const name of contenders.filter((c) => selected(c, workload))) {
        if (unavailable[name]) results[workload][name] = { unavailable: unavailable[name] }
        else if (runs[workload]?.[name]) {
          const cell = summarize(runs[workload][name])
          const c = counted[workload]?.[name]
          cell.httpRequests = c?.httpRequests ?? null
          cell.countedOps = c?.ops ?? null
          cell.httpPerCall = c && c.httpRequests !== null ? c.httpRequests / c.ops : null
          results[workload][name] = cell
        }
      }
    }
    loads.push(os.loadavg()[0].toFixed(2))
    const costs = wasmCosts()
    if (costs.failed) failures++
    const middleware = middlewareCosts(opt.quick)
    if (middleware.failed) failures++
    const md = [
      '# ratelimit-native benchmark results',
      '',
      machine(pinned, loads, clusterPinned),
      `- wall time: ${((Date.now() - started) / 1000).toFixed(0)} s; ${failures ? `**${failures} run(s) failed**` : 'no failed runs'}`,
      '',
      ONE_CORE
        ? '## Targets (from the project issue), for comparison only: this one-core run is a diagnostic, the targets are judged on the split pinning'
        : '## Targets (from the project issue), judged on each path of ratelimit-native to its own Redis: REST (through the same REST server as upstash-js) and TCP (redis://, no REST server)',
      '',
      targets(results),
      '',
      '## Results',
      '',
      ...workloads.flatMap((w) => [table(w, results[w], results), '']),
      costs.text,
      '',
      middleware.text,
      '',
      NOTES,
      '',
    ].join('\n')
    process.stdout.write(`${md}\n`)
    // A --quick run is a smoke test: it prints its tables but keeps the committed full results.
    // So does a one-core diagnostic run (its own file).
    const out = join(HERE, opt.out ?? (opt.quick ? 'RESULTS.quick.md' : ONE_CORE ? 'RESULTS.one-core.md' : 'RESULTS.md'))
    writeFileSync(out, md)
    log(`wrote ${out}`)
  } finally {
    await cleanup()
  }
  if (failures) {
    log(`${failures} run(s) failed`)
    process.exitCode = 1
  }
}

/** The WebAssembly module's size, and import + first limit() in Vercel's edge-runtime. */
function wasmCosts() {
  const result = spawnSync(process.execPath, [join(HERE, 'wasm-costs.mjs')], { encoding: 'utf8', timeout: 120_000 })
  if (result.status !== 0) return { failed: true, text: `## WebAssembly costs\n\nnot measured: ${(result.stderr || result.stdout).trim().split('\n').pop()}` }
  return { failed: false, text: result.stdout.trim() }
}

/** The framework middleware's own cost per request against its peers (bench/middleware.mjs). */
function middlewareCosts(quick) {
  const args = [join(HERE, 'middleware.mjs'), '--rounds', quick ? '1' : '3', '--duration', quick ? '1' : '3']
  const result = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 15 * 60_000 })
  if (result.status !== 0) return { failed: true, text: `## Framework middleware\n\nnot measured: ${(result.stderr || result.stdout).trim().split('\n').pop()}` }
  return { failed: false, text: result.stdout.trim() }
}

main().catch((err) => {
  log(`failed: ${err && err.stack ? err.stack : err}`)
  process.exit(1)
})
