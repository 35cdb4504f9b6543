'use strict'
// The WebAssembly engine: wasm-bindgen's glue (wasm/glue.mjs or glue.cjs, built by
// scripts/build-wasm.mjs) initialised with the compiled module. Each entry hands in the module
// the way its runtime allows: Edge and Workers import it statically; Node.js compiles it from
// the bytes shipped in wasm/bytes.cjs (lib/node-engine.js). Nothing here requires a file, so an
// Edge bundle takes in only what its entry imports.

/** The engine's exports, from a `WebAssembly.Module` and the glue. */
function wasmEngine(module, glue) {
  glue.initSync({ module })
  const { initSync, default: _init, seedHashKeys, ...binding } = glue
  // The memory store's hash keys get the host's randomness (the module has none of its own), so
  // identifiers cannot be crafted to collide in its tables. Drawn when the first store is made:
  // Workers refuse random values at a module's top level.
  let seeded = false
  binding.NativeStore = {
    memory(options) {
      if (!seeded) {
        seedHashKeys(globalThis.crypto.getRandomValues(new Uint8Array(16)))
        seeded = true
      }
      return glue.NativeStore.memory(options)
    },
  }
  // The napi binding's `limitBatch(store, …)` queues on its native store; here the store is
  // the JS REST client (lib/rest-pipeline.js), which has the module write the batch.
  binding.limitBatch = (store, records, count, keys) => store.limitBatch(records, count, keys)
  // The addon's one-argument memory call (src/memory_io.rs) over the module's own: a call into
  // WebAssembly costs little, so its numbers go as arguments.
  const arrays = []
  binding.memoryIo = (array) => arrays.push(array) - 1
  binding.memoryLimitIo = (key, handle) => {
    const io = arrays[handle]
    // As the addon checks them: the module would take 0.5 as kind 0, and trap on a non-string.
    if (io === undefined) throw new Error('memoryLimitIo: no array has this handle')
    if (!Number.isInteger(io[0])) throw new Error('unknown algorithm kind')
    if (typeof key !== 'string') throw new TypeError('memoryLimitIo: the key must be a string')
    glue.memoryLimit(io[0], io[1], io[2], io[3], key, io[4], io[5], io, null)
  }
  return binding
}

module.exports = { wasmEngine }
