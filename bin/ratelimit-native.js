#!/usr/bin/env node
'use strict'
// `npx ratelimit-native serve [flags]`: a local Upstash-compatible REST server in front of a
// real redis-server, for development and tests without an Upstash account.

const USAGE = `usage: ratelimit-native serve [--host H] [--port P] [--redis URL] [--token T] [--base-path /p]
run "ratelimit-native serve --help" for every flag and its environment variable`

async function serve(args) {
  // A server handles many connections at once: give its runtime two worker threads (the addon's
  // default of one suits a limiter inside an app), or one when the process may use only one CPU
  // (e.g. `taskset -c 1`), where a second worker only adds wakeups. Read once, when the addon loads.
  process.env.RATELIMIT_NATIVE_THREADS ??= String(Math.min(2, require('node:os').availableParallelism()))
  const native = require('../lib/native-addon').loadNativeAddon()
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(native.restServerHelp())
    return
  }
  let server
  try {
    server = await native.startRestServer(args)
  } catch (err) {
    process.stderr.write(`${err.message.trim()}\n`)
    process.exitCode = 2
    return
  }
  // One machine-readable line: tests and scripts read the URL from it (the token is never printed).
  process.stdout.write(`listening on ${server.url}\n`)
  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    await server.stop()
    clearInterval(keepAlive)
  }
  // The server runs on native threads; this timer keeps the event loop (and so the process) alive.
  const keepAlive = setInterval(() => {}, 1 << 30)
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

async function main() {
  const [command, ...args] = process.argv.slice(2)
  if (command === 'serve') return serve(args)
  process.stderr.write(`${USAGE}\n`)
  process.exitCode = command === undefined || command === '--help' || command === '-h' ? 0 : 2
}

main().catch((err) => {
  process.stderr.write(`ratelimit-native: ${err && err.message ? err.message : err}\n`)
  process.exitCode = 1
})
