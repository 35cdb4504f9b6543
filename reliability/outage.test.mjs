// Outages under steady load: redis-server frozen (SIGSTOP) for 5 s, then the REST server killed
// (SIGKILL) and restarted on the same port. Every limit() call must settle within its timeout
// (+20 ms), answer per fail-open / failClosed, leak no token, and the client must recover by
// itself. Latencies, outcomes and resource use are reported with t.diagnostic.

import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { after, before, test } from 'node:test'

import { freePort, startRedis } from '../__test__/helpers/servers.mjs'
import { Ratelimit, Redis, everyView, outcomeOf, outcomes, resp, sleep, startRestServerOn, steadyLoad, watchUnhandled } from './helpers.mjs'

const TIMEOUT = 200
const SLACK = 20
const TOKEN = randomBytes(16).toString('hex')

let redis
let rest
let port
let unhandled
before(async () => {
  unhandled = watchUnhandled()
  redis = await startRedis()
  port = await freePort()
  rest = await startRestServerOn({ redisUrl: redis.url, token: TOKEN, port })
})
after(async () => {
  unhandled.dispose()
  try {
    process.kill(redis.pid, 'SIGCONT')
  } catch {}
  await rest?.stop()
  await redis?.stop()
})

const limiterFor = (extra = {}) =>
  new Ratelimit({
    redis: new Redis({ url: `http://127.0.0.1:${port}`, token: TOKEN }),
    limiter: Ratelimit.fixedWindow(1_000_000, '1 h'),
    prefix: `out-${randomUUID()}`,
    timeout: TIMEOUT,
    ...extra,
  })

function latencyStats(records) {
  const ms = records.map((r) => r.ms).sort((a, b) => a - b)
  const q = (p) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))]
  return { n: ms.length, p50: +q(0.5).toFixed(1), p99: +q(0.99).toFixed(1), max: +ms[ms.length - 1].toFixed(1) }
}

/**
 * Calls slower than timeout + SLACK beyond what the event loop itself added: a plain
 * setTimeout(TIMEOUT) started in the same tick (the control) measures the loop's lateness.
 */
function tooSlow(records, controls) {
  return records.filter((r) => r.ms > TIMEOUT + SLACK + Math.max(0, controls[r.tick] ?? 0))
}

function controlStats(controls) {
  const late = controls.filter((c) => c !== undefined).sort((a, b) => a - b)
  return { p99: +late[Math.floor(0.99 * (late.length - 1))].toFixed(1), max: +late[late.length - 1].toFixed(1) }
}

function resourceSample() {
  const m = process.memoryUsage()
  return { rss: m.rss, heapUsed: m.heapUsed, resources: process.getActiveResourcesInfo().length }
}

/** Sum of every counter under `prefix` (fixed-window keys hold plain integers). */
async function counterSum(prefix) {
  const script = "local s = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do s = s + tonumber(redis.call('GET', k)) end return s"
  return resp(await redis.command(['EVAL', script, '0', `${prefix}:*`]))
}

test('redis-server frozen (SIGSTOP) for 5 s under 2 × 200 calls/s: every call settles within timeout + 20 ms, fail-open and failClosed answer as documented, recovery within 1 s', async (t) => {
  const open = limiterFor()
  const closed = limiterFor({ failClosed: true })
  const load = steadyLoad({ open, closed }, { tickMs: 10, perTick: 2, keys: 100, controlMs: TIMEOUT })
  const samples = []
  try {
    await sleep(1000)
    const baseline = resourceSample()
    process.kill(redis.pid, 'SIGSTOP')
    const tStop = Date.now()
    for (let i = 0; i < 20; i++) {
      await sleep(250)
      samples.push({ t: Date.now() - tStop, ...resourceSample(), outstanding: load.outstanding.size })
    }
    process.kill(redis.pid, 'SIGCONT')
    const tCont = Date.now()
    await sleep(2000)
    load.stop()
    const unsettled = await load.settled(3000)
    assert.equal(unsettled, 0, 'every call settled')

    t.diagnostic(`control setTimeout(${TIMEOUT}) lateness (the event loop's own): ${JSON.stringify(controlStats(load.controls))}`)
    const byName = (name) => load.records.filter((r) => r.name === name)
    for (const name of ['open', 'closed']) {
      const recs = byName(name)
      t.diagnostic(`${name}: latency ${JSON.stringify(latencyStats(recs))}; outcomes ${JSON.stringify(outcomes(recs))}`)
      const slow = tooSlow(recs, load.controls)
      assert.equal(slow.length, 0, `${name}: ${slow.length} calls took longer than ${TIMEOUT + SLACK} ms plus the event loop's own lateness (max ${latencyStats(recs).max} ms)`)
      const errors = recs.filter((r) => r.error)
      assert.equal(errors.length, 0, `${name}: no call rejects during a frozen Redis: ${errors.slice(0, 3).map((r) => r.error?.message)}`)
    }

    // While Redis is frozen: fail-open answers exactly upstream's timeout response ...
    const during = (name) => byName(name).filter((r) => r.start >= tStop + 20 && r.start <= tCont - TIMEOUT - SLACK)
    for (const r of during('open')) {
      const { success, limit, remaining, reset, reason } = r.result
      assert.deepEqual({ success, limit, remaining, reset, reason }, { success: true, limit: 0, remaining: 0, reset: 0, reason: 'timeout' })
    }
    // ... and failClosed refuses, with a reset about a second ahead and no `error` (a timeout, not a failure).
    for (const r of during('closed')) {
      const { success, limit, remaining, reason } = r.result
      assert.deepEqual({ success, limit, remaining, reason }, { success: false, limit: 0, remaining: 0, reason: 'timeout' })
      assert.ok(r.result.reset >= r.end - 5 && r.result.reset <= r.end + 1000 + 50, `reset ${r.result.reset - r.end} ms ahead`)
      assert.equal(r.result.error, undefined)
    }
    assert.ok(during('open').length > 500 && during('closed').length > 500, 'the load kept going during the outage')

    // Recovery: a normal answer within 1 s of SIGCONT, and only normal answers after that.
    for (const name of ['open', 'closed']) {
      const firstOk = byName(name).filter((r) => r.start >= tCont && outcomeOf(r) === 'ok').sort((a, b) => a.end - b.end)[0]
      assert.ok(firstOk, `${name}: a normal answer after SIGCONT`)
      t.diagnostic(`${name}: first normal answer ${firstOk.end - tCont} ms after SIGCONT`)
      assert.ok(firstOk.end - tCont <= 1000, `${name}: first normal answer ${firstOk.end - tCont} ms after SIGCONT`)
      const late = byName(name).filter((r) => r.start >= tCont + 1000)
      assert.ok(late.length > 100)
      assert.deepEqual(outcomes(late), { ok: late.length }, `${name}: only normal answers from 1 s after SIGCONT`)
    }

    // Bounded work in flight: our outstanding calls are capped by rate × timeout; active
    // resources (timers, sockets) and heap must not grow with the outage's length.
    const maxRes = Math.max(...samples.map((s) => s.resources))
    const maxOutstanding = Math.max(...samples.map((s) => s.outstanding))
    const heapGrowth = Math.max(...samples.map((s) => s.heapUsed)) - baseline.heapUsed
    const rssGrowth = Math.max(...samples.map((s) => s.rss)) - baseline.rss
    t.diagnostic(
      `during the outage: outstanding limit() calls max ${maxOutstanding}, active resources baseline ${baseline.resources} max ${maxRes}, heap +${(heapGrowth / 1e6).toFixed(1)} MB, rss +${(rssGrowth / 1e6).toFixed(1)} MB`,
    )
    const perTimeout = (400 * (TIMEOUT + SLACK)) / 1000
    assert.ok(maxOutstanding <= perTimeout * 2 + 20, `outstanding calls bounded by rate × timeout (${maxOutstanding})`)
    assert.ok(maxRes <= baseline.resources + perTimeout * 2 + 50, `active resources bounded (${maxRes})`)
    const early = samples.filter((s) => s.t <= 1500).map((s) => s.resources)
    const lateRes = samples.filter((s) => s.t >= 3500).map((s) => s.resources)
    assert.ok(Math.max(...lateRes) <= Math.max(...early) + 50, `active resources do not grow with the outage (${early} → ${lateRes})`)
    assert.ok(heapGrowth < 64e6, `heap growth ${heapGrowth}`)

    // Report: increments whose caller was already answered "timeout" still reach Redis once it
    // thaws (the queued pipeline is sent anyway; upstream's fetch is not aborted either).
    await sleep(300)
    for (const [name, rl] of [['open', open], ['closed', closed]]) {
      const recs = byName(name)
      const ok = recs.filter((r) => outcomeOf(r) === 'ok').length
      const sum = await counterSum(rl.prefix)
      t.diagnostic(`${name}: ${recs.length} calls, ${ok} answered from Redis, Redis counted ${sum} → ${sum - ok} increments applied after their caller got a timeout answer`)
    }
  } finally {
    load.stop()
    try {
      process.kill(redis.pid, 'SIGCONT')
    } catch {}
  }
  assert.deepEqual(unhandled.seen, [], 'no unhandled rejection')
})

test('REST server killed (SIGKILL) and restarted on the same port: clear errors without the token, timeout answers, automatic reconnect', async (t) => {
  const open = limiterFor()
  // Without a timeout, a call gets the store error after the client's fixed retries (~0.8 s);
  // a call whose caller waits longer keeps being retried while the caller still waits.
  const loud = limiterFor({ timeout: 0 })
  const closed = limiterFor({ timeout: 0, failClosed: true })
  const patient = limiterFor({ timeout: 5000 })
  const load = steadyLoad({ open }, { tickMs: 10, perTick: 2, keys: 100, controlMs: TIMEOUT })
  try {
    await sleep(700)
    await rest.kill()
    const tKill = Date.now()
    t.diagnostic('REST server killed')
    // Issued while the server is down; the server is back after ~1.5 s, well inside 5 s.
    const patientCall = patient.limit('patient')

    // A limiter without a timeout sees the store error once the client's retries (~0.8 s) end.
    const t0 = Date.now()
    const err = await loud.limit('probe').then(
      (r) => assert.fail(`expected a rejection, got ${JSON.stringify(r)}`),
      (e) => e,
    )
    const loudMs = Date.now() - t0
    t.diagnostic(`no timeout: rejected after ${loudMs} ms: ${err.message}`)
    assert.match(err.message, /could not connect|connect|refused/i)
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`), 'the message names the endpoint')
    assert.ok(loudMs >= 600 && loudMs <= 2500, `retried about 0.8 s before giving up (${loudMs} ms)`)
    assert.ok(!everyView(err).includes(TOKEN), 'no token in the error')

    const fc = await closed.limit('probe')
    t.diagnostic(`failClosed: ${JSON.stringify({ ...fc, pending: undefined, error: fc.error?.message })}`)
    assert.equal(fc.success, false)
    assert.equal(fc.reason, 'timeout')
    assert.ok(fc.error instanceof Error, 'a store failure carries the error')
    assert.ok(!everyView(fc).includes(TOKEN), 'no token in the failClosed answer')

    await sleep(Math.max(0, 1500 - (Date.now() - tKill)))
    rest = await startRestServerOn({ redisUrl: redis.url, token: TOKEN, port })
    const patientResult = await patientCall
    t.diagnostic(`timeout 5000, issued while the server was down: ${JSON.stringify({ ...patientResult, pending: undefined })}`)
    assert.equal(patientResult.success, true, 'retried until the server was back: no error, a real answer')
    assert.equal(patientResult.reason, undefined)
    const tUp = Date.now()
    t.diagnostic(`REST server back on port ${port} after ${tUp - tKill} ms`)
    await sleep(2000)
    load.stop()
    assert.equal(await load.settled(3000), 0, 'every call settled')

    const recs = load.records
    t.diagnostic(`open (timeout ${TIMEOUT}): latency ${JSON.stringify(latencyStats(recs))}; outcomes ${JSON.stringify(outcomes(recs))}`)
    t.diagnostic(`control setTimeout(${TIMEOUT}) lateness: ${JSON.stringify(controlStats(load.controls))}`)
    const slow = tooSlow(recs, load.controls)
    assert.equal(slow.length, 0, `${slow.length} calls took longer than ${TIMEOUT + SLACK} ms plus the event loop's own lateness`)
    for (const r of recs) {
      if (r.error) assert.ok(!everyView(r.error).includes(TOKEN), 'no token in any error')
    }
    const down = recs.filter((r) => r.start >= tKill + 20 && r.end <= tUp)
    const downOutcomes = outcomes(down)
    t.diagnostic(`while the server was down: ${JSON.stringify(downOutcomes)}`)
    assert.ok(down.length > 100)
    // Calls keep being retried while their caller waits: those issued just before the restart
    // get real answers, the others timeout answers — never an error.
    assert.ok(downOutcomes['timeout (fail-open)'] > 0, 'while down, callers with timeout 200 get timeout answers')
    assert.deepEqual(
      Object.keys(downOutcomes).filter((k) => k !== 'timeout (fail-open)' && k !== 'ok'),
      [],
      'no errors while the server is down',
    )

    const firstOk = recs.filter((r) => r.start >= tUp && outcomeOf(r) === 'ok').sort((a, b) => a.end - b.end)[0]
    assert.ok(firstOk, 'normal answers again after the restart')
    t.diagnostic(`first normal answer ${firstOk.end - tUp} ms after the restart`)
    assert.ok(firstOk.end - tUp <= 1000)
    const lateRecs = recs.filter((r) => r.start >= tUp + 1000)
    assert.deepEqual(outcomes(lateRecs), { ok: lateRecs.length }, 'only normal answers from 1 s after the restart')
    // The other clients reconnect too.
    assert.equal((await loud.limit('after')).success, true)
    assert.equal((await closed.limit('after')).reason, undefined)
  } finally {
    load.stop()
  }
  // The REST server's own output never shows the token.
  assert.ok(!rest.output().includes(TOKEN), 'REST server output has no token')
  assert.deepEqual(unhandled.seen, [], 'no unhandled rejection')
})
