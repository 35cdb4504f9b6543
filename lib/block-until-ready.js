'use strict'
// `blockUntilReady`, shared by Ratelimit and MultiRegionRatelimit: retry `limit(identifier)` at
// the window's reset until it succeeds or `timeout` ms have passed (at least every 100 ms when
// the reset is already due).

async function blockUntilReady(limit, identifier, timeout) {
  // `!(timeout > 0)` also refuses NaN / undefined / non-numbers, which upstream's `<= 0` lets
  // through into an endless wait.
  if (!(timeout > 0)) throw new Error('timeout must be positive')
  let res
  const deadline = Date.now() + timeout
  while (true) {
    res = await limit(identifier)
    if (res.success) break
    if (res.reset === 0) throw new Error('This should not happen')
    const wait = Math.min(res.reset, deadline) - Date.now()
    await new Promise((r) => setTimeout(r, wait > 0 ? wait : 100))
    if (Date.now() > deadline) break
  }
  return res
}

module.exports = { blockUntilReady }
