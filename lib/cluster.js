'use strict'
// Redis Cluster: which clients talk to one, and the key layout there.
//
// A cluster runs a script only when all of its keys hash to one slot, and a node answers MOVED
// for keys it does not serve. Upstream's layout (`P:I:<window>`, `P:I`, `P:dynamic:global`, …)
// spreads the keys of one call over several slots: CROSSSLOT for every sliding-window call.
// On a cluster the identifier is a hash tag instead — `P:{I}:<window>` (window algorithms),
// `P:{I}` (token bucket), `P:dynamic:id:{I}` (its own dynamic limit) — so the keys of one
// identifier share one slot, and identifiers spread over the cluster. Keys every identifier
// shares (`P:dynamic:global`, the deny lists, analytics) stay as upstream names them and are
// read and written with commands of their own. A standalone Redis keeps upstream's layout.

/** Clients found to talk to a Redis Cluster: our Redis with `cluster`, an ioredis Cluster, a
 * node-redis createCluster() client (their adapters). A WeakSet, not a property: an
 * @upstash/redis auto-pipelining Proxy turns property reads into commands. */
const clusterClients = new WeakSet()

function markCluster(client) {
  clusterClients.add(client)
  return client
}

function isCluster(client) {
  return client !== null && typeof client === 'object' && clusterClients.has(client)
}

/** Set on a limiter's context whose keys take the cluster layout. */
const CLUSTER = Symbol.for('ratelimit-native.clusterLayout')

/** `P:I` (upstream: Array#join, so null and undefined become ""), or `P:{I}` on a cluster. */
function identifierKey(prefix, identifier, cluster) {
  const text = typeof identifier === 'string' ? identifier : [identifier].join('')
  return cluster ? `${prefix}:{${text}}` : `${prefix}:${text}`
}

module.exports = { markCluster, isCluster, CLUSTER, identifierKey }
