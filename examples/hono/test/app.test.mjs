// createApp over real HTTP (@hono/node-server + fetch), against a real store: the project's local
// REST server in front of a throwaway redis-server, and the embedded Redis.memory() store.
// Run: node --test examples/hono/test/   (no `npm install` inside examples/hono needed)

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { startStack } from '../../../__test__/helpers/servers.mjs'
import { resolveExamplesFromRoot } from '../../../demo/resolve-from-root.mjs'

// Resolve 'ratelimit-native' from the repository when the example has no node_modules of its
// own; the imports below are dynamic so that they run after the hook is installed.
resolveExamplesFromRoot()
const { createApp, apiKeyIdentifier } = await import('../src/app.mjs')
const { serve } = await import('@hono/node-server')
const { Ratelimit, Redis } = await import('ratelimit-native')

const PAID = 'paid_test_key'
const FREE = 'free_test_key'
const apiKeys = { [PAID]: 'paid', [FREE]: 'free' }
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

let prefixes = 0
const uniquePrefix = () => `hono-test-${process.pid}-${Date.now()}-${++prefixes}`

/**
 * Sliding windows are aligned to the clock (whole minutes here). A burst that straddles a
 * boundary sees the previous window weighted by floor((1 - elapsed) * count), which can let one
 * extra request through; so each burst starts at least 8 s before the next boundary.
 */
async function awayFromWindowEdge(windowMs = 60_000, marginMs = 8_000) {
  const left = windowMs - (Date.now() % windowMs)
  if (left < marginMs) await sleep(left + 50)
}

/** Serves createApp(options) on an ephemeral port; a fresh ephemeral cache unless given. */
async function startApp(options) {
  const app = createApp({ apiKeys, ephemeralCache: new Map(), timeout: 5000, ...options })
  let server
  const port = await new Promise((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => resolve(info.port))
  })
  return {
    get: (headers = {}) => fetch(`http://127.0.0.1:${port}/api/hello`, { headers }),
    close: () => new Promise((resolve) => server.close(resolve)),
  }
}

/** The limiter the app uses for a tier, rebuilt over the same store, to read its state. */
function probe(redis, prefix, tier, tokens) {
  return new Ratelimit({ redis, limiter: Ratelimit.slidingWindow(tokens, '1 m'), prefix: `${prefix}:${tier}`, ephemeralCache: false })
}

/** Sends `count` requests one by one; returns [{ res, body, sentAt, receivedAt }]. */
async function burst(client, count, headersFor = () => ({})) {
  const out = []
  for (let i = 1; i <= count; i++) {
    const sentAt = Date.now()
    const res = await client.get(headersFor(i))
    out.push({ res, body: await res.json(), sentAt, receivedAt: Date.now() })
  }
  return out
}

const h = (res, name) => res.headers.get(name)

/** 20 × 200 with remaining counting down, then 429s: the anonymous tier's contract. */
function assertAnonymousBurst(results) {
  results.slice(0, 20).forEach(({ res, body }, i) => {
    assert.equal(res.status, 200, `request ${i + 1}`)
    assert.equal(body.tier, 'anonymous')
    assert.equal(h(res, 'x-ratelimit-remaining'), String(19 - i))
    assert.equal(h(res, 'retry-after'), null)
  })
  for (const { res } of results.slice(20)) assert.equal(res.status, 429)
}

const stores = [
  {
    name: 'local REST server + redis-server',
    async open() {
      const stack = await startStack()
      return { redis: new Redis({ url: stack.rest.url, token: stack.rest.token }), close: () => stack.stop() }
    },
  },
  {
    name: 'Redis.memory()', // process-wide state: the unique prefixes keep tests apart
    open: async () => ({ redis: Redis.memory(), close: async () => {} }),
  },
]

for (const store of stores) {
  describe(`Hono example on ${store.name}`, () => {
    let redis
    let closeStore
    before(async () => {
      ;({ redis, close: closeStore } = await store.open())
    })
    after(() => closeStore?.())

    test('anonymous: exactly 20 × 200, then 429 with every header', async () => {
      const prefix = uniquePrefix()
      const client = await startApp({ redis, prefix })
      try {
        await awayFromWindowEdge()
        const results = await burst(client, 22)
        assertAnonymousBurst(results)

        // Header values are the limiter's: read its state for this IP over the same store.
        const state = await probe(redis, prefix, 'anonymous', 20).getRemaining('127.0.0.1')
        assert.equal(state.remaining, 0)
        assert.equal(state.limit, 20)
        results.forEach(({ res }, i) => {
          assert.equal(h(res, 'x-ratelimit-limit'), '20')
          assert.equal(h(res, 'x-ratelimit-reset'), String(Math.ceil(state.reset / 1000))) // unix s, rounded up
          assert.equal(h(res, 'ratelimit-policy'), '"anonymous";q=20;w=60')
          assert.match(h(res, 'ratelimit'), new RegExp(`^"anonymous";r=${Math.max(0, 19 - i)};t=\\d+$`))
        })

        // The 21st was refused by the store, the 22nd by the ephemeral cache: same headers.
        for (const { res, body, sentAt, receivedAt } of results.slice(20)) {
          assert.equal(h(res, 'x-ratelimit-remaining'), '0')
          // Retry-After = whole seconds until that reset, rounded up, at least 1.
          const retryAfter = Number(h(res, 'retry-after'))
          const earliest = Math.max(1, Math.ceil((state.reset - receivedAt) / 1000))
          const latest = Math.max(1, Math.ceil((state.reset - sentAt) / 1000))
          assert.ok(retryAfter >= earliest && retryAfter <= latest, `Retry-After ${retryAfter} not in [${earliest}, ${latest}]`)
          assert.ok(retryAfter >= 1 && retryAfter <= 60)
          assert.equal(body.retryAfter, retryAfter)
          // RateLimit's t is the same count (Retry-After is never earlier than the window end).
          const [, r, t] = h(res, 'ratelimit').match(/r=(\d+);t=(\d+)/)
          assert.equal(r, '0')
          assert.equal(Math.max(1, Number(t)), retryAfter)
        }
      } finally {
        await client.close()
      }
    })

    test('a paid (and a free) key is unaffected by an exhausted IP; unknown keys get 401', async () => {
      const prefix = uniquePrefix()
      const client = await startApp({ redis, prefix })
      try {
        await awayFromWindowEdge()
        assert.equal((await burst(client, 21)).at(-1).res.status, 429) // this IP is now limited

        const paid = await burst(client, 5, () => ({ 'x-api-key': PAID }))
        paid.forEach(({ res, body }, i) => {
          assert.equal(res.status, 200)
          assert.equal(body.tier, 'paid')
          assert.equal(h(res, 'x-ratelimit-limit'), '1000')
          assert.equal(h(res, 'x-ratelimit-remaining'), String(999 - i))
          assert.equal(h(res, 'ratelimit-policy'), '"paid";q=1000;w=60')
          assert.match(h(res, 'ratelimit'), new RegExp(`^"paid";r=${999 - i};t=\\d+$`))
        })
        const [free] = await burst(client, 1, () => ({ 'x-api-key': FREE }))
        assert.equal(free.res.status, 200)
        assert.equal(h(free.res, 'ratelimit-policy'), '"free";q=100;w=60')
        assert.equal(h(free.res, 'x-ratelimit-remaining'), '99')

        const unknown = await client.get({ 'x-api-key': 'paid_not_a_real_key' })
        assert.equal(unknown.status, 401)
        assert.deepEqual(await unknown.json(), { error: 'unknown API key' })
        assert.equal(h(unknown, 'x-ratelimit-limit'), null)

        // Each tier counts under its own prefix: the IP is still limited, the paid key has 5 used.
        assert.equal((await client.get()).status, 429)
        assert.equal((await probe(redis, prefix, 'anonymous', 20).getRemaining('127.0.0.1')).remaining, 0)
        assert.equal((await probe(redis, prefix, 'paid', 1000).getRemaining(apiKeyIdentifier(PAID))).remaining, 995)
      } finally {
        await client.close()
      }
    })

    test('0 trusted hops: X-Forwarded-For is ignored, the socket address is the client', async () => {
      const prefix = uniquePrefix()
      const client = await startApp({ redis, prefix, trustedProxyHops: 0 })
      try {
        await awayFromWindowEdge()
        // A different forged address on every request: had it been believed, all would pass.
        assertAnonymousBurst(await burst(client, 22, (i) => ({ 'x-forwarded-for': `10.9.8.${i}` })))
        assert.equal((await probe(redis, prefix, 'anonymous', 20).getRemaining('127.0.0.1')).remaining, 0)
        assert.equal((await probe(redis, prefix, 'anonymous', 20).getRemaining('10.9.8.1')).remaining, 20)
      } finally {
        await client.close()
      }
    })

    test('1 trusted hop: the rightmost X-Forwarded-For entry is the client; entries left of it are ignored', async () => {
      const prefix = uniquePrefix()
      const client = await startApp({ redis, prefix, trustedProxyHops: 1 })
      try {
        await awayFromWindowEdge()
        // The client forges the left part; our proxy appended the address it saw (198.51.100.7).
        const forged = (i) => ({ 'x-forwarded-for': `203.0.113.${i}, 198.51.100.7` })
        assertAnonymousBurst(await burst(client, 22, forged))
        const limiter = probe(redis, prefix, 'anonymous', 20)
        assert.equal((await limiter.getRemaining('198.51.100.7')).remaining, 0)
        assert.equal((await limiter.getRemaining('203.0.113.1')).remaining, 20)
        assert.equal((await limiter.getRemaining('127.0.0.1')).remaining, 20) // the proxy itself is not limited

        // Another client behind the same proxy has its own budget.
        const other = await client.get({ 'x-forwarded-for': '198.51.100.8' })
        assert.equal(other.status, 200)
        assert.equal(h(other, 'x-ratelimit-remaining'), '19')
      } finally {
        await client.close()
      }
    })
  })
}
