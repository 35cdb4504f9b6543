// Options and decisions shared by every framework adapter of ratelimit-native
// (ratelimit-native/hono, /express, /fastify, /next). Hand-written.
import type { RatelimitResponse } from "ratelimit-native";

/** What limits: a `Ratelimit` (or a `MultiRegionRatelimit`), or anything with its `limit()`. */
export interface Limiter {
  limit(identifier: string, req?: { rate?: number; ip?: string; userAgent?: string }): Promise<RatelimitResponse>;
}

/** The outcome of one request: headers to send and, for a refusal, why. */
export interface RateLimitDecision {
  /** "allow": the request goes on (also a store timeout answered open); "limit": 429; "deny": 403 (deny list). */
  action: "allow" | "limit" | "deny";
  result: RatelimitResponse;
  identifier: string;
  /** The rate-limit headers (and Retry-After on a 429), already set on the response. */
  headers: [name: string, value: string][];
  /** Seconds, for a 429. */
  retryAfter?: number;
}

/** Options every adapter takes; `Req` is what the framework calls a request (or context). */
export interface RateLimitOptions<Req> {
  /** The limiter, or a function of the request choosing one (tiers: by API key, by plan…). */
  limiter: Limiter | ((request: Req) => Limiter | Promise<Limiter>);
  /**
   * Who is counted. Default: the client address (see `trustProxy`), or "unknown" when there is
   * none. `info.clientAddress` is worked out only for a function that declares the second
   * parameter (reading the headers it needs costs a little on every request).
   */
  identify?: (request: Req, info: { clientAddress: string | undefined }) => string | Promise<string>;
  /**
   * Proxies in front of the app that append to X-Forwarded-For: how many, or their addresses /
   * CIDR ranges. Default: none where there is a socket (the peer is the client); 1 in Next.js
   * (the platform's entry). The leftmost X-Forwarded-For entry is never trusted by default.
   */
  trustProxy?: false | number | string[];
  /** A header the platform sets to the client address and overwrites ("cf-connecting-ip", "x-real-ip", "fly-client-ip", "true-client-ip"). Opt-in. */
  ipHeader?: string;
  /** "legacy" X-RateLimit-*, "draft" IETF RateLimit + RateLimit-Policy, "both" (default), or false. */
  headers?: "legacy" | "draft" | "both" | false;
  /** The policy name in RateLimit / RateLimit-Policy. Default "default". */
  policy?: string | ((request: Req, limiter: Limiter) => string | Promise<string>);
  /** Cost of this request (default 1). */
  rate?: number | ((request: Req) => number | Promise<number>);
  /** True: the request is not counted. */
  skip?: (request: Req) => boolean | Promise<boolean>;
  /** Where `pending` (analytics, multi-region sync) goes; default: the platform's own waitUntil where there is one (Workers' executionCtx, Next.js event.waitUntil / after(), a Vercel function's request context). */
  waitUntil?: (promise: Promise<unknown>) => void;
}
