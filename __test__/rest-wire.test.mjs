// An Upstash REST store on http://, and a Redis store on redis://, carry their requests on
// sockets of Node's own event loop (native engine: lib/wire.js, the native store writes the
// requests and reads the answers, src/wire.rs; on the WebAssembly engine REST goes through
// Node's http client, lib/http-post.js, and redis:// does not exist). Against the project's REST
// server and the real redis-server behind it, each through a counting proxy:
//   - the calls go through at most 4 connections, reused from call to call;
//   - answers that arrive one byte at a time are read the same;
//   - a server that closes idle connections costs nothing: the next call opens a new one (on
//     redis://, with its greeting again: the password and the database number);
//   - an idle connection does not keep the process alive.
// redis:// only: the URL's database is the one written; a refused password fails the call with
// the server's word and without the password, and the connection is not used again.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { after, afterEach, before, beforeEach, describe, test } from 'node:test'
import { Ratelimit, Redis } from '../index.js'
import { startStack } from './helpers/servers.mjs'
import { redisBatch } from './helpers/direct-redis.mjs'
import { nativeOnly } from './helpers/engine.mjs'

const T = { timeout: 30000 }
const tag = () => randomBytes(4).toString('hex')
const INDEX = fileURLToPath(new URL('../index.js', import.meta.url))

/**
 * A TCP proxy in front of `target` (host:port of the REST server). `slow`: the answers go back
 * one byte per event-loop turn. `closeIdleMs`: a client connection is closed that long after
 * its last answer byte. Counts the connections it accepted.
 */
async function startProxy(target, { slow = false, closeIdleMs = 0 } = {}) {
  const sockets = new Set()
  const proxy = { accepted: 0 }
  const server = net.createServer((client) => {
    proxy.accepted++
    const upstream = net.connect(target)
    sockets.add(client).add(upstream)
    let idleTimer = null
    let queue = Promise.resolve()
    client.on('data', (d) => upstream.write(d))
    upstream.on('data', (d) => {
      clearTimeout(idleTimer)
      queue = queue.then(async () => {
        if (!slow) client.write(d)
        else
          for (const byte of d) {
            client.write(Buffer.from([byte]))
            await new Promise((r) => setImmediate(r))
          }
        if (closeIdleMs > 0) {
          clearTimeout(idleTimer)
          idleTimer = setTimeout(() => client.end(), closeIdleMs)
        }
      })
    })
    const close = () => {
      clearTimeout(idleTimer)
      client.destroy()
      upstream.destroy()
    }
    client.on('close', close).on('error', close)
    upstream.on('close', close).on('error', close)
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  proxy.port = server.address().port
  proxy.stop = async () => {
    for (const s of sockets) s.destroy()
    await new Promise((r) => server.close(r))
  }
  return proxy
}

const PROTOCOLS = {
  'REST on http://': {
    options: {},
    target: (stack) => ({ host: '127.0.0.1', port: Number(new URL(stack.rest.url).port) }),
    url: (stack) => stack.rest.url,
    client: (stack, port) => new Redis({ url: `http://127.0.0.1:${port}`, token: stack.rest.token }),
  },
  'Redis on redis://': {
    options: nativeOnly,
    target: (stack) => ({ host: '127.0.0.1', port: stack.redis.port }),
    url: (stack) => stack.redis.url,
    client: (stack, port, db = 0) => new Redis({ url: `redis://:${stack.redis.password}@127.0.0.1:${port}/${db}` }),
  },
}

for (const [name, protocol] of Object.entries(PROTOCOLS)) describe(`${name} over sockets of the event loop`, protocol.options, () => {
  let stack
  let target
  before(async () => {
    stack = await startStack()
    target = protocol.target(stack)
  })
  // One clock time per test (Date.now, which the limiter reads): the counts below never
  // straddle a window's end.
  const realNow = Date.now
  beforeEach(() => {
    const frozen = realNow()
    Date.now = () => frozen
  })
  afterEach(() => {
    Date.now = realNow
  })
  after(async () => {
    await stack?.stop()
  })

  test('calls go through at most 4 connections, kept alive from call to call', T, async () => {
    const proxy = await startProxy(target)
    try {
      const redis = protocol.client(stack, proxy.port)
      const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(1000, '60 s'), prefix: `w${tag()}` })
      for (let i = 0; i < 50; i++) assert.equal((await rl.limit('seq')).remaining, 999 - i)
      assert.equal(proxy.accepted, 1, 'one connection for calls made one after another')
      const burst = await Promise.all(Array.from({ length: 300 }, () => rl.limit('burst')))
      assert.deepEqual(
        burst.map((r) => r.remaining).sort((a, b) => b - a),
        Array.from({ length: 300 }, (_, i) => 999 - i),
      )
      assert.ok(proxy.accepted >= 1 && proxy.accepted <= 4, `${proxy.accepted} connections`)
    } finally {
      await proxy.stop()
    }
  })

  test('answers that arrive one byte at a time are read the same', T, async () => {
    const proxy = await startProxy(target, { slow: true })
    try {
      const redis = protocol.client(stack, proxy.port)
      const rl = new Ratelimit({ redis, limiter: Ratelimit.slidingWindow(5, '60 s'), prefix: `w${tag()}` })
      const results = []
      for (let i = 0; i < 7; i++) results.push(await rl.limit('byte'))
      assert.deepEqual(
        results.map((r) => [r.success, r.remaining]),
        [[true, 4], [true, 3], [true, 2], [true, 1], [true, 0], [false, 0], [false, 0]],
      )
      assert.deepEqual(await rl.getRemaining('byte'), { remaining: 0, reset: results[0].reset, limit: 5 })
    } finally {
      await proxy.stop()
    }
  })

  test('a server that closes idle connections: the next call opens a new one', T, async () => {
    const proxy = await startProxy(target, { closeIdleMs: 5 })
    try {
      const redis = protocol.client(stack, proxy.port)
      const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(100, '60 s'), prefix: `w${tag()}` })
      for (let i = 0; i < 10; i++) {
        assert.equal((await rl.limit('idle')).remaining, 99 - i)
        await new Promise((r) => setTimeout(r, 40))
      }
      assert.equal(proxy.accepted, 10, 'each call after an idle close on a new connection')
    } finally {
      await proxy.stop()
    }
  })

  test('an idle connection does not keep the process alive', T, async () => {
    const script = `
      const { Ratelimit, Redis } = require(${JSON.stringify(INDEX)})
      const rl = new Ratelimit({ redis: new Redis(process.env.U.startsWith('redis:') ? { url: process.env.U } : { url: process.env.U, token: process.env.K }), limiter: Ratelimit.fixedWindow(5, '60 s'), prefix: 'exit${tag()}' })
      rl.limit('a').then((r) => console.log(r.success, r.remaining))
    `
    const child = spawn(process.execPath, ['-e', script], {
      env: { ...process.env, U: protocol.url(stack), K: stack.rest.token },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    const started = Date.now()
    const code = await new Promise((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        resolve('still running after 10 s')
      }, 10000)
      child.on('exit', (c) => {
        clearTimeout(timer)
        resolve(c)
      })
    })
    assert.equal(code, 0, err)
    assert.equal(out.trim(), 'true 4')
    assert.ok(Date.now() - started < 5000, `exited after ${Date.now() - started} ms`)
  })
  if (protocol === PROTOCOLS['Redis on redis://']) {
    test("the URL's database is the one written, on every new connection", T, async () => {
      const proxy = await startProxy(target, { closeIdleMs: 5 })
      try {
        const prefix = `db${tag()}`
        const rl = new Ratelimit({ redis: protocol.client(stack, proxy.port, 5), limiter: Ratelimit.fixedWindow(10, '60 s'), prefix })
        for (let i = 0; i < 3; i++) {
          assert.equal((await rl.limit('u')).remaining, 9 - i)
          await new Promise((r) => setTimeout(r, 40))
        }
        assert.equal(proxy.accepted, 3)
        const [inDb0, inDb5] = await redisBatch(stack.redis, [['KEYS', `${prefix}:*`], ['SELECT', '5'], ['KEYS', `${prefix}:*`]]).then((r) => [r[0], r[2]])
        assert.deepEqual(inDb0, [])
        assert.equal(inDb5.length, 1)
      } finally {
        await proxy.stop()
      }
    })

    test('a refused password: the call fails with the server\'s word, never the password, and the connection is dropped', T, async () => {
      const proxy = await startProxy(target)
      try {
        const secret = `wrong-${tag()}`
        const redis = new Redis({ url: `redis://:${secret}@127.0.0.1:${proxy.port}` })
        const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '60 s'), prefix: `pw${tag()}`, timeout: 0 })
        for (let i = 0; i < 2; i++) {
          await assert.rejects(rl.limit('u'), (err) => {
            assert.match(err.message, /WRONGPASS|invalid password/i)
            assert.match(err.message, /127\.0\.0\.1/)
            assert.ok(!err.message.includes(secret), err.message)
            return true
          })
        }
        assert.equal(proxy.accepted, 2, 'each call on a new connection (a refused one is not reused)')
      } finally {
        await proxy.stop()
      }
    })
  }
})
