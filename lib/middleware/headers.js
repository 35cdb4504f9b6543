'use strict'
// The rate-limit response headers of one decision:
// - "legacy": the de-facto X-RateLimit-Limit / -Remaining / -Reset (Reset in unix seconds);
// - "draft": the IETF fields of draft-ietf-httpapi-ratelimit-headers-11: `RateLimit-Policy:
//   "<name>";q=<quota>;w=<window seconds>` and `RateLimit: "<name>";r=<remaining>;t=<seconds
//   until reset>` (Structured Fields: the policy name is an sf-string);
// - "both" (the default).
// A refusal adds Retry-After (whole seconds, at least 1) with the same rounding as `t`, so the
// two never disagree.

const { BUILT_IN } = require('../algorithms')

const MODES = ['legacy', 'draft', 'both', false]

function checkMode(mode) {
  if (!MODES.includes(mode)) {
    throw new TypeError(`ratelimit-native: headers must be "legacy", "draft", "both" or false, got ${JSON.stringify(mode)}`)
  }
  return mode
}

/** An sf-string: printable ASCII, with `"` and `\` escaped. */
function sfString(name) {
  if (typeof name !== 'string' || !/^[\x20-\x7e]*$/.test(name)) {
    throw new TypeError(`ratelimit-native: a policy name must be printable ASCII, got ${JSON.stringify(name)}`)
  }
  return `"${name.replace(/[\\"]/g, '\\$&')}"`
}

/** The window (seconds) of one of our algorithms, for RateLimit-Policy's `w`; undefined for others. */
function windowSeconds(ratelimit) {
  const described = ratelimit?.limiter?.[BUILT_IN]
  const ms = described?.windowMs ?? described?.intervalMs
  return typeof ms === 'number' && ms > 0 ? Math.max(1, Math.round(ms / 1000)) : undefined
}

/** Seconds from now until `reset` (unix ms), rounded up so a client never retries too early. */
function secondsUntil(reset, now) {
  return Math.max(0, Math.ceil((reset - now) / 1000))
}

/**
 * `[name, value]` pairs for a limit() response. `policy`: the policy name, already an sf-string
 * (sfString); `window`: seconds, or undefined. A timeout answer carries no numbers worth
 * sending: no headers.
 */
function rateLimitHeaders(result, { mode, policy, window, now = Date.now() }) {
  if (mode === false || result.reason === 'timeout') return []
  const headers = []
  const resetIn = secondsUntil(result.reset, now)
  const remaining = Math.max(0, result.remaining)
  if (mode === 'legacy' || mode === 'both') {
    headers.push(['X-RateLimit-Limit', String(result.limit)], ['X-RateLimit-Remaining', String(remaining)], ['X-RateLimit-Reset', String(Math.ceil(result.reset / 1000))])
  }
  if (mode === 'draft' || mode === 'both') {
    const name = policy
    headers.push(['RateLimit-Policy', `${name};q=${result.limit}${window === undefined ? '' : `;w=${window}`}`], ['RateLimit', `${name};r=${remaining};t=${resetIn}`])
  }
  return headers
}

/** Retry-After for a refused call (whole seconds, ≥ 1). */
function retryAfter(result, now = Date.now()) {
  return Math.max(1, secondsUntil(result.reset, now))
}

module.exports = { checkMode, sfString, windowSeconds, rateLimitHeaders, retryAfter }
