#!/usr/bin/env node
// `node bench/tcp-floor.mjs [--rounds N] [--duration S]`: what bounds a c=1 limit() over Redis
// TCP on this machine. Three clients, each in its own process pinned to core 0 (redis-server on
// core 1), interleaved round by round against one throwaway redis-server:
// - floor: the least any Node.js client can do per call — one pre-encoded EVALSHA of a
//   fixed-window script written on a net.Socket, the reply's arrival awaited, nothing parsed;
// - ours: `new Ratelimit({ redis: new Redis({ url: "redis://…" }), limiter: fixedWindow })`;
// - rlflex: rate-limiter-flexible's RateLimiterRedis over ioredis.
// Prints ops/s and Node CPU per call (median and range over rounds). A goal above the floor's
// ratio cannot be met by any client on this machine; the gap between a client and the floor is
// that client's own work.

import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const { values: opt } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, duration: { type: 'string', default: '2' }, child: { type: 'string' }, port: { type: 'string' } },
})
const PASSWORD = 'tcp-floor'
const KEYS = 10_000

async function main() {
  const port = await freePort()
  const dir = mkdtempSync(join(os.tmpdir(), 'tcp-floor-'))
  const taskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0
  const pinned = (core, cmd, args) => (taskset ? ['taskset', ['-c', String(core), cmd, ...args]] : [cmd, args])
  const [rcmd, rargs] = pinned(1, 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--requirepass', PASSWORD, '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning'])
  const redis = spawn(rcmd, rargs, { stdio: 'ignore' })
  try {
    await waitForPort(port, 5000)
    const results = { floor: [], ours: [], rlflex: [] }
    for (let round = 0; round < Number(opt.rounds); round++) {
      for (const kind of shuffle(Object.keys(results))) {
        const [cmd, args] = pinned(0, process.execPath, [fileURLToPath(import.meta.url), '--child', kind, '--port', String(port), '--duration', opt.duration])
        const child = spawnSync(cmd, args, { encoding: 'utf8', timeout: (Number(opt.duration) + 30) * 1000 })
        if (child.status !== 0) throw new Error(`${kind}: ${child.stderr || child.error}`)
        results[kind].push(JSON.parse(child.stdout.trim().split('\n').pop()))
      }
    }
    const floor = median(results.floor.map((r) => r.ops))
    console.log(`c=1, fixed window, ${KEYS} keys, ${opt.rounds} rounds of ${opt.duration} s (median, min–max)\n`)
    console.log('| client | ops/s | Node CPU µs/call | ops/s × floor |')
    console.log('| --- | --- | --- | --- |')
    for (const [kind, rows] of Object.entries(results)) {
      const ops = rows.map((r) => r.ops)
      const cpu = rows.map((r) => r.cpu)
      console.log(`| ${kind} | ${fmt(median(ops))} (${fmt(Math.min(...ops))}–${fmt(Math.max(...ops))}) | ${median(cpu).toFixed(1)} (${Math.min(...cpu).toFixed(1)}–${Math.max(...cpu).toFixed(1)}) | ${(median(ops) / floor).toFixed(2)} |`)
    }
  } finally {
    redis.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
}

async function runChild(kind, port, seconds) {
  const url = `redis://:${PASSWORD}@127.0.0.1:${port}`
  let call
  if (kind === 'floor') call = await floorClient(port)
  else if (kind === 'ours') {
    const { Ratelimit, Redis } = await import('../index.js')
    const rl = new Ratelimit({ redis: new Redis({ url }), limiter: Ratelimit.fixedWindow(1e9, '60 s'), prefix: `floor-ours-${process.pid}` })
    call = (i) => rl.limit(`k${i % KEYS}`)
  } else {
    const { default: IORedis } = await import('ioredis')
    const { RateLimiterRedis } = await import('rate-limiter-flexible')
    const client = new IORedis({ host: '127.0.0.1', port, password: PASSWORD, enableOfflineQueue: false })
    await new Promise((resolve) => client.once('ready', resolve))
    const rl = new RateLimiterRedis({ storeClient: client, points: 1e9, duration: 60, keyPrefix: `floor-rl-${process.pid}` })
    call = (i) => rl.consume(`k${i % KEYS}`)
  }
  for (let i = 0; i < 3000; i++) await call(i) // warm-up
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  let n = 0
  while (performance.now() - t0 < seconds * 1000) await call(n++)
  const cpu = process.cpuUsage(cpu0)
  const elapsed = performance.now() - t0
  console.log(JSON.stringify({ ops: (n / elapsed) * 1000, cpu: (cpu.user + cpu.system) / n }))
  process.exit(0)
}

/** One socket, one request at a time: pre-encoded EVALSHA calls, each resolved by its reply's arrival. */
async function floorClient(port) {
  const socket = net.connect({ port, host: '127.0.0.1' })
  socket.setNoDelay(true)
  let waiting = null
  socket.on('data', (data) => {
    const resolve = waiting
    waiting = null
    resolve(data)
  })
  const send = (bytes) => new Promise((resolve) => ((waiting = resolve), socket.write(bytes)))
  const encode = (...parts) => `*${parts.length}\r\n${parts.map((p) => `$${Buffer.byteLength(String(p))}\r\n${p}\r\n`).join('')}`
  await new Promise((resolve) => socket.once('connect', resolve))
  await send(encode('AUTH', PASSWORD))
  const script = "local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return n"
  const sha = String(await send(encode('SCRIPT', 'LOAD', script))).split('\r\n')[1]
  const requests = Array.from({ length: KEYS }, (_, i) => encode('EVALSHA', sha, 1, `floor-${process.pid}:${i}`, 60000))
  return (i) => send(requests[i % KEYS])
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
    server.on('error', reject)
  })
}

async function waitForPort(port, timeoutMs) {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    const ok = await new Promise((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' }, () => (s.destroy(), resolve(true)))
      s.on('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`redis-server did not listen on ${port} within ${timeoutMs} ms`)
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const fmt = (n) => (n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : String(Math.round(n)))
function shuffle(xs) {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[xs[i], xs[j]] = [xs[j], xs[i]]
  }
  return xs
}

if (opt.child) await runChild(opt.child, Number(opt.port), Number(opt.duration))
else await main()
