#!/usr/bin/env node
// Makes `npm test` and `npm run demo` work as the very first command after `git clone`:
// installs npm dependencies, installs redis-server when missing (apt-get, as root), and builds
// the native addon and the WebAssembly engine when missing or older than the Rust sources (the
// demo skips the latter: `--no-wasm`). Uses only Node built-ins, because nothing else is
// installed yet when it runs. Each step is skipped when already done.

import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { newestMtime } from './newest-mtime.mjs'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const PROFILE = process.env.RATELIMIT_NATIVE_PROFILE === 'debug' ? 'debug' : 'release'
const STAMP = join(ROOT, 'target', 'ratelimit-native-build.json')
const log = (msg) => process.stderr.write(`[setup] ${msg}\n`)

function run(cmd, args, options = {}) {
  log(`$ ${cmd} ${args.join(' ')}`)
  const result = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit', ...options })
  if (result.error) throw result.error
  if (result.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${result.status}`)
}

function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0
}

function ensureNodeVersion() {
  const major = Number(process.versions.node.split('.')[0])
  const minor = Number(process.versions.node.split('.')[1])
  if (major < 20 || (major === 20 && minor < 6)) throw new Error(`Node.js >= 20.6 is required, this is ${process.version}`)
}

function ensureNpmDependencies() {
  const marker = join(ROOT, 'node_modules', '.package-lock.json')
  const lock = join(ROOT, 'package-lock.json')
  const stale =
    !existsSync(marker) ||
    statSync(join(ROOT, 'package.json')).mtimeMs > statSync(marker).mtimeMs ||
    (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs)
  if (!stale) return
  // Not `npm ci`: the registry may not serve @napi-rs/cli's foreign-platform optional packages,
  // which makes every lockfile "incomplete" for `npm ci`; `npm install` follows the lockfile.
  run('npm', ['install', '--no-audit', '--no-fund'])
}

/** redis-server for the tests, and the openssl command line that makes their TLS certificates. */
function ensureRedisServer() {
  const missing = ['redis-server', 'openssl'].filter((tool) => !onPath(tool))
  if (missing.length === 0) return
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
  if (isRoot && onPath('apt-get')) {
    run('apt-get', ['update'])
    run('apt-get', ['install', '-y', ...missing], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
    return
  }
  throw new Error(`${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not installed; install ${missing.length > 1 ? 'them' : 'it'} (e.g. \`sudo apt-get install -y ${missing.join(' ')}\` or \`brew install ${missing.map((t) => (t === 'redis-server' ? 'redis' : t)).join(' ')}\`) and run again`)
}

function ensureNativeAddon() {
  if (!onPath('cargo')) {
    throw new Error('the Rust toolchain (cargo) is required to build the native addon: https://rustup.rs')
  }
  const addon = readdirSync(ROOT).find((f) => /^ratelimit-native\..+\.node$/.test(f))
  const sources = Math.max(
    ...['src', 'crates', 'Cargo.toml', 'Cargo.lock', 'build.rs'].map((p) => newestMtime(join(ROOT, p))),
  )
  let stamp = {}
  try {
    stamp = JSON.parse(readFileSync(STAMP, 'utf8'))
  } catch {}
  // The stamp names the binary it describes (size and mtime), so a binary built by hand with
  // another profile (e.g. `npm run build:debug`) is not mistaken for this profile's build.
  const binary = addon ? statSync(join(ROOT, addon)) : null
  const upToDate =
    binary &&
    existsSync(join(ROOT, 'native.cjs')) &&
    stamp.profile === PROFILE &&
    stamp.size === binary.size &&
    stamp.mtimeMs === binary.mtimeMs &&
    binary.mtimeMs >= sources
  if (upToDate) return
  const args = ['napi', 'build', '--platform', '--js', 'native.cjs', '--dts', 'native.d.cts']
  if (PROFILE === 'release') args.push('--release')
  run('npx', args)
  const built = readdirSync(ROOT).find((f) => /^ratelimit-native\..+\.node$/.test(f))
  const st = statSync(join(ROOT, built))
  mkdirSync(dirname(STAMP), { recursive: true })
  writeFileSync(STAMP, JSON.stringify({ profile: PROFILE, size: st.size, mtimeMs: st.mtimeMs, builtAt: new Date().toISOString() }))
}

try {
  ensureNodeVersion()
  ensureNpmDependencies()
  // The demo runs on the embedded memory store; only the tests need a redis-server.
  if (!process.argv.includes('--no-redis')) ensureRedisServer()
  ensureNativeAddon()
  // The WebAssembly engine (wasm/): what runs where the addon cannot (Edge, Workers, bundles).
  // The demo runs on the addon and does without it.
  if (!process.argv.includes('--no-wasm')) run(process.execPath, [join(ROOT, 'scripts', 'build-wasm.mjs'), '--if-stale'])
} catch (err) {
  log(`failed: ${err.message}`)
  process.exit(1)
}
