'use strict'
// Which Redis a limiter talks to, and how:
// - `Redis.memory()` → the embedded store: algorithms run in Rust in this process, answered
//   synchronously (no thread hop, no I/O);
// - our own `Redis` (and an unmodified `@upstash/redis` instance, whose base URL and token are
//   read: lib/upstash-client.js) → the native store: concurrent calls batched into one
//   /pipeline request; on http:// the request travels on a socket of Node's event loop
//   (lib/wire.js), on https:// through the native client (rustls);
// - our own `Redis` on a redis:// URL → the same native store over TCP (RESP): concurrent calls
//   batched into one Redis pipeline, no REST server in between, on a socket of Node's event
//   loop (lib/wire.js; rediss:// through the native client); with `cluster: true` the
//   same over a Redis Cluster (each command to its slot's node; lib/cluster.js for the keys);
// - any other object with evalsha/eval/get/set/del (an ioredis adapter, a test double, a
//   client whose methods the user replaced) → the compat path: the same scripts, sent through
//   that object's methods from JS. (On the WebAssembly engine every remote client is one: our
//   `Redis` there sends through lib/rest-pipeline.js, which also takes plain limit() calls in
//   batches: `limitStoreFor`.)

const engine = require('./engine')
const { DeadlineQueue } = require('./deadlines')
const { flushMemoryBatch } = require('./memory-batch')
const { upstashCredentials, REPLACED_COMMANDS } = require('./upstash-client')
const { storeError, asStoreError, rethrowStoreError } = require('./errors')
const { RestPipeline } = require('./rest-pipeline')
const { runtimeName } = require('./runtime')
const { markCluster } = require('./cluster')
const storeRequests = require('./store-requests')

/**
 * redis object → `{ native: NativeStore, sync, queue, flushSoon, call, guardedCall }` (or null
 * for the compat path).
 * Remote stores queue each call when it is made; `flushSoon()` sends the queue in the event
 * loop's next check phase (`setImmediate`). By then every call issued in this turn has been
 * queued — including the continuations of all replies delivered in this turn's poll phase, which
 * Node runs one callback at a time with microtasks drained in between (so a microtask flush
 * would send them one by one). So a burst shares HTTP requests (FLUSH_AT calls each), like
 * @upstash/redis' auto-pipelining. The real `setImmediate` is captured here so fake timers
 * cannot stall it; the native client also sends what is left unflushed every 5 ms as a safety net.
 */
const storeOf = new WeakMap()
// (Only native stores flush this way; Edge runtimes have no setImmediate and no native store.)
const scheduleFlush = typeof setImmediate === 'function' ? setImmediate : (fn) => setTimeout(fn, 0)
// A turn that issues many calls sends them in requests of this many, each as soon as it is full,
// so the REST server works on the first request while this thread still issues the rest (the
// client and the server overlap instead of taking turns). Measured at c=64 on 2 cores: one
// request per turn 94k calls/s, 16 per request 127k, 32 146k, 48 112k.
const FLUSH_AT = 32
const keepAliveTimer = setInterval

/**
 * One queued call waiting for its answer. Plain calls resolve with the numbers (and, `withNotes`,
 * the analytics note). Guarded calls (`guard` set: the limit fast path) resolve with
 * `finish(numbers)`, and with the guard's answers on a timeout or an error, so a limit() costs
 * one Promise and no timer of its own (see deadlines.js).
 */
class PendingCall {
  constructor(resolve, reject, withNotes, finish, guard) {
    this.resolve = resolve
    this.reject = reject
    this.withNotes = withNotes
    this.finish = finish
    this.guard = guard
    this.settled = false
    this.deadline = 0
    this.id = 0 // set when queued
  }

  answer(numbers, note) {
    this.settled = true
    const value = this.withNotes ? { numbers, analyticsError: note } : numbers
    if (!this.finish) return this.resolve(value)
    // Runs after an expiry too, as upstream's still-running limit does after losing the timeout
    // race: its ephemeral-cache update is not lost (the Promise is already settled).
    let response
    try {
      response = this.finish(value)
    } catch (error) {
      return this.fail(error)
    }
    this.resolve(response)
  }

  fail(error) {
    this.settled = true
    if (!this.guard) return this.reject(error)
    try {
      this.resolve(this.guard.onError(error))
    } catch (thrown) {
      this.reject(thrown)
    }
  }

  /** The caller's timeout passed first. The call stays pending: its answer still finishes. */
  expire() {
    this.settled = true
    this.resolve(this.guard.onTimeout())
  }
}

/**
 * Calls waiting for their answer, by id. Ids are handed out in sequence, so slot `id & mask` is
 * free unless a call that many ids older still waits; then the table doubles. (A Map rehashed
 * as it grew and shrank with every batch: about 1.5% of the JS thread at c=64.)
 */
class PendingCalls {
  constructor() {
    this.slots = new Array(256).fill(null)
    this.mask = 255
    this.size = 0
  }

  add(id, entry) {
    while (this.slots[id & this.mask] !== null) this.#grow()
    entry.id = id
    this.slots[id & this.mask] = entry
    this.size++
  }

  /** The call waiting under `id` (undefined if none), no longer waiting. */
  take(id) {
    const slot = id & this.mask
    const entry = this.slots[slot]
    if (entry === null || entry.id !== id) return undefined
    this.slots[slot] = null
    this.size--
    return entry
  }

  #grow() {
    const old = this.slots
    this.slots = new Array(old.length * 2).fill(null)
    this.mask = this.slots.length - 1
    for (const entry of old) if (entry !== null) this.slots[entry.id & this.mask] = entry
  }
}

/**
 * Calls queued with an id (`limitQueue`) are answered in batches through one completion
 * callback. This returns `{ call, guardedCall, handOver }`:
 * - `call(issue, withNotes)` makes the call's Promise, passes `issue` the id to queue under, and
 *   resolves with the numbers (and, `withNotes`, the analytics note);
 * - `guardedCall(issue, finish, guard, timeoutMs, now, limit, withNotes)` resolves with
 *   `finish(numbers)` (`withNotes`: `finish({ numbers, analyticsError })`),
 *   or `guard.onTimeout()` once `timeoutMs` passed (when > 0), or `guard.onError(error)` (which
 *   may throw to reject); with `issue` null, `limit` goes into the LimitBatch instead;
 * - `handOver()` gives the buffered limit calls to the native queue (the store's flush does).
 * A timer is held while calls are pending, because the native callback does not keep the
 * process alive by itself (`keepAlive`; a JS client's request in flight does).
 */
function batchedCalls(store, flushSoon, wire, kind, keepAlive = true) {
  const pending = new PendingCalls()
  const limits = new LimitBatch()
  const deadlines = new Map() // timeout ms → DeadlineQueue
  let nextId = 1
  let keeper = null
  const settled = (id) => {
    const entry = pending.take(id)
    if (pending.size === 0 && keeper) keeper.unref()
    return entry
  }
  /** Outcomes as `[id, n, value × n]` records in `data[0..length)`; `noteOf`: id → analytics note. */
  const answer = (data, length, noteOf) => {
    for (let i = 0; i < length; ) {
      const id = data[i]
      const n = data[i + 1]
      const entry = settled(id)
      // A plain array, not `data.slice()`: a typed-array copy allocates an ArrayBuffer per call.
      const numbers = new Array(n)
      for (let j = 0; j < n; j++) numbers[j] = data[i + 2 + j]
      i += 2 + n
      if (entry) entry.answer(numbers, noteOf?.get(id))
    }
  }
  const trimDeadlines = () => {
    for (const queue of deadlines.values()) queue.trim()
  }
  const complete = ({ data, failures, notes, requests }) => {
    if (requests) storeRequests.publishRecords(kind, requests)
    let noteOf = null
    if (notes.length > 0) {
      noteOf = new Map()
      for (let i = 0; i < notes.length; i += 2) noteOf.set(Number(notes[i]), notes[i + 1])
    }
    answer(data, data.length, noteOf)
    for (let i = 0; i < failures.length; i += 2) {
      const entry = settled(Number(failures[i]))
      if (entry) entry.fail(storeError(failures[i + 1]))
    }
    trimDeadlines()
  }
  // An event-loop store hands outcomes over each time JS moves its bytes; the others call back
  // from their runtime thread.
  const sockets = wire
    ? new engine.WireConnections(
        store,
        (data, length) => {
          answer(data, length, null)
          trimDeadlines()
        },
        complete,
      )
    : null
  if (!sockets) store.onCompletions(complete)
  /** Sends the buffered limit calls to the native queue (before any other call, so the native
   * queue keeps the order the calls were made in). */
  const handOver = () => {
    const count = limits.count
    if (count === 0) return
    try {
      limits.handOver(store)
    } catch (error) {
      // Not expected with records this file writes; if it happens, the calls are answered (as
      // failures) rather than left pending, and the flush that handed them over does not throw.
      for (let i = 0; i < count; i++) settled(limits.records[i * RECORD])?.fail(error)
    }
  }
  /** Queues `entry` under a new id: through `issue(id)`, or, without one, `limit` into the batch. */
  const enqueue = (issue, entry, limit) => {
    const id = nextId
    nextId = nextId >= 0x7fffffff ? 1 : nextId + 1
    if (issue) {
      handOver()
      issue(id)
    } else {
      limits.add(id, limit)
    }
    pending.add(id, entry)
    if (pending.size === 1 && keepAlive) {
      keeper ??= keepAliveTimer(() => {}, 1 << 30)
      keeper.ref()
    }
    flushSoon()
  }
  const call = (issue, withNotes = false) =>
    new Promise((resolve, reject) => enqueue(issue, new PendingCall(resolve, reject, withNotes, null, null)))
  /** `issue` null: `limit` (LimitBatch.add's argument) is buffered for the next batch. */
  const guardedCall = (issue, finish, guard, timeoutMs, now, limit = null, withNotes = false) =>
    new Promise((resolve, reject) => {
      const entry = new PendingCall(resolve, reject, withNotes, finish, guard)
      try {
        enqueue(issue, entry, limit)
      } catch (error) {
        return entry.fail(error) // refused before queueing (bad arguments): the guard's answer
      }
      if (timeoutMs > 0) {
        let queue = deadlines.get(timeoutMs)
        if (!queue) deadlines.set(timeoutMs, (queue = new DeadlineQueue(timeoutMs)))
        queue.add(entry, now)
      }
    })
  /** How many limit calls wait in the buffer for the next handOver. */
  const buffered = () => limits.count
  return { call, guardedCall, handOver, buffered, sockets }
}

/** Numbers per call in a LimitBatch (src/limit_batch.rs reads the same layout). */
const RECORD = 9

/**
 * limit() calls on a native remote store, buffered until the store flushes and then handed to
 * `limitBatch` in one N-API call (a call of its own costs about 30 times as much on this
 * thread: src/limit_batch.rs). Per call: `[id, kind, a, b, c, now, rate, waitMs, keyLength]`
 * in `records`, and the key appended to `keys`.
 */
class LimitBatch {
  constructor() {
    this.records = new Float64Array(RECORD * 64)
    this.count = 0
    this.keys = ''
  }

  /** `limit`: `{ algorithm: [kind, a, b, c], key, now, rate, waitMs }`. */
  add(id, limit) {
    let at = this.count * RECORD
    if (at + RECORD > this.records.length) {
      const grown = new Float64Array(this.records.length * 2)
      grown.set(this.records)
      this.records = grown
    }
    const records = this.records
    const algorithm = limit.algorithm
    records[at++] = id
    records[at++] = algorithm[0]
    records[at++] = algorithm[1]
    records[at++] = algorithm[2]
    records[at++] = algorithm[3]
    records[at++] = limit.now
    records[at++] = limit.rate
    records[at++] = limit.waitMs > 0 ? limit.waitMs : 0
    records[at] = limit.key.length
    this.keys += limit.key
    this.count++
  }

  handOver(store) {
    const { records, count, keys } = this
    this.count = 0
    this.keys = ''
    engine.limitBatch(store, records, count, keys)
  }
}

/** `wire`: `native` is an event-loop store, REST or Redis (its sockets are lib/wire.js'). `kind`: what
 * its store-request messages name it (lib/store-requests.js). */
function remember(redis, native, wire = false, kind = 'rest') {
  let entry = null
  if (native) {
    const sync = native.synchronous
    let scheduled = false
    let queued = 0
    let handOver = null
    let sockets = null
    const record = sync ? null : storeRequests.requestRecording(native)
    const send = () => {
      record()
      handOver?.()
      if (sockets) sockets.flush()
      else native.flush()
    }
    const flush = () => {
      scheduled = false
      queued = 0
      send()
    }
    const flushSoon = () => {
      if (++queued >= FLUSH_AT) {
        queued = 0
        send()
      } else if (!scheduled) {
        scheduled = true
        scheduleFlush(flush)
      }
    }
    const calls = sync ? null : batchedCalls(native, flushSoon, wire, kind)
    handOver = calls?.handOver
    sockets = calls?.sockets ?? null
    // `queue()`: the native store, for a call made on it directly (not through `call`), after
    // the buffered limit calls (so the store sees calls in the order they were made). The
    // memory store's buffered calls are the turn's limit() calls (lib/memory-batch.js).
    const queue = sync
      ? () => {
          flushMemoryBatch()
          return native
        }
      : () => {
          handOver?.()
          return native
        }
    entry = { native, sync, queue, flushSoon: sync ? () => {} : flushSoon, call: calls?.call, guardedCall: calls?.guardedCall }
  }
  storeOf.set(redis, entry)
  return entry
}

/**
 * Our Redis on the WebAssembly engine → the store its plain limit() calls take (as the native
 * stores' fast path: records buffered per turn, one Promise per call, shared deadline timers),
 * written and read by the module in one crossing per batch (lib/rest-pipeline.js). Everything
 * else on that client takes the compat path through its methods, into the same pipeline.
 */
const limitStoreOf = new WeakMap()

function rememberPipeline(redis, pipeline) {
  // Called after each buffered call (batchedCalls' enqueue): a full request goes out at once.
  const flushSoon = () => {
    if (pipeline.wouldFill(calls.buffered())) pipeline.flush()
    else pipeline.flushSoon()
  }
  const calls = batchedCalls(pipeline, flushSoon, false, 'rest', false)
  // Commands queued by the compat path, and each send, first take the buffered limit calls,
  // so the request keeps the order calls were made in.
  pipeline.beforeQueue = calls.handOver
  limitStoreOf.set(redis, { native: pipeline, sync: false, limitsOnly: true, flushSoon, guardedCall: calls.guardedCall })
}

/**
 * The store a plain limit() on `redis` takes: its native store (nativeStoreFor), or, on the
 * WebAssembly engine, our Redis' batched limit store (`limitsOnly`: a limit call with nothing
 * around it, no dynamic limits; everything else goes through the client's methods). Null when
 * neither applies or the user replaced one of its commands.
 */
function limitStoreFor(redis, store) {
  if (store) return store
  const batched = limitStoreOf.get(redis)
  return batched && ownCommandsIntact(redis) ? batched : null
}

/** `tls: { rejectUnauthorized: false }`: certificates are not verified (https:// and rediss://). */
function acceptInvalidCerts(config) {
  const tls = config.tls
  if (tls !== undefined && (tls === null || typeof tls !== 'object')) {
    throw new TypeError('ratelimit-native: `tls` must be an object such as { rejectUnauthorized: false }')
  }
  return tls?.rejectUnauthorized === false
}

/** `redis://user:pass@host:port/db` → `redis://host:port/db`, for display. */
function withoutCredentials(url) {
  const at = url.lastIndexOf('@')
  if (at === -1) return url
  return url.slice(0, url.indexOf('//') + 2) + url.slice(at + 1)
}

/**
 * `new Redis({ url, cluster: true })`: a Redis Cluster over TCP, found from `url` (one node, or
 * a list of them); commands go to the node serving their key's slot, and limiters on it use
 * the cluster key layout (lib/cluster.js).
 */
function openCluster(redis, config) {
  const { url, cluster } = config
  if (cluster !== true) throw new TypeError(`ratelimit-native: \`cluster\` must be true or false, got ${typeof cluster}`)
  const seeds = typeof url === 'string' ? [url] : url
  if (!Array.isArray(seeds) || seeds.length === 0 || !seeds.every((seed) => typeof seed === 'string' && /^rediss?:\/\//i.test(seed))) {
    throw new TypeError('ratelimit-native: a Redis Cluster needs `url`: a redis:// or rediss:// URL of one of its nodes, or a list of them')
  }
  if (!engine.hasRemoteStores) {
    throw new Error(`ratelimit-native: a Redis Cluster needs the native engine (Redis over TCP), which cannot run on ${runtimeName()}`)
  }
  remember(redis, engine.NativeStore.redisCluster(seeds, { acceptInvalidCerts: acceptInvalidCerts(config) }), false, 'cluster')
  Object.defineProperty(redis, 'url', { value: seeds.map(withoutCredentials).join(','), enumerable: true })
  markCluster(redis)
  defineCommands(redis, nativeSend(redis))
}

/**
 * Redis Sentinel: `new Redis({ sentinels: [{ host, port }], name, password })` or
 * `new Redis({ url: "redis+sentinel://[:password@]host:port[,host:port…]/name[/db]" })`
 * (`rediss+sentinel://` reaches the master over TLS). The sentinels are asked where the master
 * of `name` is, and asked again whenever it is lost or turns out to be a replica.
 */
function openSentinel(redis, config) {
  const { sentinels, name, password, username, db } = sentinelSettings(config)
  if (!engine.hasRemoteStores) {
    throw new Error(`ratelimit-native: Redis Sentinel needs the native engine (Redis over TCP), which cannot run on ${runtimeName()}`)
  }
  const sentinelUrls = sentinels.map(({ host, port }) => redisUrlOf({ username: config.sentinelUsername, password: config.sentinelPassword, host, port }))
  const scheme = config.tls || /^rediss\+/i.test(config.url ?? '') ? 'rediss' : 'redis'
  // The master's host is the sentinels' to say: only its user, password and database are read.
  const master = redisUrlOf({ scheme, username, password, host: 'master', db })
  remember(redis, engine.NativeStore.redisSentinel(sentinelUrls, name, master, { acceptInvalidCerts: acceptInvalidCerts(config) }), false, 'sentinel')
  const shown = `${scheme}+sentinel://${sentinels.map(({ host, port }) => `${host}:${port}`).join(',')}/${name}`
  Object.defineProperty(redis, 'url', { value: shown, enumerable: true })
  defineCommands(redis, nativeSend(redis))
}

/**
 * `scheme://[user][:password@]host[:port][/db]`, user and password percent-encoded, an IPv6
 * host in brackets; port and database only when given.
 */
function redisUrlOf({ scheme = 'redis', username, password, host, port, db }) {
  const auth = password ? `${encodeURIComponent(username ?? '')}:${encodeURIComponent(password)}@` : username ? `${encodeURIComponent(username)}@` : ''
  const hostPart = host.includes(':') ? `[${host}]` : host
  return `${scheme}://${auth}${hostPart}${port === undefined ? '' : `:${port}`}${db === undefined ? '' : `/${db}`}`
}

/** The sentinel options, from the object form or the URL, checked (never echoing a password). */
function sentinelSettings(config) {
  const bad = (what) => new TypeError(`ratelimit-native: Redis Sentinel: ${what}`)
  let { sentinels, name, password, username, db = 0 } = config
  if (config.sentinels === undefined) {
    const match = /^rediss?\+sentinel:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/]+)\/([^/]+)(?:\/(\d+))?\/?$/i.exec(config.url)
    if (!match) throw bad('the URL must look like redis+sentinel://[:password@]host:port[,host:port…]/name[/db]')
    username = match[1] ? decodeURIComponent(match[1]) : undefined
    password = match[2] !== undefined ? decodeURIComponent(match[2]) : undefined
    sentinels = match[3].split(',').map((hostPort) => {
      const at = hostPort.lastIndexOf(':')
      return at > 0 ? { host: hostPort.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(hostPort.slice(at + 1)) } : { host: hostPort, port: 26379 }
    })
    name = decodeURIComponent(match[4])
    db = match[5] === undefined ? 0 : Number(match[5])
  }
  if (!Array.isArray(sentinels) || sentinels.length === 0) throw bad('`sentinels` must be a non-empty list of { host, port }')
  const list = sentinels.map((s) => (typeof s === 'string' ? { host: s.slice(0, s.lastIndexOf(':')), port: Number(s.slice(s.lastIndexOf(':') + 1)) } : s))
  for (const s of list) {
    if (!s || typeof s.host !== 'string' || !/^(?:[\w.-]+|[0-9a-f:]+)$/i.test(s.host) || !Number.isInteger(s.port ?? 26379) || (s.port ?? 26379) < 1 || (s.port ?? 26379) > 65535) {
      throw bad('every sentinel needs a `host` (a name or an address) and a `port` (1–65535)')
    }
  }
  if (typeof name !== 'string' || name === '') throw bad('`name` (the master group sentinels monitor, e.g. "mymaster") is required')
  if (password !== undefined && typeof password !== 'string') throw bad('`password` must be a string')
  if (!Number.isInteger(Number(db)) || Number(db) < 0) throw bad('`db` must be a database number')
  return { sentinels: list.map((s) => ({ host: s.host, port: s.port ?? 26379 })), name, password, username, db: Number(db) }
}

/** Upstream-compatible parsing of string replies (`@upstash/redis` automaticDeserialization). */
function parseReply(value) {
  if (Array.isArray(value)) return value.map(parseReply)
  if (typeof value !== 'string') return value
  try {
    const parsed = JSON.parse(value)
    if (typeof parsed === 'number' && parsed.toString() !== value) return value
    return parsed
  } catch {
    return value
  }
}

const URL_PATTERN = /^https?:\/\/[^\s#$./?].\S*$/

/**
 * An Upstash Redis REST client with `@upstash/redis`'s constructor shape, served from Rust.
 * It implements the commands rate limiting needs (evalsha, eval, get, set, del).
 */
class Redis {
  constructor(config) {
    const { url, token } = config ?? {}
    if (config?.cluster !== undefined && config.cluster !== false) {
      openCluster(this, config)
      return
    }
    if (config?.sentinels !== undefined || (typeof url === 'string' && /^rediss?\+sentinel:\/\//i.test(url))) {
      openSentinel(this, config)
      return
    }
    if (typeof url === 'string' && /^rediss?:\/\//i.test(url)) {
      if (!engine.hasRemoteStores) {
        throw new Error(
          `ratelimit-native: redis:// and rediss:// URLs need the native engine (Redis over TCP), which cannot run on ${runtimeName()}; use an Upstash REST URL (https://…) here`,
        )
      }
      // Plain Redis over TCP (rediss://: over TLS): the same scripts and keys, no REST hop. The
      // password lives in the URL, so neither it nor the URL is ever echoed. On redis:// the
      // connections are sockets of Node's event loop (lib/wire.js: no thread hop per call);
      // rediss:// goes through the native client (rustls).
      if (/^redis:\/\//i.test(url)) remember(this, engine.NativeStore.redisWire(url), true, 'tcp')
      else remember(this, engine.NativeStore.redisTcp(url, { acceptInvalidCerts: acceptInvalidCerts(config) }), false, 'tcp')
      Object.defineProperty(this, 'url', { value: withoutCredentials(url), enumerable: true })
      defineCommands(this, nativeSend(this))
      return
    }
    if (typeof url !== 'string' || url === '' || typeof token !== 'string' || token === '') {
      throw new Error(
        'ratelimit-native: Redis needs a `url` and a `token` (e.g. from UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN), or a redis:// URL',
      )
    }
    if (!URL_PATTERN.test(url)) {
      // Never echo the value: a swapped token or a URL with a password would end up in logs.
      // The scheme alone says what is wrong.
      const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]
      throw new Error(
        `ratelimit-native: invalid Upstash REST URL${scheme ? ` (scheme "${scheme}:")` : ''}; it must start with http:// or https:// (or redis:// / rediss:// for Redis over TCP)`,
      )
    }
    const acceptInvalid = acceptInvalidCerts(config)
    if (engine.hasRemoteStores) {
      rememberRest(this, url, token, acceptInvalid)
      defineCommands(this, nativeSend(this))
    } else {
      // The WebAssembly engine: plain limit() calls in batches the module writes, everything
      // else through these commands (compat path), in one /pipeline request per turn.
      remember(this, null)
      const pipeline = new RestPipeline(url, token, acceptInvalid)
      rememberPipeline(this, pipeline)
      defineCommands(this, (args) => pipeline.command(args))
    }
    Object.defineProperty(this, 'url', { value: url.replace(/\/$/, ''), enumerable: true })
  }

  /**
   * The embedded store: no server, state in this process (shared by every limiter and worker
   * thread of the process). `maxKeys` caps live keys process-wide (default 1,000,000).
   */
  static memory(options) {
    const maxKeys = options?.maxKeys
    if (maxKeys !== undefined && !(Number.isInteger(maxKeys) && maxKeys > 0 && maxKeys <= 0xffffffff)) {
      throw new TypeError(`ratelimit-native: maxKeys must be a positive integer, got ${String(maxKeys)}`)
    }
    const redis = Object.create(Redis.prototype)
    remember(redis, engine.NativeStore.memory(maxKeys === undefined ? undefined : { maxKeys }))
    Object.defineProperty(redis, 'url', { value: 'memory:', enumerable: true })
    defineCommands(redis, nativeSend(redis))
    return redis
  }

  /**
   * Reads UPSTASH_REDIS_REST_URL / _TOKEN, then KV_REST_API_URL / _TOKEN, from `process.env`
   * like `@upstash/redis`; on Cloudflare Workers pass the `env` binding, as with
   * `@upstash/redis/cloudflare`: `Redis.fromEnv(env)` (options then go second).
   */
  static fromEnv(configOrEnv, config) {
    const given = configOrEnv !== null && typeof configOrEnv === 'object' && ENV_NAMES.some((name) => name in configOrEnv)
    const env = given ? configOrEnv : typeof process !== 'undefined' ? process.env : undefined
    if (!env) {
      throw new Error('ratelimit-native: Redis.fromEnv() needs process.env; on Cloudflare Workers pass the env binding: Redis.fromEnv(env)')
    }
    const url = env.UPSTASH_REDIS_REST_URL || env.KV_REST_API_URL
    const token = env.UPSTASH_REDIS_REST_TOKEN || env.KV_REST_API_TOKEN
    if (!url || !token) return unconfigured(url ? 'UPSTASH_REDIS_REST_TOKEN' : 'UPSTASH_REDIS_REST_URL')
    return new Redis({ ...(given ? config : configOrEnv), url, token })
  }
}

/**
 * `Redis.fromEnv()` where the variables are not set: as @upstash/redis, a warning now and a
 * failure on use, not an error at construction. (Next.js evaluates route modules while it
 * builds, often without the variables; the server that runs them later has them.)
 */
function unconfigured(missing) {
  console.warn(`ratelimit-native: Redis.fromEnv() found no ${missing} (nor its KV_REST_API_* twin); every call on this client fails until it is set.`)
  const redis = Object.create(Redis.prototype)
  remember(redis, null)
  Object.defineProperty(redis, 'url', { value: '', enumerable: true })
  defineCommands(redis, () =>
    Promise.reject(new Error(`ratelimit-native: Redis.fromEnv() found no ${missing} when this client was made; set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN`)),
  )
  return redis
}

const ENV_NAMES = ['UPSTASH_REDIS_REST_URL', 'UPSTASH_REDIS_REST_TOKEN', 'KV_REST_API_URL', 'KV_REST_API_TOKEN']

/** How our Redis on a native store sends one command (its words as strings). */
function nativeSend(redis) {
  return (args) => {
    const entry = storeOf.get(redis)
    try {
      if (entry.sync) return entry.queue().commandNow(args, Date.now())
      const reply = entry.queue().command(args)
      entry.flushSoon()
      return reply.catch(rethrowStoreError)
    } catch (error) {
      throw asStoreError(error)
    }
  }
}

/** The commands rate limiting uses, as own properties of a Redis instance (like
 * @upstash/redis' methods, so `const { get } = redis` works too). `send(args)` sends one
 * command and returns its reply (or a Promise of it). */
function defineCommands(redis, send) {
  const run = async (parts) => parseReply(await send(parts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p)))))
  redis.evalsha = async (sha1, keys, args) => run(['EVALSHA', sha1, keys.length, ...keys, ...args])
  redis.eval = async (script, keys, args) => run(['EVAL', script, keys.length, ...keys, ...args])
  redis.get = async (key) => run(['GET', key])
  redis.set = async (key, value, opts) => {
    const extra = []
    if (opts && typeof opts === 'object') {
      if (opts.ex !== undefined) extra.push('EX', opts.ex)
      if (opts.px !== undefined) extra.push('PX', opts.px)
      if (opts.nx) extra.push('NX')
      if (opts.xx) extra.push('XX')
    }
    const encoded = typeof value === 'string' ? value : JSON.stringify(value)
    return run(['SET', key, encoded, ...extra])
  }
  redis.del = async (...keys) => run(['DEL', ...keys])
  redis.zincrby = async (key, increment, member) =>
    run(['ZINCRBY', key, increment, typeof member === 'string' ? member : JSON.stringify(member)])
  // The multi-region back-fill's write, when it goes through the client (compat path).
  redis.hset = async (key, fields) => run(['HSET', key, ...Object.entries(fields).flat()])
  definedCommands.set(redis, REPLACED_COMMANDS.map((name) => redis[name]))
}

/** Our Redis → its commands as defined, to tell when a user replaced one (REPLACED_COMMANDS). */
const definedCommands = new WeakMap()

/** False when one of the commands the native path replaces is no longer the one we defined on
 * our Redis (an @upstash/redis instance was checked when recognised). */
function ownCommandsIntact(redis) {
  const defined = definedCommands.get(redis)
  if (defined === undefined) return true
  for (let i = 0; i < REPLACED_COMMANDS.length; i++) {
    if (Object.getOwnPropertyDescriptor(redis, REPLACED_COMMANDS[i])?.value !== defined[i]) return false
  }
  return true
}

/**
 * The native store behind a `redis` option as `{ native, sync, … }`, or null when calls must go
 * through the object's own methods (compat path): any object but our own `Redis` and an
 * unmodified `@upstash/redis` instance (lib/upstash-client.js), and either of those once a
 * command the native path replaces was swapped for the user's own. A limiter decides this when it
 * is created (`decideStore`).
 */
function nativeStoreFor(redis) {
  if (redis === null || (typeof redis !== 'object' && typeof redis !== 'function')) return null
  let entry = storeOf.get(redis)
  if (entry === undefined) {
    // On the WebAssembly engine every client goes through its own methods (fetch).
    const credentials = engine.hasRemoteStores ? upstashCredentials(redis) : null
    entry = credentials ? rememberRest(redis, credentials.url, credentials.token, false) : remember(redis, null)
  }
  if (entry !== null && !entry.sync && !ownCommandsIntact(redis)) return null
  return entry
}

/** Where a limiter's context keeps the store decided for it (non-enumerable). */
const STORE = Symbol('ratelimit-native.store')

/** Decides, once, how the limiter with context `ctx` reaches `ctx.redis`. */
function decideStore(ctx) {
  const store = nativeStoreFor(ctx.redis)
  Object.defineProperty(ctx, STORE, { value: store })
  return store
}

/** The store decided for `ctx` (a context built elsewhere is decided on the spot). */
function storeOfContext(ctx) {
  return STORE in ctx ? ctx[STORE] : nativeStoreFor(ctx.redis)
}

/**
 * A REST store: on http:// its requests travel on sockets of Node's event loop (no thread hop
 * per call); on https:// through the native client (rustls), which verifies certificates the
 * way the TLS and redis:// paths do.
 */
function rememberRest(redis, url, token, acceptInvalid) {
  if (/^http:\/\//i.test(url)) return remember(redis, engine.NativeStore.upstashRestWire(url, token), true)
  return remember(redis, engine.NativeStore.upstashRest(url, token, { acceptInvalidCerts: acceptInvalid }))
}

module.exports = { Redis, nativeStoreFor, decideStore, storeOfContext, limitStoreFor, parseReply, redisUrlOf }
