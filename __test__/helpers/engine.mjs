// Which engine this run of the suites drives (RATELIMIT_NATIVE_ENGINE picks it: `npm run test:js`
// runs every suite on the native addon, then again on the WebAssembly engine). Tests of what only
// the addon has (its own REST sockets, Redis over TCP, the process-wide store shared by worker
// threads) take `nativeOnly`; tests of what only the WebAssembly engine does take `wasmOnly`.

import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

/** "native" or "wasm". */
export const engine = require('../../index.js').engine

export const nativeOnly = { skip: engine === 'native' ? false : 'the native engine only' }
export const wasmOnly = { skip: engine === 'wasm' ? false : 'the WebAssembly engine only' }
