// The Workers entry (export conditions `workerd` / `worker`: Cloudflare Workers through wrangler):
// the WebAssembly engine, its module imported statically (wrangler hands a .wasm import over as
// a WebAssembly.Module). Pass the env binding to Redis.fromEnv(env) there. Same facade as the
// Node.js entry (index.js); requests go through fetch.
import wasmModule from './wasm/ratelimit_wasm_bg.wasm'
import * as glue from './wasm/glue.mjs'
import { install } from './lib/wasm-entry.mjs'

install(wasmModule, glue)

export { Ratelimit, Redis, Analytics, IpDenyList, MultiRegionRatelimit, UpstashError, engine } from './lib/wasm-entry.mjs'
