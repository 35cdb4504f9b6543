// `npm run demo`: the Hono example (examples/hono) on an ephemeral port, with the embedded
// in-process store — no Redis, no server, no account. It sends itself a burst over real HTTP:
// 25 anonymous requests (the per-IP limit is 20 a minute), then 5 with a paid API key, and
// prints what came back. With UPSTASH_REDIS_REST_URL / UPSTASH_REDIS_REST_TOKEN set, the same
// run goes to that store instead (Upstash, or a local `npx ratelimit-native serve`).

import { serve } from '@hono/node-server'
import { resolveExamplesFromRoot } from './resolve-from-root.mjs'

// The example imports 'ratelimit-native' by name, like any user app; this makes that name
// resolve to this repository without an `npm install` inside examples/hono.
resolveExamplesFromRoot()
const { createApp, defaultStore, DEMO_API_KEYS, TIERS } = await import('../examples/hono/src/app.mjs')

const ANONYMOUS_REQUESTS = 25
const PAID_REQUESTS = 5
const PAID_KEY = Object.keys(DEMO_API_KEYS).find((key) => DEMO_API_KEYS[key] === 'paid')
const say = (line = '') => process.stdout.write(`${line}\n`)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const { redis, description } = defaultStore()
const external = description.startsWith('Upstash')
// A fresh prefix per run, so a shared store does not carry over the previous run's counters.
const prefix = external ? `ratelimit-native-demo:${Date.now().toString(36)}` : 'demo'
const app = createApp({ redis, prefix })

const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' })
await new Promise((resolve, reject) => {
  server.once('listening', resolve)
  server.once('error', reject)
})
const base = `http://127.0.0.1:${server.address().port}`

try {
  say('ratelimit-native demo: a Hono API with per-IP and per-API-key limits (examples/hono)')
  say(`  store   : ${description}${external ? ' — UPSTASH_REDIS_REST_URL/TOKEN are set' : ': no Redis, no server'}`)
  say(`  server  : ${base} (ephemeral port)`)
  say(`  limits  : anonymous ${TIERS.anonymous.tokens}/min per IP, free ${TIERS.free.tokens}/min, paid ${TIERS.paid.tokens}/min per key`)
  say()

  // Windows are aligned to the clock minute; a burst across a boundary would see the previous
  // window weighted in and could let one extra request through. Start clear of the edge.
  const msLeft = 60_000 - (Date.now() % 60_000)
  if (msLeft < 5_000) {
    say(`(waiting ${(msLeft / 1000).toFixed(1)} s for the next rate-limit window, so the burst stays in one)`)
    await sleep(msLeft + 50)
    say()
  }

  const rows = []
  const send = async (caller, headers) => {
    const res = await fetch(`${base}/api/hello`, { headers })
    await res.arrayBuffer() // drain the body so the connection is reused
    const ietf = /;r=(\d+);t=(\d+)/.exec(res.headers.get('ratelimit') ?? '')
    rows.push({ n: rows.length + 1, caller, status: res.status, remaining: res.headers.get('x-ratelimit-remaining') ?? '-', resetIn: ietf ? ietf[2] : '-', retryAfter: res.headers.get('retry-after') ?? '', headers: res.headers })
  }
  for (let i = 0; i < ANONYMOUS_REQUESTS; i++) await send('anonymous (127.0.0.1)', {})
  for (let i = 0; i < PAID_REQUESTS; i++) await send('paid key', { 'x-api-key': PAID_KEY })

  const table = [['#', 'caller', 'status', 'remaining', 'reset in (s)', 'Retry-After'], ...rows.map((r) => [r.n, r.caller, r.status, r.remaining, r.resetIn, r.retryAfter])]
  const widths = table[0].map((_, col) => Math.max(...table.map((row) => String(row[col]).length)))
  const line = (row) => '  ' + row.map((cell, col) => String(cell)[col === 1 ? 'padEnd' : 'padStart'](widths[col])).join('  ')
  say(line(table[0]))
  say('  ' + widths.map((w) => '-'.repeat(w)).join('  '))
  for (const row of table.slice(1)) say(line(row))
  say()

  const anonymous = rows.slice(0, ANONYMOUS_REQUESTS)
  const paid = rows.slice(ANONYMOUS_REQUESTS)
  const firstRefused = anonymous.find((r) => r.status === 429)
  if (firstRefused) {
    say(`Response headers of request #${firstRefused.n} (the first 429):`)
    for (const name of ['Retry-After', 'X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset', 'RateLimit-Policy', 'RateLimit']) {
      say(`  ${name}: ${firstRefused.headers.get(name)}`)
    }
    say()
  }

  const allowed = anonymous.filter((r) => r.status === 200).length
  const expected =
    anonymous.slice(0, 20).every((r) => r.status === 200) &&
    anonymous.slice(20).every((r) => r.status === 429) &&
    paid.every((r) => r.status === 200)
  say(
    `Summary: anonymous ${allowed} × 200 then ${anonymous.length - allowed} × 429; ` +
      `paid key ${paid.filter((r) => r.status === 200).length}/${paid.length} × 200 (its own limit, unaffected)` +
      (expected ? ' — as expected.' : ' — NOT as expected (20 × 200, then 429s; paid all 200)!'),
  )
  if (rows.some((r) => r.remaining === '-')) {
    // Only a limiter that failed open (store slower than the app's 1 s timeout) omits headers.
    say('Some responses carry no rate-limit headers: the store did not answer in time, so the limiter let them through.')
  }
  if (!expected) process.exitCode = 1
} finally {
  // Stop the server so the process exits by itself.
  server.closeAllConnections?.()
  await new Promise((resolve) => server.close(resolve))
}
