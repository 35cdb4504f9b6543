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
// macOS without an SDK: rustls-platform-verifier (via reqwest) links Apple's Security and
// CoreFoundation frameworks, and zig ships no frameworks. Unless SDKROOT names a real SDK, the
// script links against text stubs (.tbd: install name + exported symbol names, Apple's own format
// for SDK stubs) it writes from MACOS_FRAMEWORK_SYMBOLS, then checks with llvm-nm that every
// framework symbol the binary imports is bound to its framework (two-level namespace), exactly
// as an SDK link would bind it. A symbol missing from the list fails the build by name.
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

// The framework symbols the addon imports on macOS (all from rustls-platform-verifier through
// security-framework and core-foundation), by framework. Listed so that the stub frameworks bind
// them; verified after every link (see verifyMacosImports).
const MACOS_FRAMEWORK_SYMBOLS = {
  CoreFoundation: [
    '_CFArrayCreate', '_CFDataCreate', '_CFDateCreate', '_CFErrorCopyDescription', '_CFErrorGetCode',
    '_CFRelease', '_CFStringCreateWithBytes', '_CFStringGetBytes', '_CFStringGetCStringPtr',
    '_CFStringGetLength', '_kCFAbsoluteTimeIntervalSince1970', '_kCFAllocatorDefault', '_kCFTypeArrayCallBacks',
  ],
  Security: [
    '_SecCertificateCopySubjectSummary', '_SecCertificateCreateWithData', '_SecCopyErrorMessageString',
    '_SecPolicyCreateSSL', '_SecTrustCreateWithCertificates', '_SecTrustEvaluateWithError',
    '_SecTrustSetAnchorCertificates', '_SecTrustSetAnchorCertificatesOnly', '_SecTrustSetOCSPResponse',
    '_SecTrustSetVerifyDate',
  ],
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

/** Writes <dir>/<Name>.framework/<Name>.tbd for each framework and returns <dir>. */
function writeMacosFrameworkStubs(dir) {
  for (const [name, symbols] of Object.entries(MACOS_FRAMEWORK_SYMBOLS)) {
    const fw = join(dir, `${name}.framework`)
    mkdirSync(fw, { recursive: true })
    const targets = '[ arm64-macos, x86_64-macos ]'
    writeFileSync(
      join(fw, `${name}.tbd`),
      [
        '--- !tapi-tbd',
        'tbd-version:     4',
        `targets:         ${targets}`,
        `install-name:    '/System/Library/Frameworks/${name}.framework/Versions/A/${name}'`,
        'exports:',
        `  - targets:         ${targets}`,
        `    symbols:         [ ${symbols.join(', ')} ]`,
        '...',
        '',
      ].join('\n'),
    )
  }
  return dir
}

/** llvm-nm: the system one, else the Rust toolchain's (rustup component llvm-tools). */
function findLlvmNm(opts) {
  if (capture('llvm-nm', ['--version'])) return 'llvm-nm'
  const sysroot = capture('rustc', ['--print', 'sysroot'])
  const bundled = sysroot && join(sysroot, 'lib', 'rustlib', hostTriple(), 'bin', 'llvm-nm')
  if (bundled && !existsSync(bundled)) run('rustup', ['component', 'add', 'llvm-tools'], opts)
  return bundled && existsSync(bundled) ? bundled : null
}

/**
 * Every symbol the Mach-O binary imports must be bound to a library ("(from X)"), except N-API's
 * (napi-rs resolves those from the host process at load time). An unbound framework symbol
 * would be looked up in the flat namespace at run time; refuse that and name the symbol.
 */
function verifyMacosImports(file, nm) {
  const out = capture(nm, ['-m', '-u', file])
  if (out === null) return { ok: false, note: 'llvm-nm could not read the binary' }
  const unbound = []
  const from = {}
  for (const line of out.split('\n')) {
    const m = /external (\S+)(?: \(from (\S+)\))?/.exec(line)
    if (!m) continue
    if (m[2]) from[m[2]] = (from[m[2]] ?? 0) + 1
    else if (!m[1].startsWith('_napi_')) unbound.push(m[1])
  }
  if (unbound.length) return { ok: false, note: `imports not bound to a library (add them to MACOS_FRAMEWORK_SYMBOLS): ${unbound.join(' ')}` }
  const exported = /\b_napi_register_module_v1\b/.test(capture(nm, ['-g', '--defined-only', file]) ?? '')
  if (!exported) return { ok: false, note: 'napi_register_module_v1 is not exported' }
  return { ok: true, imports: from, exports_napi_register_module_v1: true }
}

function describe(file) {
  const info = { file: relative(ROOT, file), bytes: statSync(file).size, file_output: capture('file', ['-b', file]) }
  const dyn = capture('readelf', ['-d', '--wide', file])
  if (dyn) info.needed = [...dyn.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1])
  const dylibs = info.file_output?.startsWith('Mach-O') ? capture('llvm-objdump', ['--macho', '--dylibs-used', file]) : null
  if (dylibs) info.dylibs = dylibs.split('\n').slice(1).map((l) => l.trim().replace(/ \(compatibility.*$/, ''))
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
    const apple = triple.endsWith('apple-darwin')
    if (apple) {
      env.MACOSX_DEPLOYMENT_TARGET ??= triple.startsWith('aarch64') ? '11.0' : '10.13'
      // The binary's own install name: a neutral @rpath one instead of this machine's build path.
      const linkArgs = [`-Wl,-install_name,@rpath/${BINARY}.${suffix}.node`]
      if (!env.SDKROOT && !opts.dryRun) linkArgs.push(`-F${writeMacosFrameworkStubs(join(ROOT, 'target', 'cross', 'macos-framework-stubs'))}`)
      const key = `CARGO_TARGET_${baseTriple(triple).toUpperCase().replaceAll('-', '_')}_RUSTFLAGS`
      env[key] = [env[key], ...linkArgs.map((a) => `-C link-arg=${a}`)].filter(Boolean).join(' ')
    }
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
      const result = { target: triple, ok: true, seconds, ...describe(file) }
      if (apple) {
        const nm = findLlvmNm(opts)
        const check = nm ? verifyMacosImports(file, nm) : { ok: false, note: 'llvm-nm not found (install llvm, or `rustup component add llvm-tools`)' }
        Object.assign(result, { ok: check.ok, linked_with: env.SDKROOT ? `SDK ${env.SDKROOT}` : 'framework stubs', ...check })
      }
      results.push(result)
    } else {
      results.push({ target: triple, ok: false, seconds, exit: status })
    }
    log(`${triple}: ${results.at(-1).ok ? 'ok' : `FAILED (exit ${status})`} in ${seconds}s`)
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
    const built = r.bytes !== undefined
    const size = built ? `${(r.bytes / 1048576).toFixed(2)} MiB` : '-'
    const result = r.ok ? 'ok' : 'FAILED'
    process.stdout.write(
      `${r.target.padEnd(31)} ${result.padEnd(8)} ${`${r.seconds}s`.padEnd(6)} ${size.padEnd(10)} ${built ? r.file : ''}\n`,
    )
    if (built) {
      process.stdout.write(`    ${r.file_output}\n`)
      if (r.needed) process.stdout.write(`    NEEDED: ${r.needed.join(', ')}${r.glibc_floor ? `; GLIBC floor ${r.glibc_floor}` : ''}; exports napi_register_module_v1: ${r.exports_napi_register_module_v1}\n`)
      if (r.dylibs) process.stdout.write(`    dylibs: ${r.dylibs.join(', ')}\n`)
      if (r.imports) process.stdout.write(`    imports bound by library: ${Object.entries(r.imports).map(([lib, n]) => `${lib} ${n}`).join(', ')} (linked with ${r.linked_with}); exports napi_register_module_v1: ${r.exports_napi_register_module_v1}\n`)
    }
    if (r.note) process.stdout.write(`    ${r.note}\n`)
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
