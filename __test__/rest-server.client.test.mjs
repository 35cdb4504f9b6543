// The local REST server driven by the real `@upstash/redis` 1.39 client with its DEFAULT options
// (auto-pipelining on, `Upstash-Encoding: base64` on), against a real redis-server.
// Reference: /work/shared/reference/upstash-rest-protocol.md, sections 1, 2.2 and 3.2.

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { Redis, errors } from '@upstash/redis'
import { startStack } from './helpers/servers.mjs'

const sha1 = (text) => createHash('sha1').update(text).digest('hex')
const NOSCRIPT = 'NOSCRIPT No matching script. Please use EVAL.'
const NOT_AN_INTEGER = 'ERR value is not an integer or out of range'

/** A fresh key prefix per test so tests never see each other's data. */
const fresh = () => `t${randomBytes(6).toString('hex')}:`

/** `INFO commandstats` → { eval: {calls, failed_calls, rejected_calls}, … }. */
async function commandStats(stack) {
  const text = await stack.redis.command(['INFO', 'commandstats'])
  const stats = {}
  for (const m of text.matchAll(/^cmdstat_([a-z_|-]+):(.*)$/gm)) {
    const fields = Object.fromEntries(m[2].trim().split(',').map((kv) => kv.split('=')))
    stats[m[1]] = {
      calls: Number(fields.calls ?? 0),
      failed: Number(fields.failed_calls ?? 0),
      rejected: Number(fields.rejected_calls ?? 0),
    }
  }
  const get = (name) => stats[name] ?? { calls: 0, failed: 0, rejected: 0 }
  return { eval: get('eval'), evalsha: get('evalsha') }
}

describe('@upstash/redis 1.39 (default options) through the REST server', { timeout: 60000 }, () => {
  let stack
  let redis

  before(async () => {
    stack = await startStack()
    redis = new Redis({ url: stack.rest.url, token: stack.rest.token })
  })

  after(async () => {
    await stack?.stop()
  })

  test('the client really runs with its defaults: auto-pipelining and base64 encoding', () => {
    const client = redis.client
    assert.equal(client.baseUrl, stack.rest.url)
    assert.equal(client.headers['Upstash-Encoding'], 'base64')
    assert.equal(client.options.responseEncoding, 'base64')
    assert.equal(redis.enableAutoPipelining, true)
  })

  test('unicode and emoji values and keys round-trip byte-exactly', async () => {
    const p = fresh()
    const value = 'héllo wörld ✓ 🚀 日本語'
    const key = `${p}ключ🔑`
    assert.equal(await redis.set(key, value), 'OK')
    assert.equal(await redis.get(key), value)
    // Redis holds the real UTF-8 bytes, not base64 or mojibake.
    const raw = await stack.redis.command(['GET', key])
    assert.equal(raw, `$${Buffer.byteLength(value)}\r\n${value}\r\n`)
    assert.equal(await redis.strlen(key), Buffer.byteLength(value))
    // In collections too (lrange is sent as a direct request, not through the auto-pipeline).
    assert.equal(await redis.rpush(`${p}l`, value, 'ascii', '🚀'), 3)
    assert.deepEqual(await redis.lrange(`${p}l`, 0, -1), [value, 'ascii', '🚀'])
    // A value that happens to look like base64 must not be decoded twice.
    assert.equal(await redis.set(`${p}b64`, 'T0s='), 'OK')
    assert.equal(await redis.get(`${p}b64`), 'T0s=')
  })

  test('"OK" stored in a list comes back as "OK" (base64 of OK inside arrays)', async () => {
    const p = fresh()
    assert.equal(await redis.lpush(`${p}list`, 'OK'), 1)
    assert.deepEqual(await redis.lrange(`${p}list`, 0, -1), ['OK'])
    assert.equal(await redis.lpush(`${p}list`, 'PONG'), 2)
    assert.deepEqual(await redis.lrange(`${p}list`, 0, -1), ['PONG', 'OK'])
    assert.equal(await redis.lindex(`${p}list`, 1), 'OK')
  })

  test('mget with a missing key gives null in that slot', async () => {
    const p = fresh()
    await Promise.all([redis.set(`${p}a`, 'alpha'), redis.set(`${p}c`, 'gamma')])
    assert.deepEqual(await redis.mget(`${p}a`, `${p}missing`, `${p}c`), ['alpha', null, 'gamma'])
    assert.equal(await redis.get(`${p}missing`), null)
  })

  test('a 20-digit numeric string stays a string; safe numbers are parsed', async () => {
    const p = fresh()
    assert.equal(await redis.set(`${p}big`, '12345678901234567890'), 'OK')
    const big = await redis.get(`${p}big`)
    assert.equal(typeof big, 'string')
    assert.equal(big, '12345678901234567890')
    assert.equal(await stack.redis.command(['GET', `${p}big`]), '$20\r\n12345678901234567890\r\n')
    await redis.set(`${p}small`, 42)
    assert.equal(await redis.get(`${p}small`), 42)
  })

  test('hgetall (direct request) and zrange withScores', async () => {
    const p = fresh()
    assert.equal(await redis.hset(`${p}h`, { name: 'Ada', emoji: '🚀', n: 7 }), 3)
    assert.deepEqual(await redis.hgetall(`${p}h`), { name: 'Ada', emoji: '🚀', n: 7 })
    assert.equal(await redis.hgetall(`${p}nohash`), null)
    assert.equal(
      await redis.zadd(`${p}z`, { score: 2, member: 'b' }, { score: 1.5, member: 'a' }, { score: 10, member: 'ü' }),
      3,
    )
    assert.deepEqual(await redis.zrange(`${p}z`, 0, -1, { withScores: true }), ['a', 1.5, 'b', 2, 'ü', 10])
    assert.deepEqual(await redis.zrange(`${p}z`, 0, -1), ['a', 'b', 'ü'])
    assert.equal(await redis.zscore(`${p}z`, 'a'), 1.5)
  })

  test('incrbyfloat', async () => {
    const p = fresh()
    assert.equal(await redis.incrbyfloat(`${p}f`, 1.5), 1.5)
    assert.equal(await redis.incrbyfloat(`${p}f`, 0.25), 1.75)
    assert.equal(await redis.incrbyfloat(`${p}f`, -3), -1.25)
    assert.equal(await stack.redis.command(['GET', `${p}f`]), '$5\r\n-1.25\r\n')
    assert.equal(await redis.incr(`${p}i`), 1)
    assert.equal(await redis.incrby(`${p}i`, 41), 42)
  })

  test('an auto-pipelined command that fails rejects with "Command failed: <redis error>"', async () => {
    const p = fresh()
    await redis.set(`${p}s`, 'text')
    const [ok, failed, other] = await Promise.allSettled([redis.get(`${p}s`), redis.incr(`${p}s`), redis.set(`${p}o`, 'v')])
    assert.deepEqual(ok, { status: 'fulfilled', value: 'text' })
    assert.equal(failed.status, 'rejected')
    assert.ok(failed.reason instanceof errors.UpstashError)
    assert.equal(failed.reason.message, `Command failed: ${NOT_AN_INTEGER}`)
    assert.deepEqual(other, { status: 'fulfilled', value: 'OK' })
  })

  test('a pipeline with an error: exec() rejects, exec({keepErrors}) gives per-item result/error', async () => {
    const p = fresh()
    const build = () => redis.pipeline().set(`${p}x`, 'x').incr(`${p}x`).get(`${p}x`).lpush(`${p}l`, 'OK')
    await assert.rejects(build().exec(), (err) => {
      assert.ok(err instanceof errors.UpstashError)
      assert.equal(err.message, `Command 2 [ incr ] failed: ${NOT_AN_INTEGER}`)
      return true
    })
    // A pipeline is not atomic and one failure does not stop the others: lpush ran.
    assert.equal(await redis.llen(`${p}l`), 1)

    const items = await build().exec({ keepErrors: true })
    assert.equal(items.length, 4)
    assert.deepEqual(items[0], { result: 'OK', error: undefined })
    assert.equal(items[1].error, NOT_AN_INTEGER)
    assert.equal(items[1].result, undefined)
    assert.deepEqual(items[2], { result: 'x', error: undefined })
    assert.deepEqual(items[3], { result: 2, error: undefined })
  })

  test('multi with a runtime error: the failing item is reported, the rest committed', async () => {
    const p = fresh()
    await assert.rejects(redis.multi().set(`${p}a`, 'x').incr(`${p}a`).set(`${p}b`, 'y').exec(), (err) => {
      assert.ok(err instanceof errors.UpstashError)
      assert.equal(err.message, `Command 2 [ incr ] failed: ${NOT_AN_INTEGER}`)
      return true
    })
    // Redis semantics: the other commands of the transaction still ran.
    assert.deepEqual(await redis.mget(`${p}a`, `${p}b`), ['x', 'y'])

    const items = await redis.multi().set(`${p}c`, 'x').incr(`${p}c`).get(`${p}c`).exec({ keepErrors: true })
    assert.deepEqual(items[0], { result: 'OK', error: undefined })
    assert.equal(items[1].error, NOT_AN_INTEGER)
    assert.deepEqual(items[2], { result: 'x', error: undefined })
  })

  test('multi with EXECABORT (wrong arity) throws UpstashError and runs nothing', async () => {
    const p = fresh()
    // `del()` with no keys sends ["del"], which Redis refuses to queue.
    await assert.rejects(redis.multi().set(`${p}b`, '1').del().exec(), (err) => {
      assert.ok(err instanceof errors.UpstashError, `got ${err?.constructor?.name}: ${err?.message}`)
      assert.ok(err.message.includes("ERR wrong number of arguments for 'del' command"), err.message)
      assert.ok(err.message.includes(`command was: [["set","${p}b","1"],["del"]]`), err.message)
      return true
    })
    assert.equal(await redis.get(`${p}b`), null)
    // The connection is not left inside a MULTI: the next transaction works normally.
    assert.deepEqual(await redis.multi().set(`${p}b`, '2').get(`${p}b`).exec(), ['OK', 2])
  })

  test('EVALSHA of an unknown script gives NOSCRIPT verbatim; EVAL then makes EVALSHA hit', async () => {
    const p = fresh()
    const script = `return {KEYS[1], ARGV[1], '${p}'}`
    const sha = sha1(script)
    await assert.rejects(redis.evalsha(sha, [`${p}k`], ['v']), (err) => {
      assert.ok(err instanceof errors.UpstashError)
      assert.equal(err.message, `Command failed: ${NOSCRIPT}`)
      return true
    })
    assert.deepEqual(await redis.eval(script, [`${p}k`], ['v']), [`${p}k`, 'v', p])
    assert.deepEqual(await redis.evalsha(sha, [`${p}k`], ['w']), [`${p}k`, 'w', p])
  })

  test('createScript: the first exec falls back from NOSCRIPT to EVAL, later ones are EVALSHA hits', async () => {
    const p = fresh()
    const script = redis.createScript(`return redis.call('INCRBY', KEYS[1], ARGV[1]) -- ${p}`)
    const before = await commandStats(stack)
    assert.equal(await script.exec([`${p}n`], [5]), 5)
    const cold = await commandStats(stack)
    assert.equal(cold.eval.calls - before.eval.calls, 1, 'one EVAL for the cold call')
    assert.equal(await script.exec([`${p}n`], [2]), 7)
    assert.equal(await script.exec([`${p}n`], [3]), 10)
    const warm = await commandStats(stack)
    assert.equal(warm.eval.calls, cold.eval.calls, 'no EVAL once the script is cached')
    assert.equal(warm.evalsha.calls - cold.evalsha.calls, 2)
    assert.equal(warm.evalsha.failed + warm.evalsha.rejected, cold.evalsha.failed + cold.evalsha.rejected)
    assert.equal(script.sha1, sha1(script.script))
  })

  test('#!lua flags=allow-key-locking: EVAL works, SCRIPT LOAD answers the SHA1 of the original text, SCRIPT FLUSH forgets it', async () => {
    const p = fresh()
    const body = `return redis.call('SET', KEYS[1], ARGV[1]) -- ${p}`
    const original = `#!lua flags=allow-key-locking\n${body}`
    const stripped = `#!lua\n${body}`

    assert.equal(await redis.eval(original, [`${p}k`], ['first']), 'OK')
    assert.equal(await redis.get(`${p}k`), 'first')
    // Redis only ever saw the rewritten script.
    assert.match(await stack.redis.command(['SCRIPT', 'EXISTS', sha1(stripped), sha1(original)]), /^\*2\r\n:1\r\n:0\r\n$/)

    assert.equal(await redis.scriptLoad(original), sha1(original))
    assert.equal(await redis.evalsha(sha1(original), [`${p}k`], ['second']), 'OK')
    assert.equal(await redis.get(`${p}k`), 'second')
    assert.deepEqual(await redis.scriptExists(sha1(original), sha1('return "never loaded"')), [1, 0])

    assert.equal(await redis.scriptFlush(), 'OK')
    await assert.rejects(redis.evalsha(sha1(original), [`${p}k`], ['third']), { message: `Command failed: ${NOSCRIPT}` })
    assert.deepEqual(await redis.scriptExists(sha1(original)), [0])
    assert.equal(await redis.get(`${p}k`), 'second')

    // createScript with the shebang: NOSCRIPT → EVAL fallback, then EVALSHA of the original SHA1 hits.
    const script = redis.createScript(original)
    assert.equal(await script.exec([`${p}k`], ['fourth']), 'OK')
    const before = await commandStats(stack)
    assert.equal(await script.exec([`${p}k`], ['fifth']), 'OK')
    const afterStats = await commandStats(stack)
    assert.equal(afterStats.eval.calls, before.eval.calls)
    assert.equal(afterStats.evalsha.calls - before.evalsha.calls, 1)
    assert.equal(afterStats.evalsha.failed + afterStats.evalsha.rejected, before.evalsha.failed + before.evalsha.rejected)
    assert.equal(await redis.get(`${p}k`), 'fifth')
  })

  test('other shebang flags are kept when allow-key-locking is stripped', async () => {
    const p = fresh()
    const readOnly = `#!lua flags=no-writes,allow-key-locking\nreturn redis.call('SET', KEYS[1], 'v') -- ${p}`
    await assert.rejects(redis.eval(readOnly, [`${p}k`], []), (err) => {
      assert.match(err.message, /^Command failed: ERR Write commands are not allowed from read-only scripts/)
      return true
    })
    assert.equal(await redis.get(`${p}k`), null)
    const reader = `#!lua flags=allow-key-locking,no-writes\nreturn redis.call('GET', KEYS[1]) -- ${p}`
    await redis.set(`${p}k`, 'readable')
    assert.equal(await redis.eval(reader, [`${p}k`], []), 'readable')
    assert.equal(await redis.scriptLoad(reader), sha1(reader))
    assert.equal(await redis.evalsha(sha1(reader), [`${p}k`], []), 'readable')
  })

  test('a bad token is rejected with "Unauthorized"', async () => {
    const bad = new Redis({ url: stack.rest.url, token: `${stack.rest.token}x` })
    await assert.rejects(bad.get('anything'), (err) => {
      assert.ok(err instanceof errors.UpstashError, `got ${err?.constructor?.name}: ${err?.message}`)
      assert.ok(err.message.startsWith('Unauthorized'), err.message)
      assert.ok(!err.message.includes(stack.rest.token), 'the real token must not be echoed')
      return true
    })
    await assert.rejects(bad.multi().set('k', 'v').exec(), /Unauthorized/)
    await assert.rejects(bad.hgetall('h'), /Unauthorized/)
    // The right token still works afterwards.
    assert.equal(await redis.ping(), 'PONG')
  })

  test('atomicity: 200 concurrent incr mixed with 20 concurrent multi() never interleave', async () => {
    const p = fresh()
    const k = `${p}k`
    const k2 = `${p}k2`
    // Several client instances so the server sees several concurrent pipelines, not one batch.
    const clients = Array.from({ length: 10 }, () => new Redis({ url: stack.rest.url, token: stack.rest.token }))
    const singles = Array.from({ length: 200 }, (_, i) => clients[i % clients.length].incr(k))
    const multis = Array.from({ length: 20 }, (_, i) => clients[i % clients.length].multi().incr(k).incr(k).get(k).incr(k2).exec())
    const [singleResults, multiResults] = await Promise.all([Promise.all(singles), Promise.all(multis)])

    const seen = [...singleResults]
    for (const [a, b, got, m] of multiResults) {
      assert.equal(b, a + 1, 'two incr inside one multi are consecutive')
      assert.equal(got, b, 'get inside the multi sees its own last incr')
      seen.push(a, b)
    }
    assert.deepEqual(
      seen.sort((x, y) => x - y),
      Array.from({ length: 240 }, (_, i) => i + 1),
    )
    assert.deepEqual(
      multiResults.map((r) => r[3]).sort((x, y) => x - y),
      Array.from({ length: 20 }, (_, i) => i + 1),
    )
    assert.deepEqual(await redis.mget(k, k2), [240, 20])
  })
})

describe('--base-path /prefix', { timeout: 20000 }, () => {
  let stack

  before(async () => {
    stack = await startStack({ args: ['--base-path', '/prefix'] })
  })

  after(async () => {
    await stack?.stop()
  })

  test('the printed URL carries the base path and the default client works through it', async () => {
    const url = new URL(stack.rest.url)
    assert.equal(url.pathname, '/prefix')
    const redis = new Redis({ url: stack.rest.url, token: stack.rest.token })
    assert.equal(await redis.set('bp', 'héllo 🚀'), 'OK')
    assert.equal(await redis.get('bp'), 'héllo 🚀')
    assert.deepEqual(await redis.lrange('nolist', 0, -1), [])
    assert.deepEqual(await redis.multi().incr('bpn').incr('bpn').exec(), [1, 2])
    assert.deepEqual(await redis.pipeline().get('bp').incr('bpn').exec(), ['héllo 🚀', 3])
    // A URL given with a trailing slash works too (the client strips it).
    const slash = new Redis({ url: `${stack.rest.url}/`, token: stack.rest.token })
    assert.equal(await slash.get('bp'), 'héllo 🚀')
  })

  test('paths outside the base path get 404 JSON', async () => {
    const origin = new URL(stack.rest.url).origin
    const auth = { authorization: `Bearer ${stack.rest.token}` }
    for (const path of ['/', '/other', '/pipeline', '/multi-exec', '/prefixpipeline', '/prefix/other', '/prefix/pipeline/x']) {
      const res = await fetch(`${origin}${path}`, { method: 'POST', headers: auth, body: '["ping"]' })
      assert.equal(res.status, 404, path)
      assert.match(res.headers.get('content-type') ?? '', /application\/json/)
      const body = await res.json()
      assert.equal(typeof body.error, 'string', path)
      assert.deepEqual(Object.keys(body), ['error'])
    }
    const ok = await fetch(`${origin}/prefix/pipeline/`, { method: 'POST', headers: auth, body: '[["ping"]]' })
    assert.equal(ok.status, 200)
    assert.deepEqual(await ok.json(), [{ result: 'PONG' }])
  })
})
