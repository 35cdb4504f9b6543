// Bad input: every mistake a user can make gets a clear error that says what is wrong, loses
// nothing (the next valid call works, counters are untouched), never hangs past the timeout and
// never crashes the process. Misbehaving servers are tiny node:http servers on loopback.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'

import { startStack } from '../__test__/helpers/servers.mjs'
import { Ratelimit, Redis, ROOT, awayFromBoundary, everyView, miniServer, watchUnhandled } from './helpers.mjs'

let stack
let unhandled
before(async () => {
  unhandled = watchUnhandled()
  stack = await startStack()
})
after(async () => {
  unhandled.dispose()
  await stack?.stop()
  assert.deepEqual(unhandled.seen, [], 'no unhandled rejection or uncaught exception')
})

const restRedis = () => new Redis({ url: stack.rest.url, token: stack.rest.token })
const show = (v) => (typeof v === 'string' ? JSON.stringify(v) : String(v))
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

describe('durations', () => {
  const BAD = ['10 sec', '', '1  s', '-1 s', '0 s', 10, null, '1e3 ms', '99999999999999999999 w', undefined, ' 1 s', '1 S', 'Infinity s']
  const factories = {
    fixedWindow: (w) => Ratelimit.fixedWindow(10, w),
    slidingWindow: (w) => Ratelimit.slidingWindow(10, w),
    cachedFixedWindow: (w) => Ratelimit.cachedFixedWindow(10, w),
    tokenBucket: (w) => Ratelimit.tokenBucket(1, w, 10),
  }
  for (const [name, make] of Object.entries(factories)) {
    for (const window of BAD) {
      test(`${name}(…, ${show(window)}) throws a window error naming the input`, () => {
        assert.throws(
          () => make(window),
          (err) => {
            assert.ok(err instanceof Error)
            assert.match(err.message, /window size/i, err.message)
            assert.ok(err.message.includes(String(window)), `the message shows the input: ${err.message}`)
            return true
          },
        )
      })
    }
  }
  test('valid spellings still parse (no collateral damage)', () => {
    for (const w of ['1 s', '1s', '1.5 h', '10 ms', '7 d', '1 w', '1m']) Ratelimit.fixedWindow(1, w)
  })
})

describe('limits: each factory argument', () => {
  const BAD = [0, -1, NaN, Infinity, '10', undefined]
  const args = {
    'fixedWindow tokens': [(v) => Ratelimit.fixedWindow(v, '1 s'), 'tokens'],
    'slidingWindow tokens': [(v) => Ratelimit.slidingWindow(v, '1 s'), 'tokens'],
    'cachedFixedWindow tokens': [(v) => Ratelimit.cachedFixedWindow(v, '1 s'), 'tokens'],
    'tokenBucket refillRate': [(v) => Ratelimit.tokenBucket(v, '1 s', 10), 'refillRate'],
    'tokenBucket maxTokens': [(v) => Ratelimit.tokenBucket(1, '1 s', v), 'maxTokens'],
  }
  for (const [label, [make, argName]] of Object.entries(args)) {
    for (const value of BAD) {
      test(`${label} = ${show(value)} throws an error naming \`${argName}\` and the value`, () => {
        assert.throws(
          () => make(value),
          (err) => {
            assert.match(err.message, new RegExp(`\\b${argName}\\b`), `names the argument: ${err.message}`)
            assert.ok(err.message.includes(String(value)), `shows the value: ${err.message}`)
            return true
          },
        )
      })
    }
  }
})

describe('rates', () => {
  for (const [storeName, makeRedis] of [
    ['memory', () => Redis.memory()],
    ['REST', () => restRedis()],
  ]) {
    const cases = [
      [NaN, /rate must be a finite number, got NaN/],
      [Infinity, /rate must be a finite number, got Infinity/],
      [1e300, /ERR value is not an integer or out of range/],
      [1.5, /ERR value is not an integer or out of range/], // fixed window: Redis' own INCRBY error, as upstream
      ['1', 'accept-or-name-rate'],
      [{}, /\brate\b/],
    ]
    for (const [rate, expected] of cases) {
      test(`${storeName}: fixedWindow limit(id, { rate: ${show(rate)} }) → clear outcome, nothing lost`, async () => {
        const rl = new Ratelimit({ redis: makeRedis(), limiter: Ratelimit.fixedWindow(5, '60 s'), prefix: `bad-${randomUUID()}` })
        assert.equal((await rl.limit('u')).remaining, 4)
        const before = await rl.getRemaining('u')
        let outcome
        try {
          outcome = { value: await rl.limit('u', { rate }) }
        } catch (error) {
          outcome = { error }
        }
        if (expected === 'accept-or-name-rate') {
          // Upstream sends "1" to Redis and counts 1; rejecting it is fine too, if the message says so.
          if (outcome.error) {
            assert.match(outcome.error.message, /\brate\b/, `a rejected string rate must name \`rate\`: ${outcome.error.message}`)
            assert.deepEqual(await rl.getRemaining('u'), before, 'counter unchanged')
          } else {
            assert.equal(outcome.value.remaining, 3, 'counted exactly one')
          }
        } else {
          assert.ok(outcome.error, `expected a rejection, got ${JSON.stringify(outcome.value)}`)
          assert.match(outcome.error.message, expected)
          assert.deepEqual(await rl.getRemaining('u'), before, 'counter unchanged')
        }
        // Nothing lost: the next valid call works.
        const next = await rl.limit('u')
        assert.equal(next.success, true)
      })
    }
  }
})

describe('blockUntilReady timeouts', () => {
  for (const timeout of [0, -1, NaN, 'x', undefined]) {
    test(`blockUntilReady(id, ${show(timeout)}) rejects at once with a clear error instead of waiting without bound`, async () => {
      // A 3 s window, so a blockUntilReady that does not give up still ends (when the window
      // resets) and cannot keep this file running; in production the window may be an hour.
      await awayFromBoundary(3000, 1500)
      const rl = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.fixedWindow(1, '3 s'), prefix: `bur-${randomUUID()}` })
      await rl.limit('u') // now blocked until the window resets
      let timer
      const outcome = await Promise.race([
        rl.blockUntilReady('u', timeout).then(
          (r) => ({ value: r }),
          (error) => ({ error }),
        ),
        new Promise((resolve) => (timer = setTimeout(() => resolve({ hung: true }), 1000))),
      ])
      clearTimeout(timer)
      assert.ok(!outcome.hung, `blockUntilReady(id, ${show(timeout)}) was still waiting after 1 s (it waits until the window resets)`)
      assert.ok(outcome.error, `expected a rejection, got ${JSON.stringify(outcome.value)}`)
      assert.match(outcome.error.message, /timeout/)
    })
  }
})

describe('identifiers', () => {
  for (const [storeName, makeRedis] of [
    ['memory', () => Redis.memory()],
    ['REST', () => restRedis()],
  ]) {
    test(`${storeName}: "", 123, null and undefined behave as upstream ([prefix, id].join(":"))`, async (t) => {
      const rl = new Ratelimit({ redis: makeRedis(), limiter: Ratelimit.fixedWindow(10, '60 s'), prefix: `id-${randomUUID()}` })
      assert.equal((await rl.limit(123)).remaining, 9)
      assert.equal((await rl.limit('123')).remaining, 8, '123 and "123" are the same identifier (upstream joins them into the key)')
      assert.equal((await rl.limit('')).remaining, 9)
      assert.equal((await rl.limit(null)).remaining, 8)
      assert.equal((await rl.limit(undefined)).remaining, 7)
      t.diagnostic('"", null and undefined share one key "<prefix>:" (upstream-identical; a missing identifier is one global bucket)')
    })

    test(`${storeName}: a 1 MB identifier works and is isolated from its 1 MB neighbour`, async () => {
      const rl = new Ratelimit({ redis: makeRedis(), limiter: Ratelimit.fixedWindow(3, '60 s'), prefix: `id-${randomUUID()}` })
      const a = 'a'.repeat(1 << 20)
      const b = 'a'.repeat((1 << 20) - 1) + 'b'
      assert.equal((await rl.limit(a)).remaining, 2)
      assert.equal((await rl.limit(a)).remaining, 1)
      assert.equal((await rl.limit(b)).remaining, 2)
    })

    test(`${storeName}: glob and ':' characters work, are isolated, and resetUsedTokens touches only its own identifier`, async () => {
      const ids = ['user', 'user:1', 'user:*', 'u*', 'u?er', '[u]ser', 'a:b:c', 'a:b', '*', '\\', 'user\\*']
      for (const limiter of [Ratelimit.fixedWindow(5, '60 s'), Ratelimit.slidingWindow(5, '60 s'), Ratelimit.tokenBucket(1, '60 s', 5)]) {
        const rl = new Ratelimit({ redis: makeRedis(), limiter, prefix: `id-${randomUUID()}`, ephemeralCache: false })
        for (const [i, id] of ids.entries()) {
          for (let k = 0; k <= i % 3; k++) await rl.limit(id)
        }
        const expected = ids.map((_, i) => 5 - (1 + (i % 3)))
        assert.deepEqual(await Promise.all(ids.map(async (id) => (await rl.getRemaining(id)).remaining)), expected, 'each identifier counted alone')
        for (const id of ['*', 'u*', 'user:*', '[u]ser']) {
          await rl.resetUsedTokens(id)
          const now = await Promise.all(ids.map(async (x) => (await rl.getRemaining(x)).remaining))
          ids.forEach((x, i) => {
            if (x === id) expected[i] = 5
          })
          assert.deepEqual(now, expected, `resetUsedTokens(${JSON.stringify(id)}) reset only that identifier`)
        }
      }
    })

    test(`${storeName}: unicode and emoji identifiers work and are isolated from each other`, async (t) => {
      const ids = ['👍', '👎', '👍🏽', 'é' /* NFC */, 'e\u0301' /* NFD */, 'ё', 'е' /* Cyrillic ie */, 'e', '日本', '日本語', '\u{1F600}', 'ＡＢＣ', 'abc']
      const rl = new Ratelimit({ redis: makeRedis(), limiter: Ratelimit.fixedWindow(20, '60 s'), prefix: `uni-${randomUUID()}` })
      for (const [i, id] of ids.entries()) {
        for (let k = 0; k <= i; k++) await rl.limit(id)
      }
      const remaining = await Promise.all(ids.map(async (id) => (await rl.getRemaining(id)).remaining))
      assert.deepEqual(remaining, ids.map((_, i) => 20 - (i + 1)))
      // Report: lone surrogates are not text; they become U+FFFD on the way to Rust, so distinct
      // ill-formed identifiers share one counter (upstream's @upstash/redis would send \ud800 escapes).
      const lone = new Ratelimit({ redis: makeRedis(), limiter: Ratelimit.fixedWindow(20, '60 s'), prefix: `uni-${randomUUID()}` })
      const a = (await lone.limit('\uD800')).remaining
      const b = (await lone.limit('\uDBFF')).remaining
      t.diagnostic(`lone surrogates "\\uD800" then "\\uDBFF": remaining ${a} then ${b} (${a === b ? 'isolated' : 'SHARED one counter'})`)
    })
  }
})

describe('configuration', () => {
  const limiter = Ratelimit.fixedWindow(1, '1 s')
  const redis = Redis.memory()
  const cases = [
    ['missing redis', { limiter }, /`redis` is required/],
    ['redis: 42', { redis: 42, limiter }, /`redis` is required/],
    ['limiter: "x"', { redis, limiter: 'x' }, /`limiter` must be an algorithm.*got string/],
    ['missing limiter', { redis }, /`limiter` must be an algorithm.*got undefined/],
    ['timeout: "5"', { redis, limiter, timeout: '5' }, /`timeout` must be a number/],
    ['timeout: NaN', { redis, limiter, timeout: NaN }, /`timeout` must be a number/],
    ['ephemeralCache: {}', { redis, limiter, ephemeralCache: {} }, /`ephemeralCache` must be a Map, false/],
    ['prefix: 5', { redis, limiter, prefix: 5 }, /`prefix` must be a string, got number/],
    ['failClosed: "yes"', { redis, limiter, failClosed: 'yes' }, /`failClosed` must be true or false, got yes/],
    ['no config', undefined, /needs a config object/],
    ['config null', null, /needs a config object/],
  ]
  for (const [label, config, expected] of cases) {
    test(`new Ratelimit(${label}) throws a TypeError that says what to pass`, () => {
      assert.throws(() => new Ratelimit(config), (err) => err instanceof TypeError && expected.test(err.message))
    })
  }
  test('after all those, a valid limiter on the same store works', async () => {
    const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(1, '60 s'), prefix: `cfg-${randomUUID()}` })
    assert.equal((await rl.limit('x')).success, true)
  })
})

describe('Redis constructor', () => {
  const cases = [
    // The value itself is never echoed (it may be a redis:// URL with a password, or a token).
    ['url "not a url"', { url: 'not a url', token: 't' }, /invalid Upstash REST URL; it must start with http:\/\/ or https:\/\//],
    ['empty token', { url: 'http://127.0.0.1:1', token: '' }, /needs a `url` and a `token`/],
    ['missing token', { url: 'http://127.0.0.1:1' }, /needs a `url` and a `token`/],
    ['missing url', { token: 't' }, /needs a `url` and a `token`/],
    ['ftp:// URL', { url: 'ftp://127.0.0.1/', token: 't' }, /invalid Upstash REST URL.*must start with http:\/\/ or https:\/\//],
    ['port out of range', { url: 'http://127.0.0.1:99999', token: 't' }, /invalid Upstash REST URL.*port/],
    ['token with a newline', { url: 'http://127.0.0.1:1', token: 'a\nb' }, /token contains invalid characters/],
    ['tls: "no"', { url: 'https://127.0.0.1:1', token: 't', tls: 'no' }, /`tls` must be an object/],
    ['no config', undefined, /needs a `url` and a `token`/],
  ]
  for (const [label, config, expected] of cases) {
    test(`new Redis(${label}) throws a clear error`, () => {
      assert.throws(() => new Redis(config), (err) => expected.test(err.message) || assert.fail(err.message))
    })
  }
  test('Redis.memory({ maxKeys: bad }) throws a clear error', () => {
    for (const maxKeys of [0, -1, 1.5, NaN, '10', 2 ** 40]) {
      assert.throws(() => Redis.memory({ maxKeys }), /maxKeys must be a positive integer/)
    }
  })
})

describe('misbehaving servers', () => {
  const TIMEOUT = 1500
  const SLACK = 150
  const html = (title) => `<!DOCTYPE html><html><head><title>${title}</title></head><body><h1>${title}</h1><hr><center>nginx</center></body></html>`
  const answer = (status, type, body) => (req, res) => {
    res.writeHead(status, { 'content-type': type })
    res.end(body)
  }
  const SERVERS = {
    'HTML page with 200': [answer(200, 'text/html', html('Welcome to nginx!')), /unparseable answer.*expected a JSON array.*Welcome to nginx/s],
    'HTML error page with 500': [answer(500, 'text/html', html('500 Internal Server Error')), /500 Internal Server Error.*HTTP 500/s],
    'HTML 404 (wrong base path)': [answer(404, 'text/html', html('404 Not Found')), /404 Not Found.*HTTP 404/s],
    'HTML 502 Bad Gateway (retried, then reported)': [answer(502, 'text/html', html('502 Bad Gateway')), /502 Bad Gateway.*HTTP 502/s],
    'truncated JSON': [answer(200, 'application/json', '[{"result":[1,'), /unparseable answer/],
    'HTTP 500 with a JSON error': [answer(500, 'application/json', '{"error":"ERR something broke"}'), /ERR something broke.*HTTP 500/],
    'HTTP 401': [answer(401, 'application/json', '{"error":"Unauthorized"}'), /Unauthorized.*HTTP 401/],
    'empty 200 body': [answer(200, 'application/json', ''), /unparseable answer/],
    'JSON object instead of an array': [answer(200, 'application/json', '{"result":"OK"}'), /unparseable answer.*expected a JSON array/],
    'wrong number of pipeline items': [answer(200, 'application/json', '[]'), /pipeline answer has 0 items for 1 command/],
    'a reply string that is not base64': [answer(200, 'application/json', '[{"result":["%%%",5]}]'), /not base64/],
    'a reply of the wrong shape': [answer(200, 'application/json', '[{"result":"T0s="}]'), /unexpected|reply|shape|expected/i],
    'connection reset without an answer': [(req, res) => res.socket.destroy(), /failed|closed|reset|connection/i],
  }
  const servers = {}
  before(async () => {
    for (const [name, [handler]] of Object.entries(SERVERS)) servers[name] = await miniServer(handler)
    // A slow drip: headers, then one byte every 200 ms, never finished.
    servers.drip = await miniServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write('[')
      const timer = setInterval(() => res.write(' '), 200)
      res.on('close', () => clearInterval(timer))
    })
    // Accepts the request and never answers.
    servers.silent = await miniServer(() => {})
  })
  after(async () => {
    await Promise.all(Object.values(servers).map((s) => s.close()))
  })

  for (const [name, [, expected]] of Object.entries(SERVERS)) {
    test(`${name}: limit() rejects with a clear message within the timeout; failClosed refuses with the error`, async (t) => {
      const token = randomBytes(12).toString('hex')
      const srv = servers[name]
      // A 502 means the request never ran: it is re-sent while the caller waits, so only a
      // caller without a timeout (fixed ~0.8 s of retries) sees the error itself.
      const neverRan = name.startsWith('HTML 502')
      const mk = (extra) =>
        new Ratelimit({ redis: new Redis({ url: srv.url, token }), limiter: Ratelimit.fixedWindow(10, '60 s'), prefix: `srv-${randomUUID()}`, timeout: neverRan ? 0 : TIMEOUT, ...extra })
      const t0 = performance.now()
      const err = await mk().limit('u').then(
        (r) => assert.fail(`expected a rejection, got ${JSON.stringify(r)}`),
        (e) => e,
      )
      const ms = performance.now() - t0
      t.diagnostic(`after ${ms.toFixed(0)} ms: ${err?.message}`)
      assert.ok(err instanceof Error)
      assert.match(err.message, expected)
      assert.ok(ms <= (neverRan ? 1500 : TIMEOUT + SLACK), `settled in ${ms.toFixed(0)} ms`)
      assert.ok(!everyView(err).includes(token), 'no token in the error')
      const closed = await mk({ failClosed: true }).limit('u')
      assert.equal(closed.success, false)
      assert.equal(closed.reason, 'timeout')
      assert.ok(closed.error instanceof Error && expected.test(closed.error.message))
    })
  }

  test('HTML 502 is re-sent (it certainly did not run): ~0.8 s without a timeout, then reported; with a timeout, until the caller stops waiting', async () => {
    const srv = servers['HTML 502 Bad Gateway (retried, then reported)']
    let before = srv.requests.length
    const noTimeout = new Ratelimit({ redis: new Redis({ url: srv.url, token: 't' }), limiter: Ratelimit.fixedWindow(10, '60 s'), timeout: 0 })
    let t0 = performance.now()
    await assert.rejects(noTimeout.limit('u'), /HTTP 502/)
    let ms = performance.now() - t0
    assert.equal(srv.requests.length - before, 6, 'one request and five retries')
    assert.ok(ms >= 700 && ms <= 1500, `${ms.toFixed(0)} ms`)

    before = srv.requests.length
    const waits = new Ratelimit({ redis: new Redis({ url: srv.url, token: 't' }), limiter: Ratelimit.fixedWindow(10, '60 s'), timeout: 1500 })
    t0 = performance.now()
    const res = await waits.limit('u')
    ms = performance.now() - t0
    assert.equal(res.reason, 'timeout', 'the caller gets its timeout answer, not an error')
    assert.ok(ms >= 1400 && ms <= 1500 + SLACK, `${ms.toFixed(0)} ms`)
    // Give the client's last retry (at most 400 ms after the deadline) time to finish.
    await new Promise((r) => setTimeout(r, 500))
    assert.ok(srv.requests.length - before > 6, `re-sent while the caller waited (${srv.requests.length - before} requests)`)
  })

  for (const name of ['drip', 'silent']) {
    test(`${name === 'drip' ? 'slow drip (one byte every 200 ms)' : 'server that never answers'}: limit() answers at the timeout (fail-open and failClosed), never later`, async () => {
      const srv = servers[name]
      for (const failClosed of [false, true]) {
        const rl = new Ratelimit({ redis: new Redis({ url: srv.url, token: 't' }), limiter: Ratelimit.fixedWindow(10, '60 s'), timeout: 500, failClosed })
        const t0 = performance.now()
        const r = await rl.limit('u')
        const ms = performance.now() - t0
        assert.equal(r.reason, 'timeout')
        assert.equal(r.success, !failClosed)
        assert.ok(ms >= 490 && ms <= 500 + 100, `${ms.toFixed(0)} ms`)
      }
    })
  }

  test('after all those servers, the same process still limits correctly on a real stack', async () => {
    const rl = new Ratelimit({ redis: restRedis(), limiter: Ratelimit.fixedWindow(2, '60 s'), prefix: `srv-${randomUUID()}` })
    assert.deepEqual((await Promise.all([rl.limit('x'), rl.limit('x'), rl.limit('x')])).map((r) => r.success).sort(), [false, true, true])
  })
})

test('no native panic reaches the process: a child running every bad input exits 0', async (t) => {
  const child = spawn(process.execPath, [join(ROOT, 'reliability', 'bad-input-child.mjs')], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (err += d))
  const code = await new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.once('exit', (c, signal) => {
      clearTimeout(timer)
      resolve(c ?? signal)
    })
  })
  t.diagnostic(out.trim().split('\n').pop())
  assert.equal(code, 0, `child exit ${code}; stderr: ${err.slice(0, 2000)}`)
  assert.doesNotMatch(err, /panicked|RUST_BACKTRACE|fatal/i)
  const summary = JSON.parse(out.trim().split('\n').pop())
  assert.ok(summary.cases >= 100, `ran ${summary.cases} cases`)
  assert.equal(summary.unhandled, 0)
})
