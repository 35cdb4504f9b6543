// Credentials never leak: the REST token (and a Redis password that ends up in a URL) must not
// appear in any error message, stack, cause, thrown object (JSON.stringify / util.inspect),
// console line, or the REST server's own output. TLS: a self-signed https endpoint is refused by
// default with a certificate error, and accepted with `tls: { rejectUnauthorized: false }`.

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'

import { Redis as UpstashRedis } from '@upstash/redis'

import { freePort, startRedis } from '../__test__/helpers/servers.mjs'
import { Ratelimit, Redis, captureConsole, everyView, miniServer, startRestServerOn, watchUnhandled } from './helpers.mjs'

const TOKEN = `tok${randomBytes(16).toString('hex')}`
const WRONG = `wrong${randomBytes(16).toString('hex')}`
const PASSWORD = `pw${randomBytes(12).toString('hex')}`
const SECRETS = [TOKEN, WRONG, PASSWORD]

let redis
let rest
let consoleCapture
let unhandled
before(async () => {
  unhandled = watchUnhandled()
  consoleCapture = captureConsole()
  redis = await startRedis()
  rest = await startRestServerOn({ redisUrl: redis.url, token: TOKEN, port: await freePort() })
})
after(async () => {
  consoleCapture.restore()
  unhandled.dispose()
  await rest?.stop()
  await redis?.stop()
  const logs = consoleCapture.lines.join('\n') + '\n' + rest.output()
  for (const secret of [...SECRETS, redis.password]) assert.ok(!logs.includes(secret), 'no secret in console output or the REST server output')
  assert.deepEqual(unhandled.seen, [])
})

function assertClean(value, label) {
  const text = everyView(value)
  for (const secret of SECRETS) assert.ok(!text.includes(secret), `${label}: a secret appears in ${text.slice(0, 600)}`)
}

/** limit() outcome as { error } or { value }; also the failClosed variant's answer. */
async function outcomes(redisClient, extra = {}) {
  const make = (more) => new Ratelimit({ redis: redisClient, limiter: Ratelimit.slidingWindow(10, '10 s'), prefix: `sec-${randomUUID()}`, timeout: 3000, ...extra, ...more })
  const open = await make({}).limit('u').then(
    (value) => ({ value }),
    (error) => ({ error }),
  )
  const closed = await make({ failClosed: true }).limit('u')
  const remaining = await make({}).getRemaining('u').then(
    (value) => ({ value }),
    (error) => ({ error }),
  )
  return { open, closed, remaining }
}

describe('no token in errors', () => {
  test('wrong token (401) from the REST server: our Redis and an @upstash/redis instance', async (t) => {
    for (const [label, client] of [
      ['ours', new Redis({ url: rest.url, token: WRONG })],
      ['@upstash/redis', new UpstashRedis({ url: rest.url, token: WRONG, enableTelemetry: false })],
    ]) {
      const { open, closed, remaining } = await outcomes(client)
      t.diagnostic(`${label}: ${open.error?.message}`)
      assert.ok(open.error, `${label}: rejected`)
      assert.match(open.error.message, /401|unauthori[sz]ed/i)
      assert.equal(closed.success, false)
      assert.ok(remaining.error)
      assertClean(open, label)
      assertClean(closed, label)
      assertClean(remaining, label)
    }
  })

  test('redis:// (TCP): a wrong password and a dead port give errors without the password', async (t) => {
    const wrong = new Redis({ url: `redis://:${PASSWORD}@127.0.0.1:${redis.port}` })
    assertClean(wrong, 'the Redis object itself')
    const refused = await outcomes(wrong, { timeout: 0 })
    t.diagnostic(`wrong password: ${refused.open.error?.message}`)
    assert.ok(refused.open.error, 'rejected')
    assert.match(refused.open.error.message, new RegExp(`127\\.0\\.0\\.1:${redis.port}`))
    assertClean(refused, 'wrong password')

    const port = await freePort()
    const dead = await outcomes(new Redis({ url: `redis://user:${PASSWORD}@127.0.0.1:${port}` }), { timeout: 0 })
    t.diagnostic(`dead port: ${dead.open.error?.message}`)
    assert.ok(dead.open.error, 'rejected')
    assertClean(dead, 'dead port')
  })

  test('unreachable server (connection refused), token also in the URL query and userinfo', async (t) => {
    const port = await freePort()
    for (const url of [`http://127.0.0.1:${port}`, `http://127.0.0.1:${port}/?token=${TOKEN}`, `http://user:${PASSWORD}@127.0.0.1:${port}`]) {
      // No timeout: a refused connection is retried for ~0.8 s and then reported (with a
      // timeout it would be retried until the caller's timeout answer instead).
      const { open, closed } = await outcomes(new Redis({ url, token: TOKEN }), { timeout: 0 })
      t.diagnostic(open.error?.message)
      assert.match(open.error.message, new RegExp(`127\\.0\\.0\\.1:${port}`))
      assertClean(open, url)
      assertClean(closed, url)
    }
  })

  test('bad URLs: the constructor error shows no token and no password', (t) => {
    const cases = [
      ['not a url', { url: 'not a url', token: TOKEN }],
      // url and token swapped (two environment variables mixed up).
      ['url and token swapped', { url: TOKEN, token: 'https://eu1-example.upstash.io' }],
      ['ftp:// with a token query', { url: `ftp://127.0.0.1/?token=${TOKEN}`, token: TOKEN }],
      // A Redis-over-TLS URL with its password and no host.
      ['rediss:// Redis URL with its password and no host', { url: `rediss://default:${PASSWORD}@/0`, token: TOKEN }],
      ['redis:// URL with a password and no host', { url: `redis://:${PASSWORD}@/0`, token: TOKEN }],
      ['misspelled scheme with userinfo', { url: `htps://user:${PASSWORD}@example.com`, token: TOKEN }],
      ['broken IPv6 host', { url: `http://[::1:${PASSWORD}`, token: TOKEN }],
      ['token with a newline', { url: 'http://127.0.0.1:1', token: `${TOKEN}\n` }],
    ]
    const leaks = []
    for (const [label, config] of cases) {
      let thrown
      try {
        new Redis(config)
      } catch (error) {
        thrown = error
      }
      assert.ok(thrown, `${label}: refused`)
      const text = everyView(thrown)
      const leaked = SECRETS.filter((secret) => text.includes(secret))
      t.diagnostic(`${label}: ${thrown.message.replaceAll(TOKEN, '<TOKEN>').replaceAll(PASSWORD, '<PASSWORD>')}`)
      if (leaked.length > 0) leaks.push(label)
    }
    assert.deepEqual(leaks, [], 'constructor errors that show a secret')
  })

  test('HTML answers (200, 500, 502) do not carry the token into errors', async (t) => {
    for (const status of [200, 500, 502]) {
      const srv = await miniServer((req, res) => {
        res.writeHead(status, { 'content-type': 'text/html' })
        res.end(`<html><body><h1>${status}</h1><p>Something went wrong.</p></body></html>`)
      })
      try {
        // No timeout: a 502 (never ran) would otherwise be retried until the timeout answer.
        const { open, closed } = await outcomes(new Redis({ url: srv.url, token: TOKEN }), { timeout: 0 })
        t.diagnostic(`${status}: ${open.error?.message}`)
        assert.ok(open.error)
        assertClean(open, `HTML ${status}`)
        assertClean(closed, `HTML ${status}`)
        assert.equal(srv.requests[0].headers.authorization, `Bearer ${TOKEN}`, 'the token was sent (to the server only)')
      } finally {
        await srv.close()
      }
    }
  })

  test('an error page that echoes the request headers (debug proxies do) does not put the token into errors', async (t) => {
    const srv = await miniServer((req, res) => {
      res.writeHead(500, { 'content-type': 'text/html' })
      res.end(`<pre>Bad request. Authorization: ${req.headers.authorization}</pre>`)
    })
    try {
      const { open } = await outcomes(new Redis({ url: srv.url, token: TOKEN }))
      t.diagnostic(`message: ${open.error?.message.replace(TOKEN, '<TOKEN>')}`)
      assertClean(open, 'echoing error page')
    } finally {
      await srv.close()
    }
  })

  test('the REST server logs no credentials, whatever clients send', async () => {
    const before = rest.output().length
    for (const auth of [`Bearer ${WRONG}`, WRONG, `Basic ${Buffer.from(`u:${WRONG}`).toString('base64')}`, `Bearer ${TOKEN}x`]) {
      await new Promise((resolve) => {
        const req = http.request(`${rest.url}/pipeline`, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/json' } }, (res) => {
          res.resume()
          res.on('end', resolve)
        })
        req.on('error', resolve)
        req.end('[["GET","k"]]')
      })
    }
    const out = rest.output().slice(before)
    for (const secret of [...SECRETS, redis.password]) assert.ok(!out.includes(secret))
  })
})

describe('TLS with a self-signed certificate', () => {
  let dir
  let proxy
  let url
  let opensslMissing = false
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rln-tls-'))
    try {
      execFileSync(
        'openssl',
        ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
        { stdio: 'ignore', timeout: 20_000 },
      )
    } catch {
      opensslMissing = true
      return
    }
    // An https endpoint proxying to the REST server.
    const target = new URL(rest.url)
    proxy = https.createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (req, res) => {
      const upstream = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode, up.headers)
        up.pipe(res)
      })
      upstream.on('error', () => res.destroy())
      req.pipe(upstream)
    })
    await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    url = `https://127.0.0.1:${proxy.address().port}`
  })
  after(async () => {
    if (proxy) {
      proxy.closeAllConnections()
      await new Promise((resolve) => proxy.close(resolve))
    }
    rmSync(dir, { recursive: true, force: true })
  })

  test('refused by default, with an error that says it is the certificate', async (t) => {
    if (opensslMissing) return t.skip('openssl is not installed: cannot generate a self-signed certificate')
    const rl = new Ratelimit({ redis: new Redis({ url, token: TOKEN }), limiter: Ratelimit.fixedWindow(10, '10 s'), prefix: `tls-${randomUUID()}`, timeout: 5000 })
    const err = await rl.limit('u').then(
      (r) => assert.fail(`a self-signed certificate was accepted: ${JSON.stringify(r)}`),
      (e) => e,
    )
    t.diagnostic(err.message)
    assertClean(err, 'TLS error')
    assert.match(err.message, /certificate|UnknownIssuer|self[- ]signed|tls|ssl/i, `the message should say the certificate was rejected: ${err.message}`)
  })

  test('accepted with tls: { rejectUnauthorized: false }, and then limits normally', async (t) => {
    if (opensslMissing) return t.skip('openssl is not installed: cannot generate a self-signed certificate')
    const rl = new Ratelimit({ redis: new Redis({ url, token: TOKEN, tls: { rejectUnauthorized: false } }), limiter: Ratelimit.fixedWindow(2, '10 s'), prefix: `tls-${randomUUID()}`, timeout: 5000 })
    const results = await Promise.all([rl.limit('u'), rl.limit('u'), rl.limit('u')])
    assert.deepEqual(results.map((r) => r.success).sort(), [false, true, true])
  })

  test('tls: { rejectUnauthorized: true } (explicit) still refuses', async (t) => {
    if (opensslMissing) return t.skip('openssl is not installed')
    const rl = new Ratelimit({ redis: new Redis({ url, token: TOKEN, tls: { rejectUnauthorized: true } }), limiter: Ratelimit.fixedWindow(2, '10 s'), prefix: `tls-${randomUUID()}`, timeout: 5000 })
    await assert.rejects(rl.limit('u'))
  })
})
