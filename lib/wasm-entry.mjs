// What the WebAssembly entries (index.edge.mjs, index.workerd.mjs) share: the facade's exports,
// and `install`, which each entry calls with the module its runtime imported statically.
import installed from './engine.js'
import wasm from './wasm-engine.js'
import ratelimit from './ratelimit.js'
import redis from './redis.js'
import analytics from './analytics.js'
import ipDenyList from './ip-deny-list.js'
import multiRegion from './multi-region.js'
import errors from './errors.js'

/** Installs the WebAssembly engine from a `WebAssembly.Module` and wasm-bindgen's glue. */
export function install(wasmModule, glue) {
  installed.install(wasm.wasmEngine(wasmModule, glue), 'wasm')
}

export const { Ratelimit } = ratelimit
export const { Redis } = redis
export const { Analytics } = analytics
export const { IpDenyList } = ipDenyList
export const { MultiRegionRatelimit } = multiRegion
export const { UpstashError } = errors
/** Which engine runs the limiters: always "wasm" here. */
export const engine = 'wasm'
