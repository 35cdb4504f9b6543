// Shared helpers for the reliability suite: restartable servers on a fixed port, a steady load
// generator that times every call, tiny misbehaving HTTP servers, and secret scanning.
// Every process started here is stopped by its handle, and killed (by PID) on exit as a last resort.

import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import util from 'node:util'

import { redisCommand } from '../__test__/helpers/servers.mjs'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
export const require = createRequire(import.meta.url)
/** The product, as users load it. */
export const { Ratelimit, Redis } = require('..')

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const live = new Set()
function killAll() {
  for (const child of live) {
    try {
      process.kill(child.pid, 'SIGCONT')
    } catch {}
    try {
      process.kill(child.pid, 'SIGKILL')
    } catch {}
  }
}
process.on('exit', killAll)
// A file ended by the runner's timeout gets a signal, and 'exit' handlers do not run then.
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.once(signal, () => {
    killAll()
    process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGHUP' ? 1 : 15))
  })
}

function track(child) {
  live.add(child)
  child.once('exit', () => live.delete(child))
  return child
}

function exited(child) {
  return child.exitCode !== null || child.signalCode !== null
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopProcess(child, graceMs = 5000) {
  if (!child || exited(child)) return
  const gone = new Promise((resolve) => child.once('exit', resolve))
  try {
    process.kill(child.pid, 'SIGCONT') // a stopped process cannot handle SIGTERM
  } catch {}
  child.kill('SIGTERM')
  let timer
  const ok = await Promise.race([gone.then(() => true), new Promise((r) => (timer = setTimeout(() => r(false), graceMs)))])
  clearTimeout(timer)
  if (!ok) {
    child.kill('SIGKILL')
    await gone
  }
}

/** SIGKILL and wait for the exit. */
export async function killProcess(child) {
  if (!child || exited(child)) return
  const gone = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await gone
}

/**
 * Starts redis-server on a given port with a given password (to restart one that
 * `startRedis()` started: same port, same password). Returns { pid, process, stop() }.
 */
export async function startRedisOn(port, password) {
  const dir = mkdtempSync(join(tmpdir(), 'rln-rel-redis-'))
  const child = track(
    spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--requirepass', password, '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    ),
  )
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const deadline = Date.now() + 5000
  while (Date.now() < deadline && !exited(child)) {
    try {
      if ((await redisCommand(port, password, ['PING'], 300)).startsWith('+PONG')) {
        return {
          pid: child.pid,
          process: child,
          async stop() {
            await stopProcess(child)
            rmSync(dir, { recursive: true, force: true })
          },
        }
      }
    } catch {}
    await sleep(25)
  }
  await stopProcess(child)
  rmSync(dir, { recursive: true, force: true })
  throw new Error(`redis-server did not come back on port ${port}: ${stderr}`)
}

/**
 * Starts `bin/ratelimit-native.js serve` on a fixed port (the shared helper always passes
 * `--port 0`, and a second `--port` is refused by the CLI). Captures stdout and stderr.
 * Returns { url, token, port, pid, process, output(), stop(), kill() }.
 */
export async function startRestServerOn({ redisUrl, token, port }) {
  const child = track(
    spawn(process.execPath, [join(ROOT, 'bin', 'ratelimit-native.js'), 'serve', '--port', String(port), '--redis', redisUrl, '--token', token], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  )
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (out += d))
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`REST server did not start within 10 s: ${out}`)), 10000)
    const onData = () => {
      const m = out.match(/listening on (http:\/\/\S+)/)
      if (m) {
        clearTimeout(timer)
        child.stdout.off('data', onData)
        resolve(m[1])
      }
    }
    child.stdout.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`REST server exited with ${code}: ${out}`))
    })
  })
  return {
    url,
    token,
    port,
    pid: child.pid,
    process: child,
    output: () => out,
    stop: () => stopProcess(child),
    kill: () => killProcess(child),
  }
}

/** Collects unhandled rejections and uncaught exceptions while installed. */
export function watchUnhandled() {
  const seen = []
  const onRejection = (reason) => seen.push({ kind: 'unhandledRejection', reason })
  const onException = (error) => seen.push({ kind: 'uncaughtException', error })
  process.on('unhandledRejection', onRejection)
  process.on('uncaughtExceptionMonitor', onException)
  return {
    seen,
    dispose() {
      process.off('unhandledRejection', onRejection)
      process.off('uncaughtExceptionMonitor', onException)
    },
  }
}

/**
 * Steady load: `perTick` calls every `tickMs` on `keys` identifiers, through each limiter in
 * `limiters` ({ name: Ratelimit }). Every call is timed with performance.now().
 * Returns { records, stop(), settled(maxMs) }; records: { name, key, start, end, ms, result?, error? }
 * where start/end are Date.now()-based ms for phase classification.
 */
export function steadyLoad(limiters, { tickMs = 10, perTick = 2, keys = 100, keyPrefix = 'k', controlMs = 0 } = {}) {
  const records = []
  const outstanding = new Set()
  // With `controlMs`, each tick also starts a plain setTimeout(controlMs) and records how late it
  // fired (`controls[tick]`, ms): the event loop's own lateness, which no limit() call can beat.
  const controls = []
  let n = 0
  let tick = 0
  const fire = () => {
    const thisTick = tick++
    if (controlMs > 0) {
      const c0 = performance.now()
      setTimeout(() => (controls[thisTick] = performance.now() - c0 - controlMs), controlMs)
    }
    for (const [name, rl] of Object.entries(limiters)) {
      for (let i = 0; i < perTick; i++) {
        const key = `${keyPrefix}${n++ % keys}`
        const rec = { name, key, tick: thisTick, start: Date.now(), t0: performance.now() }
        records.push(rec)
        const p = rl
          .limit(key)
          .then(
            (result) => (rec.result = result),
            (error) => (rec.error = error),
          )
          .finally(() => {
            rec.ms = performance.now() - rec.t0
            rec.end = Date.now()
            outstanding.delete(p)
          })
        outstanding.add(p)
      }
    }
  }
  const timer = setInterval(fire, tickMs)
  return {
    records,
    controls,
    outstanding,
    stop() {
      clearInterval(timer)
    },
    /** Waits until every issued call has settled, at most `maxMs`; returns how many have not. */
    async settled(maxMs = 5000) {
      const deadline = Date.now() + maxMs
      while (outstanding.size > 0 && Date.now() < deadline) await sleep(20)
      return outstanding.size
    },
  }
}

/** Summary of records: counts by outcome ('ok', 'timeout', 'failClosed', 'rejected: <msg>'). */
export function outcomes(records) {
  const counts = {}
  for (const r of records) {
    const k = outcomeOf(r)
    counts[k] = (counts[k] ?? 0) + 1
  }
  return counts
}

export function outcomeOf(r) {
  if (r.error) return `rejected: ${String(r.error.message ?? r.error).slice(0, 160)}`
  if (!r.result) return 'unsettled'
  const res = r.result
  if (res.reason === 'timeout') {
    if (res.success) return 'timeout (fail-open)'
    return res.error ? `failClosed+error: ${String(res.error.message ?? res.error).slice(0, 160)}` : 'failClosed (timeout)'
  }
  return res.success ? 'ok' : `blocked${res.reason ? ` (${res.reason})` : ''}`
}

/**
 * A tiny HTTP server on loopback. `handler(req, res, body)` is called once the request body is
 * read. Returns { url, port, requests: [], close() } (close() also ends open connections).
 */
export async function miniServer(handler) {
  const requests = []
  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      requests.push({ method: req.method, url: req.url, headers: req.headers, body })
      try {
        handler(req, res, body)
      } catch (err) {
        res.destroy(err)
      }
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/**
 * Every textual view of a thrown value or answer that could end up in a log: message, stack,
 * the cause chain, own properties, JSON and util.inspect (hidden properties included).
 */
export function everyView(value) {
  const views = []
  const seen = new Set()
  const visit = (v, depth) => {
    if (v === null || v === undefined || depth > 8 || seen.has(v)) return
    if (typeof v !== 'object' && typeof v !== 'function') {
      views.push(String(v))
      return
    }
    seen.add(v)
    try {
      views.push(util.inspect(v, { depth: 8, showHidden: true, getters: true }))
    } catch {}
    try {
      views.push(JSON.stringify(v))
    } catch {}
    try {
      views.push(String(v))
    } catch {}
    if (v instanceof Error) {
      views.push(String(v.message), String(v.stack))
      visit(v.cause, depth + 1)
      if (Array.isArray(v.errors)) for (const e of v.errors) visit(e, depth + 1)
    }
    for (const key of Reflect.ownKeys(v)) {
      let inner
      try {
        inner = v[key]
      } catch {
        continue
      }
      if (typeof inner !== 'function') visit(inner, depth + 1)
    }
  }
  visit(value, 0)
  return views.join('\n')
}

/** Captures console.log/info/warn/error/debug output (as text) until `restore()`. */
export function captureConsole() {
  const lines = []
  const saved = {}
  for (const name of ['log', 'info', 'warn', 'error', 'debug', 'trace']) {
    saved[name] = console[name]
    console[name] = (...args) => lines.push(util.format(...args))
  }
  return {
    lines,
    restore() {
      Object.assign(console, saved)
    },
  }
}

/** ms until the next aligned boundary of `windowMs`. */
export function msToBoundary(windowMs) {
  return windowMs - (Date.now() % windowMs)
}

/** Waits, if needed, so that at least `needMs` remain in the current aligned window. */
export async function awayFromBoundary(windowMs, needMs) {
  const left = msToBoundary(windowMs)
  if (left < needMs) await sleep(left + 5)
}

/** A raw RESP reply (from `command()`) as a value: bulk string, integer, nil, simple string, error. */
export function resp(raw) {
  const text = String(raw)
  if (text.startsWith('$-1') || text.startsWith('*-1')) return null
  if (text.startsWith('$')) {
    const nl = text.indexOf('\r\n')
    return text.slice(nl + 2, nl + 2 + Number(text.slice(1, nl)))
  }
  if (text.startsWith(':')) return Number(text.slice(1).trim())
  if (text.startsWith('+')) return text.slice(1).trim()
  if (text.startsWith('-')) return new Error(text.slice(1).trim())
  return text
}
