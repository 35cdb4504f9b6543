// The Express example over real HTTP, on the embedded store.
// Run: node --test examples/express/test/   (no `npm install` inside the example needed)
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { resolveExamplesFromRoot } from '../../../demo/resolve-from-root.mjs'

resolveExamplesFromRoot()
const { createApp } = await import('../src/app.mjs')
const { Redis } = await import('ratelimit-native')

test('10 GETs a minute per client, POSTs cost 5, health checks are free, 429 with Retry-After', async () => {
  const app = createApp({ redis: Redis.memory(), prefix: `ex${randomBytes(4).toString('hex')}` })
  const server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
  })
  const url = `http://127.0.0.1:${server.address().port}`
  try {
    for (let i = 0; i < 3; i++) assert.equal((await fetch(`${url}/health`)).status, 200)
    const created = await fetch(`${url}/api/items`, { method: 'POST' })
    assert.deepEqual([created.status, await created.json()], [201, { created: true, remaining: 5 }])
    const statuses = []
    for (let i = 0; i < 6; i++) statuses.push((await fetch(`${url}/api/items`)).status)
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429])
    const refused = await fetch(`${url}/api/items`)
    assert.equal(refused.status, 429)
    assert.ok(Number(refused.headers.get('retry-after')) >= 1)
    assert.equal(refused.headers.get('ratelimit-policy'), '"default";q=10;w=60')
    const keyed = await fetch(`${url}/api/items`, { headers: { 'x-api-key': 'k1' } })
    assert.deepEqual([keyed.status, (await keyed.json()).remaining], [200, 9])
  } finally {
    await new Promise((resolve) => server.close(resolve))
  }
})
