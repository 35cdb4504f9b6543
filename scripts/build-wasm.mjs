#!/usr/bin/env node
// Builds the WebAssembly engine into wasm/ (git-ignored, shipped in the package):
//   wasm/ratelimit_wasm_bg.wasm   the module (crates/ratelimit-wasm, wasm-bindgen, wasm-opt -Os),
//                                 imported statically by the Edge and Workers entries
//   wasm/glue.mjs, wasm/glue.cjs  wasm-bindgen's JS glue (`--target web`), cut to what the
//                                 facade uses by esbuild: no default loader, so no
//                                 `new URL(…, import.meta.url)` for bundlers to chase
//   wasm/bytes.cjs                the module's bytes (base64), for Node.js when the addon cannot
//                                 be loaded (a bundle that could not take the .node file)
// Installs what it needs when missing: the wasm32-unknown-unknown target (rustup, else Debian's
// rustc-web toolchain) and the wasm-bindgen CLI at the version of the wasm-bindgen crate. `--if-stale`: only when the Rust
// sources are newer than the last build.

import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { newestMtime } from './newest-mtime.mjs'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const OUT = join(ROOT, 'wasm')
const STAMP = join(OUT, '.build-stamp.json')
const TARGET = 'wasm32-unknown-unknown'
const log = (msg) => process.stderr.write(`[build-wasm] ${msg}\n`)

function run(cmd, args, options = {}) {
  log(`$ ${cmd} ${args.join(' ')}`)
  const result = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit', ...options })
  if (result.error) throw result.error
  if (result.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${result.status}`)
}

function output(cmd, args) {
  const result = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8' })
  return result.status === 0 ? result.stdout.trim() : null
}

/** The wasm-bindgen crate version the lockfile pins: the CLI must be the same version. */
function bindgenVersion() {
  const lock = readFileSync(join(ROOT, 'Cargo.lock'), 'utf8')
  const match = /name = "wasm-bindgen"\nversion = "([^"]+)"/.exec(lock)
  if (!match) throw new Error('wasm-bindgen is not in Cargo.lock')
  return match[1]
}

/**
 * How to build for wasm32: rustup's toolchain with the target added, or, where rustup cannot
 * add it (no rustup, the target cannot be downloaded) or RATELIMIT_NATIVE_WASM_TOOLCHAIN=debian
 * asks for it, Debian's `rustc-web` toolchain (installed with apt-get when missing), which
 * rebuilds std for the target from its sources. Returns `{ cargo, args, env }` for the build.
 */
/** Where a symlink leads in the end, or '' when it leads nowhere. */
function realpathOr(path) {
  try {
    return realpathSync(path)
  } catch {
    return ''
  }
}

function wasmToolchain() {
  if (process.env.RATELIMIT_NATIVE_WASM_TOOLCHAIN !== 'debian') {
    const installed = output('rustup', ['target', 'list', '--installed'])
    if (installed !== null && installed.split('\n').includes(TARGET)) return { cargo: 'cargo', args: [], env: process.env }
    if (installed !== null) {
      const added = spawnSync('rustup', ['target', 'add', TARGET], { cwd: ROOT, stdio: 'inherit' })
      if (added.status === 0) return { cargo: 'cargo', args: [], env: process.env }
    }
    log(installed === null ? 'rustup is not installed' : `rustup could not add ${TARGET}`)
  }
  log("building with Debian's rustc-web toolchain instead")
  const debianRustc = '/usr/bin/rustc'
  if (!existsSync(debianRustc) || !existsSync('/usr/lib/rustlib/src/rust/library')) {
    if (output('apt-get', ['--version']) === null) throw new Error(`cannot build for ${TARGET}: rustup cannot add the target and apt-get is not available for Debian's rustc-web`)
    run('apt-get', ['update'])
    run('apt-get', ['install', '-y', 'rustc-web', 'cargo-web', 'rust-web-src', 'rust-web-llvm'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  }
  // The wasm linker: /usr/bin/rust-lld links to an LLVM lld (e.g. lld-22), a package of its own.
  if (!existsSync('/usr/bin/rust-lld') || !existsSync(realpathOr('/usr/bin/rust-lld'))) {
    const lld = readlinkSync('/usr/bin/rust-lld')
    if (!/^lld-\d+$/.test(lld)) throw new Error(`cannot tell which package provides /usr/bin/rust-lld (→ ${lld})`)
    run('apt-get', ['install', '-y', lld], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  }
  // RUSTC_BOOTSTRAP lets this stable toolchain rebuild std (-Zbuild-std); it is set for this
  // one build only.
  return {
    cargo: '/usr/bin/cargo',
    args: ['-Zbuild-std=std,panic_abort'],
    env: { ...process.env, RUSTC: debianRustc, RUSTC_BOOTSTRAP: '1', RUSTUP_TOOLCHAIN: '' },
  }
}

function ensureBindgen(version) {
  const seen = output('wasm-bindgen', ['--version'])
  if (seen === `wasm-bindgen ${version}`) return 'wasm-bindgen'
  // `--locked` is not used: the registry here lacks one of the CLI's pinned dependencies.
  run('cargo', ['install', 'wasm-bindgen-cli', '--version', version])
  return 'wasm-bindgen'
}

/**
 * Next.js hands an Edge bundle's `?module` import over as a WebAssembly.Module made in the
 * host's realm, which fails the glue's `instanceof WebAssembly.Module` (it then tries to compile
 * the module object as bytes: "Argument 0 must be a buffer source"). A module is recognised by
 * its tag as well. The glue is generated by the pinned wasm-bindgen; if its text changes, this
 * stops the build instead of shipping glue that breaks on Edge.
 */
function acceptModulesFromOtherRealms(file) {
  const check = 'if (!(module instanceof WebAssembly.Module)) {'
  const text = readFileSync(file, 'utf8')
  const count = text.split(check).length - 1
  if (count !== 1) throw new Error(`expected the glue's module check once in ${file}, found it ${count} times`)
  writeFileSync(file, text.replace(check, "if (!(module instanceof WebAssembly.Module) && Object.prototype.toString.call(module) !== '[object WebAssembly.Module]') {"))
}

function build() {
  const toolchain = wasmToolchain()
  const bindgen = ensureBindgen(bindgenVersion())
  run(toolchain.cargo, ['build', '-p', 'ratelimit-wasm', '--target', TARGET, '--profile', 'wasm', ...toolchain.args], { env: toolchain.env })
  const raw = join(ROOT, 'target', TARGET, 'wasm', 'ratelimit_wasm.wasm')
  const work = mkdtempSync(join(tmpdir(), 'rln-wasm-'))
  try {
    run(bindgen, ['--target', 'web', '--out-dir', work, '--out-name', 'ratelimit_wasm', raw])
    acceptModulesFromOtherRealms(join(work, 'ratelimit_wasm.js'))
    mkdirSync(OUT, { recursive: true })
    const wasm = join(OUT, 'ratelimit_wasm_bg.wasm')
    run(join(ROOT, 'node_modules', '.bin', 'wasm-opt'), ['-Os', '--enable-bulk-memory', '--enable-nontrapping-float-to-int', '--enable-sign-ext', '--enable-mutable-globals', join(work, 'ratelimit_wasm_bg.wasm'), '-o', wasm])
    // Only what the facade imports, so the glue's default loader (and its import.meta.url) goes.
    const entry = join(work, 'entry.mjs')
    writeFileSync(
      entry,
      "export { initSync, NativeAlgorithm, NativeMultiRegionAlgorithm, NativeStore, knownScriptSource, limitBatchBody, limitBatchOutcomes, memoryLimit, memoryLimitBatch, parseDuration, seedHashKeys, stockScript } from './ratelimit_wasm.js'\n",
    )
    const esbuild = join(ROOT, 'node_modules', '.bin', 'esbuild')
    const banner = '// Generated by scripts/build-wasm.mjs from wasm-bindgen\'s glue (crates/ratelimit-wasm). Do not edit.'
    for (const format of ['esm', 'cjs']) {
      run(esbuild, [entry, '--bundle', `--format=${format}`, '--platform=neutral', '--tree-shaking=true', `--banner:js=${banner}`, `--outfile=${join(OUT, format === 'esm' ? 'glue.mjs' : 'glue.cjs')}`])
    }
    const bytes = readFileSync(wasm).toString('base64')
    writeFileSync(join(OUT, 'bytes.cjs'), `${banner}\n'use strict'\nmodule.exports = ${JSON.stringify(bytes)}\n`)
    copyFileSync(join(work, 'ratelimit_wasm.d.ts'), join(OUT, 'glue.d.ts'))
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  writeFileSync(STAMP, JSON.stringify({ builtAt: new Date().toISOString() }))
  log(`built ${join('wasm', 'ratelimit_wasm_bg.wasm')} (${statSync(join(OUT, 'ratelimit_wasm_bg.wasm')).size} bytes)`)
}

const sources = Math.max(...['crates/ratelimit-core', 'crates/ratelimit-stores', 'crates/ratelimit-wasm', 'Cargo.lock', 'Cargo.toml', 'scripts/build-wasm.mjs'].map((p) => newestMtime(join(ROOT, p))))
const stale = !existsSync(STAMP) || statSync(STAMP).mtimeMs < sources || !existsSync(join(OUT, 'glue.cjs'))
if (!process.argv.includes('--if-stale') || stale) build()
