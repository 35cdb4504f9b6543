'use strict'
// The ephemeral cache: remembers identifiers that Redis rejected, until their reset time, so
// an over-limit flood is answered on the JS thread without any network call. Backed by a Map
// (the user's own Map when they pass one, so several limiters can share block state).
//
// Upstream's Map only loses an entry when that same identifier is looked up after its reset,
// so a flood of distinct blocked identifiers grows it without bound. Here, every `maxEntries / 2`
// writes sweep out entries whose reset has passed (amortised O(1) per write, no timers), and the
// cache we create ourselves is capped: past `maxEntries` the oldest blocks are dropped (a dropped
// block only costs one store call later; it never lets a request through that the store would
// refuse). A Map the user passes in is swept but never capped: it is theirs.

const DEFAULT_MAX_ENTRIES = 100_000
const NOT_BLOCKED = Object.freeze({ blocked: false, reset: 0 })

class EphemeralCache {
  constructor(map, { maxEntries = Infinity } = {}) {
    this.cache = map
    this.maxEntries = maxEntries
    this.writesSinceSweep = 0
  }

  /** The cache a limiter gets when the user does not pass a Map: bounded. */
  static bounded() {
    return new EphemeralCache(new Map(), { maxEntries: DEFAULT_MAX_ENTRIES })
  }

  #afterWrite() {
    this.writesSinceSweep += 1
    if (this.writesSinceSweep >= Math.max(1024, Math.min(this.cache.size, this.maxEntries) / 2)) {
      this.writesSinceSweep = 0
      const now = Date.now()
      for (const [key, reset] of this.cache) {
        // Block entries hold a reset time; cachedFixedWindow's counters (small numbers) stay.
        if (reset > 1e11 && reset < now) this.cache.delete(key)
      }
    }
    if (this.cache.size > this.maxEntries) {
      // Drop the oldest tenth in one pass: evicting one entry per write would restart the
      // key iterator (past all deleted slots) every time, which is quadratic under a flood.
      const target = Math.floor(this.maxEntries * 0.9)
      for (const key of this.cache.keys()) {
        if (this.cache.size <= target) break
        this.cache.delete(key)
      }
    }
  }

  isBlocked(identifier) {
    // Nothing blocked (the usual case under a limit nobody exceeds): no hashing of the key.
    if (this.cache.size === 0) return NOT_BLOCKED
    const reset = this.cache.get(identifier)
    if (reset === undefined && !this.cache.has(identifier)) return NOT_BLOCKED
    if (reset < Date.now()) {
      this.cache.delete(identifier)
      return { blocked: false, reset: 0 }
    }
    return { blocked: true, reset }
  }

  blockUntil(identifier, reset) {
    this.cache.set(identifier, reset)
    this.#afterWrite()
  }

  set(key, value) {
    this.cache.set(key, value)
    this.#afterWrite()
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

module.exports = { EphemeralCache, DEFAULT_MAX_ENTRIES }
