// The shared timeout timer behind limit() on a native remote store (lib/deadlines.js), driven by
// node:test's fake timers: calls expire at their own deadlines, in order; answered calls never
// expire; once every call is answered the timer stands idle and unref'd (it does not keep the
// process alive: checked in a child process with real timers), and a call made later restarts
// it for its own deadline.
import { test, mock } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const { DeadlineQueue } = require('../lib/deadlines.js')

function call(name, log) {
  return {
    settled: false,
    expire() {
      this.settled = true
      log.push(name)
    },
  }
}

test('each call expires at its own deadline, in order; answered ones never', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000 })
  const log = []
  const q = new DeadlineQueue(100)
  const a = call('a', log)
  const b = call('b', log)
  const c = call('c', log)
  q.add(a, Date.now())
  t.mock.timers.tick(30)
  q.add(b, Date.now())
  t.mock.timers.tick(30)
  q.add(c, Date.now())
  b.settled = true // answered
  q.trim()
  t.mock.timers.tick(39) // t = 99: nothing yet
  assert.deepEqual(log, [])
  t.mock.timers.tick(1) // t = 100: a's deadline
  assert.deepEqual(log, ['a'])
  t.mock.timers.tick(59) // t = 159: c is due at 160, b was answered
  assert.deepEqual(log, ['a'])
  t.mock.timers.tick(1)
  assert.deepEqual(log, ['a', 'c'])
})

test('once every call is answered nothing expires, and the next call gets its own deadline', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 5_000 })
  const log = []
  const q = new DeadlineQueue(50)
  const calls = Array.from({ length: 3000 }, (_, i) => call(i, log))
  for (const c of calls) q.add(c, Date.now())
  for (const c of calls) c.settled = true
  q.trim()
  t.mock.timers.tick(1_000)
  assert.deepEqual(log, [])
  const late = call('late', log)
  q.add(late, Date.now())
  t.mock.timers.tick(49)
  assert.deepEqual(log, [])
  t.mock.timers.tick(1)
  assert.deepEqual(log, ['late'])
})

test('only setTimeout faked (Date real): expiry follows the fake timer, as a per-call setTimeout would', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] })
  const log = []
  const q = new DeadlineQueue(5_000)
  q.add(call('x', log), Date.now())
  q.add(call('y', log), Date.now())
  t.mock.timers.tick(4_999)
  assert.deepEqual(log, [])
  // Both were made within the same real millisecond or two: the first firing expires x, and y
  // at most that many fake milliseconds later. No spinning on a real clock that does not move.
  t.mock.timers.tick(1)
  t.mock.timers.tick(20)
  assert.deepEqual(log, ['x', 'y'])
})

test('answered calls queued behind a slow one never expire, nor does the slow one once answered', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
  const log = []
  const q = new DeadlineQueue(1_000)
  const stuck = call('stuck', log)
  q.add(stuck, Date.now())
  for (let i = 0; i < 10_000; i++) {
    const c = call(i, log)
    q.add(c, Date.now())
    c.settled = true
    q.trim()
  }
  stuck.settled = true
  q.trim()
  t.mock.timers.tick(2_000)
  assert.deepEqual(log, [])
})


test('a timer that fires late expires every call due by then, and later deadlines stay where they were', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
  const log = []
  const q = new DeadlineQueue(100)
  q.add(call('a', log), Date.now()) // due 100
  t.mock.timers.tick(1)
  q.add(call('b', log), Date.now()) // due 101
  t.mock.timers.tick(9)
  q.add(call('c', log), Date.now()) // due 110
  // The event loop was busy: the first firing happens at 105 instead of 100.
  t.mock.timers.setTime(105)
  t.mock.timers.tick(0)
  assert.deepEqual(log, ['a', 'b'])
  t.mock.timers.tick(4) // 109
  assert.deepEqual(log, ['a', 'b'])
  t.mock.timers.tick(1) // 110: c's own deadline, not 105 + (110 - 100)
  assert.deepEqual(log, ['a', 'b', 'c'])
})

test("a call made while the timer stands idle expires at its own deadline, not the timer's", (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 })
  const log = []
  const q = new DeadlineQueue(50)
  const a = call('a', log)
  q.add(a, Date.now()) // timer for t = 50
  a.settled = true
  q.trim() // idle
  t.mock.timers.tick(30)
  q.add(call('b', log), Date.now()) // due at t = 80
  t.mock.timers.tick(20) // t = 50: the standing timer fires, b is not due
  assert.deepEqual(log, [])
  t.mock.timers.tick(29)
  assert.deepEqual(log, [])
  t.mock.timers.tick(1) // t = 80
  assert.deepEqual(log, ['b'])
})

test('an idle timer does not keep the process alive', () => {
  const deadlines = fileURLToPath(new URL('../lib/deadlines.js', import.meta.url))
  const script = `
    const { DeadlineQueue } = require(${JSON.stringify(deadlines)})
    const q = new DeadlineQueue(60_000)
    const c = { settled: false, expire() { console.log('expired') } }
    q.add(c, Date.now())
    setTimeout(() => { c.settled = true; q.trim() }, 10)
  `
  const started = Date.now()
  const child = spawnSync(process.execPath, ['-e', script], { timeout: 20_000, encoding: 'utf8' })
  assert.equal(child.status, 0, child.stderr)
  assert.equal(child.stdout, '')
  assert.ok(Date.now() - started < 10_000, `exited after ${Date.now() - started} ms`)
})
