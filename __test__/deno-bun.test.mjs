// Deno and Bun (from the npm registry) load the package as Node.js does, on the native addon, and
// limit on the memory store, through the REST server in front of a real redis-server and on that
// redis-server over redis:// (both on sockets of the runtime's own event loop). And the
// `browser` entry, bundled by esbuild as a web app's bundler resolves it, runs in Deno (no real
// browser can be installed here; Deno has the browser's globals: top-level await, atob,
// WebAssembly.compile, fetch).

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { startStack } from './helpers/servers.mjs'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const BIN = join(ROOT, 'node_modules', '.bin')

const SCRIPT = `import { createRequire } from 'node:module'
const { Ratelimit, Redis, engine } = createRequire(import.meta.url)(${JSON.stringify(join(ROOT, 'index.js'))})
const results = {}
const stores = [['memory', Redis.memory()], ['rest', new Redis({ url: process.env.REST_URL, token: process.env.REST_TOKEN })], ['tcp', new Redis({ url: process.env.REDIS_URL })]]
for (const [name, redis] of stores) {
  const rl = new Ratelimit({ redis, limiter: Ratelimit.slidingWindow(3, '30 s'), prefix: 'rt' + Date.now() + name })
  const got = await Promise.all(Array.from({ length: 5 }, () => rl.limit('user')))
  results[name] = got.filter((r) => r.success).length
}
console.log(JSON.stringify({ engine, ...results }))
`

let stack
let dir
before(async () => {
  stack = await startStack()
  dir = mkdtempSync(join(tmpdir(), 'rln-runtimes-'))
  writeFileSync(join(dir, 'check.mjs'), SCRIPT)
})
after(async () => {
  await stack?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

for (const [runtime, args] of [
  ['deno', ['run', '-A', '--quiet']],
  ['bun', ['run']],
]) {
  test(`${runtime}: the package loads on the native engine and limits (memory store, REST and redis://)`, { timeout: 60_000 }, () => {
    const { RATELIMIT_NATIVE_ENGINE, ...env } = process.env
    const result = spawnSync(join(BIN, runtime), [...args, join(dir, 'check.mjs')], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 50_000,
      env: { ...env, REST_URL: stack.rest.url, REST_TOKEN: stack.rest.token, REDIS_URL: stack.redis.url, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
    })
    assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`)
    assert.deepEqual(JSON.parse(result.stdout.trim().split('\n').pop()), { engine: 'native', memory: 3, rest: 3, tcp: 3 })
  })
}

const BROWSER_APP = `import { Ratelimit, Redis, engine } from 'ratelimit-native'
const results = {}
for (const [name, redis] of [['memory', Redis.memory()], ['rest', new Redis({ url: globalThis.REST_URL, token: globalThis.REST_TOKEN })]]) {
  const rl = new Ratelimit({ redis, limiter: Ratelimit.tokenBucket(1, '30 s', 3), prefix: 'br' + Date.now() + name })
  const got = await Promise.all(Array.from({ length: 5 }, () => rl.limit('user')))
  results[name] = got.filter((r) => r.success).length
}
console.log(JSON.stringify({ engine, ...results }))
`

test('the browser entry, bundled for the `browser` condition, runs on the WebAssembly engine (in Deno)', { timeout: 60_000 }, () => {
  const app = join(dir, 'browser-app.mjs')
  writeFileSync(app, `globalThis.REST_URL = ${JSON.stringify(stack.rest.url)}; globalThis.REST_TOKEN = ${JSON.stringify(stack.rest.token)}\n${BROWSER_APP}`)
  const bundle = join(dir, 'browser-bundle.mjs')
  // Resolved as a dependency, so the package's export conditions apply.
  mkdirSync(join(dir, 'node_modules'), { recursive: true })
  if (!existsSync(join(dir, 'node_modules', 'ratelimit-native'))) symlinkSync(ROOT, join(dir, 'node_modules', 'ratelimit-native'), 'dir')
  const built = spawnSync(join(BIN, 'esbuild'), [app, '--bundle', '--format=esm', '--platform=browser', `--outfile=${bundle}`], { cwd: dir, encoding: 'utf8', timeout: 30_000 })
  assert.equal(built.status, 0, built.stderr)
  // No --allow-env: a page cannot read an environment either.
  const result = spawnSync(join(BIN, 'deno'), ['run', '--quiet', '--allow-net=127.0.0.1', bundle], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 50_000,
    env: { ...process.env, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
  })
  assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`)
  assert.deepEqual(JSON.parse(result.stdout.trim().split('\n').pop()), { engine: 'wasm', memory: 3, rest: 3 })
})
