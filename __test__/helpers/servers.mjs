// Throwaway real servers for tests: a redis-server (random free port, a password,
// `--save '' --appendonly no`, its own temp dir) and the project's REST server in front of it.
// Everything started here is stopped by `stop()`, and killed on process exit as a last resort.

import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const live = new Set()
function killAll() {
  for (const child of live) {
    try {
      child.kill('SIGKILL')
    } catch {}
  }
}
process.on('exit', killAll)
// The test runner ends a file that overruns its timeout with a signal, and 'exit' handlers do
// not run then: without this, that file's servers would outlive it.
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.once(signal, () => {
    killAll()
    process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGHUP' ? 1 : 15))
  })
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/**
 * Polls `check` every 100 ms until it is true; throws `${what} within ${timeoutMs} ms` after
 * that (at once when `check` throws an error marked `fatal`; other errors count as false).
 */
export async function waitFor(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    try {
      if (await check()) return
    } catch (error) {
      if (error.fatal) throw error
    }
    await sleep(100)
  }
  throw new Error(`${what} within ${timeoutMs} ms`)
}

export function track(child) {
  live.add(child)
  child.once('exit', () => live.delete(child))
  return child
}

export async function stopChild(child, timeoutMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  let timer
  const deadline = new Promise((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs)
  })
  const finished = await Promise.race([exited.then(() => true), deadline])
  clearTimeout(timer)
  if (!finished) {
    child.kill('SIGKILL')
    await exited
  }
}

/** Sends one RESP command on a fresh connection; resolves with the raw reply text. */
export function redisCommand(port, password, args, timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    const encode = (parts) =>
      `*${parts.length}\r\n` + parts.map((p) => `$${Buffer.byteLength(String(p))}\r\n${p}\r\n`).join('')
    let data = ''
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`redis command ${args[0]} timed out`))
    }, timeoutMs)
    socket.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    socket.on('connect', () => socket.write(encode(['AUTH', password]) + encode(args)))
    socket.on('data', (chunk) => {
      data += chunk
      const firstEnd = data.indexOf('\r\n')
      if (firstEnd >= 0 && data.length > firstEnd + 2 && data.endsWith('\r\n')) {
        clearTimeout(timer)
        socket.end()
        resolve(data.slice(firstEnd + 2))
      }
    })
  })
}

/**
 * Starts redis-server on a random free port with a random password; with `tls`
 * (`{ cert, key, ca }` file paths, see makeCertificates) it also serves TLS on a second port.
 * Returns { port, password, url, pid, process, stop() } (and tlsPort with `tls`).
 */
export async function startRedis({ tls } = {}) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort()
    const tlsPort = tls ? await freePort() : null
    const password = randomBytes(12).toString('hex')
    const dir = mkdtempSync(join(tmpdir(), 'rln-redis-'))
    const tlsArgs = tls
      ? ['--tls-port', String(tlsPort), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key, '--tls-ca-cert-file', tls.ca, '--tls-auth-clients', 'no']
      : []
    const child = track(
      spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--requirepass', password, '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning', ...tlsArgs],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      ),
    )
    const deadline = Date.now() + 5000
    let ready = false
    while (Date.now() < deadline && child.exitCode === null) {
      try {
        const reply = await redisCommand(port, password, ['PING'], 500)
        if (reply.startsWith('+PONG')) {
          ready = true
          break
        }
      } catch {}
      await sleep(50)
    }
    if (ready) {
      return {
        port,
        ...(tls ? { tlsPort } : {}),
        password,
        dir,
        url: `redis://:${password}@127.0.0.1:${port}`,
        process: child,
        pid: child.pid,
        command: (args) => redisCommand(port, password, args),
        async stop() {
          await stopChild(child)
          rmSync(dir, { recursive: true, force: true })
        },
      }
    }
    await stopChild(child)
    rmSync(dir, { recursive: true, force: true })
  }
  throw new Error('could not start redis-server (is it installed? run `npm test`, which installs it)')
}

/**
 * A throwaway certificate authority and a server certificate it signed for localhost and
 * 127.0.0.1 (EC P-256, valid two days), plus a second authority that signed nothing, written to
 * `dir` with the openssl command line. Returns { ca, cert, key, otherCa } (file paths).
 */
export function makeCertificates(dir) {
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=ratelimit-native test CA')
  openssl('req', '-x509', ...ec, '-keyout', 'other-ca.key', '-out', 'other-ca.pem', '-days', '2', '-subj', '/CN=ratelimit-native other CA')
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost')
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n')
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext')
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), otherCa: join(dir, 'other-ca.pem') }
}

/**
 * Starts the project's REST server (`bin/ratelimit-native.js serve`) in its own process.
 * Returns { url, token, pid, process, stop() }.
 */
export async function startRestServer({ redisUrl, token = randomBytes(16).toString('hex'), args = [], env = process.env }) {
  const child = track(
    spawn(process.execPath, [join(ROOT, 'bin', 'ratelimit-native.js'), 'serve', ...(args.includes('--port') ? [] : ['--port', '0']), '--redis', redisUrl, '--token', token, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    }),
  )
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const url = await new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`REST server did not start within 10 s: ${stderr}`)), 10000)
    child.stdout.on('data', (d) => {
      out += d
      const m = out.match(/listening on (http:\/\/\S+)/)
      if (m) {
        clearTimeout(timer)
        resolve(m[1])
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`REST server exited with ${code}: ${stderr}`))
    })
  })
  return {
    url,
    token,
    process: child,
    pid: child.pid,
    stop: () => stopChild(child),
  }
}

/** A redis-server plus a REST server in front of it; `stop()` stops both. */
export async function startStack(options = {}) {
  const redis = await startRedis()
  try {
    const rest = await startRestServer({ redisUrl: redis.url, ...options })
    return {
      redis,
      rest,
      async stop() {
        await rest.stop()
        await redis.stop()
      },
    }
  } catch (err) {
    await redis.stop()
    throw err
  }
}
