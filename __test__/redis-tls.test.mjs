// `new Redis({ url: "rediss://…" })`: Redis over TLS, against a real redis-server serving TLS
// with a throwaway certificate authority (made with the openssl command line). The client trusts
// the system's certificate store; SSL_CERT_FILE points it at the test authority instead, as a
// user would for a private one. Checked:
//   - limits over TLS count in the same keys as redis:// on the same server (the plain port);
//   - a certificate that does not verify fails the call at once with the TLS reason, instead of
//     waiting for a server "to come back", and the error shows no password;
//   - a TLS URL pointed at a port that does not speak TLS fails the same way.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { Ratelimit, Redis } from '../index.js'
import { makeCertificates, startRedis } from './helpers/servers.mjs'
import { nativeOnly } from './helpers/engine.mjs'

const T = { timeout: 30000 }
const tag = () => randomBytes(4).toString('hex')

describe('Redis over TLS (rediss://)', nativeOnly, () => {
  let redis
  let certs
  let dir
  const trustedCertFile = process.env.SSL_CERT_FILE
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rln-tls-'))
    certs = makeCertificates(dir)
    redis = await startRedis({ tls: certs })
  })
  after(async () => {
    if (trustedCertFile === undefined) delete process.env.SSL_CERT_FILE
    else process.env.SSL_CERT_FILE = trustedCertFile
    await redis?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test('limits over TLS share their keys with redis:// on the same server', T, async () => {
    process.env.SSL_CERT_FILE = certs.ca // read when a connection opens
    const prefix = `tls-${tag()}`
    const limiter = Ratelimit.fixedWindow(3, '60 s')
    const overTls = new Ratelimit({ redis: new Redis({ url: `rediss://:${redis.password}@localhost:${redis.tlsPort}` }), limiter, prefix })
    const plain = new Ratelimit({ redis: new Redis({ url: redis.url }), limiter, prefix })
    const answers = []
    for (const rl of [overTls, plain, overTls, plain]) {
      const { success, remaining } = await rl.limit('user')
      answers.push([success, remaining])
    }
    assert.deepEqual(answers, [[true, 2], [true, 1], [true, 0], [false, 0]])
    assert.deepEqual(await overTls.getRemaining('user'), await plain.getRemaining('user'))
    // The key is where redis:// keeps it (upstream's layout: prefix:identifier:window).
    const keys = await redis.command(['KEYS', `${prefix}:user:*`])
    assert.match(keys, /^\*1\r\n/)
    // Also by IP address (the certificate names 127.0.0.1 too).
    const byIp = new Ratelimit({ redis: new Redis({ url: `rediss://:${redis.password}@127.0.0.1:${redis.tlsPort}` }), limiter, prefix })
    assert.equal((await byIp.limit('user')).success, false)
  })

  test('a certificate that does not verify fails the call with the TLS reason, without the password', T, async () => {
    process.env.SSL_CERT_FILE = certs.otherCa // an authority that did not sign the server's certificate
    const rl = new Ratelimit({
      redis: new Redis({ url: `rediss://:${redis.password}@localhost:${redis.tlsPort}` }),
      limiter: Ratelimit.fixedWindow(3, '60 s'),
      prefix: `tls-${tag()}`,
      timeout: 0, // no timeout answer to hide behind: the error itself must come back
    })
    await assert.rejects(rl.limit('user'), (err) => {
      assert.match(err.message, /certificate|UnknownIssuer/i)
      assert.ok(!err.message.includes(redis.password), err.message)
      return true
    })
  })

  test('tls: { rejectUnauthorized: false } accepts a certificate that does not verify', T, async () => {
    process.env.SSL_CERT_FILE = certs.otherCa
    const url = `rediss://:${redis.password}@localhost:${redis.tlsPort}`
    const rl = new Ratelimit({ redis: new Redis({ url, tls: { rejectUnauthorized: false } }), limiter: Ratelimit.fixedWindow(3, '60 s'), prefix: `tls-${tag()}` })
    const { success, remaining } = await rl.limit('user')
    assert.deepEqual([success, remaining], [true, 2])
    assert.throws(() => new Redis({ url, tls: 'off' }), /`tls` must be an object/)
  })

  test('rediss:// to a port that speaks plain Redis fails instead of waiting', T, async () => {
    process.env.SSL_CERT_FILE = certs.ca
    const rl = new Ratelimit({
      redis: new Redis({ url: `rediss://:${redis.password}@localhost:${redis.port}` }),
      limiter: Ratelimit.fixedWindow(3, '60 s'),
      timeout: 0,
    })
    await assert.rejects(rl.limit('user'), (err) => {
      assert.match(err.message, /Redis at localhost/)
      assert.ok(!err.message.includes(redis.password), err.message)
      return true
    })
  })
})
