// ratelimit-native — public types. Hand-written to match @upstash/ratelimit 2.2.0's surface:
// code written against @upstash/ratelimit compiles unchanged, and results flow back into code
// typed with upstream's types (checked by __test__/types/compat.ts).

// @ts-ignore -- optional peer dependency: without @upstash/redis installed this import is `any`
import type { Redis as UpstashRedisClient } from "@upstash/redis";

/** Time unit of a window: milliseconds, seconds, minutes, hours, days, weeks. */
export type Unit = "ms" | "s" | "m" | "h" | "d" | "w";

/** A window such as `"10 s"`, `"1m"` or `"1.5 h"` (fractions are rounded to whole ms). */
export type Duration = `${number} ${Unit}` | `${number}${Unit}`;

/** Why a response did not come from Redis. */
export type RatelimitResponseType = "timeout" | "cacheBlock" | "denyList";

export type RatelimitResponse = {
  /** Whether the request may pass. */
  success: boolean;
  /** The limit that applied (the dynamic limit when one is set). */
  limit: number;
  /** Requests left in the current window. */
  remaining: number;
  /** Unix time in ms when the window resets (for token bucket: the next refill). */
  reset: number;
  /** Background work (e.g. cachedFixedWindow's Redis write); await it on serverless runtimes. */
  pending: Promise<unknown>;
  reason?: RatelimitResponseType;
  deniedValue?: string | undefined;
  /** With `failClosed`: why the store could not answer. */
  error?: unknown;
};

export type Geo = {
  country?: string;
  city?: string;
  region?: string;
  ip?: string;
};

export type LimitOptions = {
  geo?: Geo;
  /** How many tokens this request costs (default 1; 0 only reads; negative refunds). */
  rate?: number;
  ip?: string;
  userAgent?: string;
  country?: string;
};

/** Remembers identifiers that are over their limit until they reset, so floods cost no I/O. */
export type EphemeralCache = {
  isBlocked: (identifier: string) => { blocked: boolean; reset: number };
  blockUntil: (identifier: string, reset: number) => void;
  set: (key: string, value: number) => void;
  get: (key: string) => number | null;
  incr: (key: string, incrementAmount?: number) => number;
  pop: (key: string) => void;
  empty: () => void;
  size: () => number;
};

/**
 * What a limiter needs from its Redis client. An `@upstash/redis` `Redis`, this package's own
 * `Redis`, or any object with these methods (ioredis adapters, test doubles) fits.
 */
export interface RatelimitRedis {
  evalsha<TArgs extends unknown[], TData = unknown>(sha1: string, keys: string[], args: TArgs): Promise<TData>;
  get<TData>(key: string): Promise<TData | null>;
  set<TData>(key: string, value: TData, opts?: any): Promise<unknown>;
}

/**
 * An ioredis `Redis` or `Cluster` (ratelimit-native addition): recognised by its shape and called
 * in its own convention, `evalsha(sha1, numKeys, ...keys, ...args)`.
 */
export interface IORedisClient {
  defineCommand(...args: any[]): unknown;
  evalsha(...args: any[]): Promise<unknown>;
  sendCommand(...args: any[]): unknown;
  readonly status: string;
}

/**
 * A node-redis v4/v5 client or cluster (`createClient`, `createCluster`; ratelimit-native
 * addition): recognised by its shape and called in its own convention,
 * `evalSha(sha1, { keys, arguments })`. Connect it (`await client.connect()`) yourself.
 */
export interface NodeRedisClient {
  evalSha(...args: any[]): Promise<unknown>;
  sendCommand(...args: any[]): unknown;
  zIncrBy(...args: any[]): Promise<unknown>;
}

/** What `redis` takes: an @upstash/redis-style client, ioredis, or node-redis. */
export type AnyRedisClient = RatelimitRedis | IORedisClient | NodeRedisClient;

/**
 * The client an `Algorithm` finds in its context: `@upstash/redis`' `Redis` when that package is
 * installed (as upstream types it, so custom algorithms can call `incr`, `hset`, `pipeline()`…),
 * otherwise the commands rate limiting uses. At run time it is the `redis` object the limiter
 * was given.
 */
export type ContextRedis = InstalledOr<UpstashRedisClient, RatelimitRedis & Pick<Redis, "eval">>;

/** `T`, or `Fallback` when `T` comes from a package that is not installed (then `T` is `any`, whose
 * keys include every string; a conditional on `any` itself would give `any`). */
type InstalledOr<T, Fallback> = "ratelimit-native: no such member" extends keyof T ? Fallback : T;

export type RegionContext = {
  redis: ContextRedis;
  cache?: EphemeralCache;
  dynamicLimits?: boolean;
  prefix: string;
};

/**
 * A rate-limiting algorithm. The built-in ones come from the static factories; you can also
 * write your own. Methods are called with the limiter's context and the prefixed identifier.
 */
export type Algorithm<TContext> = () => {
  limit(ctx: TContext, identifier: string, rate?: number, opts?: { cache?: EphemeralCache }): Promise<RatelimitResponse>;
  getRemaining(ctx: TContext, identifier: string): Promise<{ remaining: number; reset: number; limit: number }>;
  resetTokens(ctx: TContext, identifier: string): Promise<void>;
};

export type RatelimitConfig = {
  /** Where counters live: this package's `Redis`, an @upstash/redis client, ioredis, node-redis. */
  redis: AnyRedisClient;
  /** The algorithm, e.g. `Ratelimit.slidingWindow(10, "10 s")`. */
  limiter: Algorithm<RegionContext>;
  /** Key prefix (default `"@upstash/ratelimit"`, so keys are shared with the JS library). */
  prefix?: string;
  /**
   * Cache of blocked identifiers: a `Map` (shareable between limiters), `false` to disable, or
   * left out for one Map per instance.
   */
  ephemeralCache?: Map<string, number> | false;
  /** After this many ms, `limit()` answers `success: true, reason: "timeout"` (default 5000; ≤ 0 disables). */
  timeout?: number;
  analytics?: boolean;
  /** @deprecated Ignored, as upstream. */
  cacheScripts?: boolean;
  enableProtection?: boolean;
  denyListThreshold?: number;
  /**
   * Enables `setDynamicLimit` / `getDynamicLimit`: `true` for one global limit per prefix (as
   * upstream); `{ perIdentifier: true }` (ratelimit-native addition) also lets each identifier
   * have its own dynamic limit, which takes precedence over the global one (one more GET per call).
   */
  dynamicLimits?: boolean | { perIdentifier?: boolean };
  enableTelemetry?: boolean;
  /**
   * ratelimit-native addition. When the store times out (`timeout`) or fails, answer
   * `success: false` (`reason: "timeout"`; a failure also sets `error`) instead of admitting
   * the request (timeouts) or rejecting the Promise (errors). Default `false`, as upstream.
   */
  failClosed?: boolean;
};

/** Drop-in for `@upstash/ratelimit`'s `Ratelimit`. */
export declare class Ratelimit {
  constructor(config: RatelimitConfig);

  protected readonly limiter: Algorithm<RegionContext>;
  protected readonly ctx: RegionContext;
  protected readonly prefix: string;
  protected readonly timeout: number;
  protected readonly primaryRedis: ContextRedis;
  protected readonly analytics?: Analytics;
  protected readonly enableProtection: boolean;
  protected readonly denyListThreshold: number;
  protected readonly dynamicLimits: boolean;

  /** Counts a request for `identifier`; `req.rate` sets its cost. */
  limit: (identifier: string, req?: LimitOptions) => Promise<RatelimitResponse>;
  /** Waits until a request for `identifier` is allowed, or `timeout` ms have passed. */
  blockUntilReady: (identifier: string, timeout: number) => Promise<RatelimitResponse>;
  /** Forgets everything counted for `identifier`. */
  resetUsedTokens: (identifier: string) => Promise<void>;
  /** Reads the remaining budget without consuming any. */
  getRemaining: (identifier: string) => Promise<{ remaining: number; reset: number; limit: number }>;
  /**
   * Sets (or with `false` removes) the global dynamic limit of this prefix — or, with
   * `identifier` (needs `dynamicLimits: { perIdentifier: true }`), that identifier's own limit.
   */
  setDynamicLimit: (options: { limit: number | false; identifier?: string }) => Promise<void>;
  getDynamicLimit: (options?: { identifier?: string }) => Promise<{ dynamicLimit: number | null }>;

  /** `tokens` requests per aligned `window`. */
  static fixedWindow(tokens: number, window: Duration): Algorithm<RegionContext>;
  /** `tokens` requests per rolling `window` (weighted over the previous window). */
  static slidingWindow(tokens: number, window: Duration): Algorithm<RegionContext>;
  /** A bucket of `maxTokens`, refilled by `refillRate` every `interval`. */
  static tokenBucket(refillRate: number, interval: Duration, maxTokens: number): Algorithm<RegionContext>;
  /** Counts in the ephemeral cache and writes to Redis in the background (experimental upstream). */
  static cachedFixedWindow(tokens: number, window: Duration): Algorithm<RegionContext>;
}

export type RedisConfig = {
  /**
   * The Upstash REST URL (UPSTASH_REDIS_REST_URL), a local `ratelimit-native serve` URL, or a
   * `redis://[user][:password@]host[:port][/db]` URL to talk to a Redis server directly over TCP
   * (no token then; same scripts and keys, so both kinds of client can share one database), or
   * `rediss://…` for the same over TLS. With `cluster: true`: one node of a Redis Cluster, or a
   * list of them (`redis://` or `rediss://`).
   */
  url?: string | string[] | undefined;
  /**
   * `true`: `url` is a Redis Cluster. Its topology is asked of the given node(s), each command
   * goes to the master serving its key's slot (MOVED / ASK followed, failovers ridden out), and
   * limiters on it give one identifier's keys one slot with a hash tag: `prefix:{identifier}:…`
   * instead of upstream's `prefix:identifier:…`. Native engine only.
   */
  cluster?: boolean;
  /**
   * Redis Sentinel: the sentinels to ask where the master of group `name` is (asked again
   * whenever the master is lost or demoted by a failover). `password` / `username` / `db` are
   * the master's; `sentinelPassword` / `sentinelUsername` the sentinels' own, if they have one.
   * Also as a URL: `redis+sentinel://[:password@]host:port[,host:port…]/name[/db]`
   * (`rediss+sentinel://` for TLS to the master). Native engine only.
   */
  sentinels?: Array<{ host: string; port?: number } | string>;
  /** The master group the sentinels monitor (with `sentinels`). */
  name?: string;
  /** The master's password (with `sentinels`). */
  password?: string;
  username?: string;
  db?: number;
  sentinelPassword?: string;
  sentinelUsername?: string;
  /** The REST token (UPSTASH_REDIS_REST_TOKEN); not used with a redis:// URL. */
  token?: string | undefined;
  /**
   * TLS settings for https:// and rediss:// URLs. Certificates are verified against the
   * system's roots (for rediss://, `SSL_CERT_FILE` names another PEM file to trust); only
   * `rejectUnauthorized: false` (for a self-signed local endpoint) turns verification off.
   */
  tls?: { rejectUnauthorized?: boolean };
  [option: string]: unknown;
};

/**
 * An Upstash Redis REST client with `@upstash/redis`'s constructor shape, served natively
 * (concurrent calls batched into one request; on http:// sent on a keep-alive socket of Node's
 * event loop, on https:// from Rust), or with a redis:// URL a plain Redis client over
 * TCP (concurrent calls pipelined on one connection). Implements the commands rate limiting uses.
 * `url` never shows the password of a redis:// URL.
 */
export declare class Redis implements RatelimitRedis {
  constructor(config: RedisConfig);
  /** Reads UPSTASH_REDIS_REST_URL / UPSTASH_REDIS_REST_TOKEN, then KV_REST_API_URL / KV_REST_API_TOKEN, from `process.env`. */
  static fromEnv(config?: Omit<RedisConfig, "url" | "token">): Redis;
  /** The same from an env object, as on Cloudflare Workers: `Redis.fromEnv(env)` (like `@upstash/redis/cloudflare`). */
  static fromEnv(
    env: { UPSTASH_REDIS_REST_URL?: string; UPSTASH_REDIS_REST_TOKEN?: string; KV_REST_API_URL?: string; KV_REST_API_TOKEN?: string },
    config?: Omit<RedisConfig, "url" | "token">,
  ): Redis;
  /**
   * The embedded store: no server; limiter state lives in this process, shared by every limiter
   * and worker thread, with expired entries swept in the background. `maxKeys` caps live keys
   * process-wide (default 1,000,000; the last value set applies): when the store is full after
   * removing expired keys, calls that would add a new key reject with an error, while existing
   * keys keep working. State is lost when the process exits and is not shared between processes.
   */
  static memory(options?: { maxKeys?: number }): Redis;
  readonly url: string;
  evalsha<TArgs extends unknown[], TData = unknown>(sha1: string, keys: string[], args: TArgs): Promise<TData>;
  eval<TArgs extends unknown[], TData = unknown>(script: string, keys: string[], args: TArgs): Promise<TData>;
  get<TData>(key: string): Promise<TData | null>;
  set<TData>(key: string, value: TData, opts?: { ex?: number; px?: number; nx?: boolean; xx?: boolean }): Promise<"OK" | TData | null>;
  del(...keys: string[]): Promise<number>;
  zincrby<TData>(key: string, increment: number, member: TData): Promise<number>;
}

// --- Analytics (experimental upstream) ------------------------------------------------------

/** `success` of an analytics event: allowed, rate limited, or `"denied"` by the deny list. */
export type EventSuccess = boolean | "denied";

/** One analytics event, as `analytics: true` records it (geo fields spread in). */
export type AnalyticsEvent = Geo & {
  identifier: string;
  time: number;
  success: EventSuccess;
};

/** One hour of an aggregate: `{ time, [field]: { [value]: count } }` (as @upstash/core-analytics' `Aggregate`). */
export type Aggregate = { time: number } & { [field: string]: { [value: string]: number } };

/**
 * What `Analytics` needs from its client: `eval` for the queries, and `zincrby` for `record`
 * when the client has it (otherwise the ZINCRBY goes through `eval`).
 */
export interface AnalyticsRedis {
  eval<TArgs extends unknown[], TData = unknown>(script: string, keys: string[], args: TArgs): Promise<TData>;
  zincrby?<TData>(key: string, increment: number, member: TData): Promise<number>;
}

export type AnalyticsConfig = {
  redis: AnalyticsRedis | IORedisClient | NodeRedisClient;
  /** Key prefix (default `"@upstash/ratelimit"`); events live in `<prefix>:events:<hour start ms>`. */
  prefix?: string;
};

/**
 * Reads (and records) the hourly usage events a `Ratelimit` with `analytics: true` writes.
 * Same data and answers as `@upstash/ratelimit`'s `Analytics` (experimental upstream).
 */
export declare class Analytics {
  constructor(config: AnalyticsConfig);
  /** Vercel's `req.geo`, else Cloudflare's `req.cf`, else `{}`. */
  extractGeo(req: { geo?: Geo; cf?: Geo }): Geo;
  /** Counts one event in its hour (ZINCRBY; analytics keys never expire). */
  record(event: AnalyticsEvent): Promise<void>;
  /** Per-hour counts grouped by `filter`, from the current hour back to `cutoff` (at most 256 hours). */
  series<TFilter extends keyof Omit<AnalyticsEvent, "time">>(filter: TFilter, cutoff: number): Promise<Aggregate[]>;
  /** Per identifier, allowed (including `"denied"`) and blocked counts since `cutoff` (at most 256 hours). */
  getUsage(cutoff?: number): Promise<Record<string, { success: number; blocked: number }>>;
  /** Per-hour counts grouped by `groupby` for the last `timestampCount` hours, newest first. */
  getUsageOverTime<TFilter extends keyof Omit<AnalyticsEvent, "time">>(timestampCount: number, groupby: TFilter): Promise<Aggregate[]>;
  /** The `getTop` (default 5) most frequent identifiers per outcome, looking at most at `checkAtMost` (default `getTop * 5`) entries. */
  getMostAllowedBlocked(
    timestampCount: number,
    getTop?: number,
    checkAtMost?: number,
  ): Promise<{
    allowed: { identifier: string; count: number }[];
    ratelimited: { identifier: string; count: number }[];
    denied: { identifier: string; count: number }[];
  }>;
}

// --- IP deny list (enableProtection) -----------------------------------------------------------

/** The MULTI builder `IpDenyList` drives (an `@upstash/redis` `multi()` fits). */
export interface IpDenyListTransaction {
  sdiffstore(destination: string, ...keys: string[]): unknown;
  del(...keys: string[]): unknown;
  sadd(key: string, member: string, ...members: string[]): unknown;
  sunionstore(destination: string, key: string, ...keys: string[]): unknown;
  set(key: string, value: string, opts?: { px: number }): unknown;
  exec(): Promise<unknown[]>;
}

/** A client with `multi()` (used when present, as upstream) or `eval` (one atomic script instead). */
export type IpDenyListRedis =
  | { multi(): IpDenyListTransaction }
  | { eval<TArgs extends unknown[], TData = unknown>(script: string, keys: string[], args: TArgs): Promise<TData> };

/** Maintenance of the daily IP deny list that `enableProtection` consults. */
export declare namespace IpDenyList {
  /** Thrown (as a rejection) for a threshold outside 1..8. */
  class ThresholdError extends Error {
    constructor(threshold: number);
  }
  /**
   * Downloads the ipsum list for `threshold` (1..8) and makes it the prefix's IP deny list,
   * valid for `ttl` ms (default: until the next 02:00 UTC). Resolves to the transaction's replies.
   */
  const updateIpDenyList: (redis: IpDenyListRedis | IORedisClient | NodeRedisClient, prefix: string, threshold: number, ttl?: number) => Promise<unknown[]>;
  /** Removes the downloaded IPs and marks the list `"disabled"` (never refreshed again). */
  const disableIpDenyList: (redis: IpDenyListRedis | IORedisClient | NodeRedisClient, prefix: string) => Promise<unknown[]>;
}

// --- Multi-region ------------------------------------------------------------------------------

/**
 * What a multi-region limiter needs from each region's client. Our `Redis` and `@upstash/redis`
 * instances run natively; any other object is driven through these methods (`hset` writes the
 * request ids a region missed, in `pending`).
 */
export interface MultiRegionRedis extends RatelimitRedis {
  hset?<TData>(key: string, kv: { [field: string]: TData }): Promise<number>;
}

/** The context multi-region algorithms get: one entry per region (index 0 is the primary). */
export type MultiRegionContext = {
  regionContexts: { redis: ContextRedis; prefix: string }[];
  cache?: EphemeralCache;
};

export type MultiRegionRatelimitConfig = {
  /** One client per region; `redis[0]` is the primary (dynamic limits, analytics). */
  redis: (MultiRegionRedis | IORedisClient | NodeRedisClient)[];
  /** The algorithm, e.g. `MultiRegionRatelimit.slidingWindow(10, "10 s")`. */
  limiter: Algorithm<MultiRegionContext>;
  /** Key prefix (default `"@upstash/ratelimit"`). */
  prefix?: string;
  /**
   * Cache of blocked identifiers: a `Map`, `false` to disable, or left out for one Map per
   * instance. (Honoured here; @upstash/ratelimit ignores it for multi-region limiters.)
   */
  ephemeralCache?: Map<string, number> | false;
  /** After this many ms, `limit()` answers `success: true, reason: "timeout"` (default 5000; ≤ 0 disables). */
  timeout?: number;
  /** Records usage events on the primary region. */
  analytics?: boolean;
  /** @deprecated Ignored, as upstream. */
  cacheScripts?: boolean;
  /** Enables `setDynamicLimit` / `getDynamicLimit` on the primary region; the algorithms ignore it (a warning says so). */
  dynamicLimits?: boolean;
  enableTelemetry?: boolean;
};

/**
 * Drop-in for `@upstash/ratelimit`'s `MultiRegionRatelimit`: every request is recorded in every
 * region, the first region to answer decides, and `pending` copies missing requests into the
 * other regions (await it on serverless runtimes).
 */
export declare class MultiRegionRatelimit {
  constructor(config: MultiRegionRatelimitConfig);

  protected readonly limiter: Algorithm<MultiRegionContext>;
  protected readonly ctx: MultiRegionContext;
  protected readonly prefix: string;
  protected readonly timeout: number;
  protected readonly primaryRedis: ContextRedis;
  protected readonly analytics?: Analytics;
  protected readonly enableProtection: boolean;
  protected readonly denyListThreshold: number;
  protected readonly dynamicLimits: boolean;

  /** Counts a request for `identifier` in every region; `req.rate` sets its cost. */
  limit: (identifier: string, req?: LimitOptions) => Promise<RatelimitResponse>;
  /** Waits until a request for `identifier` is allowed, or `timeout` ms have passed. */
  blockUntilReady: (identifier: string, timeout: number) => Promise<RatelimitResponse>;
  /** Forgets everything counted for `identifier` in every region (resolves when all are done). */
  resetUsedTokens: (identifier: string) => Promise<void>;
  /** Reads the remaining budget (from the first region to answer) without consuming any. */
  getRemaining: (identifier: string) => Promise<{ remaining: number; reset: number; limit: number }>;
  /** Sets (or with `false` removes) the global dynamic limit on the primary region. */
  setDynamicLimit: (options: { limit: number | false }) => Promise<void>;
  getDynamicLimit: () => Promise<{ dynamicLimit: number | null }>;

  /** `tokens` requests per aligned `window`; `remaining` goes negative once over the limit (as upstream). */
  static fixedWindow(tokens: number, window: Duration): Algorithm<MultiRegionContext>;
  /** `tokens` requests per rolling `window` (weighted over the previous window). */
  static slidingWindow(tokens: number, window: Duration): Algorithm<MultiRegionContext>;
}

// --- Errors ------------------------------------------------------------------------------------

/**
 * What a store call rejects with when Redis or the REST server refused it, as `@upstash/redis`
 * does: `name` is `"UpstashError"` and a Redis error's message reads `Command failed: <error>`
 * (on the REST and the TCP paths alike). Failures to reach the store are plain `Error`s.
 * `instanceof UpstashError` also holds for the UpstashErrors of `@upstash/redis` itself.
 */
export declare class UpstashError extends Error {
  constructor(message: string, options?: { cause?: unknown });
  name: "UpstashError";
}

// --- Engine ------------------------------------------------------------------------------------

/**
 * Which engine runs the limiters. `"native"`: the Node addon (Node.js, Bun, Deno; Next.js with
 * `serverExternalPackages`). `"wasm"`: the WebAssembly build of the same core, chosen by the
 * `edge-light` and `workerd` export conditions (Edge runtimes, Cloudflare Workers), or on Node.js
 * where the addon cannot be loaded (a bundle, a platform without a prebuilt binary; one
 * console.warn says why) or with `RATELIMIT_NATIVE_ENGINE=wasm`. On the WebAssembly engine
 * requests go through `fetch`, `redis://` URLs are refused and `Redis.memory()` is per isolate.
 */
export declare const engine: "native" | "wasm";
