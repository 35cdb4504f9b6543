// `npm run demo`. Until the embedded memory store lands (it will become the demo's default, with a
// Hono API and a burst table), this shows the part that exists today: the local
// Upstash-compatible REST server in front of a real redis-server, serving the published
// @upstash/ratelimit unchanged — local development without an Upstash account.

import { Ratelimit } from '@upstash/ratelimit'
import { Redis } from '@upstash/redis'
import { startStack } from '../__test__/helpers/servers.mjs'

const say = (line = '') => process.stdout.write(`${line}\n`)

say('ratelimit-native — status of this build')
say('  ready : local Upstash REST server (`npx ratelimit-native serve`), native addon skeleton')
say('  next  : drop-in `Ratelimit` on the native path, embedded memory store (the demo default)')
say()

const stack = await startStack()
try {
  say(`Started redis-server on 127.0.0.1:${stack.redis.port} and the REST server at ${stack.rest.url}`)
  const redis = new Redis({ url: stack.rest.url, token: stack.rest.token, enableTelemetry: false })
  const limiter = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(5, '10 s'), prefix: 'demo', ephemeralCache: false })
  say('Published @upstash/ratelimit, fixedWindow(5, "10 s"), 8 requests from one client:')
  say()
  say('  request  success  remaining  reset in')
  for (let i = 1; i <= 8; i++) {
    const res = await limiter.limit('anonymous')
    const resetIn = `${((res.reset - Date.now()) / 1000).toFixed(1)} s`
    say(`  ${String(i).padStart(7)}  ${String(res.success).padEnd(7)}  ${String(res.remaining).padStart(9)}  ${resetIn.padStart(8)}`)
  }
  say()
  say('The same database can be shared by @upstash/ratelimit and ratelimit-native instances.')
} finally {
  await stack.stop()
}
