'use strict'
// limit() calls on the memory store (`Redis.memory()`), collected over a turn and answered in
// one native call at its end (a microtask), instead of one native call each.
//
// Why: on the memory store the state change costs a fraction of a microsecond, and crossing
// into the addon costs more than that (napi-rs converting nine arguments and borrowing the
// output array, V8 entering and leaving the callback). Under concurrency many calls share one
// crossing. Each call still reads `Date.now()` when it is made, and its Promise settles before
// any continuation of the turn runs, as a Promise answered at once would.
//
// Order: the memory store's other operations (getRemaining, resetUsedTokens, the commands of
// `Redis.memory()`, a limit with dynamic limits) call `flushMemoryBatch()` first (through the
// store's `queue()`, lib/redis.js), so every operation still sees the calls made before it.
// The native side and the record layout: src/memory_batch.rs.

const engine = require('./engine')

/** Numbers per call in `records`: `[kind, a, b, c, now, rate, keyLength]`. */
const RECORD = 7
/** Numbers per answer in `out`: `[success, limit, remaining, reset]`. */
const ANSWER = 4

let records = new Float64Array(RECORD * 64)
let out = new Float64Array(ANSWER * 64)
let count = 0
let keys = ''
// Set by a turn's first call, until the turn's end (a microtask it queues).
let turnOpen = false
// Marking a turn's end costs a microtask, about a quarter of a call made alone (measured at
// c=1). After SINGLE_TURNS turns in a row with one call each (a server answering one request
// per I/O callback), turns stop being marked and every call is answered alone; every
// PROBE_EVERY calls one turn is marked again, and a turn found with more than one call brings
// the batching back. Answering alone is always exact: only the crossing count differs.
const SINGLE_TURNS = 8
const PROBE_EVERY = 64
let markTurns = true
let singleTurns = 0
let untilProbe = 0
// Per call, in record order: how to settle its Promise.
const resolves = []
const rejects = []
const answers = []
const failures = []

// A microtask through a settled Promise: `queueMicrotask` builds an AsyncResource each time.
const TURN_END = Promise.resolve()

/** Where a call with dynamic limits writes its answer. */
const single = new Float64Array(ANSWER)

/**
 * The numbers of a call made alone, `[kind, a, b, c, now, rate]`, and its answer, `[success,
 * limit, remaining, reset]` in the first four: the array `memoryLimitIo(key, handle)` reads and
 * writes, handed to the engine once (`memoryIo` gives its handle: this copy of the module has
 * its own, even where a thread loads several). Its own ArrayBuffer: V8 keeps the numbers of a
 * small typed array made by length inside the JS heap, where they may move.
 */
let io = null
let ioHandle = 0
function ioArray() {
  if (io === null) {
    const array = new Float64Array(new ArrayBuffer(8 * 8))
    ioHandle = engine.memoryIo(array)
    io = array
  }
  return io
}

/**
 * One limit call made alone, at once: its `[success, limit, remaining, reset]` (valid until the
 * next call), or the store's error, thrown. `dynamicKeys`: as for src/algorithm.rs
 * `memoryLimit`, or null. Calls still queued are not answered first (the caller does that).
 */
function limitAlone(algorithm, key, now, rate, dynamicKeys) {
  if (dynamicKeys !== null) {
    engine.memoryLimit(algorithm[0], algorithm[1], algorithm[2], algorithm[3], key, now, rate, single, dynamicKeys)
    return single
  }
  // The key is the only string, the numbers go in the array: a crossing with nine arguments
  // costs about twice as much (src/memory_io.rs).
  const numbers = io ?? ioArray()
  numbers[0] = algorithm[0]
  numbers[1] = algorithm[1]
  numbers[2] = algorithm[2]
  numbers[3] = algorithm[3]
  numbers[4] = now
  numbers[5] = rate
  engine.memoryLimitIo(key, ioHandle)
  return numbers
}

/**
 * One limit call on the memory store; returns its Promise. `algorithm` is `[kind, a, b, c]`
 * (src/algorithm.rs `Kind::from_numbers`); `answer(numbers, at)` builds the response from the
 * four numbers at `numbers[at]`; `failure(error)` returns the response for a refused call or
 * throws (rejects).
 *
 * The first call of a turn is answered at once, on its own: a server handling one request per
 * I/O callback makes one call per turn, and pays no more than a single crossing for it. Calls
 * after it in the same turn wait for the turn's end and share one crossing.
 */
function memoryLimit(algorithm, key, now, rate, answer, failure) {
  if (!turnOpen) {
    if (markTurns || --untilProbe <= 0) {
      turnOpen = true
      TURN_END.then(endOfTurn)
    }
    let numbers
    try {
      numbers = limitAlone(algorithm, key, now, rate, null)
    } catch (error) {
      try {
        return Promise.resolve(failure(error))
      } catch (thrown) {
        return Promise.reject(thrown)
      }
    }
    return Promise.resolve(answer(numbers, 0))
  }
  return new Promise((resolve, reject) => {
    let at = count * RECORD
    if (at + RECORD > records.length) {
      const grown = new Float64Array(records.length * 2)
      grown.set(records)
      records = grown
    }
    records[at++] = algorithm[0]
    records[at++] = algorithm[1]
    records[at++] = algorithm[2]
    records[at++] = algorithm[3]
    records[at++] = now
    records[at++] = rate
    records[at] = key.length
    keys += key
    // By index, not push: the arrays keep their room from turn to turn.
    resolves[count] = resolve
    rejects[count] = reject
    answers[count] = answer
    failures[count] = failure
    count++
  })
}

function endOfTurn() {
  turnOpen = false
  if (count > 0) {
    markTurns = true
    singleTurns = 0
  } else if (++singleTurns >= SINGLE_TURNS) {
    markTurns = false
    untilProbe = PROBE_EVERY
  }
  flushMemoryBatch()
}

/** Answers every queued call, in order. */
function flushMemoryBatch() {
  if (count === 0) return
  const n = count
  const batchKeys = keys
  const batchRecords = records
  count = 0
  keys = ''
  if (out.length < n * ANSWER) out = new Float64Array(records.length / RECORD * ANSWER)
  let from = 0
  while (from < n) {
    let done
    try {
      done = engine.memoryLimitBatch(batchRecords, n, batchKeys, out, from)
    } catch (error) {
      // The whole batch was refused (nothing ran): every call fails with that error.
      for (let i = from; i < n; i++) settleFailure(i, error)
      break
    }
    for (let i = from; i < done; i++) settle(i, out, i * ANSWER)
    if (done >= n) break
    replay(done, batchRecords, batchKeys)
    from = done + 1
  }
  // Let go of the settled calls' functions (truncating would give back the arrays' room).
  resolves.fill(undefined, 0, n)
  rejects.fill(undefined, 0, n)
  answers.fill(undefined, 0, n)
  failures.fill(undefined, 0, n)
}

/** The call the batch could not answer, made alone: its error (or, if the store has changed
 * since, its answer) is the call's own. */
function replay(index, batchRecords, batchKeys) {
  let start = 0
  for (let i = 0; i < index; i++) start += batchRecords[i * RECORD + 6]
  const at = index * RECORD
  const key = batchKeys.slice(start, start + batchRecords[at + 6])
  const algorithm = batchRecords.subarray(at, at + 4)
  let numbers
  try {
    numbers = limitAlone(algorithm, key, batchRecords[at + 4], batchRecords[at + 5], null)
  } catch (error) {
    settleFailure(index, error)
    return
  }
  settle(index, numbers, 0)
}

function settle(index, numbers, at) {
  try {
    resolves[index](answers[index](numbers, at))
  } catch (error) {
    rejects[index](error)
  }
}

function settleFailure(index, error) {
  try {
    resolves[index](failures[index](error))
  } catch (thrown) {
    rejects[index](thrown)
  }
}

module.exports = { memoryLimit, limitAlone, flushMemoryBatch, ioHandleOf: () => (ioArray(), ioHandle) }
