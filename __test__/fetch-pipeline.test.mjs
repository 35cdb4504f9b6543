// The WebAssembly engine's transport: our Redis sends the commands of one turn as one /pipeline
// POST through the global `fetch` (read when a request goes out, so a stub sees it), maps each
// item to its call, and keeps the token out of every error.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import { after, before, test } from 'node:test'
import { Ratelimit, Redis } from '../index.js'
import { freePort, startStack } from './helpers/servers.mjs'
import { wasmOnly } from './helpers/engine.mjs'

let stack
before(async () => {
  stack = await startStack()
})
after(async () => {
  await stack?.stop()
})

/** Runs `fn` with the global fetch counting its calls (and forwarding them). */
async function countingFetch(fn) {
  const real = globalThis.fetch
  const bodies = []
  globalThis.fetch = (url, init) => {
    bodies.push(JSON.parse(init.body))
    return real(url, init)
  }
  try {
    return { result: await fn(), bodies }
  } finally {
    globalThis.fetch = real
  }
}

test('the limit() calls of one turn share one /pipeline request through the global fetch', wasmOnly, async () => {
  const rl = new Ratelimit({ redis: new Redis({ url: stack.rest.url, token: stack.rest.token }), limiter: Ratelimit.fixedWindow(10, '30 s'), prefix: `fp${randomBytes(4).toString('hex')}` })
  await rl.limit('warm') // NOSCRIPT → EVAL happens here
  const { result, bodies } = await countingFetch(() => Promise.all(Array.from({ length: 20 }, (_, i) => rl.limit(`user-${i % 4}`))))
  assert.equal(result.filter((r) => r.success).length, 20)
  assert.equal(bodies.length, 1, 'one request')
  assert.equal(bodies[0].length, 20, 'twenty commands in it')
  assert.ok(bodies[0].every((command) => command[0] === 'EVALSHA'))
})

test('a server answering an error status fails the calls with its message, never the token', wasmOnly, async () => {
  const token = `secret-${randomBytes(8).toString('hex')}`
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(401, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: `Unauthorized: token ${token} is not valid` }))
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const rl = new Ratelimit({ redis: new Redis({ url: `http://127.0.0.1:${server.address().port}`, token }), limiter: Ratelimit.fixedWindow(10, '30 s') })
    const error = await rl.limit('x').then(() => null, (e) => e)
    assert.equal(error?.name, 'UpstashError')
    assert.match(error.message, /Unauthorized: token \[redacted\] is not valid \(HTTP 401\)/)
    assert.ok(!error.message.includes(token))
  } finally {
    server.close()
  }
})

test('a store that cannot be reached fails the calls with a plain Error naming only the host', wasmOnly, async () => {
  const token = `secret-${randomBytes(8).toString('hex')}`
  const port = await freePort() // nothing listens there
  const rl = new Ratelimit({ redis: new Redis({ url: `http://127.0.0.1:${port}`, token }), limiter: Ratelimit.fixedWindow(10, '30 s'), timeout: 0 })
  const error = await rl.limit('x').then(() => null, (e) => e)
  assert.equal(error?.name, 'Error')
  assert.match(error.message, new RegExp(`^ratelimit-native: request to 127\\.0\\.0\\.1:${port} failed: ECONNREFUSED`))
  assert.ok(!error.message.includes(token))
})
