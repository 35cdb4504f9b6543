// `npm start`: serves the app on PORT (default 3000). TRUSTED_PROXY_HOPS is the number of
// proxies in front of it that append to X-Forwarded-For (default 0: use the socket address).

import { serve } from '@hono/node-server'
import { createApp, defaultStore } from './app.mjs'

const port = Number(process.env.PORT ?? 3000)
const trustedProxyHops = Number(process.env.TRUSTED_PROXY_HOPS ?? 0)
const { redis, description } = defaultStore()

const server = serve({ fetch: createApp({ redis, trustedProxyHops }).fetch, port }, (info) => {
  console.log(`listening on http://localhost:${info.port} (store: ${description}, trusted proxy hops: ${trustedProxyHops})`)
})

// Let Ctrl-C / docker stop finish in-flight requests instead of cutting them off.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => server.close(() => process.exit(0)))
}
