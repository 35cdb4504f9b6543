#!/usr/bin/env node
// The framework middleware's own cost per request: ratelimit-native/hono against
// hono-rate-limiter, ratelimit-native/express against express-rate-limit, memory stores on both
// sides (Redis.memory() and their default MemoryStore), the same limit (never reached), the same
// 10k clients by header. Requests are injected in-process, without sockets, the same way for
// every contender (Hono's `app.request`, light-my-request for Express), so what differs is the
// middleware; a row without any limiter gives the framework's own cost, subtracted to get the
// middleware's. Each run is a child process; rounds interleave the contenders.
//
//   node bench/middleware.mjs [--rounds 3] [--duration 2]    → markdown on stdout
//   (`npm run bench` appends it to its results; `node bench/middleware.mjs --child …` is one run)

import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const args = process.argv.slice(2)
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`)
  return i === -1 ? fallback : args[i + 1]
}
const CLIENTS = 10_000
const LIMIT = 1_000_000_000

async function app(framework, contender) {
  if (framework === 'hono') {
    const { Hono } = await import('hono')
    const hono = new Hono()
    if (contender === 'ours-unhooked' || contender === 'ours-listened') {
      // The decision hook (lib/decisions.js) taken out, or listened to as the OpenTelemetry
      // bridge listens: against 'ours' (nobody listening), what the hook costs either way.
      const decisions = await import('../lib/decisions.js')
      if (contender === 'ours-unhooked') decisions.default.observed = () => false
      else (await import('node:diagnostics_channel')).subscribe(decisions.CHANNEL, () => {})
    }
    if (contender.startsWith('ours')) {
      const { Ratelimit, Redis } = await import('../index.js')
      const { rateLimiter } = await import('../lib/middleware/hono.js')
      const limiter = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.fixedWindow(LIMIT, '60 s'), prefix: `bm${process.pid}` })
      hono.use('*', rateLimiter({ limiter, identify: (c) => c.req.header('x-client'), headers: 'draft' }))
    } else if (contender === 'theirs') {
      const { rateLimiter } = await import('hono-rate-limiter')
      hono.use('*', rateLimiter({ windowMs: 60_000, limit: LIMIT, standardHeaders: 'draft-8', keyGenerator: (c) => c.req.header('x-client') }))
    }
    hono.get('/api', (c) => c.text('ok'))
    return async (client) => {
      const response = await hono.request('/api', { headers: { 'x-client': client } })
      if (response.status !== 200) throw new Error(`status ${response.status}`)
    }
  }
  const { default: express } = await import('express')
  const { default: inject } = await import('light-my-request')
  const server = express()
  if (contender === 'ours') {
    const { Ratelimit, Redis } = await import('../index.js')
    const { rateLimit } = await import('../lib/middleware/express.js')
    const limiter = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.fixedWindow(LIMIT, '60 s'), prefix: `bm${process.pid}` })
    server.use(rateLimit({ limiter, identify: (req) => req.headers['x-client'], headers: 'draft' }))
  } else if (contender === 'theirs') {
    const { rateLimit } = await import('express-rate-limit')
    server.use(rateLimit({ windowMs: 60_000, limit: LIMIT, standardHeaders: 'draft-8', legacyHeaders: false, keyGenerator: (req) => req.headers['x-client'] }))
  }
  server.get('/api', (req, res) => res.send('ok'))
  return async (client) => {
    const response = await inject(server, { method: 'GET', url: '/api', headers: { 'x-client': client } })
    if (response.statusCode !== 200) throw new Error(`status ${response.statusCode}`)
  }
}

/** One run: requests one after another for `durationMs` after a warm-up; prints JSON. */
async function child(framework, contender, durationMs) {
  const request = await app(framework, contender)
  const clients = Array.from({ length: CLIENTS }, (_, i) => `client-${i}`)
  let n = 0
  const warmUntil = Date.now() + Math.min(1000, durationMs / 2)
  while (Date.now() < warmUntil) await request(clients[n++ % CLIENTS])
  n = 0
  const cpu = process.cpuUsage()
  const start = process.hrtime.bigint()
  const end = Date.now() + durationMs
  while (Date.now() < end) {
    for (let i = 0; i < 100; i++) await request(clients[n++ % CLIENTS])
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  const used = process.cpuUsage(cpu)
  process.stdout.write(JSON.stringify({ ops: n / seconds, cpuPerRequest: (used.user + used.system) / n }))
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

const fmt = (v, digits = 1) => (v >= 1000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(digits))

async function main() {
  if (args[0] === '--child') return child(args[1], args[2], Number(args[3]))
  const rounds = Number(arg('rounds', 3))
  const durationMs = Number(arg('duration', 2)) * 1000
  const peers = { hono: 'hono-rate-limiter', express: 'express-rate-limit' }
  const lines = [
    '## Framework middleware: its own cost per request',
    '',
    `Memory stores on both sides, 10k clients, requests injected in-process (no sockets), one after another; ${rounds} round(s) of ${durationMs / 1000} s, contenders interleaved. "Own cost" is CPU per request minus the same app without a limiter (median of rounds; min–max in brackets for ops/s).`,
    '',
    '| framework | contender | requests/s | CPU µs/request | own cost µs/request | own cost: ours / theirs |',
    '| --- | --- | --- | --- | --- | --- |',
  ]
  const hookRuns = {}
  for (const framework of ['hono', 'express']) {
    const runs = framework === 'hono' ? { none: [], ours: [], theirs: [], 'ours-unhooked': [], 'ours-listened': [] } : { none: [], ours: [], theirs: [] }
    for (let round = 0; round < rounds; round++) {
      const order = Object.keys(runs).sort(() => Math.random() - 0.5)
      for (const contender of order) {
        const result = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', framework, contender, String(durationMs)], { encoding: 'utf8', timeout: durationMs + 60_000 })
        if (result.status !== 0) throw new Error(`${framework}/${contender}: ${(result.stderr || result.stdout).trim().split('\n').pop()}`)
        runs[contender].push(JSON.parse(result.stdout))
      }
    }
    const base = median(runs.none.map((r) => r.cpuPerRequest))
    const own = (name) => median(runs[name].map((r) => r.cpuPerRequest)) - base
    const ratio = own('ours') / own('theirs')
    for (const [name, label] of [['none', `${framework} alone`], ['ours', `ratelimit-native/${framework}`], ['theirs', peers[framework]]]) {
      const ops = runs[name].map((r) => r.ops)
      const cpu = median(runs[name].map((r) => r.cpuPerRequest))
      lines.push(
        `| ${framework} | ${label} | ${fmt(median(ops))} (${fmt(Math.min(...ops))}–${fmt(Math.max(...ops))}) | ${cpu.toFixed(2)} | ${name === 'none' ? '—' : own(name).toFixed(2)} | ${name === 'ours' ? `${ratio.toFixed(2)} (goal ≤ 1: ${ratio <= 1 ? 'met' : '**NOT met**'})` : ''} |`,
      )
    }
    if (framework === 'hono') Object.assign(hookRuns, runs)
  }
  // The decision hook (diagnostics_channel, lib/decisions.js): "nothing measurable when nobody
  // listens" — per request as shipped (nobody listening) against the hook taken out.
  const cpuOf = (name) => hookRuns[name].map((r) => r.cpuPerRequest)
  const spread = (values) => `${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)}`
  const row = (label, name) => `| ${label} | ${median(cpuOf(name)).toFixed(2)} (${spread(cpuOf(name))}) |`
  const idle = median(cpuOf('ours')) - median(cpuOf('ours-unhooked'))
  const listened = median(cpuOf('ours-listened')) - median(cpuOf('ours'))
  const signed = (v) => `${v >= 0 ? '+' : ''}${v.toFixed(2)}`
  lines.push(
    '',
    '### The decision hook (diagnostics_channel), on Hono',
    '',
    '| ratelimit-native/hono | CPU µs/request: median (min–max) |',
    '| --- | --- |',
    row('hook taken out', 'ours-unhooked'),
    row('as shipped, nobody listening', 'ours'),
    row('a subscriber listening (what the OpenTelemetry bridge adds before its own work)', 'ours-listened'),
    '',
    `Nobody listening: ${signed(idle)} µs per request against the hook taken out (goal: within the run-to-run spread of the rows); listening: ${signed(listened)} µs (the message built and published).`,
  )
  process.stdout.write(`${lines.join('\n')}\n`)
}

main().catch((error) => {
  process.stderr.write(`${error?.stack ?? error}\n`)
  process.exit(1)
})
