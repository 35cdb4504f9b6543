'use strict'
// Telemetry, as upstream: an `@upstash/redis` client is tagged once with this SDK's name
// (appended to its Upstash-Telemetry-Sdk header) unless `enableTelemetry: false` or
// UPSTASH_DISABLE_TELEMETRY is set. Our own native client sends no telemetry headers at all.

const { version } = require('../package.json')

const SDK = `ratelimit-native@${version}`
const tagged = new WeakSet()

function disabledByEnv() {
  try {
    return typeof process !== 'undefined' && Boolean(process.env?.UPSTASH_DISABLE_TELEMETRY)
  } catch {
    return false // an environment that may not be read (Deno without --allow-env)
  }
}

function tagClient(redis, enableTelemetry = true) {
  if (!enableTelemetry || !redis || typeof redis !== 'object' || tagged.has(redis)) return
  try {
    if (typeof redis.addTelemetry !== 'function' || disabledByEnv()) return
    tagged.add(redis)
    redis.addTelemetry({ sdk: SDK })
  } catch {
    // Telemetry must never break a limiter.
  }
}

module.exports = { tagClient, SDK }
