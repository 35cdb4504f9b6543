#!/usr/bin/env node
// Runs the JavaScript test suites against a PREBUILT binary, with no Rust toolchain: used by the
// release workflow's test jobs (.github/workflows/release.yml) on each real host and container,
// after the build job's `ratelimit-native.<platform>.node` and the generated `native.cjs` /
// `native.d.cts` were downloaded into the repository root.
//
//   node scripts/test-prebuilt.mjs [--allow-no-redis]
//
// Unlike `npm test` it never builds (scripts/setup.mjs would), and it passes the test files to
// `node --test` one by one, which every Node version accepts (Node 22+ no longer expands a
// directory argument). Without redis-server on PATH it fails, unless --allow-no-redis is given:
// then the suites that need redis-server are skipped, and listed (used on Windows, where GitHub's
// runners have no redis-server).

import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const log = (msg) => process.stdout.write(`[test-prebuilt] ${msg}\n`)
const allowNoRedis = process.argv.includes('--allow-no-redis')

function suffix() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const glibc = Boolean(process.report.getReport().header.glibcVersionRuntime)
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

function onPath(cmd) {
  const probe = process.platform === 'win32' ? ['where', [cmd]] : ['sh', ['-c', `command -v ${cmd}`]]
  return spawnSync(probe[0], probe[1], { stdio: 'ignore' }).status === 0
}

const platform = suffix()
const binary = join(ROOT, `ratelimit-native.${platform}.node`)
if (!existsSync(binary) || !existsSync(join(ROOT, 'native.cjs'))) {
  log(`missing ${relative(ROOT, binary)} or native.cjs: download the build artifacts into the repository root first`)
  process.exit(1)
}
// Load it once here, so that a binary that does not load on this host fails with one clear line.
require(join(ROOT, 'lib', 'native.js'))
log(`node ${process.version} on ${platform}: loaded ${relative(ROOT, binary)}`)

const dirs = ['__test__', join('examples', 'hono', 'test')]
let files = dirs
  .filter((d) => existsSync(join(ROOT, d)))
  .flatMap((d) => readdirSync(join(ROOT, d)).filter((f) => f.endsWith('.test.mjs')).map((f) => join(d, f)))
  .sort()

if (!onPath('redis-server')) {
  if (!allowNoRedis) {
    log('redis-server is not on PATH (install it, or pass --allow-no-redis to skip the suites that need it)')
    process.exit(1)
  }
  const needsRedis = (f) => /startRedis|startStack|redis-server/.test(readFileSync(join(ROOT, f), 'utf8'))
  const skipped = files.filter(needsRedis)
  files = files.filter((f) => !needsRedis(f))
  log(`no redis-server: skipping ${skipped.length} suites that need it: ${skipped.join(', ')}`)
}
if (files.length === 0) {
  log('no test files found')
  process.exit(1)
}

log(`running ${files.length} suites`)
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { cwd: ROOT, stdio: 'inherit' })
process.exit(r.status ?? 1)
