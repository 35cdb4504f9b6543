'use strict'
// Which Redis a limiter talks to, and how:
// - our own `Redis` (and an `@upstash/redis` instance, recognised by its base URL and token)
//   → the native store: HTTP from Rust, concurrent calls batched into one /pipeline request;
// - any other object with evalsha/eval/get/set/del (an ioredis adapter, a test double)
//   → the compat path: the same scripts, sent through that object's methods from JS.

const native = require('./native')

const storeOf = new WeakMap()

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
    if (typeof url !== 'string' || url === '' || typeof token !== 'string' || token === '') {
      throw new Error(
        'ratelimit-native: Redis needs a `url` and a `token` (e.g. from UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN)',
      )
    }
    if (!URL_PATTERN.test(url)) {
      throw new Error(`ratelimit-native: invalid Upstash REST URL ${JSON.stringify(url.split('?')[0])}; it must start with http:// or https://`)
    }
    storeOf.set(this, native.NativeStore.upstashRest(url, token))
    Object.defineProperty(this, 'url', { value: url.replace(/\/$/, ''), enumerable: true })
  }

  /** Reads UPSTASH_REDIS_REST_URL / _TOKEN, then KV_REST_API_URL / _TOKEN, like `@upstash/redis`. */
  static fromEnv(config) {
    const env = typeof process !== 'undefined' ? process.env : undefined
    if (!env) throw new Error('ratelimit-native: Redis.fromEnv() needs process.env')
    const url = env.UPSTASH_REDIS_REST_URL || env.KV_REST_API_URL
    const token = env.UPSTASH_REDIS_REST_TOKEN || env.KV_REST_API_TOKEN
    return new Redis({ ...config, url, token })
  }

  evalsha = async (sha1, keys, args) => this.#run(['EVALSHA', sha1, keys.length, ...keys, ...args])
  eval = async (script, keys, args) => this.#run(['EVAL', script, keys.length, ...keys, ...args])
  get = async (key) => this.#run(['GET', key])
  set = async (key, value, opts) => {
    const extra = []
    if (opts && typeof opts === 'object') {
      if (opts.ex !== undefined) extra.push('EX', opts.ex)
      if (opts.px !== undefined) extra.push('PX', opts.px)
      if (opts.nx) extra.push('NX')
      if (opts.xx) extra.push('XX')
    }
    const encoded = typeof value === 'string' ? value : JSON.stringify(value)
    return this.#run(['SET', key, encoded, ...extra])
  }
  del = async (...keys) => this.#run(['DEL', ...keys])

  async #run(parts) {
    const store = storeOf.get(this)
    return parseReply(await store.command(parts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p)))))
  }
}

/** Recognises an `@upstash/redis` instance and returns its base URL and token. */
function upstashCredentials(redis) {
  let client
  try {
    client = redis.client
  } catch {
    return null
  }
  const url = client && client.baseUrl
  const auth = client && client.headers && client.headers.authorization
  if (typeof url !== 'string' || typeof auth !== 'string' || !auth.startsWith('Bearer ')) return null
  return { url, token: auth.slice('Bearer '.length) }
}

/** The native store behind a `redis` option, or null when calls must go through its methods. */
function nativeStoreFor(redis) {
  if (redis === null || (typeof redis !== 'object' && typeof redis !== 'function')) return null
  const known = storeOf.get(redis)
  if (known !== undefined) return known
  const credentials = upstashCredentials(redis)
  const store = credentials ? native.NativeStore.upstashRest(credentials.url, credentials.token) : null
  storeOf.set(redis, store)
  return store
}

module.exports = { Redis, nativeStoreFor, parseReply }
