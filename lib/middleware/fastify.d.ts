// ratelimit-native/fastify: a Fastify plugin (an onRequest hook). Hand-written.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import type { RatelimitResponse } from "ratelimit-native";
import type { RateLimitDecision, RateLimitOptions } from "./options";

export type { Limiter, RateLimitDecision, RateLimitOptions } from "./options";

declare module "fastify" {
  interface FastifyRequest {
    /** This request's limit() result (set by ratelimit-native/fastify). */
    rateLimit: RatelimitResponse | null;
  }
}

export interface FastifyRateLimitOptions extends RateLimitOptions<FastifyRequest> {
  /** Sends the 429. Default: JSON `{ error, retryAfter }`. */
  onLimited?: (request: FastifyRequest, reply: FastifyReply, decision: RateLimitDecision) => unknown;
  /** Sends the 403 for a deny-list hit. Default: JSON `{ error, reason: "denyList" }`. */
  onDenied?: (request: FastifyRequest, reply: FastifyReply, decision: RateLimitDecision) => unknown;
  /** What a failed limit() does. Default: the error goes to Fastify's error handler. */
  onError?: (error: unknown, request: FastifyRequest, reply: FastifyReply) => unknown;
}

export declare const rateLimit: FastifyPluginAsync<FastifyRateLimitOptions>;
export default rateLimit;
