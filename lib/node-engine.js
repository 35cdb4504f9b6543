'use strict'
// The engine on Node.js (and Bun, Deno): the native addon, or, where it cannot be loaded (a
// bundle that could not take the .node file, a platform without a prebuilt binary, a missing
// optional dependency), the WebAssembly engine, with one console.warn that says why and how to
// get the addon. RATELIMIT_NATIVE_ENGINE=wasm picks the WebAssembly engine; =native insists on
// the addon (its load error is thrown).

const engine = require('./engine')
const { loadNativeAddon } = require('./native-addon')
const { wasmEngine } = require('./wasm-engine')

/** The WebAssembly engine from the bytes shipped with the package. */
function wasmEngineFromBytes() {
  const base64 = require('../wasm/bytes.cjs')
  const bytes = typeof Buffer === 'function' ? Buffer.from(base64, 'base64') : Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))
  return wasmEngine(new WebAssembly.Module(bytes), require('../wasm/glue.cjs'))
}

function wanted() {
  const value = typeof process !== 'undefined' ? process.env?.RATELIMIT_NATIVE_ENGINE : undefined
  if (value === undefined || value === '') return 'auto'
  if (value === 'native' || value === 'wasm') return value
  throw new Error(`ratelimit-native: RATELIMIT_NATIVE_ENGINE must be "native" or "wasm", got ${JSON.stringify(value)}`)
}

function installNodeEngine() {
  if (engine.name !== null) return engine
  const choice = wanted()
  if (choice === 'wasm') {
    engine.install(wasmEngineFromBytes(), 'wasm')
    return engine
  }
  let addon
  try {
    addon = loadNativeAddon()
  } catch (error) {
    if (choice === 'native') throw error
    engine.install(wasmEngineFromBytes(), 'wasm')
    console.warn(
      `ratelimit-native: running on the WebAssembly engine: ${error.message.replace(/^ratelimit-native: /, '')} ` +
        'For the native engine: in Next.js, add "ratelimit-native" to serverExternalPackages in next.config; elsewhere, install the platform package (npm install on the machine that runs the app). Set RATELIMIT_NATIVE_ENGINE=wasm to choose this engine without this warning.',
    )
    return engine
  }
  // The addon's REST store on http:// moves its bytes on sockets of Node's event loop.
  engine.install({ ...addon, WireConnections: require('./wire').WireConnections }, 'native')
  return engine
}

module.exports = { installNodeEngine }
