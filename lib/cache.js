'use strict'
// The ephemeral cache: remembers identifiers that Redis rejected, until their reset time, so
// an over-limit flood is answered on the JS thread without any network call. Backed by a Map
// (the user's own Map when they pass one, so several limiters can share block state).

class EphemeralCache {
  constructor(map) {
    this.cache = map
  }

  isBlocked(identifier) {
    if (!this.cache.has(identifier)) return { blocked: false, reset: 0 }
    const reset = this.cache.get(identifier)
    if (reset < Date.now()) {
      this.cache.delete(identifier)
      return { blocked: false, reset: 0 }
    }
    return { blocked: true, reset }
  }

  blockUntil(identifier, reset) {
    this.cache.set(identifier, reset)
  }

  set(key, value) {
    this.cache.set(key, value)
  }

  get(key) {
    return this.cache.get(key) || null
  }

  incr(key, incrementAmount = 1) {
    let value = this.cache.get(key) ?? 0
    value += incrementAmount
    this.cache.set(key, value)
    return value
  }

  pop(key) {
    this.cache.delete(key)
  }

  empty() {
    this.cache.clear()
  }

  size() {
    return this.cache.size
  }
}

module.exports = { EphemeralCache }
