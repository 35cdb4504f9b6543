// Shared helpers for the rate-limited entry points of this example.
//
// The Redis client is created on first use, not at import time: `next build` loads route modules
// to collect page data, and it should not need UPSTASH_REDIS_REST_URL / _TOKEN to do so.
import { Ratelimit, Redis } from "ratelimit-native";

let redis: Redis | undefined;

/**
 * One REST client per server process. `Redis.fromEnv()` reads UPSTASH_REDIS_REST_URL and
 * UPSTASH_REDIS_REST_TOKEN (then KV_REST_API_URL / KV_REST_API_TOKEN), exactly like
 * `@upstash/redis`. Point them at Upstash, or at a local `npx ratelimit-native serve`.
 */
export function getRedis(): Redis {
  return (redis ??= Redis.fromEnv());
}

/** Builds a limiter on first call and returns the same instance afterwards. */
export function lazyRatelimit(create: (redis: Redis) => Ratelimit): () => Ratelimit {
  let instance: Ratelimit | undefined;
  return () => (instance ??= create(getRedis()));
}

/**
 * The client's IP for the pages/api route (proxy.ts and the route handler get it from
 * ratelimit-native/next): the entry the nearest proxy (Vercel, your load balancer) appended to
 * X-Forwarded-For, i.e. the rightmost one; the entries left of it were written by the client and
 * can be forged. Without the header, the socket address.
 */
export function clientIp(
  header: (name: string) => string | null | undefined,
  socketAddress?: string | null,
): string {
  const forwarded = header("x-forwarded-for")?.split(",").at(-1)?.trim();
  return forwarded || socketAddress || "unknown";
}

type Result = { limit: number; remaining: number; reset: number };

/**
 * The usual rate-limit response headers. X-RateLimit-Reset is the Unix time in seconds at which
 * the window resets (ratelimit-native's `reset` is in milliseconds); Retry-After (only on a 429)
 * is the number of seconds to wait.
 */
export function rateLimitHeaders({ limit, remaining, reset }: Result, denied = false): Record<string, string> {
  const headers: Record<string, string> = {
    "X-RateLimit-Limit": String(limit),
    "X-RateLimit-Remaining": String(Math.max(0, remaining)),
    "X-RateLimit-Reset": String(Math.ceil(reset / 1000)),
  };
  if (denied) headers["Retry-After"] = String(Math.max(1, Math.ceil((reset - Date.now()) / 1000)));
  return headers;
}
