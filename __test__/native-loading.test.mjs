// Where the native addon cannot be loaded, the package still loads: the WebAssembly engine takes
// over and says so once (why, and how to get the addon); RATELIMIT_NATIVE_ENGINE=native insists
// on the addon and throws the one clear error that says what to do.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { test } from 'node:test'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')

/** Loads the package in a fresh process after `prelude`, limits once on the memory store. */
function loadWith(prelude, env = {}) {
  const script = `${prelude}; try { const m = require(${JSON.stringify(ROOT)});
    const rl = new m.Ratelimit({ redis: m.Redis.memory(), limiter: m.Ratelimit.fixedWindow(1, '10 s') });
    rl.limit('x').then((r) => console.log('LOADED ' + m.engine + ' ' + r.success)) } catch (e) { console.log(e.code + ' ' + e.message) }`
  const { RATELIMIT_NATIVE_ENGINE, ...rest } = process.env
  const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000, env: { ...rest, ...env } })
  return { out: result.stdout.trim(), warnings: result.stderr.trim().split('\n').filter(Boolean) }
}

test('on Node.js it loads the native engine, without a warning', () => {
  const { out, warnings } = loadWith('')
  assert.equal(out, 'LOADED native true')
  assert.deepEqual(warnings, [])
})

test('with a binary that does not load, the WebAssembly engine runs and one warning names the platform and both fixes', () => {
  const { out, warnings } = loadWith("process.env.NAPI_RS_NATIVE_LIBRARY_PATH = '/nonexistent/ratelimit-native.node'")
  assert.equal(out, 'LOADED wasm true')
  assert.equal(warnings.length, 1, warnings.join('\n'))
  assert.match(warnings[0], /^ratelimit-native: running on the WebAssembly engine: cannot load the native binary for linux-x64-(gnu|musl)/)
  assert.match(warnings[0], /serverExternalPackages/)
  assert.match(warnings[0], /RATELIMIT_NATIVE_ENGINE=wasm/)
})

test('on an Edge-like global the addon is not tried; the WebAssembly engine runs and the warning names the runtime', () => {
  const { out, warnings } = loadWith("globalThis.EdgeRuntime = 'edge-runtime'")
  assert.equal(out, 'LOADED wasm true')
  assert.equal(warnings.length, 1, warnings.join('\n'))
  assert.match(warnings[0], /cannot load the native addon on the Edge runtime \(edge-runtime\)/)
})

test('RATELIMIT_NATIVE_ENGINE=wasm picks the WebAssembly engine without a warning', () => {
  const { out, warnings } = loadWith('', { RATELIMIT_NATIVE_ENGINE: 'wasm' })
  assert.equal(out, 'LOADED wasm true')
  assert.deepEqual(warnings, [])
})

test('RATELIMIT_NATIVE_ENGINE=native throws the load error that says what to do', () => {
  const { out } = loadWith("process.env.NAPI_RS_NATIVE_LIBRARY_PATH = '/nonexistent/ratelimit-native.node'", { RATELIMIT_NATIVE_ENGINE: 'native' })
  assert.match(out, /^ERR_RATELIMIT_NATIVE_BINARY ratelimit-native: cannot load the native binary for linux-x64-(gnu|musl)/)
  assert.match(out, /To fix: point it at a ratelimit-native \.node file built for this platform, or unset it/)
})

test('an unknown RATELIMIT_NATIVE_ENGINE is refused with the values it takes', () => {
  const { out } = loadWith('', { RATELIMIT_NATIVE_ENGINE: 'fast' })
  assert.match(out, /RATELIMIT_NATIVE_ENGINE must be "native" or "wasm", got "fast"/)
})
