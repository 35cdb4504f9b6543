'use strict'
// The engine the facade drives: the Node addon (native.cjs) or the WebAssembly build of the same
// core (wasm/), which export the same names (NativeAlgorithm, NativeStore, memoryLimit, …). The
// package's entry installs one before the facade is used: index.js (Node.js, Bun, Deno: the
// addon, or the WebAssembly module where the addon cannot be loaded), index.edge.mjs and
// index.workerd.mjs (WebAssembly). Only the addon has remote stores (REST on its own sockets,
// Redis over TCP); on the WebAssembly engine requests go through JS (lib/rest-pipeline.js).

const engine = {}

Object.defineProperties(engine, {
  /** "native" or "wasm" once installed. */
  name: { value: null, writable: true },
  install: {
    value(binding, name) {
      if (engine.name !== null) return
      Object.assign(engine, binding)
      engine.name = name
    },
  },
  /** True when the installed engine has the addon's remote stores. */
  hasRemoteStores: {
    get() {
      return engine.name === 'native'
    },
  },
})

module.exports = engine
