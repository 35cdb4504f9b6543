// Loading the package where it cannot work gives one clear error that says what to do.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { test } from 'node:test'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')

function loadWith(prelude) {
  const script = `${prelude}; try { require(${JSON.stringify(ROOT)}); console.log('LOADED') } catch (e) { console.log(e.code + ' ' + e.message) }`
  return spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 }).stdout.trim()
}

test('on an Edge runtime the error names it and says how to run on Node.js', () => {
  const out = loadWith("globalThis.EdgeRuntime = 'edge-runtime'")
  assert.match(out, /^ERR_RATELIMIT_NATIVE_RUNTIME ratelimit-native: cannot run on the Edge runtime \(edge-runtime\)/)
  assert.match(out, /runtime: "nodejs"/)
  assert.match(out, /serverExternalPackages/)
})

test('with a binary path that does not load, the error names the platform and the fix', () => {
  const out = loadWith("process.env.NAPI_RS_NATIVE_LIBRARY_PATH = '/nonexistent/ratelimit-native.node'")
  assert.match(out, /^ERR_RATELIMIT_NATIVE_BINARY ratelimit-native: cannot load the native binary for linux-x64-(gnu|musl)/)
  assert.match(out, /To fix: point it at a ratelimit-native \.node file built for this platform, or unset it/)
})

test('on Node.js it loads', () => {
  assert.equal(loadWith(''), 'LOADED')
})
