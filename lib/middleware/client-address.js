'use strict'
// The client's address, as far as it can be trusted. Every proxy in front of the app appends the
// address it received the request from to X-Forwarded-For, so only the entries appended by
// proxies the app trusts are facts; anything further left was written by whoever sent the
// request, and can be forged. So the leftmost entry is never taken on trust.
//
// - `trustProxy: false` / `0` (the default where there is a socket): the socket peer;
// - `trustProxy: n`: n proxies in front, each appending: the n-th entry counting from the peer
//   (the leftmost one when the header is shorter, as Express's `trust proxy` does);
// - `trustProxy: ["10.0.0.0/8", "203.0.113.7", …]`: addresses and ranges of the proxies: from the
//   peer leftwards, the first address that is not one of them;
// - `ipHeader: "cf-connecting-ip"` (or "x-real-ip", "fly-client-ip", "true-client-ip", any
//   header a platform sets and overwrites): that header, when present — opt-in only, as a
//   client can send it itself wherever the platform does not overwrite it.
// Where there is no socket (Next.js, Edge, Workers) the nearest proxy is the platform: there
// `trustProxy` defaults to 1, the entry the platform appended (Vercel and Cloudflare overwrite or
// append it; `next start` facing the internet directly keeps what the client sent, so put a proxy
// in front or use `ipHeader`).

const ipaddr = require('ipaddr.js')

/** A trusted-proxy list → a predicate on addresses; a hop count → null. */
function compileTrust(trustProxy, optionName = 'trustProxy') {
  if (trustProxy === undefined || trustProxy === false) return { hops: undefined, trusted: null }
  if (trustProxy === true) {
    throw new TypeError(`ratelimit-native: ${optionName}: true would trust every X-Forwarded-For entry, the client's own too; give the number of proxies in front of the app, or their addresses`)
  }
  if (typeof trustProxy === 'number') {
    if (!Number.isInteger(trustProxy) || trustProxy < 0 || trustProxy > 64) {
      throw new TypeError(`ratelimit-native: ${optionName} must be a number of proxies (0–64), or a list of their addresses, got ${trustProxy}`)
    }
    return { hops: trustProxy, trusted: null }
  }
  if (Array.isArray(trustProxy)) {
    const ranges = trustProxy.map((entry) => {
      if (typeof entry !== 'string') throw new TypeError(`ratelimit-native: ${optionName} entries must be addresses or CIDR ranges (strings), got ${typeof entry}`)
      try {
        if (entry.includes('/')) return ipaddr.parseCIDR(entry)
        const address = ipaddr.parse(entry)
        return [address, address.kind() === 'ipv4' ? 32 : 128]
      } catch {
        throw new TypeError(`ratelimit-native: ${optionName}: ${JSON.stringify(entry)} is not an IP address or CIDR range`)
      }
    })
    const trusted = (text) => {
      const address = parseAddress(text)
      if (address === null) return false
      return ranges.some(([range, bits]) => {
        const candidate = address.kind() === range.kind() ? address : convert(address, range.kind())
        return candidate !== null && candidate.match(range, bits)
      })
    }
    return { hops: undefined, trusted }
  }
  throw new TypeError(`ratelimit-native: ${optionName} must be false, a number of proxies, or a list of their addresses, got ${typeof trustProxy}`)
}

/** `address` as the other IP version (IPv4-mapped IPv6 ↔ IPv4), or null. */
function convert(address, kind) {
  if (kind === 'ipv4' && address.kind() === 'ipv6' && address.isIPv4MappedAddress()) return address.toIPv4Address()
  if (kind === 'ipv6' && address.kind() === 'ipv4') return address.toIPv4MappedAddress()
  return null
}

function parseAddress(text) {
  try {
    return ipaddr.parse(text)
  } catch {
    return null
  }
}

/** An address as it should key a limit: IPv4 seen through a dual-stack socket as plain IPv4. */
function normalise(text) {
  const address = parseAddress(text)
  if (address === null) return text
  if (address.kind() === 'ipv6' && address.isIPv4MappedAddress()) return address.toIPv4Address().toString()
  return address.toString()
}

/** X-Forwarded-For's entries, left to right (several headers are joined with commas first). */
function forwardedChain(value) {
  if (typeof value !== 'string' || value === '') return []
  return value
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
}

/**
 * The client address: `peer` is the socket's remote address (undefined where there is none),
 * `header(name)` reads a request header, `trust` comes from compileTrust(); `ipHeader` is the
 * opt-in platform header. Undefined when nothing can be known.
 */
function clientAddress({ peer, header }, trust, ipHeader) {
  if (ipHeader) {
    const value = header(ipHeader)
    const first = typeof value === 'string' ? value.split(',')[0].trim() : ''
    if (first !== '') return normalise(first)
  }
  const chain = forwardedChain(header('x-forwarded-for'))
  // Nearest first: the socket peer (if any), then what each proxy saw, right to left.
  const nearestFirst = peer ? [peer, ...chain.reverse()] : chain.reverse()
  if (nearestFirst.length === 0) return undefined
  if (trust.trusted) {
    let i = 0
    while (i < nearestFirst.length - 1 && trust.trusted(nearestFirst[i])) i++
    return normalise(nearestFirst[i])
  }
  // Without a socket the first hop is the platform, which appended the first entry we see.
  const hops = trust.hops ?? (peer ? 0 : 1)
  const index = peer ? hops : hops - 1
  if (index < 0) return undefined
  return normalise(nearestFirst[Math.min(index, nearestFirst.length - 1)])
}

module.exports = { compileTrust, clientAddress }
