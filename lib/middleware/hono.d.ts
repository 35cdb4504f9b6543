// ratelimit-native/hono: Hono middleware. Hand-written.
import type { Context, MiddlewareHandler, Next } from "hono";
import type { RatelimitResponse } from "ratelimit-native";
import type { RateLimitDecision, RateLimitOptions } from "./options";

export type { Limiter, RateLimitDecision, RateLimitOptions } from "./options";

declare module "hono" {
  interface ContextVariableMap {
    /** The limit() result of this request (set by ratelimit-native/hono's rateLimiter). */
    rateLimit: RatelimitResponse;
  }
}

export interface HonoRateLimitOptions extends RateLimitOptions<Context> {
  /** The 429 response. Default: JSON `{ error, retryAfter }`. */
  onLimited?: (c: Context, decision: RateLimitDecision) => Response | Promise<Response>;
  /** The 403 response for a deny-list hit. Default: JSON `{ error, reason: "denyList" }`. */
  onDenied?: (c: Context, decision: RateLimitDecision) => Response | Promise<Response>;
  /** What a failed limit() does. Default: the error goes to Hono's error handler. */
  onError?: (c: Context, error: unknown, next: Next) => Response | void | Promise<Response | void>;
}

export declare function rateLimiter(options: HonoRateLimitOptions): MiddlewareHandler;
