'use strict'
// Recognises an unmodified `@upstash/redis` instance, whose calls the native store may make in
// its place (same URL, token and commands, batched natively). Anything else — a spread copy
// (`{ ...redis, evalsha }`), an instance whose methods were replaced, a subclass overriding
// them — is the user's object: the limiter calls its methods, as @upstash/ratelimit does.
//
// "Unmodified" means: each command the native path would call in the client's place (below) is
// the one @upstash/redis' class defines. Its commands are class fields (arrow functions set by
// the constructor), so the test is that the function's source text is part of the source of the
// client's root class (the base class that defines them). A user's replacement, a bound
// function or a subclass' field is not. Property descriptors are read rather than the
// properties themselves, so the auto-pipelining Proxy of @upstash/redis (whose `get` trap hands
// out wrappers) shows the instance's own functions; a Proxy of the user's that only traps `get`
// cannot be told apart from the instance it wraps, and stays on the native path.

/** What the native path does in the client's place: scripts (evalsha / eval), the multi-region
 * back-fill (hset), the analytics write (zincrby). The rest (get, set, del, multi, pipeline) is
 * always called through the client. */
const REPLACED_COMMANDS = ['evalsha', 'eval', 'hset', 'zincrby']

const sourceOf = (fn) => Function.prototype.toString.call(fn)
const rootSources = new WeakMap() // root class → its source text

/** The base class of `object` (the last constructor before Object.prototype), or null. */
function rootClass(object) {
  let proto = Object.getPrototypeOf(object)
  let root = null
  for (let depth = 0; proto !== null && proto !== Object.prototype && depth < 32; depth++) {
    const ctor = Object.getOwnPropertyDescriptor(proto, 'constructor')?.value
    if (typeof ctor === 'function') root = ctor
    proto = Object.getPrototypeOf(proto)
  }
  return root
}

/** The data property `name` of `object` or of its prototypes, without running getters or traps
 * beyond getOwnPropertyDescriptor. */
function methodOf(object, name) {
  for (let o = object, depth = 0; o !== null && depth < 32; o = Object.getPrototypeOf(o), depth++) {
    const descriptor = Object.getOwnPropertyDescriptor(o, name)
    if (descriptor) return 'value' in descriptor ? descriptor.value : null
  }
  return undefined
}

/** True when every command the native path replaces is the one the client's class defines. */
function commandsAreTheClassOwn(redis) {
  const root = rootClass(redis)
  if (root === null) return false
  let source = rootSources.get(root)
  if (source === undefined) rootSources.set(root, (source = sourceOf(root)))
  for (const name of REPLACED_COMMANDS) {
    const fn = methodOf(redis, name)
    if (fn === undefined) continue // an older client without that command: nothing to replace
    if (typeof fn !== 'function' || !source.includes(sourceOf(fn))) return false
  }
  return true
}

/**
 * An unmodified `@upstash/redis` instance → its base URL and token; anything else → null.
 * (`client` is @upstash/redis' HttpClient: `baseUrl`, and the token in its `authorization` header.)
 */
function upstashCredentials(redis) {
  try {
    const client = redis.client
    const url = client && client.baseUrl
    const auth = client && client.headers && client.headers.authorization
    if (typeof url !== 'string' || typeof auth !== 'string' || !auth.startsWith('Bearer ')) return null
    if (!commandsAreTheClassOwn(redis)) return null
    return { url, token: auth.slice('Bearer '.length) }
  } catch {
    return null // a getter or trap that throws: not something to take over
  }
}

module.exports = { upstashCredentials, REPLACED_COMMANDS }
