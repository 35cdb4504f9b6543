'use strict'
// One HTTP POST of the WebAssembly engine's REST client, answered as `{ status, text }`.
// - On Node.js (the engine's fallback where the addon could not be loaded, e.g. a Next.js
//   bundle): Node's own http/https client on keep-alive connections, reached through
//   `process.getBuiltinModule`, which bundlers leave alone. A `fetch` request costs ~600 µs of
//   this thread on Node 20 against ~60 µs for the same POST here (bench/RESULTS.wasm.md), and
//   the native engine does not go through `fetch` either.
// - Everywhere else (Edge runtimes, Workers, browsers): the global `fetch`, read when each
//   request is sent, so an interceptor or a runtime's own wrapper sees the requests.
// Failures reject with the transport's error; the caller words the message (without secrets).

const { nonNodeRuntime, runtimeName, nodeBuiltin } = require('./runtime')

/** A request with no answer by then fails (a limiter's own `timeout` is usually shorter). */
const REQUEST_TIMEOUT_MS = 10_000

/** Node's http and https modules, or null where the runtime is not Node.js (or, before Node.js
 * 20.16 / 22.3, has no `process.getBuiltinModule`: then fetch). */
function nodeClients() {
  if (nonNodeRuntime() !== null) return null
  const http = nodeBuiltin('node:http')
  const https = nodeBuiltin('node:https')
  return http && https ? { http, https } : null
}

/** POSTs through Node's http/https client (`url` a URL object). */
function nodePost(clients, url, acceptInvalidCerts) {
  const secure = url.protocol === 'https:'
  const module = secure ? clients.https : clients.http
  // At most 4 requests in flight, as the native stores (more wait for a connection); idle
  // connections do not keep the process alive (Node's agents unref their free sockets).
  const agent = new module.Agent({ keepAlive: true, maxSockets: 4, ...(secure && acceptInvalidCerts ? { rejectUnauthorized: false } : {}) })
  const base = { hostname: url.hostname, port: url.port || undefined, path: url.pathname + url.search, method: 'POST', agent }
  return (headers, body) =>
    new Promise((resolve, reject) => {
      const request = module.request({ ...base, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (response) => {
        let text = ''
        response.setEncoding('utf8')
        response.on('data', (chunk) => {
          text += chunk
        })
        response.on('end', () => resolve({ status: response.statusCode, text }))
        response.on('error', reject)
      })
      request.setTimeout(REQUEST_TIMEOUT_MS, () => request.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)))
      request.on('error', reject)
      request.end(body)
    })
}

/** POSTs through the global `fetch`. */
function fetchPost(endpoint) {
  return async (headers, body) => {
    const init = { method: 'POST', headers, body }
    if (typeof AbortSignal !== 'undefined' && typeof AbortSignal.timeout === 'function') init.signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS)
    const response = await fetch(endpoint, init)
    return { status: response.status, text: await response.text() }
  }
}

/**
 * `{ post, cheap }` for POSTs to `endpoint`: `post(headers, body) → Promise<{ status, text }>`;
 * `cheap` when a request costs little on this thread (Node's client), so a burst may be split
 * into several requests to overlap with the server's work. `acceptInvalidCerts` (the
 * `tls: { rejectUnauthorized: false }` option) needs Node's client: `fetch` always verifies.
 */
function httpPost(endpoint, acceptInvalidCerts = false) {
  const clients = nodeClients()
  if (clients) {
    const url = new URL(endpoint)
    if (url.protocol === 'http:' || url.protocol === 'https:') return { post: nodePost(clients, url, acceptInvalidCerts), cheap: true }
  }
  if (acceptInvalidCerts) {
    throw new Error(
      `ratelimit-native: tls: { rejectUnauthorized: false } cannot be honoured on ${runtimeName()}: requests there go through fetch, which always verifies certificates`,
    )
  }
  return { post: fetchPost(endpoint), cheap: false }
}

module.exports = { httpPost }
