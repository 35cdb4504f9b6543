'use strict'
// Upstash REST over the global `fetch`: the transport of our `Redis` on the WebAssembly engine
// (Edge runtimes, Workers, Node.js without the addon). Commands issued in one turn go out
// together as one `POST {url}/pipeline`, as @upstash/redis' auto-pipelining sends them, so a
// burst of limit() calls costs one request. Each command settles with its item: `{ result }` →
// the result (JSON as the server sent it), `{ error }` → UpstashError("Command failed: …").
// `fetch` is read when a request is sent, so a stub or an interceptor sees the requests.
// Errors never carry the token.

const { UpstashError } = require('./errors')

/** Most commands per request (as @upstash/redis and the native client). */
const MAX_BATCH = 1000
/** A request with no answer by then fails its commands (the limiter's own timeout is shorter). */
const REQUEST_TIMEOUT_MS = 10_000

// After this turn: setImmediate where there is one (Node.js: it also gathers the calls made by
// the other callbacks of this poll phase), else after the microtasks queued so far.
const later =
  typeof setImmediate === 'function' ? setImmediate : (fn) => queueMicrotask(() => queueMicrotask(fn))

function hostOf(url) {
  try {
    return new URL(url).host
  } catch {
    return '<invalid URL>'
  }
}

/** The start of a body, for an error message, without the token. */
function snippet(text, token) {
  const cut = text.length > 200 ? `${text.slice(0, 200)}…` : text
  return token && cut.includes(token) ? cut.split(token).join('[redacted]') : cut
}

class FetchPipeline {
  #endpoint
  #host
  #token
  #headers
  #queue = []
  #scheduled = false

  constructor(url, token) {
    this.#endpoint = `${url.replace(/\/$/, '')}/pipeline`
    this.#host = hostOf(url)
    this.#token = token
    this.#headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
  }

  /** Queues one command (its words as strings); resolves with its result. */
  command(parts) {
    return new Promise((resolve, reject) => {
      this.#queue.push({ parts, resolve, reject })
      if (this.#queue.length >= MAX_BATCH) {
        this.#send()
      } else if (!this.#scheduled) {
        this.#scheduled = true
        later(() => {
          this.#scheduled = false
          this.#send()
        })
      }
    })
  }

  async #send() {
    const batch = this.#queue
    this.#queue = []
    if (batch.length === 0) return
    let items
    try {
      items = await this.#request(batch)
    } catch (error) {
      for (const call of batch) call.reject(error)
      return
    }
    for (let i = 0; i < batch.length; i++) {
      const item = items[i]
      if (item !== null && typeof item === 'object' && item.error !== undefined) {
        batch[i].reject(new UpstashError(`Command failed: ${typeof item.error === 'string' ? item.error : JSON.stringify(item.error)}`))
      } else if (item !== null && typeof item === 'object' && 'result' in item) {
        batch[i].resolve(item.result)
      } else {
        batch[i].reject(new UpstashError(`unparseable answer from the Upstash REST server: a pipeline item has neither result nor error`))
      }
    }
  }

  async #request(batch) {
    const init = { method: 'POST', headers: this.#headers, body: JSON.stringify(batch.map((call) => call.parts)) }
    if (typeof AbortSignal !== 'undefined' && typeof AbortSignal.timeout === 'function') init.signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS)
    let response
    let text
    try {
      response = await fetch(this.#endpoint, init)
      text = await response.text()
    } catch (error) {
      const detail = error?.cause?.code ?? error?.cause?.message ?? error?.message ?? String(error)
      throw new Error(`ratelimit-native: request to ${this.#host} failed: ${snippet(String(detail), this.#token)}`, { cause: error })
    }
    let body
    try {
      body = JSON.parse(text)
    } catch {
      body = undefined
    }
    if (!response.ok) {
      const message = typeof body?.error === 'string' ? body.error : text
      throw new UpstashError(`${snippet(message, this.#token)} (HTTP ${response.status})`)
    }
    if (!Array.isArray(body) || body.length !== batch.length) {
      throw new UpstashError(`unparseable answer from the Upstash REST server: expected a JSON array of ${batch.length} from /pipeline, got: ${snippet(text, this.#token)}`)
    }
    return body
  }
}

module.exports = { FetchPipeline }
