import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startStack } from './helpers/servers.mjs'

test('the harness starts a password-protected redis-server and a REST server, and stops both', async () => {
  const stack = await startStack()
  try {
    assert.match(await stack.redis.command(['PING']), /^\+PONG/)
    const res = await fetch(stack.rest.url, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.rest.token}` },
      body: JSON.stringify(['ping']),
    })
    assert.equal(res.status, 200)
    assert.deepEqual(await res.json(), { result: 'PONG' })
  } finally {
    await stack.stop()
  }
  assert.notEqual(stack.redis.process.exitCode ?? stack.redis.process.signalCode, null)
  assert.notEqual(stack.rest.process.exitCode ?? stack.rest.process.signalCode, null)
})

test('benchmark tables round a number before choosing its unit', async () => {
  const { fmt } = await import('../bench/stats.mjs')
  assert.equal(fmt(999_700), '1.00M')
  assert.equal(fmt(999_400), '999k')
  assert.equal(fmt(9_999.6), '10.0k')
  assert.equal(fmt(1_234_567), '1.23M')
  assert.equal(fmt(150.4), '150')
  assert.equal(fmt(0.1234), '0.123')
  assert.equal(fmt(null), 'n/a')
})
