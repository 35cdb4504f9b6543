// The WebAssembly engine's REST client (lib/rest-pipeline.js): our Redis sends what one turn
// issued — limit() calls written by the module, and other commands — as one /pipeline POST
// (on Node.js through its own HTTP client), in the order they were made; EVALSHA answered
// NOSCRIPT goes again as EVAL; every item settles its own call; the token is in no error.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, request } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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

/**
 * A server in front of the REST server that records each request body (parsed) and forwards it;
 * `answer(body, reply)` may rewrite the REST server's answer text.
 */
async function recordingProxy(answer = (_body, reply) => reply) {
  const target = new URL(stack.rest.url)
  const bodies = []
  const server = createServer((req, res) => {
    let text = ''
    req.setEncoding('utf8')
    req.on('data', (chunk) => {
      text += chunk
    })
    req.on('end', () => {
      const body = JSON.parse(text)
      bodies.push(body)
      const forward = request({ host: target.hostname, port: target.port, path: req.url, method: 'POST', headers: req.headers }, (reply) => {
        let replyText = ''
        reply.setEncoding('utf8')
        reply.on('data', (chunk) => {
          replyText += chunk
        })
        reply.on('end', () => {
          const out = answer(body, replyText)
          res.writeHead(reply.statusCode, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) })
          res.end(out)
        })
      })
      forward.end(text)
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${server.address().port}`, bodies, close: () => new Promise((resolve) => server.close(resolve)) }
}

const prefix = () => `rp${randomBytes(4).toString('hex')}`

test('the limit() calls of one turn share one /pipeline request', wasmOnly, async () => {
  const proxy = await recordingProxy()
  try {
    const rl = new Ratelimit({ redis: new Redis({ url: proxy.url, token: stack.rest.token }), limiter: Ratelimit.fixedWindow(10, '30 s'), prefix: prefix() })
    await rl.limit('warm') // NOSCRIPT → EVAL happens here
    proxy.bodies.length = 0
    const result = await Promise.all(Array.from({ length: 20 }, (_, i) => rl.limit(`user-${i % 4}`)))
    assert.equal(result.filter((r) => r.success).length, 20)
    assert.deepEqual(result.map((r) => r.remaining).slice(0, 8), [9, 9, 9, 9, 8, 8, 8, 8])
    assert.equal(proxy.bodies.length, 1, 'one request')
    assert.equal(proxy.bodies[0].length, 20, 'twenty commands in it')
    assert.ok(proxy.bodies[0].every((command) => command[0] === 'EVALSHA'))
  } finally {
    await proxy.close()
  }
})

test('limit() calls and other commands of one turn go in one request, in the order they were made', wasmOnly, async () => {
  const proxy = await recordingProxy()
  try {
    const redis = new Redis({ url: proxy.url, token: stack.rest.token })
    const p = prefix()
    const rl = new Ratelimit({ redis, limiter: Ratelimit.slidingWindow(5, '30 s'), prefix: p })
    await rl.limit('warm')
    await rl.getRemaining('warm') // both scripts loaded: no NOSCRIPT round below
    proxy.bodies.length = 0
    const [first, remaining, set, second, got] = await Promise.all([
      rl.limit('a'),
      rl.getRemaining('a'),
      redis.set(`${p}:marker`, 'x'),
      rl.limit('a'),
      redis.get(`${p}:marker`),
    ])
    assert.equal(proxy.bodies.length, 1, 'one request')
    assert.deepEqual(
      proxy.bodies[0].map((command) => command[0]),
      ['EVALSHA', 'EVALSHA', 'SET', 'EVALSHA', 'GET'],
    )
    assert.equal(first.remaining, 4)
    assert.equal(remaining.remaining, 4, 'getRemaining saw the first call, not the second')
    assert.equal(set, 'OK')
    assert.equal(second.remaining, 3)
    assert.equal(got, 'x')
  } finally {
    await proxy.close()
  }
})

test('calls whose script the server does not know yet are sent again as EVAL, and counted once', wasmOnly, async () => {
  const proxy = await recordingProxy()
  try {
    const rl = new Ratelimit({ redis: new Redis({ url: proxy.url, token: stack.rest.token }), limiter: Ratelimit.tokenBucket(1, '30 s', 6), prefix: prefix() })
    // Flush the server's scripts so the first batch answers NOSCRIPT.
    const flushed = await fetch(stack.rest.url, { method: 'POST', headers: { authorization: `Bearer ${stack.rest.token}` }, body: '["SCRIPT","FLUSH"]' })
    assert.equal(flushed.status, 200)
    const result = await Promise.all(Array.from({ length: 8 }, () => rl.limit('same')))
    assert.deepEqual(result.map((r) => r.success), [true, true, true, true, true, true, false, false])
    assert.deepEqual(result.slice(0, 6).map((r) => r.remaining), [5, 4, 3, 2, 1, 0])
    assert.deepEqual(proxy.bodies.map((body) => body.map((c) => c[0])), [Array(8).fill('EVALSHA'), Array(8).fill('EVAL')])
  } finally {
    await proxy.close()
  }
})

test('an error item fails its own call only; a reply the arithmetic cannot read too', wasmOnly, async () => {
  const proxy = await recordingProxy((body, reply) => {
    if (body.length !== 4) return reply // the warm-up call (and its EVAL)
    const items = JSON.parse(reply)
    items[1] = { error: 'ERR injected by the test' }
    items[2] = { result: 'not a reply' }
    return JSON.stringify(items)
  })
  try {
    const rl = new Ratelimit({ redis: new Redis({ url: proxy.url, token: stack.rest.token }), limiter: Ratelimit.fixedWindow(10, '30 s'), prefix: prefix() })
    await rl.limit('warm')
    const settled = await Promise.allSettled([rl.limit('a'), rl.limit('b'), rl.limit('c'), rl.limit('d')])
    assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'rejected', 'rejected', 'fulfilled'])
    assert.equal(settled[1].reason.name, 'UpstashError')
    assert.equal(settled[1].reason.message, 'Command failed: ERR injected by the test')
    assert.match(settled[2].reason.message, /reply/)
    assert.equal(settled[3].value.remaining, 9)
  } finally {
    await proxy.close()
  }
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

test('https:// with a certificate that does not verify: refused, or accepted with tls: { rejectUnauthorized: false } (Node.js)', wasmOnly, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rln-wasm-tls-'))
  const target = new URL(stack.rest.url)
  let server
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore', timeout: 20_000 })
    server = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (req, res) => {
      const upstream = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode, up.headers)
        up.pipe(res)
      })
      req.pipe(upstream)
    })
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    const url = `https://127.0.0.1:${server.address().port}`
    const token = stack.rest.token
    const refused = new Ratelimit({ redis: new Redis({ url, token }), limiter: Ratelimit.fixedWindow(2, '30 s'), prefix: prefix(), timeout: 0 })
    const error = await refused.limit('u').then(() => null, (e) => e)
    assert.match(error?.message ?? '', /failed: DEPTH_ZERO_SELF_SIGNED_CERT \(self[- ]signed certificate\)/)
    assert.ok(!error.message.includes(token))
    const accepted = new Ratelimit({ redis: new Redis({ url, token, tls: { rejectUnauthorized: false } }), limiter: Ratelimit.fixedWindow(2, '30 s'), prefix: prefix() })
    const results = await Promise.all([accepted.limit('u'), accepted.limit('u'), accepted.limit('u')])
    assert.deepEqual(results.map((r) => r.success), [true, true, false])
  } finally {
    server?.closeAllConnections()
    if (server) await new Promise((resolve) => server.close(resolve))
    rmSync(dir, { recursive: true, force: true })
  }
})
