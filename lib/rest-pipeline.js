'use strict'
// The WebAssembly engine's Upstash REST client: what our `Redis` sends on that engine (Edge
// runtimes, Workers, Node.js without the addon). Everything issued in one turn goes out together
// as one `POST {url}/pipeline` (lib/http-post.js: Node's client on Node.js, else `fetch`), as
// @upstash/redis' auto-pipelining sends it, so a burst of limit() calls costs one request.
//
// Two kinds of work share the queue, in the order they were made:
// - commands (`command(parts)`), from the compat path and our Redis' methods: each settles with
//   its item (`{ result }` → the result as the server sent it, `{ error }` →
//   UpstashError("Command failed: …"));
// - runs of plain limit() calls (`limitBatch`, lib/redis.js' LimitBatch records): the module
//   writes their items in one crossing and does their arithmetic in one more
//   (crates/ratelimit-wasm limit_batch.rs); an item answering NOSCRIPT is sent again as EVAL.
//   Their outcomes reach the completion callback in the napi binding's format, so lib/redis.js
//   settles them as it settles the native store's.
// Errors never carry the token.

const engine = require('./engine')
const { UpstashError } = require('./errors')
const { httpPost } = require('./http-post')
const storeRequests = require('./store-requests')

/** Most commands per request (as @upstash/redis and the native client). */
const MAX_BATCH = 1000
/**
 * Where requests are cheap (Node's own client), a turn that issues many commands sends them in
 * requests of this many, each as soon as it is full, so the server works on the first while
 * this thread issues the rest (as the native stores do, lib/redis.js FLUSH_AT). Through `fetch`
 * (~600 µs a request on Node; Workers count subrequests) a turn stays one request.
 */
const SPLIT_AT = 32
/** Numbers per call in a limit run's records (lib/redis.js RECORD). */
const RECORD = 9
/** Numbers per call in limitBatchOutcomes' output at most, and its leading length slot. */
const OUTCOME = 6

// After this turn: setImmediate where there is a working one (Node.js: it also gathers the calls
// made by the other callbacks of this poll phase), else after the microtasks queued so far.
// Next.js' Edge sandbox defines a setImmediate that throws ("A Node.js API is used"), so one
// that throws is given up for good.
let immediate = typeof setImmediate === 'function' && typeof EdgeRuntime !== 'string'
function later(fn) {
  if (immediate) {
    try {
      setImmediate(fn)
      return
    } catch {
      immediate = false
    }
  }
  queueMicrotask(() => queueMicrotask(fn))
}

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

function itemError(item) {
  return `Command failed: ${typeof item.error === 'string' ? item.error : JSON.stringify(item.error)}`
}

const NO_ITEM = 'unparseable answer from the Upstash REST server: a pipeline item has neither result nor error'

/** A run's records and keys, kept for the answer (the caller reuses its buffers). */
class LimitRun {
  constructor(records, count, keys, asEval) {
    this.records = records
    this.count = count
    this.keys = keys
    this.asEval = asEval
  }

  id(i) {
    return this.records[i * RECORD]
  }

  /** The run of calls `indexes` (ascending), as EVAL. */
  subset(indexes) {
    const records = new Float64Array(indexes.length * RECORD)
    let keys = ''
    let offset = 0
    let next = 0
    for (let i = 0; i < this.count && next < indexes.length; i++) {
      const length = this.records[i * RECORD + 8]
      if (i === indexes[next]) {
        records.set(this.records.subarray(i * RECORD, (i + 1) * RECORD), next * RECORD)
        keys += this.keys.slice(offset, offset + length)
        next++
      }
      offset += length
    }
    return new LimitRun(records, indexes.length, keys, true)
  }
}

class RestPipeline {
  #endpoint
  #host
  #token
  #headers
  #post
  #sendAt
  /** Commands `{ parts, resolve, reject }` and LimitRuns, in order. */
  #queue = []
  #queued = 0
  #scheduled = false
  #onCompletions = null
  /** Hands the caller's buffered limit calls over (lib/redis.js), before anything is queued or sent. */
  beforeQueue = null

  /** `acceptInvalidCerts`: https:// certificates are not verified (where the runtime allows). */
  constructor(url, token, acceptInvalidCerts = false) {
    this.#endpoint = `${url.replace(/\/$/, '')}/pipeline`
    this.#host = hostOf(url)
    this.#token = token
    this.#headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
    const { post, cheap } = httpPost(this.#endpoint, acceptInvalidCerts)
    this.#post = post
    this.#sendAt = cheap ? SPLIT_AT : MAX_BATCH
  }

  /** Where limit runs' outcomes go: `({ data, failures, notes })`, as the napi binding's. */
  onCompletions(callback) {
    this.#onCompletions = callback
  }

  /** Queues one command (its words as strings); resolves with its result. */
  command(parts) {
    this.beforeQueue?.()
    return new Promise((resolve, reject) => {
      this.#push({ parts, resolve, reject }, 1)
    })
  }

  /** Queues `count` limit calls (records as lib/redis.js LimitBatch writes them). */
  limitBatch(records, count, keys) {
    this.#push(new LimitRun(records.slice(0, count * RECORD), count, keys, false), count)
  }

  /** The calls buffered by the caller (limit calls not handed over yet) count towards a
   * request: `pending` of them sends now when that fills one. */
  wouldFill(pending) {
    return this.#queued + pending >= this.#sendAt
  }

  /** Sends what is queued (and what `beforeQueue` hands over) now. */
  flush() {
    this.#send()
  }

  /** Sends what is queued after this turn. */
  flushSoon() {
    if (this.#scheduled) return
    this.#scheduled = true
    later(() => {
      this.#scheduled = false
      this.#send()
    })
  }

  #push(work, commands) {
    this.#queue.push(work)
    this.#queued += commands
    if (this.#queued >= this.#sendAt) this.#send()
    else this.flushSoon()
  }

  #send() {
    this.beforeQueue?.()
    const batch = this.#queue
    if (batch.length === 0) return
    const commands = this.#queued
    this.#queue = []
    this.#queued = 0
    // Never rejects: every failure is handed to the batch's calls.
    this.#exchange(batch, commands)
  }

  async #exchange(batch, commands) {
    let items
    try {
      items = await this.#request(batch, commands)
    } catch (error) {
      this.#failAll(batch, error)
      return
    }
    let at = 0
    for (const work of batch) {
      if (work instanceof LimitRun) {
        this.#answerRun(work, items, at)
        at += work.count
      } else {
        const item = items[at++]
        if (item !== null && typeof item === 'object' && item.error !== undefined) work.reject(new UpstashError(itemError(item)))
        else if (item !== null && typeof item === 'object' && 'result' in item) work.resolve(item.result)
        else work.reject(new UpstashError(NO_ITEM))
      }
    }
  }

  /** The items of `run` (from `items[at]` on) → its calls' outcomes; NOSCRIPT ones go again as EVAL. */
  #answerRun(run, items, at) {
    // Per call `[n, value × n]`, or `[-1]` where the item is answered here (an error).
    const replies = []
    const failures = []
    let noScript = null
    for (let i = 0; i < run.count; i++) {
      const item = items[at + i]
      if (item !== null && typeof item === 'object' && item.error === undefined && 'result' in item) {
        const result = item.result
        if (Array.isArray(result)) {
          replies.push(result.length)
          for (let j = 0; j < result.length; j++) replies.push(replyNumber(result[j]))
        } else {
          replies.push(1, replyNumber(result)) // a single number: the arithmetic says what it makes of it
        }
        continue
      }
      replies.push(-1)
      if (item === null || typeof item !== 'object' || item.error === undefined) {
        failures.push(String(run.id(i)), NO_ITEM)
      } else if (!run.asEval && typeof item.error === 'string' && item.error.startsWith('NOSCRIPT')) {
        ;(noScript ??= []).push(i)
      } else {
        failures.push(String(run.id(i)), itemError(item))
      }
    }
    this.#complete(run, Float64Array.from(replies), failures)
    if (noScript) this.#push(run.subset(noScript), noScript.length)
  }

  #complete(run, replies, failures) {
    const out = new Float64Array(1 + run.count * OUTCOME)
    let more
    try {
      more = engine.limitBatchOutcomes(run.records, run.count, replies, out)
    } catch (error) {
      return this.#failRun(run, error)
    }
    for (const failure of more) failures.push(failure)
    this.#onCompletions({ data: out.subarray(1, 1 + out[0]), failures, notes: [] })
  }

  #failRun(run, error) {
    const failures = []
    for (let i = 0; i < run.count; i++) failures.push(String(run.id(i)), error.message)
    this.#onCompletions({ data: [], failures, notes: [] })
  }

  #failAll(batch, error) {
    for (const work of batch) {
      if (work instanceof LimitRun) this.#failRun(work, error)
      else work.reject(error)
    }
  }

  /** The request's body: commands as JSON, limit runs as the module writes them. */
  #body(batch) {
    let body = '['
    for (let i = 0; i < batch.length; i++) {
      const work = batch[i]
      if (i > 0) body += ','
      body += work instanceof LimitRun ? engine.limitBatchBody(work.records, work.count, work.keys, work.asEval) : JSON.stringify(work.parts)
    }
    return `${body}]`
  }

  /** `commands`: how many items `batch` holds (a limit run holds one per call). */
  async #request(batch, commands) {
    const body = this.#body(batch)
    const requestDone = storeRequests.startRequest('rest', commands)
    let answer
    try {
      answer = await this.#post(this.#headers, body)
    } catch (error) {
      requestDone?.('failed')
      throw new Error(`ratelimit-native: request to ${this.#host} failed: ${snippet(failureDetail(error), this.#token)}`, { cause: error })
    }
    const { status, text } = answer
    requestDone?.(status >= 200 && status < 300 ? 'answered' : 'failed')
    let parsed
    try {
      parsed = JSON.parse(text)
    } catch {
      parsed = undefined
    }
    if (status < 200 || status >= 300) {
      const message = typeof parsed?.error === 'string' ? parsed.error : text
      throw new UpstashError(`${snippet(message, this.#token)} (HTTP ${status})`)
    }
    if (!Array.isArray(parsed) || parsed.length !== commands) {
      throw new UpstashError(`unparseable answer from the Upstash REST server: expected a JSON array of ${commands} from /pipeline, got: ${snippet(text, this.#token)}`)
    }
    return parsed
  }
}

/** Why a request failed, in a word and a phrase: `ECONNREFUSED`, `DEPTH_ZERO_SELF_SIGNED_CERT
 * (self-signed certificate)` (fetch wraps the reason as its `cause`). */
function failureDetail(error) {
  const inner = error?.cause ?? error
  const message = typeof inner?.message === 'string' ? inner.message : String(inner)
  const code = inner?.code
  if (typeof code !== 'string') return message
  return message.includes(code) ? code : `${code} (${message})`
}

/** A script reply's value as a number (null, or anything that is not one: NaN). */
function replyNumber(value) {
  if (typeof value === 'number') return value
  if (value === null || value === undefined) return NaN
  const n = Number(value)
  return Number.isNaN(n) ? NaN : n
}

module.exports = { RestPipeline }
