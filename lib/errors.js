'use strict'
// The errors a store reports, as @upstash/redis reports them: what Redis or the REST server
// rejected is an `UpstashError` (name "UpstashError", message `Command failed: <redis error>`),
// on the REST and the TCP paths alike, so code that checks `error.name`, matches the message or
// uses `instanceof UpstashError` (exported) keeps working. Failures to reach the store (a
// refused connection, a timeout) stay plain Errors, as `fetch`'s are upstream.

/** Same name and shape as `@upstash/redis`' UpstashError (its own class; not copied). */
class UpstashError extends Error {
  constructor(message, options) {
    super(message, options)
    this.name = 'UpstashError'
  }

  /** `instanceof UpstashError` also holds for @upstash/redis' own UpstashErrors (the compat path
   * hands on what a user's @upstash/redis client threw). */
  static [Symbol.hasInstance](value) {
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true
    return this === UpstashError && value instanceof Error && value.name === 'UpstashError'
  }
}

// The messages the native store gives its rejections (crates/ratelimit-core StoreError):
// `Command failed: …` (Redis rejected it), `… (HTTP 401)` (the REST server answered an error),
// `unparseable answer from the Upstash REST server: …`.
const FROM_THE_SERVER = /^(?:Command failed: |unparseable answer from the Upstash REST server: )|\(HTTP \d{3}\)$/

/** A failure message from the native store → the error to reject with. */
function storeError(message) {
  return FROM_THE_SERVER.test(message) ? new UpstashError(message) : new Error(message)
}

/** A rejection of a native store call → the same, as an UpstashError where upstream's is one. */
function asStoreError(error) {
  if (error instanceof Error && !(error instanceof UpstashError) && typeof error.message === 'string' && FROM_THE_SERVER.test(error.message)) {
    return new UpstashError(error.message)
  }
  return error
}

/** `.catch(rethrowStoreError)` on a native store call's Promise. */
function rethrowStoreError(error) {
  throw asStoreError(error)
}

/** The analytics write inside a limit script failed with Redis' `text` (the ZINCRBY's error). */
function analyticsWriteError(text) {
  return new UpstashError(`Command failed: ${text}`)
}

module.exports = { UpstashError, storeError, asStoreError, rethrowStoreError, analyticsWriteError }
