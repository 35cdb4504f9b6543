'use strict'
// What every framework adapter shares: its options, checked once at setup, and one decision per
// request — skip, or which limiter, which identifier and cost, the limit() call, the headers,
// and whether the request goes on (allowed, or a timeout answered open), is refused (429) or
// denied (403, the deny list). The adapters (hono.js, express.js, fastify.js, next.js) only read
// the request and write the response in their framework's terms.

const { settledPending } = require('../algorithms')
const { compileTrust, clientAddress } = require('./client-address')
const { checkMode, sfString, windowSeconds, rateLimitHeaders, retryAfter } = require('./headers')

const HANDLERS = ['onLimited', 'onDenied', 'onError']
/** What an `identify(request)` that does not take the second parameter gets anyway. */
const NO_ADDRESS = Object.freeze({ clientAddress: undefined })

function isLimiter(value) {
  return value !== null && typeof value === 'object' && typeof value.limit === 'function'
}

function checkFunction(options, name) {
  if (options[name] !== undefined && typeof options[name] !== 'function') {
    throw new TypeError(`ratelimit-native: ${name} must be a function, got ${typeof options[name]}`)
  }
}

/**
 * Checks the options shared by every adapter and returns the decision function:
 * `decide(request) → Promise<Decision>`, where `request` is `{ raw, peer, header(name) }` (the
 * framework's request or context, the socket's remote address if any, a header reader).
 * A Decision is `{ action: "skip" }`, or `{ action: "allow" | "limit" | "deny", result,
 * identifier, headers: [[name, value]…], retryAfter }`.
 */
function decider(options, adapter) {
  if (options === null || typeof options !== 'object') throw new TypeError(`ratelimit-native/${adapter}: options must be an object with a \`limiter\``)
  const { limiter } = options
  if (!isLimiter(limiter) && typeof limiter !== 'function') {
    throw new TypeError(`ratelimit-native/${adapter}: \`limiter\` must be a Ratelimit (or a function of the request returning one), got ${limiter === null ? 'null' : typeof limiter}`)
  }
  for (const name of ['identify', 'skip', 'policy', 'waitUntil', ...HANDLERS]) {
    if (name === 'policy' && typeof options.policy === 'string') continue
    checkFunction(options, name)
  }
  // A fixed policy name is checked (and quoted) once.
  const policyName = typeof options.policy === 'function' ? null : sfString(options.policy ?? 'default')
  const rate = options.rate ?? 1
  if (typeof rate !== 'function' && !(typeof rate === 'number' && Number.isFinite(rate))) {
    throw new TypeError(`ratelimit-native/${adapter}: \`rate\` must be a number or a function of the request, got ${String(rate)}`)
  }
  const mode = checkMode(options.headers ?? 'both')
  const trust = compileTrust(options.trustProxy)
  const ipHeader = options.ipHeader
  if (ipHeader !== undefined && (typeof ipHeader !== 'string' || !/^[a-z0-9-]+$/i.test(ipHeader))) {
    throw new TypeError(`ratelimit-native/${adapter}: \`ipHeader\` must be a header name such as "cf-connecting-ip", got ${JSON.stringify(ipHeader)}`)
  }
  const address = (request) => clientAddress(request, trust, ipHeader?.toLowerCase())

  return async function decide(request) {
    const raw = request.raw
    if (options.skip && (await options.skip(raw))) return { action: 'skip' }
    const ratelimit = isLimiter(limiter) ? limiter : await limiter(raw)
    if (!isLimiter(ratelimit)) throw new TypeError(`ratelimit-native/${adapter}: the \`limiter\` function returned ${ratelimit === null ? 'null' : typeof ratelimit}, not a Ratelimit`)
    // The address and the user agent are read only when something uses them: the default
    // identifier, an `identify` that takes the second parameter, and the deny-list check of a
    // limiter with enableProtection (each header read costs a microsecond or two through
    // Fetch's Headers).
    let ip = null
    const clientIp = () => (ip ??= { value: address(request) }).value
    let identifier = options.identify
      ? options.identify(raw, options.identify.length > 1 ? { clientAddress: clientIp() } : NO_ADDRESS)
      : (clientIp() ?? 'unknown')
    // Awaited only when it is a promise: an await costs a turn of the microtask queue.
    if (typeof identifier?.then === 'function') identifier = await identifier
    if (typeof identifier !== 'string' || identifier === '') {
      throw new TypeError(`ratelimit-native/${adapter}: \`identify\` must return a non-empty string, got ${JSON.stringify(identifier)}`)
    }
    const cost = typeof rate === 'function' ? await rate(raw) : rate
    let req = { rate: cost }
    if (ratelimit.enableProtection) {
      const userAgent = request.header('user-agent')
      req = { rate: cost, ...(clientIp() ? { ip: clientIp() } : {}), ...(userAgent ? { userAgent } : {}) }
    }
    const result = await ratelimit.limit(identifier, req)
    const now = Date.now()
    const policy = policyName ?? sfString(await options.policy(raw, ratelimit))
    const headers = rateLimitHeaders(result, { mode, policy, window: windowSeconds(ratelimit), now })
    const action = result.success ? 'allow' : result.reason === 'denyList' ? 'deny' : 'limit'
    const decision = { action, result, identifier, headers, retryAfter: action === 'limit' ? retryAfter(result, now) : undefined }
    if (action === 'limit') headers.push(['Retry-After', String(decision.retryAfter)])
    return decision
  }
}

/** The default bodies of a refusal. */
function refusalBody(decision) {
  return decision.action === 'deny' ? { error: 'Forbidden', reason: 'denyList' } : { error: 'Too Many Requests', retryAfter: decision.retryAfter }
}

/**
 * Hands the response's `pending` (analytics writes, multi-region sync) to the platform's
 * `waitUntil` when there is one, so a serverless function is not frozen before it ends; it never
 * becomes an unhandled rejection either way. `waitUntilOf()` finds the framework's waitUntil (the
 * `waitUntil` option first); without one, a Vercel function's own (its request context). Both
 * are asked only when there is work left (looking can be costly: Hono's executionCtx getter
 * throws where there is none).
 */
function keepPending(pending, waitUntilOf) {
  if (!pending || typeof pending.then !== 'function' || settledPending(pending)) return
  const waitUntil = waitUntilOf() ?? vercelWaitUntil()
  const quiet = pending.then(
    () => {},
    () => {},
  )
  if (waitUntil) {
    try {
      waitUntil(quiet)
    } catch {
      // A platform without it (Cloudflare's executionCtx getter throws outside Workers).
    }
  }
}

/** Where Vercel's runtime publishes the current request's context (what `waitUntil` of
 * @vercel/functions reads): a global registry, so any framework's handler on Vercel can reach
 * it without that package. */
const VERCEL_REQUEST_CONTEXT = Symbol.for('@vercel/request-context')

/** The running Vercel function's `waitUntil`, or undefined (elsewhere, or outside a request). */
function vercelWaitUntil() {
  const registry = globalThis[VERCEL_REQUEST_CONTEXT]
  if (typeof registry?.get !== 'function') return undefined
  try {
    const context = registry.get()
    return typeof context?.waitUntil === 'function' ? (promise) => context.waitUntil(promise) : undefined
  } catch {
    return undefined
  }
}

module.exports = { decider, refusalBody, keepPending }
