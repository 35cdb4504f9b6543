// Child process for bad-input.test.mjs: throws every bad input at the public API, catching what
// comes back. A native panic that escapes (abort) or an uncaught error makes the exit code
// non-zero. Prints one JSON line: { cases, threw, rejected, answered, unhandled }.
import http from 'node:http'
import { createRequire } from 'node:module'
const require = createRequire(import.meta.url)
const { Ratelimit, Redis } = require('..')

let unhandled = 0
process.on('unhandledRejection', () => unhandled++)
const tally = { cases: 0, threw: 0, rejected: 0, answered: 0 }
const sync = (f) => {
  tally.cases++
  try {
    f()
    tally.answered++
  } catch {
    tally.threw++
  }
}
const async_ = async (f) => {
  tally.cases++
  try {
    await f()
    tally.answered++
  } catch {
    tally.rejected++
  }
}

const WINDOWS = ['10 sec', '', '1  s', '-1 s', '0 s', 10, null, undefined, '1e3 ms', '99999999999999999999 w', '9007199254740993 ms', '1.7976931348623157e308 ms', '0.0001 ms', '\u0000 s', '１ s', {}, [], Symbol('w'), 10n]
const NUMBERS = [0, -1, NaN, Infinity, -Infinity, '10', undefined, null, 1e308, 5e-324, 2 ** 53 + 2, {}, [], 10n, Symbol('n'), () => 1]
for (const w of WINDOWS) {
  for (const f of [Ratelimit.fixedWindow, Ratelimit.slidingWindow, Ratelimit.cachedFixedWindow]) sync(() => f(10, w))
  sync(() => Ratelimit.tokenBucket(1, w, 10))
}
for (const v of NUMBERS) {
  for (const f of [Ratelimit.fixedWindow, Ratelimit.slidingWindow, Ratelimit.cachedFixedWindow]) sync(() => f(v, '1 s'))
  sync(() => Ratelimit.tokenBucket(v, '1 s', 10))
  sync(() => Ratelimit.tokenBucket(1, '1 s', v))
  sync(() => Redis.memory({ maxKeys: v }))
}
for (const cfg of [undefined, null, 42, 'x', {}, { redis: 42 }, { redis: {}, limiter: 'x' }, { redis: Redis.memory(), limiter: () => null }]) sync(() => new Ratelimit(cfg))
for (const cfg of [undefined, null, {}, { url: 'not a url', token: 't' }, { url: '', token: '' }, { url: 'ftp://x', token: 't' }, { url: 'http://[::1', token: 't' }, { url: 'http://x:99999', token: 't' }, { url: 'http://127.0.0.1:1', token: '\u0000' }, { url: 'http://127.0.0.1:1', token: 'é' }, { url: 42, token: 42 }, { url: 'http://127.0.0.1:1', token: 't', tls: 5 }]) {
  sync(() => new Redis(cfg))
}

// Calls on the memory store with bad rates and identifiers.
const memory = Redis.memory()
const algos = [Ratelimit.fixedWindow(5, '1 s'), Ratelimit.slidingWindow(5, '1 s'), Ratelimit.tokenBucket(1, '1 s', 5), Ratelimit.cachedFixedWindow(5, '1 s')]
const IDS = ['', null, undefined, 123, 'x'.repeat(1 << 16), '\uD800', '👍', 'a*:?[]', Symbol('id'), { toString() { throw new Error('boom') } }, {}, [], 10n]
const RATES = [NaN, Infinity, -Infinity, 1e300, -1e300, '1', {}, 1.5, -1.5, 0, -0, 2 ** 63, null, Symbol('r'), 10n]
for (const limiter of algos) {
  const rl = new Ratelimit({ redis: memory, limiter, prefix: 'child', dynamicLimits: limiter !== algos[3] })
  for (const id of IDS) await async_(() => rl.limit(id))
  for (const rate of RATES) await async_(() => rl.limit('u', { rate }))
  for (const id of IDS) await async_(() => rl.getRemaining(id))
  for (const id of IDS) await async_(() => rl.resetUsedTokens(id))
  for (const limit of [NaN, -1, 'x', {}, Infinity, 1.5]) await async_(() => rl.setDynamicLimit({ limit }))
  await async_(() => rl.limit('u'))
  for (const t of [0, -1]) await async_(() => rl.blockUntilReady('u', t))
}
for (const cmd of [[], ['GET'], ['SET', 'k'], ['EVALSHA', 'nope', '0'], ['FLUSHALL'], ['\u0000']]) {
  await async_(() => memory.eval?.('return 1', [], []))
  await async_(() => memory.get(...cmd.slice(1)))
}

// A server that answers garbage, and an unreachable one.
const server = http.createServer((req, res) => {
  req.resume()
  req.on('end', () => {
    const n = Math.floor(Math.random() * 4)
    if (n === 0) res.writeHead(200).end('\u0000\u0001garbage')
    else if (n === 1) res.writeHead(200, { 'content-type': 'application/json' }).end('[{"result":[null,null,null]}]')
    else if (n === 2) res.writeHead(200, { 'content-type': 'application/json' }).end('[{"result":["' + 'A'.repeat(100000) + '"]}]')
    else res.socket.destroy()
  })
})
await new Promise((r) => server.listen(0, '127.0.0.1', r))
for (const url of [`http://127.0.0.1:${server.address().port}`, 'http://127.0.0.1:1']) {
  const redis = new Redis({ url, token: 't' })
  for (const limiter of algos) {
    // The unreachable URL is retried for ~0.8 s per request: a short timeout answers first.
    const rl = new Ratelimit({ redis, limiter, prefix: 'child', timeout: url.endsWith(':1') ? 100 : 2000 })
    for (let i = 0; i < 4; i++) await async_(() => rl.limit('u'))
    if (url.endsWith(':1')) continue // no timeout applies to these: each would retry ~0.8 s
    await async_(() => rl.getRemaining('u'))
    await async_(() => rl.resetUsedTokens('u'))
  }
}
server.closeAllConnections()
server.close()
await new Promise((r) => setTimeout(r, 50))
process.stdout.write(JSON.stringify({ ...tally, unhandled }) + '\n')
