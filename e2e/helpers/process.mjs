// Process and HTTP helpers for the end-to-end tests: bounded commands, long-running servers in
// their own process group (so `stop()` also ends their children), and bounded waits.

import { spawn } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

const live = new Set()
// Last resort: never leave a server behind, even when the test process dies on an exception.
process.on('exit', () => {
  for (const child of live) killGroup(child, 'SIGKILL')
})

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const tail = (text, n = 4000) => (text.length > n ? `…${text.slice(-n)}` : text)

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal)
  } catch {
    try {
      child.kill(signal)
    } catch {}
  }
}

function spawnGroup(cmd, args, { cwd, env }) {
  // detached: the child leads a new process group, so the whole tree can be signalled at once.
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  live.add(child)
  child.once('exit', () => live.delete(child))
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  return { child, output: () => output }
}

async function stopGroup(child, timeoutMs = 10000) {
  if (child.exitCode !== null || child.signalCode !== null) {
    killGroup(child, 'SIGKILL') // grandchildren may outlive their parent
    return
  }
  const exited = new Promise((resolve) => child.once('exit', resolve))
  killGroup(child, 'SIGTERM')
  let timer
  const finished = await Promise.race([
    exited.then(() => true),
    new Promise((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
  ])
  clearTimeout(timer)
  if (!finished) {
    killGroup(child, 'SIGKILL')
    await exited
  } else {
    killGroup(child, 'SIGKILL')
  }
}

/** Runs a command to completion within `timeoutMs`; rejects with its output on failure. */
export async function run(cmd, args, { cwd, env = {}, timeoutMs }) {
  const started = Date.now()
  const { child, output } = spawnGroup(cmd, args, { cwd, env })
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    killGroup(child, 'SIGKILL')
  }, timeoutMs)
  const code = await new Promise((resolve) => {
    child.once('error', () => resolve(-1))
    child.once('exit', (c, signal) => resolve(c ?? signal))
  })
  clearTimeout(timer)
  const seconds = ((Date.now() - started) / 1000).toFixed(1)
  if (timedOut) throw new Error(`${cmd} ${args.join(' ')} timed out after ${timeoutMs / 1000} s:\n${tail(output())}`)
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${code} after ${seconds} s:\n${tail(output())}`)
  return { output: output(), seconds: Number(seconds) }
}

/**
 * Starts a long-running server. `ready({ output })` is polled (an async function returning true
 * once the server answers; `output()` is what it printed so far) for at most `timeoutMs`.
 * Returns { child, pid, output(), stop() }.
 */
export async function startServer(cmd, args, { cwd, env = {}, ready, timeoutMs }) {
  const { child, output } = spawnGroup(cmd, args, { cwd, env })
  const server = { child, pid: child.pid, output, stop: () => stopGroup(child) }
  const deadline = Date.now() + timeoutMs
  try {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`${cmd} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${tail(output())}`)
      }
      if (await Promise.resolve().then(() => ready({ output })).catch(() => false)) return server
      if (Date.now() > deadline) throw new Error(`${cmd} was not ready within ${timeoutMs / 1000} s:\n${tail(output())}`)
      await sleep(100)
    }
  } catch (err) {
    await server.stop()
    throw err
  }
}

/** fetch with a time limit, so no request can hang a test. */
export function fetchWithTimeout(url, init = {}, timeoutMs = 10000) {
  return fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) })
}

/** True once `url` answers with any HTTP status. */
export async function answers(url) {
  const res = await fetchWithTimeout(url, {}, 2000)
  await res.arrayBuffer()
  return true
}

/**
 * Rate-limit windows are aligned to multiples of their length since the epoch. A burst that
 * straddles a boundary legitimately gets a fresh (fixed) or partly decayed (sliding) budget, so
 * before a burst, wait out the current window if fewer than `needMs` of it are left.
 */
export async function awaitRoomInWindow(windowMs, needMs) {
  const left = windowMs - (Date.now() % windowMs)
  if (left < needMs) await sleep(left + 50)
}

/** Newest modification time under the given paths (files or directories, recursively). */
export function newestMtime(paths, { skip = ['node_modules', '.next'] } = {}) {
  let newest = 0
  const visit = (path) => {
    if (!existsSync(path)) return
    const st = statSync(path)
    if (!st.isDirectory()) {
      newest = Math.max(newest, st.mtimeMs)
      return
    }
    for (const entry of readdirSync(path)) if (!skip.includes(entry)) visit(join(path, entry))
  }
  paths.forEach(visit)
  return newest
}

/** The names (bulk strings) in a raw RESP array reply, e.g. from KEYS. */
export function respStrings(reply) {
  return [...reply.matchAll(/^\$\d+\r\n(.*)$/gm)].map((m) => m[1].replace(/\r$/, ''))
}
