// Direct access to the test redis-server, bypassing the REST server: read back exactly what a
// limiter stored (keys, values, TTLs) over raw RESP, plus a small seeded PRNG for repeatable
// random call sequences.

import net from 'node:net'

export const seedOf = (text) => [...text].reduce((h, c) => (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0, 7)

export function mulberry32(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const INCOMPLETE = Symbol('incomplete')
/** Parses `count` RESP replies from `buf`; errors become `{ error }`; null when incomplete. */
export function parseReplies(buf, count) {
  let i = 0
  const line = () => {
    const end = buf.indexOf('\r\n', i)
    if (end < 0) throw INCOMPLETE
    const s = buf.toString('utf8', i, end)
    i = end + 2
    return s
  }
  const value = () => {
    const l = line()
    const rest = l.slice(1)
    switch (l[0]) {
      case '+':
        return rest
      case '-':
        return { error: rest }
      case ':':
        return Number(rest)
      case '$': {
        const n = Number(rest)
        if (n < 0) return null
        if (buf.length < i + n + 2) throw INCOMPLETE
        const s = buf.toString('utf8', i, i + n)
        i += n + 2
        return s
      }
      case '*': {
        const n = Number(rest)
        if (n < 0) return null
        const out = []
        for (let k = 0; k < n; k++) out.push(value())
        return out
      }
      default:
        throw new Error(`unexpected RESP reply: ${JSON.stringify(l)}`)
    }
  }
  const out = []
  try {
    for (let k = 0; k < count; k++) out.push(value())
  } catch (e) {
    if (e === INCOMPLETE) return null
    throw e
  }
  return out
}

/** Sends several commands to redis-server directly (one connection); resolves with the replies. */
export function redisBatch(redis, commands, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(redis.port, '127.0.0.1')
    const encode = (parts) =>
      `*${parts.length}\r\n` + parts.map((p) => `$${Buffer.byteLength(String(p))}\r\n${p}\r\n`).join('')
    let buf = Buffer.alloc(0)
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error('direct redis command timed out'))
    }, timeoutMs)
    socket.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    socket.on('connect', () => socket.write(encode(['AUTH', redis.password]) + commands.map(encode).join('')))
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk])
      const replies = parseReplies(buf, commands.length + 1)
      if (!replies) return
      clearTimeout(timer)
      socket.end()
      resolve(replies.slice(1))
    })
  })
}

export const redisOne = async (redis, ...args) => (await redisBatch(redis, [args]))[0]

export const keysOf = async (redis, pattern) => ((await redisOne(redis, 'KEYS', pattern)) ?? []).sort()

export const hash = (flat) => {
  const o = {}
  for (let k = 0; k < flat.length; k += 2) o[flat[k]] = flat[k + 1]
  return o
}
