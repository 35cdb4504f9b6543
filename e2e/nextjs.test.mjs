// End to end: examples/nextjs built with `next build`, served by `next start` against a real
// redis-server behind this project's REST server, exercised over HTTP with fetch.
//
// Installs the example's dependencies when they are missing, and skips `next build` when
// .next/BUILD_ID is newer than everything the build depends on.

import assert from 'node:assert/strict'
import { existsSync, lstatSync, statSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { freePort, startStack } from '../__test__/helpers/servers.mjs'
import { answers, awaitRoomInWindow, fetchWithTimeout, newestMtime, respStrings, run, startServer } from './helpers/process.mjs'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const EXAMPLE = join(ROOT, 'examples', 'nextjs')
const NEXT_BIN = join(EXAMPLE, 'node_modules', 'next', 'dist', 'bin', 'next')
const PREFIX = 'ratelimit-native-example'
const env = { NEXT_TELEMETRY_DISABLED: '1' }
const log = (msg) => process.stderr.write(`[e2e nextjs] ${msg}\n`)

function needsInstall() {
  const pkg = join(EXAMPLE, 'node_modules', 'ratelimit-native')
  const marker = join(EXAMPLE, 'node_modules', '.package-lock.json')
  if (!existsSync(NEXT_BIN) || !existsSync(pkg) || !existsSync(marker)) return true
  if (lstatSync(pkg).isSymbolicLink()) return true // an install from before install-links=true
  const newestInput = Math.max(...['package.json', 'package-lock.json', '.npmrc'].map((f) => statSync(join(EXAMPLE, f)).mtimeMs))
  return newestInput > statSync(marker).mtimeMs
}

function needsBuild() {
  const buildId = join(EXAMPLE, '.next', 'BUILD_ID')
  if (!existsSync(buildId)) return true
  const inputs = ['app', 'pages', 'lib', 'proxy.ts', 'next.config.ts', 'tsconfig.json', 'package.json', 'package-lock.json']
  const newest = Math.max(
    newestMtime(inputs.map((p) => join(EXAMPLE, p))),
    // The package is external (loaded at run time), but its types are checked at build time.
    newestMtime([join(EXAMPLE, 'node_modules', 'ratelimit-native', 'index.d.ts')]),
  )
  return newest > statSync(buildId).mtimeMs
}

/** `n` sequential GETs from one client IP; resolves with [{ status, headers, body }]. */
async function burst(base, path, ip, n) {
  const results = []
  for (let i = 0; i < n; i++) {
    const res = await fetchWithTimeout(`${base}${path}`, { headers: { 'x-forwarded-for': ip } })
    results.push({ status: res.status, headers: res.headers, body: await res.text() })
  }
  return results
}

const header = (r, name) => r.headers.get(name)
const int = (r, name) => {
  const value = header(r, name)
  assert.match(String(value), /^\d+$/, `${name} should be a non-negative integer, got ${value}`)
  return Number(value)
}

/** Exactly `limit` allowed (remaining counting down to 0), then 429s, all with the headers. */
function assertLimited(results, { limit, limitedBy, windowSeconds, alignedReset }) {
  const statuses = results.map((r) => r.status)
  const allowed = statuses.filter((s) => s !== 429).length
  assert.deepEqual(
    statuses.map((s) => (s === 429 ? 429 : 'ok')),
    [...Array(limit).fill('ok'), ...Array(results.length - limit).fill(429)],
    `expected ${limit} allowed then 429, got ${statuses.join(',')}`,
  )
  assert.equal(allowed, limit)
  const nowSeconds = Date.now() / 1000
  results.forEach((r, i) => {
    assert.equal(int(r, 'x-ratelimit-limit'), limit, `request ${i + 1}: X-RateLimit-Limit`)
    assert.equal(int(r, 'x-ratelimit-remaining'), Math.max(0, limit - 1 - i), `request ${i + 1}: X-RateLimit-Remaining`)
    const reset = int(r, 'x-ratelimit-reset')
    assert.ok(reset >= nowSeconds - 5 && reset <= nowSeconds + windowSeconds + 1, `request ${i + 1}: X-RateLimit-Reset ${reset} is not within the window`)
    if (alignedReset) assert.equal(reset % windowSeconds, 0, `request ${i + 1}: a ${windowSeconds} s window ends on a multiple of ${windowSeconds} s`)
  })
  for (const r of results.slice(0, limit)) assert.equal(header(r, 'retry-after'), null, 'Retry-After only on a 429')
  for (const r of results.slice(limit)) {
    const retryAfter = int(r, 'retry-after')
    assert.ok(retryAfter >= 1 && retryAfter <= windowSeconds, `Retry-After ${retryAfter} should be within 1..${windowSeconds}`)
    assert.match(header(r, 'content-type') ?? '', /application\/json/)
    assert.deepEqual(JSON.parse(r.body), { error: 'Too many requests', limitedBy })
  }
}

describe('examples/nextjs under next start', { timeout: 12 * 60_000 }, () => {
  let stack
  let next
  let base

  before(async () => {
    if (needsInstall()) {
      log('installing the example dependencies (npm install)')
      const { seconds } = await run('npm', ['install', '--no-audit', '--no-fund'], { cwd: EXAMPLE, timeoutMs: 5 * 60_000 })
      log(`npm install took ${seconds} s`)
    }
    // Copies the addon binary (and any changed package file) from the repo into node_modules.
    await run(process.execPath, ['scripts/sync-ratelimit-native.mjs'], { cwd: EXAMPLE, timeoutMs: 60_000 })
    if (needsBuild()) {
      log('running next build')
      const { seconds } = await run(process.execPath, [NEXT_BIN, 'build'], { cwd: EXAMPLE, env, timeoutMs: 6 * 60_000 })
      log(`next build took ${seconds} s`)
    } else {
      log('.next is up to date; skipping next build')
    }

    stack = await startStack()
    const port = await freePort()
    base = `http://127.0.0.1:${port}`
    const started = Date.now()
    next = await startServer(process.execPath, [NEXT_BIN, 'start', '--port', String(port), '--hostname', '127.0.0.1'], {
      cwd: EXAMPLE,
      env: { ...env, UPSTASH_REDIS_REST_URL: stack.rest.url, UPSTASH_REDIS_REST_TOKEN: stack.rest.token },
      // Outside the proxy's matcher and not a route: answers 404 without touching any limit.
      ready: () => answers(`${base}/e2e-readiness-probe`),
      timeoutMs: 60_000,
    })
    log(`next start answered after ${Date.now() - started} ms (pid ${next.pid})`)
  })

  after(async () => {
    await next?.stop()
    await stack?.stop()
  })

  // One client for all three entry points: each has its own policy, so each allows 10.
  const ip = '203.0.113.7'

  it('proxy.ts limits / : 10 per sliding minute, then 429', async () => {
    await awaitRoomInWindow(60_000, 5_000)
    const results = await burst(base, '/', ip, 13)
    assertLimited(results, { limit: 10, limitedBy: 'proxy', windowSeconds: 60, alignedReset: true })
    assert.match(results[0].body, /ratelimit-native × Next\.js 16/, 'the page itself is served while allowed')
  })

  it('proxy.ts also covers other /api/* paths, sharing the per-IP budget of /', async () => {
    const [exhausted] = await burst(base, '/api/anything-else', ip, 1)
    assert.equal(exhausted.status, 429, 'the same IP is already over the proxy limit')
    assert.deepEqual(JSON.parse(exhausted.body), { error: 'Too many requests', limitedBy: 'proxy' })
    const [fresh] = await burst(base, '/api/anything-else', '203.0.113.8', 1)
    assert.equal(fresh.status, 404, 'another IP passes the proxy and reaches the (missing) route')
    assert.equal(int(fresh, 'x-ratelimit-limit'), 10)
    assert.equal(int(fresh, 'x-ratelimit-remaining'), 9)
  })

  it('pages/api/hello has its own fixed window: 10 per 60 s, then 429 (not counted by the proxy)', async () => {
    await awaitRoomInWindow(60_000, 5_000)
    const results = await burst(base, '/api/hello', ip, 12)
    assertLimited(results, { limit: 10, limitedBy: 'pages/api/hello', windowSeconds: 60, alignedReset: true })
    assert.deepEqual(JSON.parse(results[0].body), { hello: 'world', remaining: 9 })
  })

  it('app/api/route-handler has its own sliding window: 10 per 60 s, then 429', async () => {
    await awaitRoomInWindow(60_000, 5_000)
    const results = await burst(base, '/api/route-handler', ip, 12)
    assertLimited(results, { limit: 10, limitedBy: 'app/api/route-handler', windowSeconds: 60, alignedReset: true })
    assert.deepEqual(JSON.parse(results[0].body), { ok: true, remaining: 9 })
  })

  it('limits are per client IP', async () => {
    const [other] = await burst(base, '/api/hello', '198.51.100.20', 1)
    assert.equal(other.status, 200)
    assert.equal(int(other, 'x-ratelimit-remaining'), 9)
  })

  it('the counters live in the Redis behind the REST server (Redis.fromEnv)', async () => {
    const keys = respStrings(await stack.redis.command(['KEYS', `${PREFIX}:*`]))
    for (const policy of ['proxy', 'hello', 'route-handler']) {
      assert.ok(
        keys.some((k) => k.startsWith(`${PREFIX}:${policy}:${ip}:`)),
        `no ${PREFIX}:${policy}:${ip}:* key in Redis; keys: ${keys.join(', ')}`,
      )
    }
  })

  it('next start logged no server errors', () => {
    assert.doesNotMatch(next.output(), /⨯|Error:/, next.output())
  })
})
