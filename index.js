'use strict'
// ratelimit-native: the public API. A drop-in for @upstash/ratelimit backed by Rust.
// (CommonJS with plain `exports.x =` lines, so Node's ESM named imports work too.)
// This is the Node.js entry (also Bun and Deno): the native addon, or the WebAssembly build of
// the same core where the addon cannot be loaded (lib/node-engine.js). Edge runtimes and
// Workers get index.edge.mjs / index.workerd.mjs through package.json's export conditions.

const engine = require('./lib/node-engine').installNodeEngine()
const { Ratelimit } = require('./lib/ratelimit')
const { Redis } = require('./lib/redis')
const { Analytics } = require('./lib/analytics')
const { IpDenyList } = require('./lib/ip-deny-list')
const { MultiRegionRatelimit } = require('./lib/multi-region')
const { UpstashError } = require('./lib/errors')

exports.Ratelimit = Ratelimit
exports.Redis = Redis
exports.Analytics = Analytics
exports.IpDenyList = IpDenyList
exports.MultiRegionRatelimit = MultiRegionRatelimit
exports.UpstashError = UpstashError
/** Which engine runs the limiters: "native" (the Node addon) or "wasm" (WebAssembly). */
exports.engine = engine.name
