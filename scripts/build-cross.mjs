#!/usr/bin/env node
// `npm run build:cross [-- <triple> ...]`: cross-builds release binaries of the addon on a Linux
// x86_64 machine with `napi build -x` (cargo-zigbuild + zig), one target at a time.
//
//   default targets: x86_64-unknown-linux-musl aarch64-unknown-linux-musl aarch64-apple-darwin
//   output:          target/cross/<platform>/ratelimit-native.<platform>.node   (git-ignored)
//   targets:         any napi target; a glibc one may carry zig's version pin: x86_64-unknown-linux-gnu.2.17
//   options:         --out DIR      another output root (e.g. `--out npm` to fill npm/<platform>/)
//                    --dry-run      print the commands, run nothing
//
// It installs what it needs when missing: zig from PyPI (`python3 -m pip install ziglang`; zig on
// PATH is used when present, otherwise cargo-zigbuild finds `python3 -m ziglang` by itself), the
// Rust std of each target (`rustup target add`), and cargo-zigbuild (the napi CLI runs
// `cargo install cargo-zigbuild` on first use). It never writes into the repository root, so the
// host build (`ratelimit-native.<host>.node`, used by the tests) is never replaced.
//
// Not part of CI (.ci/run): real release binaries come from the GitHub workflow
// (.github/workflows/release.yml). This script proves that the cross targets compile and link
// (rustls + ring included) and gives binaries to inspect. See docs/RELEASING.md.

import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const BINARY = 'ratelimit-native'
const DEFAULT_TARGETS = ['x86_64-unknown-linux-musl', 'aarch64-unknown-linux-musl', 'aarch64-apple-darwin']
// The napi platform suffix of each target the package ships (package.json napi.targets).
const SUFFIX = {
  'x86_64-unknown-linux-gnu': 'linux-x64-gnu',
  'x86_64-unknown-linux-musl': 'linux-x64-musl',
  'aarch64-unknown-linux-gnu': 'linux-arm64-gnu',
  'aarch64-unknown-linux-musl': 'linux-arm64-musl',
  'x86_64-apple-darwin': 'darwin-x64',
  'aarch64-apple-darwin': 'darwin-arm64',
  'x86_64-pc-windows-msvc': 'win32-x64-msvc',
}

const log = (msg) => process.stderr.write(`[build:cross] ${msg}\n`)
// `x86_64-unknown-linux-gnu.2.17` → `x86_64-unknown-linux-gnu` (the suffix pins zig's glibc).
const baseTriple = (t) => t.split('.')[0]

function parseArgs(argv) {
  const opts = { targets: [], out: join(ROOT, 'target', 'cross'), dryRun: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--out') opts.out = resolve(ROOT, argv[++i])
    else if (a === '--dry-run') opts.dryRun = true
    else if (a === '--help' || a === '-h') {
      process.stdout.write(readUsage())
      process.exit(0)
    } else if (SUFFIX[baseTriple(a)]) opts.targets.push(a)
    else {
      log(`unknown target or option: ${a} (targets: ${Object.keys(SUFFIX).join(', ')})`)
      process.exit(2)
    }
  }
  if (opts.targets.length === 0) opts.targets = DEFAULT_TARGETS
  if (resolve(opts.out) === resolve(ROOT)) {
    log('refusing to write into the repository root (it holds the host build); pick another --out')
    process.exit(2)
  }
  return opts
}

function readUsage() {
  return `usage: npm run build:cross [-- [--out DIR] [--dry-run] <triple>...]\n` +
    `default targets: ${DEFAULT_TARGETS.join(' ')}\n`
}

function capture(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : null
}

function run(cmd, args, opts, env = process.env) {
  log(`$ ${cmd} ${args.join(' ')}`)
  if (opts.dryRun) return 0
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit', env })
  if (r.error) throw r.error
  return r.status
}

// Like run(), but streams the output through and keeps it, to classify a failure.
function runCaptured(cmd, args, opts, env) {
  log(`$ ${cmd} ${args.join(' ')}`)
  if (opts.dryRun) return Promise.resolve({ status: 0, output: '' })
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['inherit', 'pipe', 'pipe'] })
    let output = ''
    const keep = (chunk) => {
      output = (output + chunk).slice(-1024 * 1024)
    }
    child.stdout.on('data', (c) => {
      process.stdout.write(c)
      keep(c)
    })
    child.stderr.on('data', (c) => {
      process.stderr.write(c)
      keep(c)
    })
    child.on('error', reject)
    child.on('close', (status) => resolvePromise({ status, output }))
  })
}

function hostTriple() {
  return /^host: (\S+)$/m.exec(capture('rustc', ['-vV']) ?? '')?.[1]
}

function ensureZig(opts) {
  const onPath = capture('zig', ['version'])
  if (onPath) return `zig ${onPath} (PATH)`
  const fromPip = capture('python3', ['-m', 'ziglang', 'version'])
  if (fromPip) return `zig ${fromPip} (python3 -m ziglang)`
  log('zig not found: installing it from PyPI (ziglang)')
  if (run('python3', ['-m', 'pip', 'install', 'ziglang'], opts) !== 0) {
    throw new Error('could not install zig: run `python3 -m pip install ziglang` (or put zig on PATH) and retry')
  }
  return opts.dryRun ? 'zig (to be installed)' : `zig ${capture('python3', ['-m', 'ziglang', 'version'])} (python3 -m ziglang)`
}

function ensureRustTargets(targets, opts) {
  const installed = new Set((capture('rustup', ['target', 'list', '--installed']) ?? '').split('\n'))
  const missing = [...new Set(targets.map(baseTriple))].filter((t) => !installed.has(t))
  if (missing.length && run('rustup', ['target', 'add', ...missing], opts) !== 0) {
    throw new Error(`rustup target add ${missing.join(' ')} failed`)
  }
}

function describe(file) {
  const info = { file: relative(ROOT, file), bytes: statSync(file).size, file_output: capture('file', ['-b', file]) }
  const dyn = capture('readelf', ['-d', '--wide', file])
  if (dyn) info.needed = [...dyn.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1])
  const dynsyms = capture('readelf', ['--dyn-syms', '--wide', file])
  if (dynsyms) info.exports_napi_register_module_v1 = /\bnapi_register_module_v1\b/.test(dynsyms)
  if (dynsyms) {
    const glibc = [...new Set([...dynsyms.matchAll(/GLIBC_([0-9.]+)/g)].map((m) => m[1]))]
    glibc.sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))
    if (glibc.length) info.glibc_floor = glibc.at(-1)
  }
  return info
}

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  if (process.platform !== 'linux') log(`warning: written for a Linux host, this is ${process.platform}`)
  const started = Date.now()
  log(ensureZig(opts))
  ensureRustTargets(opts.targets, opts)
  const napi = join(ROOT, 'node_modules', '.bin', 'napi')
  if (!existsSync(napi)) throw new Error('node_modules/.bin/napi is missing: run `npm install` first')

  const results = []
  for (const triple of opts.targets) {
    const suffix = SUFFIX[baseTriple(triple)]
    const outDir = join(opts.out, suffix)
    if (!opts.dryRun) mkdirSync(outDir, { recursive: true })
    const env = { ...process.env }
    // macOS floor: 10.13 for x64 (the napi-rs template's value), 11.0 for arm64 (the first macOS
    // on Apple Silicon). zig needs a valid one: with aarch64-macos.10.13 it provides no libc
    // headers and ring's C code fails on 'TargetConditionals.h' file not found.
    if (triple.endsWith('apple-darwin')) env.MACOSX_DEPLOYMENT_TARGET ??= triple.startsWith('aarch64') ? '11.0' : '10.13'
    const t0 = Date.now()
    const args = ['build', '--platform', '--release', '-x', '--target', triple, '--output-dir', outDir, '--no-js', '--dts', 'native.d.cts']
    // The host's own triple built with zig gets its own cargo target dir, so that it never
    // invalidates the regular host build in target/<host triple>/ (other linker and C compiler).
    if (baseTriple(triple) === hostTriple()) args.push('--target-dir', join(ROOT, 'target', 'cross', 'cargo'))
    const { status, output } = await runCaptured(napi, args, opts, env)
    const seconds = Math.round((Date.now() - t0) / 1000)
    const file = join(outDir, `${BINARY}.${suffix}.node`)
    if (opts.dryRun) continue
    if (status === 0 && existsSync(file)) {
      results.push({ target: triple, ok: true, seconds, ...describe(file) })
    } else if (triple.endsWith('apple-darwin') && !env.SDKROOT && /unable to find system framework/.test(output)) {
      // Everything compiled (ring's C and assembly included); only the final link failed, because
      // rustls-platform-verifier links the Security and CoreFoundation frameworks, which only a
      // macOS SDK provides. Not a code failure: macOS binaries are built on macOS runners.
      const frameworks = [...new Set([...output.matchAll(/unable to find system framework "(\w+)"/g)].map((m) => m[1]))]
      results.push({ target: triple, ok: true, linked: false, seconds, note: `compiled; not linked: the ${frameworks.join(' and ')} frameworks need a macOS SDK (set SDKROOT to one to link)` })
    } else {
      results.push({ target: triple, ok: false, seconds, exit: status })
    }
    log(`${triple}: ${status === 0 ? 'ok' : results.at(-1).ok ? 'compiled, not linked (no macOS SDK)' : `FAILED (exit ${status})`} in ${seconds}s`)
  }
  if (opts.dryRun) return 0

  const summary = { at: new Date().toISOString(), total_seconds: Math.round((Date.now() - started) / 1000), results }
  mkdirSync(opts.out, { recursive: true })
  // summary.json keeps the latest result of every target built so far (this run's first).
  const summaryPath = join(opts.out, 'summary.json')
  let previous = []
  try {
    previous = JSON.parse(readFileSync(summaryPath, 'utf8')).targets ?? []
  } catch {}
  const latest = [...results.map((r) => ({ ...r, at: summary.at })), ...previous.filter((p) => !results.some((r) => r.target === p.target))]
  writeFileSync(summaryPath, `${JSON.stringify({ ...summary, targets: latest }, null, 2)}\n`)
  process.stdout.write('\ntarget                          result   time   size       file\n')
  for (const r of results) {
    const built = r.ok && r.linked !== false
    const size = built ? `${(r.bytes / 1048576).toFixed(2)} MiB` : '-'
    const result = !r.ok ? 'FAILED' : built ? 'ok' : 'no-link'
    process.stdout.write(
      `${r.target.padEnd(31)} ${result.padEnd(8)} ${`${r.seconds}s`.padEnd(6)} ${size.padEnd(10)} ${built ? r.file : ''}\n`,
    )
    if (built) {
      process.stdout.write(`    ${r.file_output}\n`)
      if (r.needed) process.stdout.write(`    NEEDED: ${r.needed.join(', ')}${r.glibc_floor ? `; GLIBC floor ${r.glibc_floor}` : ''}; exports napi_register_module_v1: ${r.exports_napi_register_module_v1}\n`)
    } else if (r.note) process.stdout.write(`    ${r.note}\n`)
  }
  process.stdout.write(`summary: ${relative(ROOT, join(opts.out, 'summary.json'))}, total ${summary.total_seconds}s\n`)
  return results.every((r) => r.ok) ? 0 : 1
}

try {
  process.exitCode = await main()
} catch (err) {
  log(`failed: ${err.message}`)
  process.exitCode = 1
}
