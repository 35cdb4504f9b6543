'use strict'
// One message per request a limiter's store sends (a /pipeline POST, a Redis pipeline) on the
// `node:diagnostics_channel` channel "ratelimit-native:store-request", for tracing
// (lib/otel.js makes each one a span). The native stores record requests only while someone
// listens, checked once per batch; nothing is measured otherwise.
//
// Message: { store: "rest" | "tcp" | "cluster" | "sentinel", engine: "native" | "wasm",
//   commands, startTime (Unix ms), durationMs, outcome: "answered" | "not-run" | "failed" }.
// "not-run": the store certainly did not run it (refused, connection lost before sending); the
// same commands follow in another request. Clients of the user's own (an @upstash/redis
// instance called through its methods, ioredis, node-redis) are traced by their own
// instrumentation.

const engine = require('./engine')
const { nodeBuiltin } = require('./runtime')

const CHANNEL = 'ratelimit-native:store-request'
const diagnostics = nodeBuiltin('node:diagnostics_channel')
const channel = diagnostics ? diagnostics.channel(CHANNEL) : null
/** The native stores' outcome codes (src/store.rs `Completions.requests`). */
const OUTCOMES = ['answered', 'not-run', 'failed']

/** True while someone listens. */
function traced() {
  return channel !== null && channel.hasSubscribers
}

function publishRequest(store, startTime, durationMs, commands, outcome) {
  try {
    channel.publish({ store, engine: engine.name, commands, startTime, durationMs, outcome })
  } catch {
    // A subscriber's error must not reach the limiter's callers.
  }
}

/**
 * A request starting now, when someone listens: a function that publishes it given its
 * outcome (for stores whose requests JS sends itself); null otherwise.
 */
function startRequest(store, commands) {
  if (!traced()) return null
  const startTime = Date.now()
  const started = performance.now()
  return (outcome) => publishRequest(store, startTime, performance.now() - started, commands, outcome)
}

/** A native store's records, `[startUnixMs, durationMs, commands, outcome]` each. */
function publishRecords(store, records) {
  if (!traced()) return
  for (let i = 0; i + 3 < records.length; i += 4) {
    publishRequest(store, records[i], records[i + 1], records[i + 2], OUTCOMES[records[i + 3]] ?? 'failed')
  }
}

/**
 * Keeps a native store's recording in step with the channel: call before each batch is sent.
 * Returns a function that does it for `native`.
 */
function requestRecording(native) {
  let recording = false
  return () => {
    if (traced() === recording) return
    recording = !recording
    native.observeRequests(recording)
  }
}

module.exports = { CHANNEL, startRequest, publishRecords, requestRecording }
