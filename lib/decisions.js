'use strict'
// One message per limit() decision on the `node:diagnostics_channel` channel
// "ratelimit-native:decision", for metrics and logs (lib/otel.js turns them into OpenTelemetry
// counters and a latency histogram). Nothing is measured or built unless someone subscribed:
// a call then costs one property read. The identifier is never sent, only a short keyed hash.
//
// Message: { prefix, algorithm, outcome: "allowed" | "limited" | "denied" | "timeout" | "error",
//   reason, limit, remaining, latencyMs, engine: "native" | "wasm", store: "memory" | "rest" |
//   "tcp" | "client", identifierHash }.
// The channel exists where the runtime has `process.getBuiltinModule` and diagnostics_channel
// (Node.js ≥ 20.16, Bun, Deno); read through it so bundlers leave it alone.

const { Redis } = require('./redis')
const { nodeBuiltin } = require('./runtime')

const CHANNEL = 'ratelimit-native:decision'

const diagnostics = nodeBuiltin('node:diagnostics_channel')
const channel = diagnostics ? diagnostics.channel(CHANNEL) : null
let crypto

/** True while someone listens. */
function observed() {
  return channel !== null && channel.hasSubscribers
}

let hashKey
/** A keyed hash (HMAC-SHA256 under a key made for this process): the same identifier gives the
 * same hash within the process, and an IPv4 address cannot be found again by trying them all. */
function hashOf(identifier) {
  crypto ??= nodeBuiltin('node:crypto')
  if (!crypto) return undefined
  hashKey ??= crypto.randomBytes(32)
  return crypto.createHmac('sha256', hashKey).update(String(identifier)).digest('hex').slice(0, 16)
}

function outcomeOf(response) {
  if (response.reason === 'timeout') return 'timeout'
  if (response.reason === 'denyList') return 'denied'
  return response.success ? 'allowed' : 'limited'
}

/**
 * Publishes the decision of `promise` (a limit() call started at `started`, performance.now()),
 * and hands the same promise on. `describe()` gives { prefix, algorithm, engine, store }.
 */
function observe(promise, identifier, started, describe) {
  const publish = (message) => {
    try {
      channel.publish({ ...describe(), identifierHash: hashOf(identifier), latencyMs: performance.now() - started, ...message })
    } catch {
      // A subscriber's error must not change the limiter's answer.
    }
  }
  promise.then(
    (response) => publish({ outcome: outcomeOf(response), reason: response.reason, limit: response.limit, remaining: response.remaining }),
    (error) => publish({ outcome: 'error', reason: error?.name ?? 'Error', limit: undefined, remaining: undefined }),
  )
  return promise
}

/** Where a limiter's `redis` keeps its state, as the message names it: our Redis' memory
 * store, Redis over TCP or Upstash REST, or a client object of the user's. */
function storeKind(redis) {
  if (!(redis instanceof Redis)) return 'client'
  if (redis.url === 'memory:') return 'memory'
  return /^rediss?:/i.test(redis.url) ? 'tcp' : 'rest'
}

module.exports = { CHANNEL, observed, observe, storeKind }
