// A call still queued natively when its caller's timeout passes is dropped, never sent (so never
// counted). Its caller must get the timeout answer, as from the timer — not a rejection — even
// when the drop notice arrives before the limiter's timer fires. Here the timer never fires at
// all (setTimeout stubbed, as fake timers would), which makes that race deterministic: calls
// queued behind stalled requests in all 4 in-flight slots (the REST server is SIGSTOPped) pass
// their deadline, the server resumes, the queue drains and drops them.

import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { Ratelimit, Redis } from '../index.js'
import { startStack } from '../__test__/helpers/servers.mjs'

let stack
before(async () => {
  stack = await startStack()
})
after(async () => {
  try {
    process.kill(stack.rest.pid, 'SIGCONT')
  } catch {}
  await stack?.stop()
})

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

for (const failClosed of [false, true]) {
  test(`a call dropped from the queue at its timeout answers as a timeout${failClosed ? ' (failClosed)' : ''}, never rejects`, async () => {
    const redis = new Redis({ url: stack.rest.url, token: stack.rest.token })
    const rl = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(1e6, '60 s'), prefix: `qt${failClosed}${Date.now()}`, ephemeralCache: false, timeout: 100, failClosed })
    await rl.limit('warm') // connection and script ready
    const realSetTimeout = globalThis.setTimeout
    const stubbed = () => ({ unref() {}, ref() {}, hasRef: () => false, [Symbol.toPrimitive]: () => 0 })
    const calls = []
    // The limiter's timers never fire: only the native drop can end the queued calls early.
    const issue = (n) => {
      globalThis.setTimeout = stubbed
      try {
        for (let i = 0; i < n; i++) calls.push(rl.limit(`u${calls.length}`).then((r) => ({ r }), (error) => ({ error })))
      } finally {
        globalThis.setTimeout = realSetTimeout
      }
    }
    process.kill(stack.rest.pid, 'SIGSTOP')
    try {
      // Turns of one request each that the stopped server holds: more than the 4 in-flight
      // slots, so every slot is taken whatever the timing.
      for (let turn = 0; turn < 6; turn++) {
        issue(8)
        await sleep(30)
      }
      issue(50) // queued behind them
      await sleep(300) // past every caller's 100 ms deadline
    } finally {
      process.kill(stack.rest.pid, 'SIGCONT')
    }
    const outcomes = await Promise.race([Promise.all(calls), sleep(15_000).then(() => null)])
    assert.ok(outcomes, 'every call settled within 15 s')
    const rejected = outcomes.filter((o) => o.error)
    assert.deepEqual(rejected.map((o) => o.error.message).slice(0, 3), [], 'no call rejects')
    const timeouts = outcomes.filter((o) => o.r.reason === 'timeout')
    const normal = outcomes.filter((o) => o.r.reason === undefined)
    assert.equal(timeouts.length + normal.length, 98)
    assert.ok(timeouts.length > 0, `some calls were dropped at their deadline (${normal.length} normal answers)`)
    for (const { r } of timeouts) assert.equal(r.success, !failClosed)
    for (const { r } of normal) assert.equal(r.success, true)
  })
}
