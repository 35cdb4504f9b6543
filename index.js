'use strict'
// ratelimit-native: the public API. A drop-in for @upstash/ratelimit backed by Rust.
// (CommonJS with plain `exports.x =` lines, so Node's ESM named imports work too.)

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
