// The Edge entry (export condition `edge-light`: Next.js middleware and Edge route handlers,
// Vercel Edge Functions): the WebAssembly engine, its module imported statically as Next.js and
// Vercel require (`?module` gives a WebAssembly.Module; compiling from bytes is refused there).
// Same facade as the Node.js entry (index.js); requests go through fetch.
import wasmModule from './wasm/ratelimit_wasm_bg.wasm?module'
import * as glue from './wasm/glue.mjs'
import { install } from './lib/wasm-entry.mjs'

install(wasmModule, glue)

export { Ratelimit, Redis, Analytics, IpDenyList, MultiRegionRatelimit, UpstashError, engine } from './lib/wasm-entry.mjs'
