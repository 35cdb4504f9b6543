// Raw-HTTP tests of the local REST server's wire protocol: argument conversion, response
// encoding, routing, methods, limits, authentication, refused commands, transactions and Redis
// outages. Every case checks the status AND the JSON body, and that the server keeps serving.
// Reference: /work/shared/reference/upstash-rest-protocol.md, sections 1 and 3.2.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { freePort, redisCommand, startRedis, startRestServer, startStack } from './helpers/servers.mjs'

const NOT_AN_INTEGER = 'ERR value is not an integer or out of range'
const b64 = (text) => Buffer.from(text).toString('base64')
const fresh = () => `t${randomBytes(6).toString('hex')}:`
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Every response body seen by any test in this file, to check no token ever leaks. */
const seenBodies = []
const tokensInUse = new Set()

/**
 * POSTs (or `method`s) to `base + path`; returns { status, text, json, headers }.
 * `token: null` sends no Authorization header; `authorization` overrides the header value.
 */
async function call(server, path, body, { token = server.token, authorization, headers = {}, method = 'POST', timeoutMs = 10000 } = {}) {
  tokensInUse.add(server.token)
  const h = { ...headers }
  if (authorization !== undefined) h.authorization = authorization
  else if (token !== null) h.authorization = `Bearer ${token}`
  const init = { method, headers: h, signal: AbortSignal.timeout(timeoutMs) }
  if (body !== undefined) init.body = typeof body === 'string' || body instanceof Uint8Array || body instanceof ReadableStream ? body : JSON.stringify(body)
  if (body instanceof ReadableStream) init.duplex = 'half'
  const res = await fetch(`${server.url}${path}`, init)
  const text = await res.text()
  seenBodies.push(text)
  let json
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, text, json, headers: res.headers }
}

const base64Header = { 'Upstash-Encoding': 'base64' }

/** Asserts a JSON error answer: exact status, body exactly {"error": <string>}, JSON content type. */
function assertError(res, status, pattern) {
  assert.equal(res.status, status, `status for ${res.text}`)
  assert.ok(res.json && typeof res.json === 'object' && !Array.isArray(res.json), `JSON object body, got ${res.text}`)
  assert.deepEqual(Object.keys(res.json), ['error'], res.text)
  assert.equal(typeof res.json.error, 'string')
  if (pattern instanceof RegExp) assert.match(res.json.error, pattern)
  else if (pattern !== undefined) assert.equal(res.json.error, pattern)
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/)
}

/** The server still answers a normal command correctly. */
async function assertAlive(server) {
  const res = await call(server, '', ['echo', 'still alive'], { timeoutMs: 3000 })
  assert.equal(res.status, 200)
  assert.deepEqual(res.json, { result: 'still alive' })
}

describe('REST server protocol (raw fetch)', { timeout: 60000 }, () => {
  let stack
  let server

  before(async () => {
    stack = await startStack()
    server = stack.rest
  })

  after(async () => {
    await stack?.stop()
  })

  test('JSON numbers and booleans become their text; big integers keep their digits', async () => {
    const k = `${fresh()}k`
    const cases = [
      [1.5, '1.5'],
      [true, 'true'],
      [false, 'false'],
      [-7, '-7'],
      [0, '0'],
      [12345678901234567890n, '12345678901234567890'],
    ]
    for (const [value, expected] of cases) {
      const raw = `["set","${k}",${value.toString()}]`
      const set = await call(server, '', raw)
      assert.equal(set.status, 200, raw)
      assert.deepEqual(set.json, { result: 'OK' })
      const get = await call(server, '', ['get', k])
      assert.deepEqual(get.json, { result: expected }, raw)
      assert.equal(await redisCommand(stack.redis.port, stack.redis.password, ['GET', k]), `$${expected.length}\r\n${expected}\r\n`)
    }
    // Numbers work in any position: EX as a number, numkeys of EVAL as a number.
    assert.deepEqual((await call(server, '', ['set', k, 'v', 'ex', 100])).json, { result: 'OK' })
    const ttl = await call(server, '', ['ttl', k])
    assert.ok(ttl.json.result > 90 && ttl.json.result <= 100, ttl.text)
    assert.deepEqual((await call(server, '', ['eval', 'return ARGV[1]', 0, 2.25])).json, { result: '2.25' })
    // Redis int64 replies are written with all their digits.
    await call(server, '', ['set', k, '9223372036854775806'])
    const incr = await call(server, '', ['incr', k])
    assert.equal(incr.status, 200)
    assert.equal(incr.text, '{"result":9223372036854775807}')
  })

  test('null, object and array arguments are refused with 400 JSON and nothing runs', async () => {
    const k = `${fresh()}k`
    for (const bad of ['null', '{"a":1}', '["x"]', '{}', '[]']) {
      const single = await call(server, '', `["set","${k}",${bad}]`)
      assertError(single, 400, /^ERR /)
      const pipe = await call(server, '/pipeline', `[["set","${k}","first"],["set","${k}2",${bad}]]`)
      assertError(pipe, 400, /^ERR /)
      const multi = await call(server, '/multi-exec', `[["set","${k}","first"],["set","${k}2",${bad}]]`)
      assertError(multi, 400, /^ERR /)
    }
    assert.deepEqual((await call(server, '', ['mget', k, `${k}2`])).json, { result: [null, null] })
    await assertAlive(server)
  })

  test('command names are case-insensitive everywhere', async () => {
    const k = `${fresh()}k`
    assert.deepEqual((await call(server, '', ['SeT', k, 'v'])).json, { result: 'OK' })
    assert.deepEqual((await call(server, '', ['GET', k])).json, { result: 'v' })
    assert.deepEqual((await call(server, '/pipeline', [['APPEND', k, 'w'], ['gEt', k]])).json, [{ result: 2 }, { result: 'vw' }])
    assert.deepEqual((await call(server, '/multi-exec', [['Del', k], ['INCR', k], ['ExIsTs', k]])).json, [{ result: 1 }, { result: 1 }, { result: 1 }])
    // Refusals are case-insensitive too.
    assertError(await call(server, '', ['BlPoP', k, 0]), 400, /blpop/i)
    assertError(await call(server, '/multi-exec', [['mUlTi']]), 400, /multi/i)
  })

  test('trailing slashes on /, /pipeline/ and /multi-exec/', async () => {
    const k = `${fresh()}k`
    const single = await call(server, '/', ['set', k, '1'])
    assert.equal(single.status, 200)
    assert.deepEqual(single.json, { result: 'OK' })
    const pipe = await call(server, '/pipeline/', [['incr', k], ['get', k]])
    assert.equal(pipe.status, 200)
    assert.deepEqual(pipe.json, [{ result: 2 }, { result: '2' }])
    const multi = await call(server, '/multi-exec/', [['incr', k], ['get', k]])
    assert.equal(multi.status, 200)
    assert.deepEqual(multi.json, [{ result: 3 }, { result: '3' }])
  })

  test('Upstash-Encoding: base64 versus none on the same values', async () => {
    const p = fresh()
    const text = 'héllo wörld ✓ 🚀 日本語'
    await call(server, '/pipeline', [['set', `${p}s`, text], ['rpush', `${p}l`, 'OK', 'x'], ['hset', `${p}h`, 'f', 'OK']])

    const script = "return {redis.status_reply('OK'), {1, 'ab', redis.status_reply('PONG')}, 'OK'}"
    const commands = [
      ['set', `${p}o`, 'v'], // top-level simple OK
      ['get', `${p}s`], // bulk string
      ['ping'], // simple string, not OK
      ['type', `${p}s`], // simple string "string"
      ['lrange', `${p}l`, 0, -1], // "OK" as a bulk string inside an array
      ['hgetall', `${p}h`],
      ['eval', script, 0], // simple OK nested in arrays
      ['incr', `${p}n`], // integer
      ['get', `${p}missing`], // nil
      ['incr', `${p}s`], // error: never encoded
      ['eval', 'return string.char(255)', 0], // invalid UTF-8
      ['eval', 'return string.char(97, 255, 98, 0)', 0],
    ]
    const plain = [
      { result: 'OK' },
      { result: text },
      { result: 'PONG' },
      { result: 'string' },
      { result: ['OK', 'x'] },
      { result: ['f', 'OK'] },
      { result: ['OK', [1, 'ab', 'PONG'], 'OK'] },
      { result: 1 },
      { result: null },
      { error: NOT_AN_INTEGER },
      { result: '\uFFFD' },
      { result: 'a\uFFFDb\u0000' },
    ]
    const encoded = [
      { result: 'OK' },
      { result: b64(text) },
      { result: 'UE9ORw==' },
      { result: b64('string') },
      { result: ['T0s=', 'eA=='] },
      { result: ['Zg==', 'T0s='] },
      { result: ['T0s=', [1, 'YWI=', 'UE9ORw=='], 'T0s='] },
      { result: 2 },
      { result: null },
      { error: NOT_AN_INTEGER },
      { result: '/w==' },
      { result: 'Yf9iAA==' },
    ]
    const withoutHeader = await call(server, '/pipeline', commands)
    assert.equal(withoutHeader.status, 200)
    assert.deepEqual(withoutHeader.json, plain)
    const withHeader = await call(server, '/pipeline', commands, { headers: base64Header })
    assert.equal(withHeader.status, 200)
    assert.deepEqual(withHeader.json, encoded)

    // The same through the single-command endpoint and /multi-exec.
    const single = async (cmd, headers) => (await call(server, '', cmd, { headers })).json
    assert.deepEqual(await single(['get', `${p}s`], {}), { result: text })
    assert.deepEqual(await single(['get', `${p}s`], base64Header), { result: b64(text) })
    assert.deepEqual(await single(['set', `${p}o`, 'v'], base64Header), { result: 'OK' })
    assert.deepEqual(await single(['ping'], base64Header), { result: 'UE9ORw==' })
    assert.deepEqual(await single(['eval', 'return string.char(255)', 0], {}), { result: '\uFFFD' })
    assert.deepEqual(await single(['eval', 'return string.char(255)', 0], base64Header), { result: '/w==' })
    assert.deepEqual(await single(['eval', 'return string.char(255)', 0], { 'upstash-encoding': 'base64' }), { result: '/w==' })
    const err = await call(server, '', ['incr', `${p}s`], { headers: base64Header })
    assertError(err, 400, NOT_AN_INTEGER)
    const multi = await call(server, '/multi-exec', [['set', `${p}o`, 'w'], ['get', `${p}o`], ['lrange', `${p}l`, 0, 0]], { headers: base64Header })
    assert.deepEqual(multi.json, [{ result: 'OK' }, { result: 'dw==' }, { result: ['T0s='] }])

    // Binary values written by a script are read back byte-exactly under base64.
    await call(server, '', ['eval', "return redis.call('SET', KEYS[1], string.char(0, 255, 1, 128))", 1, `${p}bin`])
    assert.deepEqual(await single(['get', `${p}bin`], base64Header), { result: 'AP8BgA==' })
    assert.deepEqual(await single(['get', `${p}bin`], {}), { result: '\u0000\uFFFD\u0001\uFFFD' })
  })

  test('malformed JSON is a 400 JSON error', async () => {
    for (const path of ['', '/pipeline', '/multi-exec']) {
      for (const body of ['["set","k"', '', 'nope', '[["get","k"]', '{"a":', '\u0000', '[\'get\']']) {
        assertError(await call(server, path, body), 400, /^ERR /)
      }
    }
    await assertAlive(server)
  })

  test('wrong body shapes are 400 JSON errors', async () => {
    const single = ['{"cmd":"get"}', '"get"', '42', 'null', '[]', '[["get","k"]]', 'true']
    for (const body of single) assertError(await call(server, '', body), 400, /^ERR /)
    const batch = ['{"cmd":"get"}', '["get","k"]', '[]', '[[]]', '[["get","k"],[]]', '[["get","k"],"x"]', '[["get",["k"]]]', '{"0":["get","k"]}', '[null]', '[[null]]']
    for (const body of batch) {
      assertError(await call(server, '/pipeline', body), 400, /^ERR /)
      assertError(await call(server, '/multi-exec', body), 400, /^ERR /)
    }
    await assertAlive(server)
  })

  test('a request Content-Type is not required', async () => {
    for (const type of [undefined, 'text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream']) {
      const res = await call(server, '', ['echo', 'ct'], { headers: type ? { 'content-type': type } : {} })
      assert.equal(res.status, 200, String(type))
      assert.deepEqual(res.json, { result: 'ct' })
    }
    const bytes = new TextEncoder().encode(JSON.stringify(['echo', 'bytes']))
    assert.deepEqual((await call(server, '', bytes)).json, { result: 'bytes' })
  })

  test('unknown paths are 404 JSON', async () => {
    for (const path of ['/other', '/pipelines', '/multi', '/multi-exec/x', '/get/k', '/pipeline/pipeline']) {
      assertError(await call(server, path, [['ping']]), 404)
    }
    await assertAlive(server)
  })

  test('DELETE, PATCH, OPTIONS are 405 JSON', async () => {
    for (const method of ['DELETE', 'PATCH', 'OPTIONS']) {
      for (const path of ['', '/pipeline', '/multi-exec']) {
        const res = await call(server, path, method === 'OPTIONS' ? undefined : ['ping'], { method })
        assertError(res, 405)
      }
    }
    await assertAlive(server)
  })

  test('missing or wrong Authorization is 401 {"error":"Unauthorized"}', async () => {
    const variants = [
      { token: null },
      { token: 'wrong' },
      { token: `${server.token}x` },
      { token: server.token.slice(0, -1) },
      { authorization: server.token },
      { authorization: `Basic ${Buffer.from(`default:${server.token}`).toString('base64')}` },
      { authorization: `Token ${server.token}` },
      { authorization: 'Bearer ' },
      { authorization: `Bearer  ${server.token}x` },
    ]
    for (const auth of variants) {
      for (const [path, body] of [
        ['', ['set', 'unauth', 'x']],
        ['/pipeline', [['set', 'unauth', 'x']]],
        ['/multi-exec', [['set', 'unauth', 'x']]],
        ['/pipeline', 'not json at all'],
      ]) {
        const res = await call(server, path, body, auth)
        assert.equal(res.status, 401, `${JSON.stringify(auth)} ${path}`)
        assert.equal(res.text, '{"error":"Unauthorized"}')
        assert.match(res.headers.get('content-type') ?? '', /^application\/json/)
      }
    }
    assert.deepEqual((await call(server, '', ['exists', 'unauth'])).json, { result: 0 })
  })

  test('MULTI, EXEC, DISCARD, WATCH, UNWATCH inside /multi-exec are 400 and nothing runs', async () => {
    const k = `${fresh()}k`
    for (const cmd of [['multi'], ['exec'], ['discard'], ['watch', k], ['unwatch'], ['EXEC']]) {
      const res = await call(server, '/multi-exec', [['set', k, 'x'], cmd, ['incr', `${k}n`]])
      assertError(res, 400, /^ERR /)
    }
    assert.deepEqual((await call(server, '', ['mget', k, `${k}n`])).json, { result: [null, null] })
    // Outside /multi-exec, MULTI/EXEC are refused per item and do not open a transaction.
    const pipe = await call(server, '/pipeline', [['multi'], ['set', k, 'y'], ['exec']])
    assert.equal(pipe.status, 200)
    assert.equal(pipe.json.length, 3)
    assert.equal(typeof pipe.json[0].error, 'string')
    assert.deepEqual(pipe.json[1], { result: 'OK' })
    assert.equal(typeof pipe.json[2].error, 'string')
    assertError(await call(server, '', ['multi']), 400, /multi/i)
    assert.deepEqual((await call(server, '', ['get', k])).json, { result: 'y' })
    // A transaction still works afterwards.
    assert.deepEqual((await call(server, '/multi-exec', [['incr', `${k}n`], ['incr', `${k}n`]])).json, [{ result: 1 }, { result: 2 }])
  })

  test('EXECABORT: a command that fails to queue aborts the whole transaction with 400', async () => {
    const k = `${fresh()}k`
    const res = await call(server, '/multi-exec', [['set', k, '1'], ['get'], ['incr', k]])
    assertError(res, 400, "ERR wrong number of arguments for 'get' command")
    const unknown = await call(server, '/multi-exec', [['set', k, '1'], ['nosuchcommand', 'x']])
    assertError(unknown, 400, /^ERR unknown command/)
    assert.deepEqual((await call(server, '', ['get', k])).json, { result: null })
    // A runtime error inside EXEC is an item; the rest commit.
    const runtime = await call(server, '/multi-exec', [['set', k, 'x'], ['incr', k], ['get', k]])
    assert.equal(runtime.status, 200)
    assert.deepEqual(runtime.json, [{ result: 'OK' }, { error: NOT_AN_INTEGER }, { result: 'x' }])
    // Single-command Redis errors are 400 with the verbatim text.
    assertError(await call(server, '', ['evalsha', 'ffffffffffffffffffffffffffffffffffffffff', 0]), 400, 'NOSCRIPT No matching script. Please use EVAL.')
    const pipe = await call(server, '/pipeline', [['evalsha', 'ffffffffffffffffffffffffffffffffffffffff', 0], ['ping']])
    assert.deepEqual(pipe.json, [{ error: 'NOSCRIPT No matching script. Please use EVAL.' }, { result: 'PONG' }])
  })

  test('blocking and connection-state commands are refused and never block the server', async () => {
    const k = `${fresh()}k`
    const blocking = [
      ['blpop', k, 0],
      ['brpop', k, 0],
      ['brpoplpush', k, `${k}2`, 0],
      ['blmove', k, `${k}2`, 'LEFT', 'RIGHT', 0],
      ['bzpopmin', k, 0],
      ['xread', 'BLOCK', 0, 'STREAMS', k, '$'],
      ['subscribe', 'chan'],
      ['select', 1],
      ['wait', 1, 0],
    ]
    for (const cmd of blocking) {
      const started = Date.now()
      assertError(await call(server, '', cmd, { timeoutMs: 3000 }), 400, /not supported/)
      const pipe = await call(server, '/pipeline', [['set', k + cmd[0], 'v'], cmd, ['get', k + cmd[0]]], { timeoutMs: 3000 })
      assert.equal(pipe.status, 200)
      assert.deepEqual(pipe.json[0], { result: 'OK' })
      assert.match(pipe.json[1].error, /not supported/)
      assert.deepEqual(pipe.json[2], { result: 'v' })
      assertError(await call(server, '/multi-exec', [['ping'], cmd], { timeoutMs: 3000 }), 400, /not supported/)
      assert.ok(Date.now() - started < 2000, `${cmd[0]} took ${Date.now() - started} ms`)
    }
    // SELECT was refused, so the shared connection is still on db 0.
    await call(server, '', ['set', `${k}db`, 'zero'])
    assert.equal(await redisCommand(stack.redis.port, stack.redis.password, ['GET', `${k}db`]), '$4\r\nzero\r\n')
    await assertAlive(server)
  })

  test('atomicity under raw concurrency: 200 single incr + 20 multi-exec never interleave', async () => {
    const k = `${fresh()}k`
    const singles = Array.from({ length: 200 }, () => call(server, '', ['incr', k]))
    const multis = Array.from({ length: 20 }, () => call(server, '/multi-exec', [['incr', k], ['get', k], ['incr', k], ['get', k]]))
    const [s, m] = await Promise.all([Promise.all(singles), Promise.all(multis)])
    const values = s.map((r) => {
      assert.equal(r.status, 200)
      return r.json.result
    })
    for (const r of m) {
      assert.equal(r.status, 200)
      const [a, ga, b, gb] = r.json.map((i) => i.result)
      assert.equal(ga, String(a))
      assert.equal(b, a + 1, 'consecutive inside one transaction')
      assert.equal(gb, String(b))
      values.push(a, b)
    }
    assert.deepEqual(
      values.sort((x, y) => x - y),
      Array.from({ length: 240 }, (_, i) => i + 1),
    )
  })

  test('SCRIPT FLUSH then SCRIPT LOAD of a shebang script in one pipeline: the returned SHA1 works', async () => {
    const p = fresh()
    const script = `#!lua flags=allow-key-locking\nreturn '${p}'`
    const sha = createHash('sha1').update(script).digest('hex')
    const pipe = await call(server, '/pipeline', [['script', 'flush'], ['script', 'load', script], ['evalsha', sha, 0]])
    assert.equal(pipe.status, 200)
    assert.deepEqual(pipe.json, [{ result: 'OK' }, { result: sha }, { result: p }])
    const later = await call(server, '', ['evalsha', sha, 0])
    assert.equal(later.status, 200, later.text)
    assert.deepEqual(later.json, { result: p })
    const multi = await call(server, '/multi-exec', [['script', 'flush'], ['eval', script, 0]])
    assert.deepEqual(multi.json, [{ result: 'OK' }, { result: p }])
    assert.deepEqual((await call(server, '', ['evalsha', sha, 0])).json, { result: p })
    assert.deepEqual((await call(server, '', ['script', 'exists', sha])).json, { result: [1] })
  })

  test('responses are application/json; introspection commands do not reveal the token', async () => {
    const res = await call(server, '/pipeline', [['ping']])
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/)
    for (const cmd of [['client', 'list'], ['config', 'get', '*'], ['info'], ['client', 'info']]) {
      const r = await call(server, '', cmd)
      assert.equal(r.status, 200, r.text)
      assert.ok(!r.text.includes(server.token))
    }
  })
})

describe('--max-body-bytes 1000', { timeout: 20000 }, () => {
  let stack

  before(async () => {
    stack = await startStack({ args: ['--max-body-bytes', '1000'] })
  })

  after(async () => {
    await stack?.stop()
  })

  const bodyOfSize = (size) => {
    const head = '["set","big","'
    const tail = '"]'
    return head + 'x'.repeat(size - head.length - tail.length) + tail
  }

  test('a body of exactly the limit is accepted; one byte more is 413 JSON; the server keeps serving', async () => {
    const server = stack.rest
    const exact = bodyOfSize(1000)
    assert.equal(Buffer.byteLength(exact), 1000)
    const ok = await call(server, '', exact)
    assert.equal(ok.status, 200)
    assert.deepEqual(ok.json, { result: 'OK' })

    assertError(await call(server, '', bodyOfSize(1001)), 413, /1000/)
    await assertAlive(server)
    assertError(await call(server, '/pipeline', `[${bodyOfSize(5000)}]`), 413)
    assertError(await call(server, '/multi-exec', `[${bodyOfSize(200000)}]`), 413)
    await assertAlive(server)

    // Without a Content-Length (chunked), the limit still holds. (The limit is crossed by the last
    // chunk: if the server answered while the client was still writing, the client would see
    // EPIPE instead of the answer, which says nothing about the server.)
    const chunks = [bodyOfSize(1200).slice(0, 600), bodyOfSize(1200).slice(600)]
    const stream = new ReadableStream({
      pull(controller) {
        const next = chunks.shift()
        if (next === undefined) controller.close()
        else controller.enqueue(new TextEncoder().encode(next))
      },
    })
    assertError(await call(server, '', stream), 413)
    await assertAlive(server)
    const get = await call(server, '', ['strlen', 'big'])
    assert.deepEqual(get.json, { result: 1000 - 16 })
  })
})

describe('Redis outages', { timeout: 60000 }, () => {
  test('Redis stopped: 502 JSON "unreachable" without the password, then recovery on restart', async () => {
    let stack
    let restarted
    let dir
    try {
      stack = await startStack()
      dir = mkdtempSync(join(tmpdir(), 'rln-redis-restart-'))
      const server = stack.rest
      const { port, password } = stack.redis
      assert.deepEqual((await call(server, '', ['set', 'k', 'before'])).json, { result: 'OK' })
      await stack.redis.stop()
      for (const [path, body] of [
        ['', ['get', 'k']],
        ['', ['get', 'k']],
        ['/pipeline', [['get', 'k']]],
        ['/multi-exec', [['get', 'k']]],
      ]) {
        const res = await call(server, path, body, { timeoutMs: 8000 })
        assert.ok(res.status >= 500 && res.status < 600, `status ${res.status}`)
        assertError(res, res.status, /unreachable/i)
        assert.ok(!res.text.includes(password), 'the Redis password must never be in a response')
      }
      // Bring Redis back on the same port and password: the server recovers by itself.
      restarted = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--requirepass', password, '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning'],
        { stdio: 'ignore' },
      )
      let recovered
      for (let i = 0; i < 60 && !recovered; i++) {
        await sleep(100)
        const res = await call(server, '', ['set', 'k', 'after'], { timeoutMs: 5000 })
        if (res.status === 200) recovered = res
      }
      assert.ok(recovered, 'the server must reconnect to Redis once it is back')
      assert.deepEqual(recovered.json, { result: 'OK' })
      assert.deepEqual((await call(server, '/pipeline', [['get', 'k']])).json, [{ result: 'after' }])
    } finally {
      if (restarted && restarted.exitCode === null) {
        const exited = new Promise((r) => restarted.once('exit', r))
        restarted.kill('SIGTERM')
        await Promise.race([exited, sleep(3000)])
        if (restarted.exitCode === null) restarted.kill('SIGKILL')
      }
      await stack?.stop()
      if (dir) rmSync(dir, { recursive: true, force: true })
    }
  })

  test('Redis never reachable, or a wrong Redis password: 5xx JSON without the password', async () => {
    const secret = `pw${randomBytes(8).toString('hex')}`
    const deadPort = await freePort()
    let dead
    let redis
    let wrongPass
    try {
      dead = await startRestServer({ redisUrl: `redis://:${secret}@127.0.0.1:${deadPort}` })
      redis = await startRedis()
      const res = await call(dead, '', ['ping'], { timeoutMs: 8000 })
      assert.ok(res.status >= 500 && res.status < 600, `status ${res.status}`)
      assertError(res, res.status, /unreachable/i)
      assert.ok(!res.text.includes(secret))
      // Authentication still comes first.
      const unauth = await call(dead, '', ['ping'], { token: 'nope' })
      assert.equal(unauth.status, 401)

      wrongPass = await startRestServer({ redisUrl: `redis://:${secret}@127.0.0.1:${redis.port}` })
      const wp = await call(wrongPass, '', ['ping'], { timeoutMs: 8000 })
      assert.ok(wp.status >= 500 && wp.status < 600, `status ${wp.status}: ${wp.text}`)
      assertError(wp, wp.status)
      assert.ok(!wp.text.includes(secret))
      assert.ok(!wp.text.includes(redis.password))
    } finally {
      await dead?.stop()
      await wrongPass?.stop()
      await redis?.stop()
    }
  })

  test('Redis frozen (SIGSTOP): 504 after --redis-timeout-ms, then replies stay aligned after SIGCONT', async () => {
    let stack
    try {
      stack = await startStack({ args: ['--redis-timeout-ms', '300'] })
      const server = stack.rest
      await call(server, '/pipeline', [['set', 'a', 'one'], ['set', 'b', 'two']])
      stack.redis.process.kill('SIGSTOP')
      try {
        const started = Date.now()
        const res = await call(server, '', ['get', 'a'], { timeoutMs: 5000 })
        assertError(res, 504, /did not answer in time/)
        assert.ok(Date.now() - started < 3000)
        assert.ok(!res.text.includes(stack.redis.password))
      } finally {
        stack.redis.process.kill('SIGCONT')
      }
      // The late reply to the timed-out GET must not be handed to the next request.
      for (let i = 0; i < 5; i++) {
        const b = await call(server, '', ['get', 'b'], { timeoutMs: 3000 })
        assert.deepEqual(b.json, { result: 'two' })
      }
      assert.deepEqual((await call(server, '/multi-exec', [['get', 'a'], ['get', 'b']])).json, [{ result: 'one' }, { result: 'two' }])
    } finally {
      if (stack) {
        stack.redis.process.kill('SIGCONT')
        await stack.stop()
      }
    }
  })
})

test('no response body in this file ever contained a REST token', () => {
  assert.ok(seenBodies.length > 300, `only ${seenBodies.length} responses were recorded`)
  assert.ok(tokensInUse.size >= 6)
  for (const body of seenBodies) {
    for (const token of tokensInUse) assert.ok(!body.includes(token), `a response body contains a token: ${body.slice(0, 200)}`)
  }
})
