// The package on the runtimes a native addon cannot reach, through their own entries: Vercel's
// Edge runtime (the `edge-runtime` emulator Next.js uses in development, entry index.edge.mjs)
// and Cloudflare Workers (a real workerd under Miniflare, entry index.workerd.mjs). Each runs
// the scenarios of __test__/edge/worker.mjs, bundled by esbuild as the platform's bundler would,
// against this project's REST server in front of a real redis-server: exact counts for every
// algorithm, analytics and protection, dynamic limits, timeouts, errors, two regions, the
// memory store, and the clear error for redis://.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { EdgeRuntime } from 'edge-runtime'
import { Miniflare } from 'miniflare'
import { startStack } from './helpers/servers.mjs'
import { redisBatch } from './helpers/direct-redis.mjs'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const WASM = join(ROOT, 'wasm', 'ratelimit_wasm_bg.wasm')
const T = { timeout: 60_000 }
const fresh = () => `rle${randomBytes(5).toString('hex')}`

/** Bundles worker.mjs with "ratelimit-native" resolved to `entry` and `footer` as its glue. */
async function bundle(entry, { format, footer, wasmImport }) {
  const result = await build({
    stdin: { contents: `import { handle } from './worker.mjs'\n${footer}`, resolveDir: join(ROOT, '__test__', 'edge'), loader: 'js' },
    bundle: true,
    write: false,
    format,
    platform: 'browser',
    alias: {
      'ratelimit-native': join(ROOT, entry),
      'ratelimit-native/hono': join(ROOT, 'lib', 'middleware', 'hono.js'),
      'ratelimit-native/next': join(ROOT, 'lib', 'middleware', 'next.js'),
    },
    // Inside a Next.js app; here ratelimit-native/next's withRateLimit runs without it.
    external: ['next/server'],
    logLevel: 'silent',
    plugins: [
      {
        name: 'wasm-import',
        setup(b) {
          b.onResolve({ filter: /\.wasm(\?module)?$/ }, (args) => wasmImport(args.path))
          b.onLoad({ filter: /.*/, namespace: 'host-wasm' }, () => ({ contents: 'export default globalThis.__ratelimitWasmModule', loader: 'js' }))
        },
      },
    ],
  })
  return result.outputFiles[0].text
}

let stack
let second
let unreachable
let env

before(async () => {
  ;[stack, second] = await Promise.all([startStack(), startStack()])
  // A port that accepts connections and never answers.
  unreachable = createServer(() => {})
  await new Promise((resolve) => unreachable.listen(0, '127.0.0.1', resolve))
  env = {
    UPSTASH_REDIS_REST_URL: stack.rest.url,
    UPSTASH_REDIS_REST_TOKEN: stack.rest.token,
    SECOND_URL: second.rest.url,
    SECOND_TOKEN: second.rest.token,
    UNREACHABLE_URL: `http://127.0.0.1:${unreachable.address().port}`,
  }
})

after(async () => {
  unreachable?.close()
  await Promise.all([stack?.stop(), second?.stop()])
})

/** One command on the REST server, from the test itself → its result. */
async function rest(command) {
  const response = await fetch(stack.rest.url, { method: 'POST', headers: { authorization: `Bearer ${stack.rest.token}` }, body: JSON.stringify(command) })
  const body = await response.json()
  assert.equal(response.status, 200, JSON.stringify(body))
  return body.result
}

/** The scenarios, against one runtime's `run(query)` → JSON. */
function scenarios(runtimeName, run, runtimeInMessage) {
  test(`${runtimeName}: the WebAssembly engine runs`, T, async () => {
    assert.deepEqual(await run('scenario=engine'), { engine: 'wasm' })
  })

  for (const algorithm of ['fixedWindow', 'slidingWindow', 'tokenBucket', 'cachedFixedWindow']) {
    test(`${runtimeName}: ${algorithm}: 15 calls at once against 10 admit exactly 10; getRemaining and resetUsedTokens`, T, async () => {
      const outcome = await run(`scenario=burst&algorithm=${algorithm}&prefix=${fresh()}`)
      assert.equal(outcome.admitted, 10, JSON.stringify(outcome))
      assert.equal(outcome.limit, 10)
      assert.equal(outcome.remaining, 0)
      assert.equal(outcome.afterReset, 10)
    })
  }

  for (const flavour of ['default', 'cloudflare', 'fastly']) {
    test(`${runtimeName}: an @upstash/redis${flavour === 'default' ? '' : `/${flavour}`} client: exact counts with analytics (sliding window and token bucket)`, T, async () => {
      for (const algorithm of ['slidingWindow', 'tokenBucket']) {
        const prefix = fresh()
        assert.deepEqual(await run(`scenario=upstashClient&flavour=${flavour}&algorithm=${algorithm}&prefix=${prefix}`), { admitted: 10, remaining: 0 }, algorithm)
        const [key, ...others] = await rest(['KEYS', `${prefix}:events:*`])
        assert.equal(others.length, 0)
        const counted = {}
        const entries = await rest(['ZRANGE', key, '0', '-1', 'WITHSCORES'])
        for (let i = 0; i < entries.length; i += 2) counted[JSON.parse(entries[i]).success] = Number(entries[i + 1])
        assert.deepEqual(counted, { true: 10, false: 5 }, `${algorithm}: analytics written`)
      }
    })
  }

  test(`${runtimeName}: ratelimit-native/hono: 3 pass, the 4th is 429 with Retry-After; pending goes to the runtime's waitUntil`, T, async () => {
    const prefix = fresh()
    const { answers } = await run(`scenario=honoMiddleware&prefix=${prefix}`)
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 429], 'one client: the platform-appended entry, not the forged one')
    assert.match(answers[0].ratelimit, /^"default";r=2;t=\d+$/)
    assert.ok(Number(answers[3].retryAfter) >= 1)
    // The analytics writes were handed to waitUntil; the runtime ran them.
    const deadline = Date.now() + 5000
    let keys = []
    while (keys.length === 0 && Date.now() < deadline) {
      keys = await rest(['KEYS', `${prefix}:events:*`])
      if (keys.length === 0) await new Promise((resolve) => setTimeout(resolve, 50))
    }
    assert.equal(keys.length, 1, 'analytics written')
  })

  test(`${runtimeName}: ratelimit-native/next withRateLimit`, T, async () => {
    assert.deepEqual(await run(`scenario=nextHandler&prefix=${fresh()}`), { statuses: [200, 200, 429] })
  })

  test(`${runtimeName}: analytics and protection (deny list) travel with the limit`, T, async () => {
    const prefix = fresh()
    await redisBatch(stack.redis, [['SADD', `${prefix}:denyList:all`, '192.0.2.66'], ['SET', `${prefix}:ipDenyListStatus`, 'disabled']])
    assert.deepEqual(await run(`scenario=protection&prefix=${prefix}`), { allowed: true, denied: false, reason: 'denyList', deniedValue: '192.0.2.66' })
    const events = (await redisBatch(stack.redis, [['KEYS', `${prefix}:events:*`]]))[0]
    assert.equal(events.length, 1, 'analytics written')
  })

  test(`${runtimeName}: dynamic limits`, T, async () => {
    assert.deepEqual(await run(`scenario=dynamic&prefix=${fresh()}`), { results: [true, true, false], dynamicLimit: 2 })
  })

  test(`${runtimeName}: a store that does not answer: the timeout answer, and failClosed's`, T, async () => {
    assert.deepEqual(await run('scenario=unreachable'), { open: [true, 'timeout'], closed: [false, 'timeout'] })
  })

  test(`${runtimeName}: what Redis rejects is an UpstashError "Command failed: …"`, T, async () => {
    const { message, ...outcome } = await run(`scenario=error&prefix=${fresh()}`)
    assert.deepEqual(outcome, { thrown: true, name: 'UpstashError', upstash: true })
    assert.match(message, /^Command failed: ERR value is not an integer or out of range/)
  })

  test(`${runtimeName}: MultiRegionRatelimit over two REST servers`, T, async () => {
    assert.deepEqual(await run(`scenario=multiRegion&prefix=${fresh()}`), { admitted: 5 })
  })

  test(`${runtimeName}: Redis.memory() keeps state in the isolate`, T, async () => {
    assert.deepEqual(await run('scenario=memory'), { admitted: 3 })
  })

  test(`${runtimeName}: a redis:// URL is refused with an error naming the runtime, without the password`, T, async () => {
    const outcome = await run('scenario=redisUrl')
    assert.equal(outcome.thrown, true)
    assert.match(outcome.message, new RegExp(`need the native engine \\(Redis over TCP\\), which cannot run on ${runtimeInMessage}`))
    assert.ok(!outcome.message.includes('secret'))
  })
}

describe("Vercel's Edge runtime (edge-runtime), entry index.edge.mjs", () => {
  let runtime
  before(async () => {
    const code = await bundle('index.edge.mjs', {
      format: 'iife',
      footer: 'addEventListener("fetch", (event) => event.respondWith(handle(event.request, globalThis.__testEnv, event)))',
      // Next.js and Vercel hand a `?module` import over as a WebAssembly.Module made by the host.
      wasmImport: (path) => (path.endsWith('?module') ? { path, namespace: 'host-wasm' } : undefined),
    })
    const bytes = readFileSync(WASM)
    runtime = new EdgeRuntime({
      initialCode: code,
      extend: (context) => {
        // The host's part, as Next.js does it: the module a `?module` import hands over is
        // compiled in the host's realm, not the sandbox's (so `instanceof` fails inside).
        context.__ratelimitWasmModule = new WebAssembly.Module(bytes)
        context.__testEnv = env
        return context
      },
    })
  })
  const run = async (query) => {
    const response = await runtime.dispatchFetch(`http://edge.test/?${query}`)
    const body = await response.json()
    assert.equal(response.status, 200, JSON.stringify(body))
    return body
  }
  scenarios('edge-runtime', run, 'the Edge runtime \\(edge-runtime\\)')
})

describe('Cloudflare Workers (workerd under Miniflare), entry index.workerd.mjs', () => {
  let mf
  before(async () => {
    const code = await bundle('index.workerd.mjs', {
      format: 'esm',
      footer: 'export default { fetch: (request, env, ctx) => handle(request, env, ctx) }',
      // wrangler leaves a .wasm import to workerd, which hands it over as a WebAssembly.Module.
      wasmImport: () => ({ path: './ratelimit_wasm_bg.wasm', external: true }),
    })
    mf = new Miniflare({
      modules: [
        { type: 'ESModule', path: 'worker.mjs', contents: code },
        { type: 'CompiledWasm', path: 'ratelimit_wasm_bg.wasm', contents: readFileSync(WASM) },
      ],
      compatibilityDate: '2025-06-01',
      bindings: env,
    })
    await mf.ready
  })
  after(async () => {
    await mf?.dispose()
  })
  const run = async (query) => {
    const response = await mf.dispatchFetch(`http://worker.test/?${query}`)
    const body = await response.json()
    assert.equal(response.status, 200, JSON.stringify(body))
    return body
  }
  scenarios('workerd', run, 'Cloudflare Workers')
})
