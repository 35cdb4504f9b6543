#!/usr/bin/env node
// `npm run test:pack`: tests the package as users get it from the registry.
//
//  1. npm/<platform>/ package.json and README.md match what `napi create-npm-dirs` generates
//     from package.json, and the `napi prepublish -t npm` flow (run on a scratch copy, without
//     publishing) fills the root's optionalDependencies with every platform package;
//  2. `npm pack` of the root package and of the host's platform package (the freshly built host
//     `.node` is copied into npm/<platform>/ first): their file lists hold no tests, sources,
//     Cargo files or build junk, and their sizes are sensible (printed; limits below);
//  3. both tarballs are installed into a fresh project under the OS temp dir, which cannot see
//     this source tree (no file: links, its own node_modules), and there:
//     - `limit()` against the memory store (`Redis.memory()`), from CommonJS and ESM, and a
//       TypeScript type check against the installed `index.d.ts`;
//     - `npx ratelimit-native serve` started from the INSTALLED package in front of a throwaway
//       redis-server with a password, then `limit()` through `new Redis({ url, token })`;
//     - the loader's error when the platform package is missing or its binary is broken.
//
// Needs a release build of the host addon in the repository root (`npm run build`, or `npm test`
// which builds it) and redis-server. Bounded in time (PACK_TEST_TIMEOUT_MS, default 240 s); all
// processes and temp dirs it creates are removed at the end, also on failure.

import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
const BINARY = PKG.napi.binaryName
const LIMITS = { root: 1024 * 1024, platform: 20 * 1024 * 1024 } // unpacked bytes
const TIMEOUT_MS = Number(process.env.PACK_TEST_TIMEOUT_MS || 240_000)

const started = Date.now()
const children = new Set()
const tempDirs = []
let passed = 0
let failed = 0

const say = (msg) => process.stdout.write(`${msg}\n`)
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`

function check(name, ok, detail = '') {
  if (ok) passed++
  else failed++
  say(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ` — ${detail}` : ''}`)
  return ok
}

// Stops the run; `counted` when the failure was already counted by check().
class Fatal extends Error {
  constructor(message, counted = false) {
    super(message)
    this.counted = counted
  }
}
function must(name, ok, detail) {
  if (!check(name, ok, detail)) throw new Fatal(`${name}${detail ? `: ${detail}` : ''}`, true)
}

function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  tempDirs.push(dir)
  return dir
}

// A clean environment for commands run in the scratch project: nothing that could point module
// resolution or the loader back at this tree, and the project's own npm cache settings.
function cleanEnv(extra = {}) {
  const env = { ...process.env, ...extra }
  for (const k of Object.keys(env)) {
    if (k === 'NODE_PATH' || k.startsWith('NAPI_RS_') || k.startsWith('npm_')) delete env[k]
  }
  delete env.INIT_CWD
  return env
}

function run(cmd, args, { cwd = ROOT, env = process.env, timeout = 120_000 } = {}) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout, maxBuffer: 64 * 1024 * 1024 })
  if (r.error) throw r.error
  if (r.status !== 0) {
    throw new Fatal(`${cmd} ${args.join(' ')} (in ${cwd}) exited with ${r.status}\n${r.stdout}\n${r.stderr}`)
  }
  return r.stdout
}

function spawnTracked(cmd, args, options) {
  // Own process group, so that npx's node grandchild is stopped with it.
  const child = spawn(cmd, args, { ...options, detached: true })
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

function killTree(child, signal = 'SIGTERM') {
  try {
    process.kill(-child.pid, signal)
  } catch {}
}

async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  killTree(child, 'SIGTERM')
  const t = setTimeout(() => killTree(child, 'SIGKILL'), 3000)
  await exited
  clearTimeout(t)
}

function cleanup() {
  for (const child of children) killTree(child, 'SIGKILL')
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`
const mib = (n) => `${(n / 1048576).toFixed(2)} MiB`

// --- the host platform, spelled as napi does -------------------------------------------------

function hostSuffix() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const glibc = Boolean(process.report.getReport().header.glibcVersionRuntime)
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

// --- 1. npm/ dirs and the prepublish flow -----------------------------------------------------

function checkNpmDirs() {
  const scratch = tempDir('rln-npmdirs-')
  copyFileSync(join(ROOT, 'package.json'), join(scratch, 'package.json'))
  run(join(ROOT, 'node_modules', '.bin', 'napi'), ['create-npm-dirs', '--cwd', scratch])
  const generated = readdirSync(join(scratch, 'npm')).sort()
  const committed = readdirSync(join(ROOT, 'npm')).filter((d) => existsSync(join(ROOT, 'npm', d, 'package.json'))).sort()
  check('npm/ has one package per napi target', JSON.stringify(generated) === JSON.stringify(committed), `${committed.join(', ')}`)
  const stale = []
  for (const dir of generated) {
    for (const file of ['package.json', 'README.md']) {
      const want = readFileSync(join(scratch, 'npm', dir, file), 'utf8')
      const have = existsSync(join(ROOT, 'npm', dir, file)) ? readFileSync(join(ROOT, 'npm', dir, file), 'utf8') : null
      if (want !== have) stale.push(`npm/${dir}/${file}`)
    }
  }
  check('npm/*/package.json and README.md are `napi create-npm-dirs` output', stale.length === 0, stale.length ? `stale: ${stale.join(', ')} (run \`npx napi create-npm-dirs\`)` : '')

  // The publish flow on the scratch copy: placeholder binaries, no publishing, no GitHub release.
  for (const dir of generated) writeFileSync(join(scratch, 'npm', dir, `${BINARY}.${dir}.node`), 'placeholder')
  run(join(ROOT, 'node_modules', '.bin', 'napi'), ['prepublish', '-t', 'npm', '--cwd', scratch, '--skip-optional-publish', '--no-gh-release'])
  const after = JSON.parse(readFileSync(join(scratch, 'package.json'), 'utf8'))
  const want = Object.fromEntries(generated.map((d) => [`${PKG.name}-${d}`, PKG.version]))
  check(
    '`napi prepublish -t npm` fills optionalDependencies with every platform package',
    JSON.stringify(after.optionalDependencies ?? {}, Object.keys(want).sort()) === JSON.stringify(want, Object.keys(want).sort()),
    Object.keys(after.optionalDependencies ?? {}).join(', '),
  )
}

// --- 2. npm pack ----------------------------------------------------------------------------

const ROOT_ALLOWED = [
  /^package\.json$/,
  /^README\.md$/,
  /^LICENSE$/,
  /^index\.js$/,
  /^index\.(edge|workerd|browser)\.mjs$/,
  /^index\.d\.ts$/,
  /^native\.cjs$/,
  /^native\.d\.cts$/,
  /^lib\/(middleware\/)?[\w.-]+\.(js|mjs|d\.ts)$/,
  /^wasm\/(ratelimit_wasm_bg\.wasm|glue\.mjs|glue\.cjs|bytes\.cjs)$/,
  /^bin\/ratelimit-native\.js$/,
]
const JUNK = /(^|\/)(__test__|test|tests|e2e|bench|benchmark|examples|demo|scripts|docs|src|crates|target|npm|node_modules|\.github|\.ci)\/|\.(rs|node|log|tgz|map|orig|rej)$|(^|\/)(Cargo\.(toml|lock)|build\.rs|\.gitignore|\.DS_Store|package-lock\.json|rustfmt\.toml)$|\.test\.|\.spec\./

function pack(dir, dest) {
  const out = run('npm', ['pack', '--json', '--pack-destination', dest], { cwd: dir, env: cleanEnv() })
  const [info] = JSON.parse(out.slice(out.indexOf('[')))
  return { ...info, tarball: join(dest, info.filename), paths: info.files.map((f) => f.path).sort() }
}

function printPack(label, info, limit) {
  say(`\n${label}: ${info.filename}  packed ${kib(info.size)}  unpacked ${info.unpackedSize < 1048576 ? kib(info.unpackedSize) : mib(info.unpackedSize)} (limit ${mib(limit)})  ${info.entryCount} files`)
  for (const f of info.files) say(`    ${String(f.size).padStart(10)}  ${f.path}`)
}

function checkPacks(suffix, binarySource, dest) {
  const platDir = join(ROOT, 'npm', suffix)
  const nodeFile = `${BINARY}.${suffix}.node`
  must(`npm/${suffix} exists`, existsSync(join(platDir, 'package.json')))
  copyFileSync(binarySource, join(platDir, nodeFile))
  const fileOut = spawnSync('file', ['-b', join(platDir, nodeFile)], { encoding: 'utf8' }).stdout?.trim()
  const shown = binarySource.startsWith(ROOT) ? relative(ROOT, binarySource) : binarySource
  say(`binary: ${shown} → npm/${suffix}/${nodeFile}${fileOut ? `\n    ${fileOut}` : ''}`)

  const root = pack(ROOT, dest)
  const plat = pack(platDir, dest)
  printPack('root package', root, LIMITS.root)
  printPack('platform package', plat, LIMITS.platform)
  say('')

  const unexpected = root.paths.filter((p) => !ROOT_ALLOWED.some((re) => re.test(p)) || JUNK.test(p))
  check('root tarball holds only the runtime files', unexpected.length === 0, unexpected.length ? `unexpected: ${unexpected.join(', ')}` : '')
  const needed = ['package.json', 'index.js', 'index.edge.mjs', 'index.workerd.mjs', 'index.browser.mjs', 'index.d.ts', 'native.cjs', 'lib/native-addon.js', 'lib/wasm-engine.js', 'wasm/ratelimit_wasm_bg.wasm', 'wasm/glue.mjs', 'wasm/glue.cjs', 'wasm/bytes.cjs', 'bin/ratelimit-native.js', 'README.md', 'LICENSE']
  const missing = needed.filter((p) => !root.paths.includes(p))
  check('root tarball has the entry points, loader, types, bin, README and LICENSE', missing.length === 0, missing.length ? `missing: ${missing.join(', ')}` : '')
  check('root tarball has no native binary', !root.paths.some((p) => p.endsWith('.node')))
  check(`root tarball is under ${mib(LIMITS.root)} unpacked`, root.unpackedSize <= LIMITS.root, kib(root.unpackedSize))

  const platWant = ['README.md', nodeFile, 'package.json'].sort()
  check(`platform tarball holds exactly package.json, README.md, ${nodeFile}`, JSON.stringify(plat.paths) === JSON.stringify(platWant), plat.paths.join(', '))
  check(
    `platform tarball is under ${mib(LIMITS.platform)} unpacked`,
    plat.unpackedSize <= LIMITS.platform,
    `${mib(plat.unpackedSize)}${plat.unpackedSize > LIMITS.platform ? ' — a debug build? run `npm run build` (release) first' : ''}`,
  )
  return { root, plat }
}

// --- 3. the scratch project -----------------------------------------------------------------

const CJS_CHECK = `'use strict'
const { Ratelimit, Redis } = require('ratelimit-native')
const assert = require('node:assert')
;(async () => {
  const rl = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.slidingWindow(2, '10 s'), prefix: 'pack' })
  const got = []
  for (let i = 0; i < 3; i++) got.push(await rl.limit('user-1'))
  assert.deepStrictEqual(got.map((r) => r.success), [true, true, false])
  assert.deepStrictEqual(got.map((r) => r.remaining), [1, 0, 0])
  assert.strictEqual(got[0].limit, 2)
  // Everything came from this project's node_modules, nothing from the source tree.
  const loaded = Object.keys(require.cache)
  const nodeFiles = loaded.filter((f) => f.endsWith('.node'))
  assert.ok(loaded.every((f) => f.startsWith(__dirname)), 'a module outside the project was loaded: ' + loaded.filter((f) => !f.startsWith(__dirname)))
  assert.ok(nodeFiles.length === 1 && nodeFiles[0].includes('/node_modules/ratelimit-native-'), 'binary: ' + nodeFiles)
  console.log(JSON.stringify({ success: got.map((r) => r.success), binary: nodeFiles[0].slice(__dirname.length + 1) }))
})().catch((e) => { console.error(e); process.exit(1) })
`

const ESM_CHECK = `import { Ratelimit, Redis } from 'ratelimit-native'
import assert from 'node:assert'
const mode = process.argv[2]
const redis = mode === 'rest' ? new Redis({ url: process.env.REST_URL, token: process.env.REST_TOKEN }) : Redis.memory()
const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(3, '30 s'), prefix: 'packtest' })
const got = []
for (let i = 0; i < 4; i++) got.push(await rl.limit('ip-10.0.0.1'))
assert.deepStrictEqual(got.map((r) => r.success), [true, true, true, false])
assert.deepStrictEqual(got.map((r) => r.remaining), [2, 1, 0, 0])
assert.ok(got.every((r) => r.reset > Date.now()))
let keys = null
if (mode === 'rest') {
  // The limiter's state reached the real redis-server behind the REST server.
  const res = await fetch(process.env.REST_URL, { method: 'POST', headers: { authorization: 'Bearer ' + process.env.REST_TOKEN }, body: JSON.stringify(['KEYS', 'packtest:*']) })
  keys = (await res.json()).result
  assert.ok(Array.isArray(keys) && keys.length === 1 && keys[0].startsWith('packtest:ip-10.0.0.1'), 'keys: ' + JSON.stringify(keys))
  const bad = await fetch(process.env.REST_URL, { method: 'POST', headers: { authorization: 'Bearer wrong' }, body: '["PING"]' })
  assert.strictEqual(bad.status, 401)
}
console.log(JSON.stringify({ mode, success: got.map((r) => r.success), keys }))
`

const TS_CHECK = `import { Ratelimit, Redis } from 'ratelimit-native'
const rl = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.tokenBucket(5, '10 s', 10), analytics: false })
export async function handler(ip: string): Promise<number> {
  const { success, limit, remaining, reset }: { success: boolean; limit: number; remaining: number; reset: number } = await rl.limit(ip)
  return success ? remaining : reset - limit
}
`

async function freePort() {
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

function redisPing(port, password) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    const enc = (parts) => `*${parts.length}\r\n${parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join('')}`
    let data = ''
    const done = (ok) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.on('error', () => done(false))
    socket.on('connect', () => socket.write(enc(['AUTH', password]) + enc(['PING'])))
    socket.on('data', (c) => {
      data += c
      if (data.includes('+PONG')) done(true)
      else if (data.includes('-')) done(false)
    })
  })
}

async function startRedis() {
  if (spawnSync('sh', ['-c', 'command -v redis-server'], { stdio: 'ignore' }).status !== 0) {
    throw new Fatal('redis-server is not installed (`npm test` installs it, or `apt-get install redis-server`)')
  }
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort()
    const password = randomBytes(12).toString('hex')
    const dir = tempDir('rln-pack-redis-')
    const child = spawnTracked(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--requirepass', password, '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning'],
      { stdio: 'ignore' },
    )
    const deadline = Date.now() + 5000
    while (Date.now() < deadline && child.exitCode === null) {
      if (await redisPing(port, password)) return { child, port, url: `redis://:${password}@127.0.0.1:${port}` }
      await sleep(50)
    }
    await stopChild(child)
  }
  throw new Fatal('could not start redis-server')
}

async function startRestServer(app, redisUrl, token) {
  // `npx --no` runs the bin of the installed package and never downloads anything.
  const child = spawnTracked('npx', ['--no', '--', 'ratelimit-native', 'serve', '--port', '0', '--token', token, '--redis', redisUrl], {
    cwd: app,
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (c) => (out += c))
  child.stderr.on('data', (c) => (err += c))
  const deadline = Date.now() + 20_000
  while (Date.now() < deadline && child.exitCode === null) {
    const m = out.match(/listening on (http:\/\/\S+)/)
    if (m) return { child, url: m[1] }
    await sleep(50)
  }
  await stopChild(child)
  throw new Fatal(`\`npx ratelimit-native serve\` did not start (exit ${child.exitCode})\n${out}${err}`)
}

function node(app, args, env = {}) {
  const r = spawnSync(process.execPath, args, { cwd: app, env: cleanEnv(env), encoding: 'utf8', timeout: 60_000 })
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() }
}

async function checkInstalled(suffix, tarballs) {
  const app = join(tempDir('rln-pack-app-'), 'app')
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), `${JSON.stringify({ name: 'pack-test-app', version: '1.0.0', private: true }, null, 2)}\n`)
  const t0 = Date.now()
  run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs], { cwd: app, env: cleanEnv() })
  const installed = readdirSync(join(app, 'node_modules')).filter((d) => !d.startsWith('.')).sort()
  check(
    'tarballs install into a fresh project outside the source tree',
    installed.includes(PKG.name) && installed.includes(`${PKG.name}-${suffix}`) && !app.startsWith(ROOT),
    `${app}: node_modules/{${installed.join(', ')}} in ${((Date.now() - t0) / 1000).toFixed(1)}s`,
  )

  writeFileSync(join(app, 'check.cjs'), CJS_CHECK)
  writeFileSync(join(app, 'check.mjs'), ESM_CHECK)
  writeFileSync(join(app, 'check.ts'), TS_CHECK)

  let r = node(app, ['check.cjs'])
  check('CommonJS require + limit() on Redis.memory(), binary from the platform package', r.ok, r.out)
  r = node(app, ['check.mjs', 'memory'])
  check('ESM import + limit() on Redis.memory()', r.ok, r.out)

  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  if (existsSync(tsc)) {
    // The compiler comes from the source tree, the types it checks from the project's node_modules.
    r = node(app, [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', 'check.ts'])
    check('TypeScript: the installed index.d.ts type-checks a handler (tsc --strict, nodenext)', r.ok, r.out)
  }

  const redis = await startRedis()
  const token = randomBytes(8).toString('hex')
  const rest = await startRestServer(app, redis.url, token)
  check('`npx ratelimit-native serve` starts from the installed package', true, `${rest.url} → redis-server :${redis.port} (password)`)
  r = node(app, ['check.mjs', 'rest'], { REST_URL: rest.url, REST_TOKEN: token })
  check('limit() through new Redis({ url, token }) against the REST server', r.ok, r.out)
  await stopChild(rest.child)
  await stopChild(redis.child)

  await checkWasmEntries(app)

  // Without the platform package, then with a broken binary: the WebAssembly engine runs and one
  // warning names the platform and the fix; RATELIMIT_NATIVE_ENGINE=native throws that error.
  const load = "try { const m = require('ratelimit-native'); console.log('LOADED ' + m.engine) } catch (e) { console.log(e.code + ' ' + e.message) }"
  const platPath = join(app, 'node_modules', `${PKG.name}-${suffix}`)
  const aside = `${platPath}.aside`
  renameSync(platPath, aside)
  try {
    r = node(app, ['-e', load])
    check(
      'without the platform package: the WebAssembly engine, and one warning naming the platform package and the fix',
      r.out.includes('LOADED wasm') && r.out.includes(`${PKG.name}-${suffix}`) && r.out.includes('npm install'),
      r.out,
    )
    r = node(app, ['-e', load], { RATELIMIT_NATIVE_ENGINE: 'native' })
    check(
      'without the platform package, RATELIMIT_NATIVE_ENGINE=native: one clear error naming the platform and the fix',
      r.out.startsWith('ERR_RATELIMIT_NATIVE_BINARY') && r.out.includes(`${PKG.name}-${suffix}`) && r.out.includes('npm install'),
      r.out,
    )
  } finally {
    renameSync(aside, platPath)
  }
  const nodePath = join(platPath, `${BINARY}.${suffix}.node`)
  const saved = readFileSync(nodePath)
  writeFileSync(nodePath, 'not a shared library')
  r = node(app, ['-e', load], { RATELIMIT_NATIVE_ENGINE: 'native' })
  writeFileSync(nodePath, saved)
  check('with a broken binary: the error says the package is installed but failed to load', r.out.includes('installed but its binary failed to load'), r.out)
}

const WASM_CHECK = `import { Ratelimit, Redis, engine } from 'ratelimit-native'
export async function check() {
  const rl = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.fixedWindow(2, '30 s'), prefix: 'packtest' })
  const got = []
  for (let i = 0; i < 3; i++) got.push((await rl.limit('x')).success)
  return { engine, got }
}
`

/**
 * The installed package under the Edge, Workers and browser export conditions, bundled by
 * esbuild as Next.js, wrangler and a web app's bundler resolve it, then run: edge-light in
 * Vercel's edge-runtime, workerd in a real workerd (Miniflare), browser in Deno (no browser can
 * be installed here), each limiting on the memory store.
 */
async function checkWasmEntries(app) {
  const { build } = await import('esbuild')
  writeFileSync(join(app, 'wasm-check.mjs'), WASM_CHECK)
  const wasm = readFileSync(join(app, 'node_modules', PKG.name, 'wasm', 'ratelimit_wasm_bg.wasm'))
  const bundle = async (condition, footer, wasmImport) => {
    const result = await build({
      stdin: { contents: `import { check } from './wasm-check.mjs'\n${footer}`, resolveDir: app },
      bundle: true,
      write: false,
      metafile: true,
      format: condition === 'edge-light' ? 'iife' : 'esm',
      platform: 'neutral',
      mainFields: ['module', 'main'],
      conditions: [condition],
      logLevel: 'silent',
      plugins: [
        {
          name: 'wasm',
          setup: (b) => {
            b.onResolve({ filter: /\.wasm(\?module)?$/ }, wasmImport)
            // Next.js and Vercel hand a `?module` import over as a module the host compiled.
            b.onLoad({ filter: /.*/, namespace: 'host' }, () => ({ contents: 'export default globalThis.__wasm', loader: 'js' }))
          },
        },
      ],
    })
    return { code: result.outputFiles[0].text, inputs: Object.keys(result.metafile.inputs) }
  }
  const expected = JSON.stringify({ engine: 'wasm', got: [true, true, false] })

  const edge = await bundle('edge-light', 'addEventListener("fetch", (e) => e.respondWith(check().then((r) => Response.json(r))))', (args) => ({
    path: args.path,
    namespace: 'host',
  }))
  const entryOf = (inputs) => inputs.find((p) => /node_modules\/[^/]+\/index\.[\w.]+$/.test(p))?.replace(/^.*node_modules\//, '') ?? 'no entry'
  check('edge-light resolves the installed index.edge.mjs', entryOf(edge.inputs) === `${PKG.name}/index.edge.mjs`, entryOf(edge.inputs))
  check('edge-light bundle holds neither the addon loader nor node:net', !edge.inputs.some((p) => /native\.cjs|native-addon|wire\.js|bytes\.cjs/.test(p)))
  const { EdgeRuntime } = await import('edge-runtime')
  const runtime = new EdgeRuntime({ initialCode: edge.code, extend: (context) => Object.assign(context, { __wasm: new WebAssembly.Module(wasm) }) })
  let answer = await runtime.dispatchFetch('http://edge.test/').then((res) => res.text()).catch((e) => String(e))
  check('edge-light: limit() on Redis.memory() in edge-runtime', answer === expected, answer)

  const worker = await bundle('workerd', 'export default { fetch: () => check().then((r) => Response.json(r)) }', () => ({ path: './ratelimit_wasm_bg.wasm', external: true }))
  check('workerd resolves the installed index.workerd.mjs', entryOf(worker.inputs) === `${PKG.name}/index.workerd.mjs`, entryOf(worker.inputs))
  const { Miniflare } = await import('miniflare')
  const mf = new Miniflare({
    modules: [
      { type: 'ESModule', path: 'worker.mjs', contents: worker.code },
      { type: 'CompiledWasm', path: 'ratelimit_wasm_bg.wasm', contents: wasm },
    ],
    compatibilityDate: '2025-06-01',
  })
  try {
    answer = await mf.dispatchFetch('http://worker.test/').then((res) => res.text()).catch((e) => String(e))
  } finally {
    await mf.dispose()
  }
  check('workerd: limit() on Redis.memory() in workerd (Miniflare)', answer === expected, answer)

  // A web app's bundler: the module's bytes are in the bundle, compiled with top-level await.
  const browser = await bundle('browser', 'console.log(JSON.stringify(await check()))', () => ({ errors: [{ text: 'the browser entry imports no .wasm file' }] }))
  check('browser resolves the installed index.browser.mjs', entryOf(browser.inputs) === `${PKG.name}/index.browser.mjs`, entryOf(browser.inputs))
  writeFileSync(join(app, 'browser-bundle.mjs'), browser.code)
  const deno = spawnSync(join(ROOT, 'node_modules', '.bin', 'deno'), ['run', '--quiet', join(app, 'browser-bundle.mjs')], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
  })
  answer = deno.status === 0 ? deno.stdout.trim() : `exit ${deno.status}: ${deno.stderr.trim().split('\n').slice(-3).join(' | ')}`
  check('browser: limit() on Redis.memory() in a browser-like runtime (Deno, no permissions)', answer === expected, answer)
}

// --- main -----------------------------------------------------------------------------------

async function main() {
  const suffix = hostSuffix()
  const binary = process.env.PACK_TEST_BINARY || join(ROOT, `${BINARY}.${suffix}.node`)
  say(`== test:pack (${PKG.name}@${PKG.version}, host ${suffix}, node ${process.version})`)
  const built = existsSync(binary) && existsSync(join(ROOT, 'native.cjs'))
  const shown = binary.startsWith(ROOT) ? relative(ROOT, binary) : binary
  must('host binary is built', built, built ? shown : `${shown} or native.cjs is missing (run \`npm run build\`)`)
  must(`host platform ${suffix} is a napi target`, existsSync(join(ROOT, 'npm', suffix, 'package.json')))

  checkNpmDirs()
  const dest = tempDir('rln-pack-tgz-')
  const { root, plat } = checkPacks(suffix, binary, dest)
  await checkInstalled(suffix, [root.tarball, plat.tarball])
}

const watchdog = setTimeout(() => {
  say(`FAIL test:pack did not finish within ${TIMEOUT_MS / 1000}s`)
  cleanup()
  process.exit(1)
}, TIMEOUT_MS)

try {
  await main()
} catch (err) {
  if (!err.counted) failed++
  say(`FAIL ${err instanceof Fatal ? err.message : err.stack}`)
} finally {
  clearTimeout(watchdog)
  cleanup()
}
say(`\ntest:pack finished in ${elapsed()}`)
say(`pack: ${passed} passed, ${failed} failed`)
process.exitCode = failed === 0 ? 0 : 1
