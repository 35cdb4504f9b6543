// End to end: examples/hono started as a real process (`node src/server.mjs`, what `npm start`
// runs) against a real redis-server behind this project's REST server, exercised over HTTP.
//
// Installs the example's dependencies (`npm install` in examples/hono) when they are missing.

import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { freePort, startStack } from '../__test__/helpers/servers.mjs'
import { awaitRoomInWindow, fetchWithTimeout, respStrings, run, startServer } from './helpers/process.mjs'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const EXAMPLE = join(ROOT, 'examples', 'hono')
const SERVER = join(EXAMPLE, 'src', 'server.mjs')
const log = (msg) => process.stderr.write(`[e2e hono] ${msg}\n`)

// The example's demo keys (examples/hono/src/app.mjs DEMO_API_KEYS).
const PAID_KEY = 'paid_demo_key_0001'
const FREE_KEY = 'free_demo_key_0001'
const ANONYMOUS_LIMIT = 20

function needsInstall() {
  return ['hono', '@hono/node-server', 'ratelimit-native'].some((dep) => !existsSync(join(EXAMPLE, 'node_modules', dep, 'package.json')))
}

const int = (res, name) => {
  const value = res.headers.get(name)
  assert.match(String(value), /^\d+$/, `${name} should be a non-negative integer, got ${value}`)
  return Number(value)
}

describe('examples/hono under node src/server.mjs', { timeout: 5 * 60_000 }, () => {
  let stack
  let server
  let base

  before(async () => {
    if (needsInstall()) {
      log('installing the example dependencies (npm install)')
      // The example commits no lockfile (yet); do not leave one behind in it.
      const lockArgs = existsSync(join(EXAMPLE, 'package-lock.json')) ? [] : ['--no-package-lock']
      const { seconds } = await run('npm', ['install', '--no-audit', '--no-fund', ...lockArgs], { cwd: EXAMPLE, timeoutMs: 3 * 60_000 })
      log(`npm install took ${seconds} s`)
    }
    stack = await startStack()
    const port = await freePort()
    base = `http://127.0.0.1:${port}`
    server = await startServer(process.execPath, [SERVER], {
      cwd: EXAMPLE,
      env: { PORT: String(port), UPSTASH_REDIS_REST_URL: stack.rest.url, UPSTASH_REDIS_REST_TOKEN: stack.rest.token },
      // The app prints one line once it listens; nothing is sent before, so no budget is used.
      ready: ({ output }) => /listening on/.test(output()),
      timeoutMs: 30_000,
    })
    log(`server answered (pid ${server.pid}): ${server.output().trim()}`)
  })

  after(async () => {
    await server?.stop()
    await stack?.stop()
  })

  it('uses the REST store from UPSTASH_REDIS_REST_URL / _TOKEN', () => {
    assert.match(server.output(), new RegExp(`store: Upstash REST at ${stack.rest.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`))
  })

  it(`anonymous: ${ANONYMOUS_LIMIT} per sliding minute per IP, then 429 with Retry-After and rate-limit headers`, async () => {
    await awaitRoomInWindow(60_000, 5_000)
    const results = []
    for (let i = 0; i < ANONYMOUS_LIMIT + 5; i++) {
      const res = await fetchWithTimeout(`${base}/api/hello`)
      results.push({ res, body: await res.json() })
    }
    const statuses = results.map(({ res }) => res.status)
    assert.deepEqual(statuses, [...Array(ANONYMOUS_LIMIT).fill(200), ...Array(5).fill(429)], `statuses: ${statuses.join(',')}`)

    const nowSeconds = Date.now() / 1000
    results.forEach(({ res }, i) => {
      const remaining = Math.max(0, ANONYMOUS_LIMIT - 1 - i)
      assert.equal(int(res, 'x-ratelimit-limit'), ANONYMOUS_LIMIT, `request ${i + 1}: X-RateLimit-Limit`)
      assert.equal(int(res, 'x-ratelimit-remaining'), remaining, `request ${i + 1}: X-RateLimit-Remaining`)
      const reset = int(res, 'x-ratelimit-reset')
      assert.ok(reset >= nowSeconds - 5 && reset <= nowSeconds + 61, `request ${i + 1}: X-RateLimit-Reset ${reset}`)
      assert.equal(res.headers.get('ratelimit-policy'), `"anonymous";q=${ANONYMOUS_LIMIT};w=60`)
      const m = /^"anonymous";r=(\d+);t=(\d+)$/.exec(res.headers.get('ratelimit') ?? '')
      assert.ok(m, `request ${i + 1}: RateLimit header ${res.headers.get('ratelimit')}`)
      assert.equal(Number(m[1]), remaining, `request ${i + 1}: RateLimit r`)
      assert.ok(Number(m[2]) <= 60, `request ${i + 1}: RateLimit t`)
    })
    for (const { res, body } of results.slice(0, ANONYMOUS_LIMIT)) {
      assert.equal(res.headers.get('retry-after'), null, 'Retry-After only on a 429')
      assert.equal(body.tier, 'anonymous')
    }
    for (const { res, body } of results.slice(ANONYMOUS_LIMIT)) {
      const retryAfter = int(res, 'retry-after')
      assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`)
      const t = Number(/;t=(\d+)$/.exec(res.headers.get('ratelimit'))[1])
      assert.equal(retryAfter, Math.max(1, t), 'Retry-After agrees with RateLimit t')
      assert.equal(body.tier, 'anonymous')
      assert.equal(body.retryAfter, retryAfter)
    }
  })

  it('a forged X-Forwarded-For does not reset the anonymous budget (no trusted proxy hops)', async () => {
    const res = await fetchWithTimeout(`${base}/api/hello`, { headers: { 'x-forwarded-for': '198.51.100.77' } })
    await res.arrayBuffer()
    assert.equal(res.status, 429)
  })

  it('a paid API key still gets 200 from the same client, with its own budget', async () => {
    const res = await fetchWithTimeout(`${base}/api/hello`, { headers: { 'x-api-key': PAID_KEY } })
    const body = await res.json()
    assert.equal(res.status, 200)
    assert.equal(body.tier, 'paid')
    assert.equal(int(res, 'x-ratelimit-limit'), 1000)
    assert.equal(int(res, 'x-ratelimit-remaining'), 999)
    assert.match(res.headers.get('ratelimit-policy') ?? '', /^"paid";q=1000;w=60$/)
  })

  it('a free API key gets its own budget of 100; an unknown key is refused with 401', async () => {
    const free = await fetchWithTimeout(`${base}/api/hello`, { headers: { 'x-api-key': FREE_KEY } })
    assert.equal(free.status, 200)
    assert.equal((await free.json()).tier, 'free')
    assert.equal(int(free, 'x-ratelimit-limit'), 100)
    const unknown = await fetchWithTimeout(`${base}/api/hello`, { headers: { 'x-api-key': 'not-a-key' } })
    await unknown.arrayBuffer()
    assert.equal(unknown.status, 401)
  })

  it('the counters live in the Redis behind the REST server', async () => {
    const keys = respStrings(await stack.redis.command(['KEYS', 'hono-api:*']))
    assert.ok(keys.some((k) => k.startsWith('hono-api:anonymous:127.0.0.1:')), `keys: ${keys.join(', ')}`)
    assert.ok(keys.some((k) => k.startsWith('hono-api:paid:')), `keys: ${keys.join(', ')}`)
    assert.ok(!keys.some((k) => k.includes(PAID_KEY)), 'API keys are stored as digests, not in clear')
  })
})
