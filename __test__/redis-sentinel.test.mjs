// Redis Sentinel with our own client (native engine), against a real group on loopback (a
// master, its replica, three sentinels): the object form and the URL form find the master;
// every algorithm exact under a burst; the keys are upstream's (a standalone master); bad
// options are refused at construction without echoing a password. Failovers under load are in
// reliability/sentinel.test.mjs.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { Ratelimit, Redis } from '../index.js'
import { engine } from './helpers/engine.mjs'
import { startSentinelGroup } from './helpers/sentinel.mjs'

const native = { timeout: 30_000, skip: engine === 'native' ? false : 'Redis Sentinel needs the native engine' }
const fresh = () => `se${randomBytes(4).toString('hex')}`

let group
before(async () => {
  if (engine === 'native') group = await startSentinelGroup()
})
after(async () => {
  await group?.stop()
})

describe('our client on a Redis Sentinel group', () => {
  const forms = {
    object: () => new Redis({ sentinels: group.sentinels, name: group.name, password: group.password }),
    url: () => new Redis({ url: `redis+sentinel://:${group.password}@${group.sentinels.map((s) => `${s.host}:${s.port}`).join(',')}/${group.name}` }),
  }
  for (const [form, open] of Object.entries(forms)) {
    for (const [algorithm, make] of Object.entries({
      fixedWindow: () => Ratelimit.fixedWindow(10, '60 s'),
      slidingWindow: () => Ratelimit.slidingWindow(10, '60 s'),
      tokenBucket: () => Ratelimit.tokenBucket(1, '60 s', 10),
    })) {
      test(`${form} form, ${algorithm}: 15 calls at once against 10 admit exactly 10, upstream's keys on the master`, native, async () => {
        const redis = open()
        assert.ok(!redis.url.includes(group.password))
        const prefix = fresh()
        const rl = new Ratelimit({ redis, limiter: make(), prefix, ephemeralCache: false })
        const results = await Promise.all(Array.from({ length: 15 }, () => rl.limit('user')))
        assert.equal(results.filter((r) => r.success).length, 10)
        assert.equal(rl.getKey('user'), `${prefix}:user`)
        const keys = await group.command(await group.master(), ['KEYS', `${prefix}:*`])
        assert.ok(keys.includes(`${prefix}:user`), keys)
      })
    }
  }
})

test('bad sentinel options are refused at construction, without the password', () => {
  const secret = 'sekrit-' + randomBytes(4).toString('hex')
  const attempts = [
    { sentinels: [], name: 'm', password: secret },
    { sentinels: [{ host: '127.0.0.1', port: 26379 }], password: secret },
    { sentinels: [{ host: '', port: 1 }], name: 'm', password: secret },
    { url: `redis+sentinel://:${secret}@/nothing-here` },
  ]
  for (const config of attempts) {
    assert.throws(
      () => new Redis(config),
      (error) => /Redis Sentinel/.test(error.message) && !error.message.includes(secret),
    )
  }
})

test('Redis Sentinel on the WebAssembly engine: a clear error', { skip: engine === 'wasm' ? false : 'the WebAssembly engine only' }, () => {
  assert.throws(() => new Redis({ sentinels: [{ host: '127.0.0.1', port: 26379 }], name: 'mymaster' }), /Redis Sentinel needs the native engine/)
})
