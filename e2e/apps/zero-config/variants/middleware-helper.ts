// src/middleware.ts (no `runtime` export, no next.config: the Edge runtime) written with
// ratelimit-native/next's rateLimitProxy: headers, 429 with Retry-After, pending handed to
// event.waitUntil, the client taken from the X-Forwarded-For entry the platform appended.
import type { NextFetchEvent, NextRequest } from "next/server";
import { Ratelimit, Redis, engine } from "ratelimit-native";
import { rateLimitProxy } from "ratelimit-native/next";

const proxy = rateLimitProxy({
  limiter: new Ratelimit({
    redis: Redis.fromEnv(),
    limiter: Ratelimit.slidingWindow(10, "60 s"),
    analytics: true,
    prefix: "zero-config:middleware-helper",
  }),
  onLimited: (_request, decision) => Response.json({ error: "Too many requests" }, { status: 429, headers: decision.headers }),
});

export default async function middleware(request: NextRequest, event: NextFetchEvent) {
  const response = await proxy(request, event);
  response.headers.set("X-RateLimit-Engine", engine);
  return response;
}

export const config = { matcher: "/api/hello" };
