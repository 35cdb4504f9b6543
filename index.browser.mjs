// The browser entry (export condition `browser`, as bundlers resolve it for client code): the
// WebAssembly engine, compiled from the bytes shipped in wasm/bytes.cjs with the asynchronous
// `WebAssembly.compile` (browsers refuse a synchronous compile of a module this size on the main
// thread), so importing this module waits for it (top-level await). Same facade as the other
// entries; requests go through fetch, and `Redis.memory()` lives in the page.
import base64 from './wasm/bytes.cjs'
import * as glue from './wasm/glue.mjs'
import { install } from './lib/wasm-entry.mjs'

const binary = atob(base64)
const bytes = new Uint8Array(binary.length)
for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
install(await WebAssembly.compile(bytes), glue)

export { Ratelimit, Redis, Analytics, IpDenyList, MultiRegionRatelimit, UpstashError, engine } from './lib/wasm-entry.mjs'
