// End to end: a Next.js 16.5 app with NO configuration for ratelimit-native, as users write it
// after changing one import line (e2e/apps/zero-config), built with `next build` and served by
// `next start` against a real redis-server behind this project's REST server:
//   - src/middleware.ts as Upstash's tutorial writes it: the Edge runtime, the WebAssembly engine;
//   - src/proxy.ts (Node.js, bundled by Turbopack): the build does not fail, the WebAssembly
//     engine takes over and says so once;
//   - an App Router route handler: the same;
//   - with serverExternalPackages: the native addon;
//   - output "standalone": the server works after being copied to another folder.
// Each time, 10 requests from one IP pass and the 11th gets 429 with X-RateLimit-* and
// Retry-After, and the analytics events are in Redis. The package is installed from its packed
// tarballs, in a folder outside this repository.

import assert from 'node:assert/strict'
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { freePort, startStack } from '../__test__/helpers/servers.mjs'
import { answers, awaitRoomInWindow, fetchWithTimeout, respStrings, run, startServer } from './helpers/process.mjs'
import { packTarballs } from './helpers/pack.mjs'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const TEMPLATE = join(ROOT, 'e2e', 'apps', 'zero-config')
const NEXT_VERSION = '16.5.0'
const env = { NEXT_TELEMETRY_DISABLED: '1' }
const log = (msg) => process.stderr.write(`[e2e next engines] ${msg}\n`)

let work
let app
let stack

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'rln-next-'))
  const tarballs = packTarballs(work)
  app = join(work, 'app')
  cpSync(TEMPLATE, app, { recursive: true })
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify(
      {
        name: 'zero-config',
        private: true,
        dependencies: {
          next: NEXT_VERSION,
          react: '19.3.1',
          'react-dom': '19.3.1',
          '@upstash/redis': '1.39.0',
          'ratelimit-native': `file:${tarballs.root}`,
          [tarballs.platformName]: `file:${tarballs.platform}`,
        },
        devDependencies: { typescript: '5.9.3', '@types/react': '^19.2.0', '@types/node': '^20.19.0' },
      },
      null,
      2,
    ),
  )
  log('installing next, react and the packed ratelimit-native')
  const { seconds } = await run('npm', ['install', '--no-audit', '--no-fund'], { cwd: app, timeoutMs: 6 * 60_000 })
  log(`npm install took ${seconds} s`)
  stack = await startStack()
})

after(async () => {
  await stack?.stop()
  if (work) rmSync(work, { recursive: true, force: true })
})

/** Puts one variant's files in place (and removes the others'). */
function variant({ middleware = false, proxy = false, config = null }) {
  for (const file of ['src/middleware.ts', 'src/proxy.ts', 'next.config.ts']) rmSync(join(app, file), { force: true })
  rmSync(join(app, '.next'), { recursive: true, force: true })
  // `middleware`: true (the tutorial's file) or the name of another variant file.
  if (middleware) cpSync(join(app, 'variants', middleware === true ? 'middleware.ts' : `${middleware}.ts`), join(app, 'src', 'middleware.ts'))
  if (proxy) cpSync(join(app, 'variants', 'proxy.ts'), join(app, 'src', 'proxy.ts'))
  if (config) cpSync(join(app, 'variants', `next.config.${config}.ts`), join(app, 'next.config.ts'))
}

async function nextBuild() {
  const { seconds, output } = await run(process.execPath, [join(app, 'node_modules', 'next', 'dist', 'bin', 'next'), 'build'], { cwd: app, env, timeoutMs: 8 * 60_000 })
  log(`next build took ${seconds} s`)
  return output
}

/** `next start` (or `node server.js` in `cwd` for standalone) on a free port. */
async function serve({ standalone = null } = {}) {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const serverEnv = { ...env, UPSTASH_REDIS_REST_URL: stack.rest.url, UPSTASH_REDIS_REST_TOKEN: stack.rest.token, PORT: String(port), HOSTNAME: '127.0.0.1' }
  const [cmd, args, cwd] = standalone
    ? [process.execPath, ['server.js'], standalone]
    : [process.execPath, [join(app, 'node_modules', 'next', 'dist', 'bin', 'next'), 'start', '--port', String(port), '--hostname', '127.0.0.1'], app]
  const server = await startServer(cmd, args, { cwd, env: serverEnv, ready: () => answers(`${base}/e2e-readiness-probe`), timeoutMs: 60_000 })
  return { base, server }
}

/** 11 requests from one IP: 10 pass, the 11th is 429 with the headers; returns the engine. */
async function assertTenThen429(base, path, ip, server) {
  await awaitRoomInWindow(60_000, 10_000)
  const results = []
  for (let i = 0; i < 11; i++) {
    const res = await fetchWithTimeout(`${base}${path}`, { headers: { 'x-forwarded-for': ip } })
    results.push({ status: res.status, headers: res.headers, body: await res.text() })
  }
  assert.deepEqual(
    results.map((r) => r.status),
    [...Array(10).fill(200), 429],
    `${results.map((r) => `${r.status} ${r.body.slice(0, 200)}`).join('\n')}\nserver output:\n${server.output().slice(-3000)}`,
  )
  results.forEach((r, i) => {
    assert.equal(r.headers.get('x-ratelimit-limit'), '10', `request ${i + 1}`)
    assert.equal(r.headers.get('x-ratelimit-remaining'), String(Math.max(0, 9 - i)), `request ${i + 1}`)
    assert.match(r.headers.get('x-ratelimit-reset') ?? '', /^\d+$/)
  })
  const retryAfter = Number(results[10].headers.get('retry-after'))
  assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${results[10].headers.get('retry-after')}`)
  assert.deepEqual(JSON.parse(results[10].body), { error: 'Too many requests' })
  return results[0].headers.get('x-ratelimit-engine')
}

async function assertAnalyticsWritten(prefix) {
  const keys = respStrings(await stack.redis.command(['KEYS', `${prefix}:events:*`]))
  assert.ok(keys.length > 0, `no ${prefix}:events:* key in Redis`)
}

const warnings = (output) => output.split('\n').filter((line) => line.includes('running on the WebAssembly engine'))

describe(`Next.js ${NEXT_VERSION} with no configuration`, { timeout: 30 * 60_000 }, () => {
  it('src/middleware.ts as the tutorial writes it (Edge runtime): the WebAssembly engine limits', async () => {
    variant({ middleware: true })
    await nextBuild()
    const { base, server } = await serve()
    try {
      assert.equal(await assertTenThen429(base, '/api/hello', '203.0.113.1', server), 'wasm')
      await assertAnalyticsWritten('zero-config:middleware')
      // ratelimit-native/next in an Edge route handler: headers, 429, analytics through after().
      assert.equal(await assertTenThen429(base, '/api/edge-helper', '198.51.100.1, 203.0.113.9', server), 'wasm')
      const [first] = await Promise.all([fetchWithTimeout(`${base}/api/edge-helper`, { headers: { 'x-forwarded-for': '203.0.113.10' } })])
      assert.match(first.headers.get('ratelimit') ?? '', /^"default";r=9;t=\d+$/)
      assert.equal(first.headers.get('ratelimit-policy'), '"default";q=10;w=60')
      await assertAnalyticsWritten('zero-config:edge-helper')
      assert.doesNotMatch(server.output(), /⨯|Error:/, server.output())
    } finally {
      await server.stop()
    }
  })

  it('src/middleware.ts written with ratelimit-native/next (Edge runtime): headers, 429, analytics through event.waitUntil', async () => {
    variant({ middleware: 'middleware-helper' })
    await nextBuild()
    const { base, server } = await serve()
    try {
      assert.equal(await assertTenThen429(base, '/api/hello', '198.51.100.7, 203.0.113.11', server), 'wasm')
      const response = await fetchWithTimeout(`${base}/api/hello`, { headers: { 'x-forwarded-for': '203.0.113.12' } })
      assert.equal(response.status, 200)
      assert.match(response.headers.get('ratelimit') ?? '', /^"default";r=9;t=\d+$/)
      assert.equal(response.headers.get('ratelimit-policy'), '"default";q=10;w=60')
      await assertAnalyticsWritten('zero-config:middleware-helper')
      assert.doesNotMatch(server.output(), /⨯|Error:/, server.output())
    } finally {
      await server.stop()
    }
  })

  it('src/proxy.ts and a route handler (Node.js, bundled): the build passes, the WebAssembly engine takes over and says so once', async () => {
    variant({ proxy: true })
    await nextBuild()
    const { base, server } = await serve()
    try {
      assert.equal(await assertTenThen429(base, '/api/hello', '203.0.113.2', server), 'wasm')
      assert.equal(await assertTenThen429(base, '/api/limited', '203.0.113.2', server), 'wasm')
      await assertAnalyticsWritten('zero-config:proxy')
      await assertAnalyticsWritten('zero-config:route')
      // One line per bundle that loaded the package (the proxy's and the route's are separate).
      const lines = warnings(server.output())
      assert.ok(lines.length >= 1 && lines.length <= 2, server.output())
      for (const line of lines) assert.match(line, /serverExternalPackages/)
      assert.doesNotMatch(server.output(), /⨯|Error:/, server.output())
    } finally {
      await server.stop()
    }
  })

  it('with serverExternalPackages: the native addon', async () => {
    variant({ proxy: true, config: 'external' })
    await nextBuild()
    const { base, server } = await serve()
    try {
      assert.equal(await assertTenThen429(base, '/api/hello', '203.0.113.3', server), 'native')
      assert.equal(await assertTenThen429(base, '/api/limited', '203.0.113.3', server), 'native')
      assert.deepEqual(warnings(server.output()), [])
    } finally {
      await server.stop()
    }
  })

  it('output "standalone": the server works after being copied to another folder', async () => {
    variant({ proxy: true, config: 'standalone' })
    await nextBuild()
    assert.ok(existsSync(join(app, '.next', 'standalone', 'server.js')))
    const moved = join(work, 'moved-standalone')
    cpSync(join(app, '.next', 'standalone'), moved, { recursive: true })
    rmSync(join(app, '.next'), { recursive: true, force: true })
    const { base, server } = await serve({ standalone: moved })
    try {
      assert.match(await assertTenThen429(base, '/api/hello', '203.0.113.4', server), /^(wasm|native)$/)
      assert.doesNotMatch(server.output(), /⨯|Error:/, server.output())
    } finally {
      await server.stop()
    }
  })
})
