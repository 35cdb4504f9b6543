// ratelimit-native/express: Connect-style middleware (Express, NestJS on Express). Hand-written.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { RatelimitResponse } from "ratelimit-native";
import type { RateLimitDecision, RateLimitOptions } from "./options";

export type { Limiter, RateLimitDecision, RateLimitOptions } from "./options";

/** The request as the middleware leaves it: `rateLimit` holds this request's limit() result. */
export type RateLimitedRequest = IncomingMessage & { rateLimit?: RatelimitResponse };
type NextFunction = (error?: unknown) => void;

export interface ExpressRateLimitOptions<Req extends IncomingMessage = IncomingMessage, Res extends ServerResponse = ServerResponse>
  extends RateLimitOptions<Req> {
  /** Sends the 429. Default: JSON `{ error, retryAfter }`. */
  onLimited?: (req: Req, res: Res, next: NextFunction, decision: RateLimitDecision) => void;
  /** Sends the 403 for a deny-list hit. Default: JSON `{ error, reason: "denyList" }`. */
  onDenied?: (req: Req, res: Res, next: NextFunction, decision: RateLimitDecision) => void;
  /** What a failed limit() does. Default: `next(error)`. */
  onError?: (error: unknown, req: Req, res: Res, next: NextFunction) => void;
}

export declare function rateLimit<Req extends IncomingMessage = IncomingMessage, Res extends ServerResponse = ServerResponse>(
  options: ExpressRateLimitOptions<Req, Res>,
): (req: Req, res: Res, next: NextFunction) => void;
