'use strict'
// `ratelimit-native/otel`: the decisions of every limiter (lib/decisions.js) as OpenTelemetry
// metrics, through `@opentelemetry/api` (an optional peer dependency: install it with your SDK).
//
//   import { instrumentRatelimit } from 'ratelimit-native/otel'
//   const stop = instrumentRatelimit()          // the global MeterProvider (and TracerProvider)
//
// - `ratelimit.decisions` (counter): one per limit() call, by `ratelimit.outcome` (allowed,
//   limited, denied, timeout, error), `ratelimit.prefix`, `ratelimit.algorithm`,
//   `ratelimit.engine` and `ratelimit.store`;
// - `ratelimit.duration` (histogram, ms): how long each limit() took, same attributes;
// - with `spans: true`, a `ratelimit.limit` span per call (its start and end times), with the
//   same attributes, and a `ratelimit.store_request` span per request our stores send (a
//   /pipeline POST, a Redis pipeline: lib/store-requests.js), with its command count.
// Returns a function that stops it. Nothing is recorded for calls made while nobody listens.

const { CHANNEL } = require('./decisions')
const { CHANNEL: REQUEST_CHANNEL } = require('./store-requests')
const { nodeBuiltin } = require('./runtime')
const { version } = require('../package.json')

function instrumentRatelimit(options = {}) {
  const diagnostics = nodeBuiltin('node:diagnostics_channel')
  if (!diagnostics) throw new Error('ratelimit-native/otel: this runtime has no node:diagnostics_channel (Node.js ≥ 20.16, Bun or Deno are needed)')
  let api
  try {
    api = options.api ?? require('@opentelemetry/api')
  } catch (error) {
    throw new Error('ratelimit-native/otel: install @opentelemetry/api (and an OpenTelemetry SDK) to record metrics', { cause: error })
  }
  const meter = (options.meterProvider ?? api.metrics.getMeterProvider()).getMeter('ratelimit-native', version)
  const decisions = meter.createCounter('ratelimit.decisions', { description: 'Rate-limit decisions (limit() calls), by outcome', unit: '{decision}' })
  const duration = meter.createHistogram('ratelimit.duration', { description: 'How long a limit() call took', unit: 'ms' })
  const tracer = options.spans ? (options.tracerProvider ?? api.trace.getTracerProvider()).getTracer('ratelimit-native', version) : null
  const onDecision = (message) => {
    const attributes = {
      'ratelimit.outcome': message.outcome,
      'ratelimit.prefix': message.prefix,
      'ratelimit.algorithm': message.algorithm,
      'ratelimit.engine': message.engine,
      'ratelimit.store': message.store,
    }
    if (message.reason !== undefined) attributes['ratelimit.reason'] = message.reason
    decisions.add(1, attributes)
    duration.record(message.latencyMs, attributes)
    if (tracer) {
      const end = Date.now()
      const span = tracer.startSpan('ratelimit.limit', { startTime: end - message.latencyMs, attributes: { ...attributes, 'ratelimit.remaining': message.remaining ?? -1 } })
      if (message.outcome === 'error') span.setStatus({ code: api.SpanStatusCode.ERROR, message: message.reason })
      span.end(end)
    }
  }
  // A span per request to the store (lib/store-requests.js): what an HTTP or Redis client's own
  // instrumentation shows for its requests, for the requests our stores send themselves.
  const onRequest = (message) => {
    const span = tracer.startSpan('ratelimit.store_request', {
      kind: api.SpanKind.CLIENT,
      startTime: message.startTime,
      attributes: {
        'db.system': 'redis',
        'ratelimit.store': message.store,
        'ratelimit.engine': message.engine,
        'ratelimit.commands': message.commands,
        'ratelimit.request_outcome': message.outcome,
      },
    })
    if (message.outcome !== 'answered') span.setStatus({ code: api.SpanStatusCode.ERROR, message: message.outcome })
    span.end(message.startTime + message.durationMs)
  }
  diagnostics.subscribe(CHANNEL, onDecision)
  if (tracer) diagnostics.subscribe(REQUEST_CHANNEL, onRequest)
  return () => {
    diagnostics.unsubscribe(CHANNEL, onDecision)
    if (tracer) diagnostics.unsubscribe(REQUEST_CHANNEL, onRequest)
  }
}

module.exports = { instrumentRatelimit, DECISION_CHANNEL: CHANNEL, STORE_REQUEST_CHANNEL: REQUEST_CHANNEL }
