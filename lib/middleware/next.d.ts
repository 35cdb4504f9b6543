// ratelimit-native/next: Next.js proxy.ts / middleware.ts and route handlers. Hand-written.
import type { NextFetchEvent, NextRequest } from "next/server";
import type { RatelimitResponse } from "ratelimit-native";
import type { RateLimitDecision, RateLimitOptions } from "./options";

export type { Limiter, RateLimitDecision, RateLimitOptions } from "./options";

export interface NextRateLimitOptions extends RateLimitOptions<NextRequest> {
  /** The 429 response. Default: JSON `{ error, retryAfter }` with the headers. */
  onLimited?: (request: NextRequest, decision: RateLimitDecision) => Response | Promise<Response>;
  /** The 403 response for a deny-list hit. Default: JSON `{ error, reason: "denyList" }`. */
  onDenied?: (request: NextRequest, decision: RateLimitDecision) => Response | Promise<Response>;
  /** The answer when limit() fails. Default: the error is thrown. */
  onError?: (request: NextRequest, error: unknown) => Response | Promise<Response>;
}

/** For proxy.ts / middleware.ts: the refusal, or NextResponse.next() with the rate-limit headers. */
export declare function rateLimitProxy(options: NextRateLimitOptions): (request: NextRequest, event?: NextFetchEvent) => Promise<Response>;

/** Wraps a route handler: it runs when allowed (its response gets the headers), with the limit() result third. */
export declare function withRateLimit<Ctx = unknown>(
  handler: (request: NextRequest, context: Ctx, rateLimit: RatelimitResponse | undefined) => Response | Promise<Response>,
  options: NextRateLimitOptions,
): (request: NextRequest, context: Ctx) => Promise<Response>;
