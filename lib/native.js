'use strict'
// Loads the internal generated binding (native.cjs). Kept in one place so that a missing or
// mismatched binary produces one clear error.

let binding
try {
  binding = require('../native.cjs')
} catch (err) {
  const where = `${process.platform}-${process.arch}`
  const error = new Error(
    `ratelimit-native: no native binary could be loaded for ${where}. ` +
      'Reinstall the package so npm fetches the matching optional platform package ' +
      '(ratelimit-native-<platform>), or build it from source with `npm run build`. ' +
      'Native addons cannot run on Edge runtimes (Vercel Edge, Cloudflare Workers): run this ' +
      'code on the Node.js runtime.',
  )
  error.cause = err
  throw error
}

module.exports = binding
