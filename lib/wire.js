'use strict'
// The sockets of an event-loop store (src/wire.rs): requests to an Upstash REST endpoint on
// http://, or to a Redis server on redis://, travel on TCP connections owned by Node's event
// loop, so a call needs no thread hop. The native store decides what to send (an HTTP request,
// or a RESP pipeline with a new connection's greeting in front) and decodes the answers; this
// file only moves bytes and hands the outcomes on. One request at a time per connection, at
// most 4 connections (the store has at most 4 requests in flight). A connection silent for 10 s
// while a request waits fails that request; an idle one closes after 10 s. No socket keeps the
// process alive (the store's caller holds a timer while calls are pending).

const net = require('node:net')

const TIMEOUT_MS = 10_000
const SLOTS = 4

// The status every wire* call returns (src/wire.rs): bits 0-2 what a chunk did (0: more to
// come, 1: answered, 2-4: answered or failed, close the connection), bits 3-5 how many requests
// wait, bit 6 more outcomes wait in takeCompletions(), bits 7+ how many numbers went to `out`.
const PENDING = 0
const DONE_KEEP = 1
const WAITING_SHIFT = 3
const MORE = 1 << 6
const LENGTH_SHIFT = 7

const EMPTY = Buffer.alloc(0)
// Every connection's reads, in turn (a read is handled before the next one starts).
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024)

class WireConnections {
  /**
   * `store`: a NativeStore from upstashRestWire or redisWire. `onData(numbers, length)` gets outcomes as
   * `[id, n, value × n]` records; `onCompletions` what takeCompletions() returns.
   */
  constructor(store, onData, onCompletions) {
    this.store = store
    this.onData = onData
    this.onCompletions = onCompletions
    const { host, port } = store.wireTarget
    this.host = host
    this.port = port
    this.out = new Float64Array(4096)
    /** Slot → connection (or null); a connection with `busy` false can take a request. */
    this.connections = new Array(SLOTS).fill(null)
    store.onWirePing(() => this.handle(store.wirePoll(this.out)))
  }

  /** Sends what the store queued (its flush). */
  flush() {
    this.handle(this.store.wireFlush(this.out))
  }

  /** Acts on a status: outcomes first, then requests to write. */
  handle(status) {
    const length = status >>> LENGTH_SHIFT
    if (length > 0) this.onData(this.out, length)
    if (status & MORE) {
      const completions = this.store.takeCompletions()
      if (completions !== null) this.onCompletions(completions)
    }
    const waiting = (status >>> WAITING_SHIFT) & 7
    if (waiting > 0) this.#writeWaiting(waiting)
  }

  #writeWaiting(waiting) {
    const connections = this.connections
    for (let slot = 0; slot < SLOTS && waiting > 0; slot++) {
      const connection = connections[slot]
      if (connection !== null && connection.busy) continue
      const request = this.store.wireNext(slot, connection === null)
      if (request === null) return
      const target = connection ?? this.#open(slot)
      target.busy = true
      target.socket.write(request, 'latin1')
      waiting--
    }
  }

  #open(slot) {
    const connection = { slot, socket: null, busy: false, connected: false, closed: false }
    // Reads land in one reused buffer and reach #data without the stream machinery (no Buffer
    // allocated per read, no 'data' event): about a tenth of a c=1 call's Node CPU. Connections
    // are used one at a time, and the store copies what it keeps before #data returns.
    const onread = { buffer: READ_BUFFER, callback: (length, buffer) => this.#data(connection, buffer.subarray(0, length)) }
    const socket = net.connect({ host: this.host, port: this.port, onread })
    connection.socket = socket
    this.connections[slot] = connection
    socket.setNoDelay(true)
    socket.setTimeout(TIMEOUT_MS)
    socket.unref()
    socket.on('connect', () => {
      connection.connected = true
    })
    // Only where `onread` is not supported (it replaces 'data' events).
    socket.on('data', (chunk) => this.#data(connection, chunk))
    // Closed first, then failed: the failure may hand out the next request, which must not go
    // to this connection.
    socket.on('timeout', () => {
      this.#close(connection)
      if (connection.busy) this.#fail(connection, 'timeout', `no answer within ${TIMEOUT_MS / 1000} s`)
    })
    socket.on('error', (error) => {
      const kind = connection.connected
        ? 'broken'
        : error.code === 'ECONNREFUSED' || error.code === 'ENOTCONN'
          ? 'refused'
          : 'connect'
      this.#close(connection)
      if (connection.busy) this.#fail(connection, kind, error.message)
    })
    socket.on('close', () => {
      this.#close(connection)
      if (connection.busy) {
        connection.busy = false
        // A body framed by the connection's end completes now; anything else failed.
        this.handle(this.store.wireReceive(connection.slot, EMPTY, true, this.out))
      }
    })
    return connection
  }

  #data(connection, chunk) {
    if (!connection.busy) return this.#close(connection) // nothing was asked: do not trust it
    const status = this.store.wireReceive(connection.slot, chunk, false, this.out)
    const code = status & 7
    if (code === PENDING) return
    connection.busy = false
    if (code !== DONE_KEEP) this.#close(connection)
    this.handle(status)
  }

  #fail(connection, kind, detail) {
    connection.busy = false
    this.handle(this.store.wireFail(connection.slot, kind, detail, this.out))
  }

  #close(connection) {
    if (connection.closed) return
    connection.closed = true
    if (this.connections[connection.slot] === connection) this.connections[connection.slot] = null
    connection.socket.destroy()
  }
}

module.exports = { WireConnections }
