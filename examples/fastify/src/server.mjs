import { createApp } from './app.mjs'

const app = await createApp()
const port = Number(process.env.PORT ?? 3000)
await app.listen({ port })
console.log(`Fastify API on http://localhost:${port}/api/quote`)
