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

/** Hashes already made (an HMAC costs more than the rest of a message): forgotten all at once
 * when full, so memory stays bounded under any number of identifiers. */
const HASHES_KEPT = 10_000
const hashes = new Map()
function rememberedHash(identifier) {
  let hash = hashes.get(identifier)
  if (hash === undefined) {
    if (hashes.size >= HASHES_KEPT) hashes.clear()
    hash = hashOf(identifier)
    hashes.set(identifier, hash)
  }
  return hash
}

function outcomeOf(response) {
  if (response.reason === 'timeout') return 'timeout'
  if (response.reason === 'denyList') return 'denied'
  return response.success ? 'allowed' : 'limited'
}

/**
 * One decision. `identifierHash` is worked out when first read (subscribers that never read
 * it, such as the OpenTelemetry bridge, pay nothing for it); JSON.stringify includes it.
 */
class Decision {
  #identifier
  #hash
  constructor(about, identifier, latencyMs, outcome, reason, limit, remaining) {
    this.prefix = about.prefix
    this.algorithm = about.algorithm
    this.outcome = outcome
    this.reason = reason
    this.limit = limit
    this.remaining = remaining
    this.latencyMs = latencyMs
    this.engine = about.engine
    this.store = about.store
    this.#identifier = identifier
  }

  get identifierHash() {
    this.#hash ??= rememberedHash(this.#identifier)
    return this.#hash
  }

  toJSON() {
    return { ...this, identifierHash: this.identifierHash }
  }
}

/**
 * Publishes the decision of `promise` (a limit() call started at `started`, performance.now()),
 * and hands the same promise on. `about` is the limiter's { prefix, algorithm, engine, store }.
 */
function observe(promise, identifier, started, about) {
  const publish = (outcome, reason, limit, remaining) => {
    try {
      channel.publish(new Decision(about, identifier, performance.now() - started, outcome, reason, limit, remaining))
    } catch {
      // A subscriber's error must not change the limiter's answer.
    }
  }
  promise.then(
    (response) => publish(outcomeOf(response), response.reason, response.limit, response.remaining),
    (error) => publish('error', error?.name ?? 'Error', undefined, undefined),
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
