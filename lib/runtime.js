'use strict'
// Which JavaScript runtime this is, for messages that name it.

/** Names the runtime when it cannot load native addons at all (Edge runtimes), else null. */
function nonNodeRuntime() {
  if (typeof EdgeRuntime === 'string') return `the Edge runtime (${EdgeRuntime})`
  if (typeof navigator !== 'undefined' && navigator.userAgent === 'Cloudflare-Workers') return 'Cloudflare Workers'
  if (typeof process === 'undefined' || !process.versions || !process.versions.node) return 'a runtime that is not Node.js'
  return null
}

/** Where the WebAssembly engine runs, as a message puts it ("Cloudflare Workers", …). */
function runtimeName() {
  return nonNodeRuntime() ?? 'Node.js on the WebAssembly engine (the native addon was not loaded)'
}

/**
 * A Node.js built-in module (`"node:http"`, …) through `process.getBuiltinModule`, which bundlers
 * leave alone (Node.js ≥ 20.16 / 22.3, Bun, Deno); null where there is none.
 */
function nodeBuiltin(name) {
  try {
    return typeof process !== 'undefined' && typeof process.getBuiltinModule === 'function' ? process.getBuiltinModule(name) : null
  } catch {
    return null
  }
}

module.exports = { nonNodeRuntime, runtimeName, nodeBuiltin }
