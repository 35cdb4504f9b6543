// Observability: every limit() decision on the diagnostics_channel "ratelimit-native:decision"
// (outcome, reason, numbers, latency, engine, store; the identifier only as a keyed hash), and
// ratelimit-native/otel turning them into OpenTelemetry metrics and spans, read back through the
// OpenTelemetry SDK's own in-memory reader and exporter.

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import diagnostics from 'node:diagnostics_channel'
import { createServer } from 'node:net'
import { after, before, test } from 'node:test'
import { metrics } from '@opentelemetry/api'
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics'
import { Ratelimit, Redis, engine } from '../index.js'
import { DECISION_CHANNEL, STORE_REQUEST_CHANNEL, instrumentRatelimit } from '../lib/otel.js'
import { startStack } from './helpers/servers.mjs'

const fresh = () => `dc${randomBytes(4).toString('hex')}`
let stack
let silent
before(async () => {
  stack = await startStack()
  silent = createServer(() => {}) // accepts connections, never answers
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve))
})
after(async () => {
  silent?.close()
  await stack?.stop()
})

/** A TracerProvider whose spans land in `spans` as plain records (name, options, status, end). */
function recordingTracer() {
  const spans = []
  const tracerProvider = {
    getTracer: () => ({
      startSpan: (name, options) => {
        const span = { name, options, status: null, ended: null, setStatus: (s) => (span.status = s), end: (t) => (span.ended = t) }
        spans.push(span)
        return span
      },
    }),
  }
  return { spans, tracerProvider }
}

/** Runs `fn` with a subscriber; resolves with the messages published meanwhile. */
async function collect(fn) {
  const messages = []
  const onMessage = (message) => messages.push(message)
  diagnostics.subscribe(DECISION_CHANNEL, onMessage)
  try {
    await fn()
    await new Promise((resolve) => setImmediate(resolve))
  } finally {
    diagnostics.unsubscribe(DECISION_CHANNEL, onMessage)
  }
  return messages
}

test('one message per decision: allowed, limited, timeout, error, denied; stores named; the identifier never sent', async () => {
  const prefix = fresh()
  const memory = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.fixedWindow(1, '60 s'), prefix, ephemeralCache: false })
  const rest = new Ratelimit({ redis: new Redis({ url: stack.rest.url, token: stack.rest.token }), limiter: Ratelimit.slidingWindow(5, '60 s'), prefix })
  const silentStore = new Ratelimit({ redis: new Redis({ url: `http://127.0.0.1:${silent.address().port}`, token: 't' }), limiter: Ratelimit.tokenBucket(1, '60 s', 5), prefix, timeout: 100 })
  const failing = new Ratelimit({ redis: { evalsha: () => Promise.reject(new Error('down')), eval: () => Promise.reject(new Error('down')), get: async () => null, set: async () => 'OK' }, limiter: Ratelimit.fixedWindow(1, '60 s'), prefix, timeout: 0 })
  const identifier = 'user-203.0.113.77'
  const messages = await collect(async () => {
    await memory.limit(identifier)
    await memory.limit(identifier)
    await rest.limit(identifier)
    await silentStore.limit(identifier)
    await failing.limit(identifier).catch(() => {})
  })
  assert.deepEqual(
    messages.map((m) => [m.outcome, m.store, m.algorithm, m.reason]),
    [
      ['allowed', 'memory', 'fixedWindow', undefined],
      ['limited', 'memory', 'fixedWindow', undefined],
      ['allowed', 'rest', 'slidingWindow', undefined],
      ['timeout', 'rest', 'tokenBucket', 'timeout'],
      ['error', 'client', 'fixedWindow', 'Error'],
    ],
  )
  for (const m of messages) {
    assert.equal(m.prefix, prefix)
    assert.equal(m.engine, engine)
    assert.ok(m.latencyMs >= 0 && m.latencyMs < 5000, `latency ${m.latencyMs}`)
    assert.ok(!JSON.stringify(m).includes('203.0.113.77'), 'the identifier is not in the message')
    assert.match(m.identifierHash, /^[0-9a-f]{16}$/)
    assert.equal(JSON.parse(JSON.stringify(m)).identifierHash, m.identifierHash, 'a logged message carries the hash')
  }
  assert.equal(new Set(messages.map((m) => m.identifierHash)).size, 1, 'the same identifier, the same hash')
  const plain = createHash('sha256').update(identifier).digest('hex').slice(0, 16)
  assert.notEqual(messages[0].identifierHash, plain, 'a keyed hash, not a bare digest anyone can recompute')
  assert.deepEqual(messages.slice(0, 3).map((m) => [m.limit, m.remaining]), [[1, 0], [1, 0], [5, 4]])
  const [second] = await collect(() => memory.limit('another'))
  assert.notEqual(second.identifierHash, messages[0].identifierHash)
})

test('deny-list hits are "denied"', async () => {
  const prefix = fresh()
  const redis = new Redis({ url: stack.rest.url, token: stack.rest.token })
  await redis.eval("redis.call('SADD', KEYS[1], ARGV[1]); return redis.call('SET', KEYS[2], 'disabled')", [`${prefix}:denyList:all`, `${prefix}:ipDenyListStatus`], ['192.0.2.66'])
  const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(5, '60 s'), prefix, enableProtection: true })
  const messages = await collect(() => rl.limit('u', { ip: '192.0.2.66' }))
  assert.deepEqual(messages.map((m) => [m.outcome, m.reason]), [['denied', 'denyList']])
})

test('nobody listening: no message is built', async () => {
  assert.equal(diagnostics.channel(DECISION_CHANNEL).hasSubscribers, false)
  const rl = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.fixedWindow(5, '60 s'), prefix: fresh() })
  // A subscriber added afterwards sees nothing of the call made before it.
  await rl.limit('x')
  const late = await collect(async () => {})
  assert.deepEqual(late, [])
})

test('ratelimit-native/otel: counters by outcome, a duration histogram, spans; stop() stops it', async () => {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })
  const meterProvider = new MeterProvider({ readers: [reader] })
  const { spans, tracerProvider } = recordingTracer()
  const prefix = fresh()
  const stop = instrumentRatelimit({ meterProvider, spans: true, tracerProvider })
  const rl = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.fixedWindow(2, '60 s'), prefix, ephemeralCache: false })
  try {
    for (let i = 0; i < 5; i++) await rl.limit('u')
  } finally {
    stop()
  }
  await rl.limit('u') // after stop(): not recorded
  const { resourceMetrics } = await reader.collect()
  const all = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics)
  const counter = all.find((m) => m.descriptor.name === 'ratelimit.decisions')
  const byOutcome = Object.fromEntries(counter.dataPoints.map((p) => [p.attributes['ratelimit.outcome'], p.value]))
  assert.deepEqual(byOutcome, { allowed: 2, limited: 3 })
  for (const point of counter.dataPoints) {
    assert.equal(point.attributes['ratelimit.prefix'], prefix)
    assert.equal(point.attributes['ratelimit.store'], 'memory')
    assert.equal(point.attributes['ratelimit.algorithm'], 'fixedWindow')
  }
  const histogram = all.find((m) => m.descriptor.name === 'ratelimit.duration')
  assert.equal(histogram.descriptor.unit, 'ms')
  assert.equal(histogram.dataPoints.reduce((n, p) => n + p.value.count, 0), 5)
  assert.equal(spans.length, 5)
  assert.ok(spans.every((s) => s.name === 'ratelimit.limit' && s.ended >= s.options.startTime))
  assert.equal(metrics.getMeterProvider() !== meterProvider, true, 'the global provider was not touched')
  await meterProvider.shutdown()
})

test('a message per request our stores send (REST, and Redis over TCP on the native engine), only while someone listens', async () => {
  const requests = []
  const onRequest = (message) => requests.push(message)
  const stores = [['rest', new Redis({ url: stack.rest.url, token: stack.rest.token })]]
  if (engine === 'native') stores.push(['tcp', new Redis({ url: stack.redis.url })])
  for (const [kind, redis] of stores) {
    const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(5, '60 s'), prefix: fresh(), ephemeralCache: false })
    await rl.limit('warm') // connections opened before anyone listens: not recorded
    requests.length = 0
    const before = Date.now()
    diagnostics.subscribe(STORE_REQUEST_CHANNEL, onRequest)
    try {
      for (let i = 0; i < 3; i++) await rl.limit('u')
      await Promise.all(Array.from({ length: 10 }, () => rl.limit('v'))) // one turn: one request
    } finally {
      diagnostics.unsubscribe(STORE_REQUEST_CHANNEL, onRequest)
    }
    const after = Date.now()
    assert.ok(requests.length >= 4 && requests.length <= 5, `${kind}: ${requests.length} requests`)
    assert.equal(requests.reduce((n, r) => n + r.commands, 0), 13, `${kind}: every call's command, once`)
    for (const r of requests) {
      assert.deepEqual([r.store, r.engine, r.outcome], [kind, engine, 'answered'])
      assert.ok(r.startTime >= before - 5 && r.startTime <= after + 5, `${kind}: start ${r.startTime} in [${before}, ${after}]`)
      assert.ok(r.durationMs >= 0 && r.durationMs < 5000)
    }
    const seen = requests.length
    await rl.limit('w')
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(requests.length, seen, `${kind}: nothing once nobody listens`)
  }
})

test('ratelimit-native/otel with spans: a ratelimit.store_request span per request, failed ones marked', async () => {
  const { spans, tracerProvider } = recordingTracer()
  const meterProvider = new MeterProvider()
  const redis = new Redis({ url: stack.rest.url, token: stack.rest.token })
  const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(5, '60 s'), prefix: fresh(), ephemeralCache: false })
  // A port nobody listens on: every request is refused (it did not run), until the timeout.
  const port = await new Promise((resolve) => {
    const probe = createServer()
    probe.listen(0, '127.0.0.1', () => {
      const { port: free } = probe.address()
      probe.close(() => resolve(free))
    })
  })
  const refused = new Ratelimit({ redis: new Redis({ url: `http://127.0.0.1:${port}`, token: 't' }), limiter: Ratelimit.fixedWindow(5, '60 s'), prefix: fresh(), timeout: 300 })
  const stop = instrumentRatelimit({ meterProvider, spans: true, tracerProvider })
  try {
    await rl.limit('u')
    // The native stores resend what was refused until the timeout answers; the WebAssembly
    // engine's client rejects at once, as @upstash/redis does.
    await refused.limit('u').catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 300)) // the last resend's outcome
  } finally {
    stop()
  }
  const requestSpans = spans.filter((s) => s.name === 'ratelimit.store_request')
  const answered = requestSpans.filter((s) => s.options.attributes['ratelimit.request_outcome'] === 'answered')
  assert.equal(answered.length, 1)
  assert.equal(answered[0].options.attributes['ratelimit.commands'], 1)
  assert.equal(answered[0].options.attributes['db.system'], 'redis')
  assert.ok(answered[0].ended >= answered[0].options.startTime)
  assert.equal(answered[0].status, null)
  const failed = requestSpans.filter((s) => s.options.attributes['ratelimit.request_outcome'] !== 'answered')
  assert.ok(failed.length >= 1, 'the refused requests have spans')
  assert.ok(failed.every((s) => s.status?.code === 2 && s.ended >= s.options.startTime), 'marked as errors')
  await meterProvider.shutdown()
})
