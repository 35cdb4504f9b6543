// Small measurement helpers shared by bench/run.mjs and bench/contender.mjs: a log-bucketed
// latency histogram (HDR-style: 16 sub-buckets per power of two, ≤ 6.25 % relative error, no
// per-call allocation), CPU time of other processes from /proc, and number formatting.

import { readFileSync } from 'node:fs'

const SUB = 16 // sub-buckets per power of two
const MAX_NS = 2 ** 34 // ≈ 17 s; slower calls land in the last bucket

/** Bucket of a whole number of ns (0..MAX_NS). */
function bucketOf(ns) {
  if (ns < SUB) return ns < 0 ? 0 : ns
  // Below 2^31 ns (every latency in practice) integer bit operations find the power of two:
  // Math.log2 and ** go through V8's slow math runtime, ~0.1 µs per record, which was a tenth
  // of a memory-store call in the distinct-keys workload. The same buckets either way.
  if (ns < 2 ** 31) {
    const shift = 27 - Math.clz32(ns) // exp - 4, where exp = 31 - clz32(ns) ≥ 4
    return shift * SUB + (ns >>> shift) // SUB + shift·SUB + sub, with sub = (ns >>> shift) - SUB
  }
  const exp = Math.floor(Math.log2(ns))
  const sub = Math.floor(ns / 2 ** (exp - 4)) - SUB // 0..15
  return SUB + (exp - 4) * SUB + sub
}

/** Lower bound of bucket `i` in ns (the inverse of bucketOf). */
function lowerBound(i) {
  if (i < SUB) return i
  const exp = Math.floor((i - SUB) / SUB) + 4
  return (SUB + ((i - SUB) % SUB)) * 2 ** (exp - 4)
}

const BUCKETS = bucketOf(MAX_NS) + 1

export class Histogram {
  constructor(counts) {
    this.counts = counts ? Float64Array.from(counts) : new Float64Array(BUCKETS)
    this.total = this.counts.reduce((a, b) => a + b, 0)
  }
  /** Records one latency in nanoseconds. */
  record(ns) {
    this.counts[bucketOf(Math.min(Math.round(ns), MAX_NS))]++
    this.total++
  }
  merge(other) {
    for (let i = 0; i < BUCKETS; i++) this.counts[i] += other.counts[i]
    this.total += other.total
    return this
  }
  /** Value (ns) at quantile q (0..1): midpoint of the bucket that holds it. */
  quantile(q) {
    if (this.total === 0) return NaN
    const rank = Math.max(1, Math.ceil(q * this.total))
    let seen = 0
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]
      if (seen >= rank) return (lowerBound(i) + lowerBound(i + 1)) / 2
    }
    return MAX_NS
  }
  /** Sparse form for JSON: [[bucket, count], …]. */
  toJSON() {
    const sparse = []
    this.counts.forEach((c, i) => c && sparse.push([i, c]))
    return sparse
  }
  static fromJSON(sparse) {
    const h = new Histogram()
    for (const [i, c] of sparse) h.counts[i] = c
    h.total = sparse.reduce((a, [, c]) => a + c, 0)
    return h
  }
}

const CLK_TCK = 100 // USER_HZ on Linux; /proc/<pid>/stat times are in these ticks

/** User+system CPU time of a whole process (all threads) in µs, or null when unreadable. */
export function processCpuMicros(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // fields from #3 (state) on
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLK_TCK // utime #14, stime #15
  } catch {
    return null
  }
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/** Human-friendly numbers for the tables: 1234567 → "1.23M", 0.123 → "0.123". */
export function fmt(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return 'n/a'
  // Rounded before the unit is chosen, so 999,700 reads "1.00M" and not "1.00e+3k".
  const abs = Math.abs(Number(x.toPrecision(digits)))
  if (abs >= 1e6) return `${(x / 1e6).toPrecision(digits)}M`
  if (abs >= 1e4) return `${(x / 1e3).toPrecision(digits)}k`
  if (abs >= 100) return String(Math.round(x))
  return String(Number(x.toPrecision(digits)))
}
