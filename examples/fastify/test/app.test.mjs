// The Fastify example over real HTTP, on the embedded store.
// Run: node --test examples/fastify/test/   (no `npm install` inside the example needed)
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { resolveExamplesFromRoot } from '../../../demo/resolve-from-root.mjs'

resolveExamplesFromRoot()
const { createApp } = await import('../src/app.mjs')
const { Redis } = await import('ratelimit-native')

test('the /api scope is limited per client (the entry the trusted proxy appended), /health is not', async () => {
  const app = await createApp({ redis: Redis.memory(), prefix: `fx${randomBytes(4).toString('hex')}` })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${app.server.address().port}`
  const as = (client) => ({ headers: { 'x-forwarded-for': `6.6.6.6, ${client}` } })
  try {
    const statuses = []
    for (let i = 0; i < 22; i++) statuses.push((await fetch(`${url}/api/quote`, as('203.0.113.1'))).status)
    assert.equal(statuses.filter((s) => s === 200).length >= 20 && statuses.filter((s) => s === 200).length <= 21, true, statuses.join(','))
    assert.equal(statuses.at(-1), 429)
    const other = await fetch(`${url}/api/quote`, as('203.0.113.2'))
    assert.equal(other.status, 200)
    assert.equal(other.headers.get('ratelimit-policy'), '"default";q=20;w=1')
    assert.equal(other.headers.get('x-ratelimit-limit'), null, 'headers: "draft" only')
    assert.equal((await fetch(`${url}/health`, as('203.0.113.1'))).status, 200)
    assert.equal((await fetch(`${url}/health`)).headers.get('ratelimit'), null, 'outside the scope: no limit')
  } finally {
    await app.close()
  }
})
