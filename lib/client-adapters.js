'use strict'
// The Redis clients users already have, as `redis:` of a limiter: ioredis (`Redis`, `Cluster`)
// and node-redis (v4/v5 `createClient`, `createCluster`), recognised by their shape, no option
// needed. Each is driven through its own methods in its own calling convention — ioredis'
// `evalsha(sha, numKeys, ...keys, ...args)`, node-redis' `evalSha(sha, { keys, arguments })` —
// behind the interface the limiters call (`evalsha(sha, keys, args)`, `get`, `set`, …, as
// @upstash/redis spells them), so keys, scripts and results are the same as with our own Redis.
// They talk to stock Redis: the scripts go without Upstash's key-locking line from the start,
// and NOSCRIPT → EVAL as for every client.
// An ioredis Cluster or a node-redis cluster client gets the cluster key layout (lib/cluster.js).

const engine = require('./engine')
const { parseReply, Redis, redisUrlOf } = require('./redis')
const { markCluster } = require('./cluster')

const asString = (value) => (typeof value === 'string' ? value : JSON.stringify(value))

/**
 * Whether `object` (or its prototypes) has a method `name`, read through property descriptors:
 * no getter runs and a Proxy's `get` trap is not used (an @upstash/redis auto-pipelining client
 * is such a Proxy; its methods are looked at, not taken).
 */
function hasMethod(object, name) {
  for (let o = object, depth = 0; o !== null && depth < 32; o = Object.getPrototypeOf(o), depth++) {
    const descriptor = Object.getOwnPropertyDescriptor(o, name)
    if (descriptor) return typeof descriptor.value === 'function' || typeof descriptor.get === 'function'
  }
  return false
}

/** "ioredis", "node-redis", or null for anything else. */
function clientKind(redis) {
  if (redis === null || typeof redis !== 'object') return null
  try {
    if (hasMethod(redis, 'defineCommand') && hasMethod(redis, 'sendCommand') && hasMethod(redis, 'evalsha') && 'status' in redis) return 'ioredis'
    if (hasMethod(redis, 'evalSha') && hasMethod(redis, 'sendCommand') && hasMethod(redis, 'zIncrBy')) return 'node-redis'
  } catch {
    // A Proxy trap that throws: not one of these clients.
  }
  return null
}

/** Whether an ioredis / node-redis client talks to a Redis Cluster (read through descriptors). */
function talksToCluster(redis, kind) {
  if (kind === 'node-redis') return hasMethod(redis, 'getSlotMaster')
  return Object.getOwnPropertyDescriptor(redis, 'isCluster')?.value === true
}

/** `set`'s options as @upstash/redis takes them (`{ ex, px, nx, xx }`). */
function setFlags(opts) {
  const flags = {}
  if (opts && typeof opts === 'object') {
    if (opts.ex !== undefined) flags.EX = opts.ex
    if (opts.px !== undefined) flags.PX = opts.px
    if (opts.nx) flags.NX = true
    if (opts.xx) flags.XX = true
  }
  return flags
}

function ioredisAdapter(client) {
  return {
    evalsha: (sha1, keys, args) => client.evalsha(sha1, keys.length, ...keys, ...args.map(asString)),
    eval: (script, keys, args) => client.eval(script, keys.length, ...keys, ...args.map(asString)),
    get: async (key) => parseReply(await client.get(key)),
    set: (key, value, opts) => client.set(key, asString(value), ...Object.entries(setFlags(opts)).flatMap(([flag, v]) => (v === true ? [flag] : [flag, v]))),
    del: (...keys) => client.del(...keys),
    hset: (key, fields) => client.hset(key, fields),
    zincrby: (key, increment, member) => client.zincrby(key, increment, asString(member)),
  }
}

function nodeRedisAdapter(client) {
  return {
    evalsha: (sha1, keys, args) => client.evalSha(sha1, { keys, arguments: args.map(asString) }),
    eval: (script, keys, args) => client.eval(script, { keys, arguments: args.map(asString) }),
    get: async (key) => parseReply(await client.get(key)),
    set: (key, value, opts) => client.set(key, asString(value), setFlags(opts)),
    del: (...keys) => client.del(keys),
    hset: (key, fields) => client.hSet(key, Object.fromEntries(Object.entries(fields).map(([f, v]) => [f, asString(v)]))),
    zincrby: (key, increment, member) => client.zIncrBy(key, increment, asString(member)),
  }
}

// A cluster client's call that the cluster refused while it reconfigures (a failover, a slot
// migration) certainly did not run: it is sent again a few times, about 1.6 s in all (the
// limiter's timeout answers the caller first when it is shorter). ioredis reports redirections
// that ran out as "Too many Cluster redirections. Last error: …".
const NOT_RUN = /^(?:CLUSTERDOWN|TRYAGAIN|MASTERDOWN|MOVED|ASK|READONLY)\b|^Too many Cluster redirections\. Last error: (?:ReplyError: )?(?:CLUSTERDOWN|TRYAGAIN|MASTERDOWN|MOVED|ASK|READONLY)\b/
const RESEND_MS = [25, 50, 100, 200, 400, 400, 400]

function resendingRefused(send) {
  return async (...args) => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await send(...args)
      } catch (error) {
        if (attempt >= RESEND_MS.length || !NOT_RUN.test(String(error?.message))) throw error
        await new Promise((resolve) => setTimeout(resolve, RESEND_MS[attempt]))
      }
    }
  }
}

/** Adapters already made, per client (a limiter and its Analytics share one). */
const adapters = new WeakMap()

/**
 * The client a limiter calls for `redis`: an adapter over an ioredis or node-redis client, or
 * `redis` itself (our Redis, @upstash/redis, any object with evalsha/get/set). `markStock(a)`
 * tells the compat path that the adapter talks to stock Redis.
 */
function ratelimitClient(redis, markStock) {
  const kind = clientKind(redis)
  if (kind === null) return redis
  let adapter = adapters.get(redis)
  if (!adapter) {
    adapter = kind === 'ioredis' ? ioredisAdapter(redis) : nodeRedisAdapter(redis)
    Object.defineProperty(adapter, 'client', { value: redis })
    Object.defineProperty(adapter, 'clientKind', { value: kind })
    adapters.set(redis, adapter)
    markStock(adapter)
    if (talksToCluster(redis, kind)) {
      markCluster(adapter)
      for (const name of ['evalsha', 'eval', 'get', 'set', 'del', 'zincrby']) adapter[name] = resendingRefused(adapter[name])
    }
  }
  return adapter
}

// --- the native connection in place of a standalone client --------------------------------
// A limiter on a standalone ioredis / node-redis client talks to that server over our own
// native connection when the client's settings say exactly where and how (host, port, user,
// password, database, TLS with or without verification): the same database, keys and scripts,
// without the client's per-call JS. Anything this cannot reproduce (a key prefix, a unix
// socket, client certificates or a private CA, a credentials provider without a password, a
// method the user replaced on the client) keeps the client's own methods.

/** `redis://…` for an ioredis client's settings, or null. */
function ioredisTarget(client) {
  const o = client.options
  if (!o || o.keyPrefix || o.sentinels || o.path || typeof o.host !== 'string' || o.host === '') return null
  return targetUrl({ host: o.host, port: o.port ?? 6379, username: o.username, password: o.password, db: o.db ?? 0, tls: o.tls })
}

/** `redis://…` for a node-redis client's settings, or null. */
function nodeRedisTarget(client) {
  const o = client.options
  const socket = o?.socket ?? {}
  if (!o || socket.path) return null
  // node-redis turns a password into a credentials provider of its own; a provider with no
  // password beside it is the user's (a rotating token, say): its secret is not read here.
  if (o.credentialsProvider !== undefined && typeof o.password !== 'string') return null
  const tls = socket.tls ? { rejectUnauthorized: socket.rejectUnauthorized, ca: socket.ca, cert: socket.cert, key: socket.key, pfx: socket.pfx } : undefined
  return targetUrl({ host: socket.host ?? 'localhost', port: socket.port ?? 6379, username: o.username, password: o.password, db: o.database ?? 0, tls })
}

function targetUrl({ host, port, username, password, db, tls }) {
  if ((password != null && typeof password !== 'string') || (username != null && typeof username !== 'string')) return null
  if (!Number.isInteger(Number(port)) || !Number.isInteger(Number(db))) return null
  let scheme = 'redis'
  let acceptInvalidCerts = false
  if (tls) {
    if (typeof tls === 'object' && (tls.ca || tls.cert || tls.key || tls.pfx || tls.servername || tls.checkServerIdentity)) return null
    scheme = 'rediss'
    acceptInvalidCerts = typeof tls === 'object' && tls.rejectUnauthorized === false
  }
  return { url: redisUrlOf({ scheme, username, password, host, port, db }), acceptInvalidCerts }
}

/** Our native clients made in place of users' clients (one per client: limiters share it). */
const nativeTwins = new WeakMap()

/**
 * Our own `Redis` on the server a standalone ioredis / node-redis `client` talks to, or null
 * (the client's methods are used then). Only where the native engine has Redis over TCP.
 */
function nativeTwin(client) {
  const kind = clientKind(client)
  if (kind === null) return null
  if (nativeTwins.has(client)) return nativeTwins.get(client)
  let twin = null
  const replaced = ['evalsha', 'evalSha', 'eval', 'get', 'set', 'del'].some((name) => Object.prototype.hasOwnProperty.call(client, name))
  if (!replaced && !talksToCluster(client, kind) && engine.hasRemoteStores) {
    const target = kind === 'ioredis' ? ioredisTarget(client) : nodeRedisTarget(client)
    if (target) twin = new Redis({ url: target.url, ...(target.acceptInvalidCerts ? { tls: { rejectUnauthorized: false } } : {}) })
  }
  nativeTwins.set(client, twin)
  return twin
}

/** A clear error at construction for an object no limiter can call. */
function checkClient(redis, where) {
  if (clientKind(redis) !== null) return
  let callable = false
  try {
    callable = hasMethod(redis, 'evalsha') && hasMethod(redis, 'get') && hasMethod(redis, 'set')
  } catch {
    callable = false
  }
  if (callable) return
  throw new TypeError(
    `ratelimit-native: ${where} is not a Redis client this package can call. Accepted: Redis.fromEnv(), new Redis({ url, token }), new Redis({ url: "redis://…" }), Redis.memory(), an @upstash/redis client, new Redis({ url: "redis://…", cluster: true }), an ioredis Redis or Cluster, a node-redis client (createClient / createCluster), or any object with evalsha(sha1, keys, args), eval, get and set`,
  )
}

module.exports = { ratelimitClient, checkClient, clientKind, nativeTwin }
