// What the WebAssembly engine costs where it runs: the module's size (raw and gzipped) and, in
// Vercel's edge-runtime, the time from a fresh runtime to the first limit() answered (the entry
// index.edge.mjs bundled by esbuild as Next.js would; the module compiled by the host, as
// Vercel does, timed apart). Prints a markdown section; `npm run bench` appends it to RESULTS.md.

import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'
import { EdgeRuntime } from 'edge-runtime'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const RUNS = 10
const bytes = readFileSync(join(ROOT, 'wasm', 'ratelimit_wasm_bg.wasm'))
const gzipped = gzipSync(bytes, { level: 9 }).length

const bundled = await build({
  stdin: {
    contents: `import { Ratelimit, Redis } from 'ratelimit-native'
addEventListener('fetch', (event) => event.respondWith((async () => {
  const rl = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.slidingWindow(10, '10 s') })
  const { success } = await rl.limit('first')
  return new Response(String(success))
})()))`,
    resolveDir: ROOT,
  },
  bundle: true,
  write: false,
  format: 'iife',
  platform: 'browser',
  alias: { 'ratelimit-native': join(ROOT, 'index.edge.mjs') },
  logLevel: 'silent',
  plugins: [
    {
      name: 'host-wasm',
      setup(b) {
        b.onResolve({ filter: /\.wasm\?module$/ }, (args) => ({ path: args.path, namespace: 'host-wasm' }))
        b.onLoad({ filter: /.*/, namespace: 'host-wasm' }, () => ({ contents: 'export default globalThis.__ratelimitWasmModule', loader: 'js' }))
      },
    },
  ],
})
const code = bundled.outputFiles[0].text

const compileMs = []
const firstLimitMs = []
for (let i = 0; i < RUNS; i++) {
  let t = performance.now()
  const module = new WebAssembly.Module(bytes)
  compileMs.push(performance.now() - t)
  t = performance.now()
  const runtime = new EdgeRuntime({ initialCode: code, extend: (context) => Object.assign(context, { __ratelimitWasmModule: module }) })
  const answer = await runtime.dispatchFetch('http://edge.test/').then((res) => res.text())
  firstLimitMs.push(performance.now() - t)
  if (answer !== 'true') throw new Error(`edge-runtime answered ${answer}`)
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const ms = (x) => `${x.toFixed(1)} ms`

process.stdout.write(`## WebAssembly costs

| what | measured | goal |
| --- | --- | --- |
| \`wasm/ratelimit_wasm_bg.wasm\` | ${(bytes.length / 1024).toFixed(0)} KB raw, ${(gzipped / 1024).toFixed(0)} KB gzipped | ≤ 150 KB gzipped: ${gzipped <= 150 * 1024 ? 'met' : '**NOT met**'} |
| import + first \`limit()\` (memory store) in a fresh edge-runtime, ${RUNS} runs | median ${ms(median(firstLimitMs))}, max ${ms(Math.max(...firstLimitMs))} (+ the host's compile of the module: median ${ms(median(compileMs))}) | ≤ 50 ms: ${median(firstLimitMs) + median(compileMs) <= 50 ? 'met' : '**NOT met**'} (judged with the compile) |
| edge bundle of the package (esbuild, minified: no) | ${(code.length / 1024).toFixed(0)} KB of JS | |
`)
