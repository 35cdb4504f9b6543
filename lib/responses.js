'use strict'
// Pieces of a limiter's answer shared by Ratelimit and MultiRegionRatelimit.

function timeoutResponse() {
  return { success: true, limit: 0, remaining: 0, reset: 0, pending: Promise.resolve(), reason: 'timeout' }
}

/** `pending` may reject (a background write failed); callers who await it still see that, but
 * an ignored `pending` must not crash the process with an unhandled rejection. */
function quietPending(response) {
  const pending = response?.pending
  if (pending && typeof pending.catch === 'function') pending.catch(() => {})
  return response
}

function warnAnalytics(error) {
  let message = 'Failed to record analytics'
  if (`${error}`.includes('WRONGTYPE')) {
    message = `
    Failed to record analytics. See the information below:

    This can occur when you uprade to Ratelimit version 1.1.2
    or later from an earlier version.

    This occurs simply because the way we store analytics data
    has changed. To avoid getting this error, disable analytics
    for *an hour*, then simply enable it back.\n
    `
  }
  console.warn(message, error)
}

/** The native queue's notice for a call dropped, unsent, because its caller's timeout passed
 * (crates/ratelimit-core/src/stores/remote.rs). */
function droppedAtTimeout(error) {
  return typeof error?.message === 'string' && error.message.startsWith("not sent: the limiter's timeout passed")
}

module.exports = { timeoutResponse, quietPending, warnAnalytics, droppedAtTimeout }
