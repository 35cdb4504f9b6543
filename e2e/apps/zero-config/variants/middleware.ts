// src/middleware.ts as Upstash's Next.js tutorial writes it (no `runtime` export, no
// next.config: Next.js runs it on the Edge runtime), with only the import line changed.
import { NextResponse } from "next/server";
import type { NextFetchEvent, NextRequest } from "next/server";
import { Ratelimit, engine } from "ratelimit-native"; // was: "@upstash/ratelimit"
import { Redis } from "@upstash/redis";

const ratelimit = new Ratelimit({
  redis: Redis.fromEnv(),
  limiter: Ratelimit.slidingWindow(10, "60 s"),
  analytics: true,
  prefix: "zero-config:middleware",
});

export default async function middleware(request: NextRequest, event: NextFetchEvent) {
  const ip = request.headers.get("x-forwarded-for") ?? "127.0.0.1";
  const { success, pending, limit, reset, remaining } = await ratelimit.limit(ip);
  event.waitUntil(pending);
  const headers = {
    "X-RateLimit-Limit": limit.toString(),
    "X-RateLimit-Remaining": remaining.toString(),
    "X-RateLimit-Reset": Math.ceil(reset / 1000).toString(),
    "X-RateLimit-Engine": engine,
  };
  if (!success) {
    const retryAfter = Math.max(1, Math.ceil((reset - Date.now()) / 1000)).toString();
    return NextResponse.json({ error: "Too many requests" }, { status: 429, headers: { ...headers, "Retry-After": retryAfter } });
  }
  const res = NextResponse.next();
  for (const [name, value] of Object.entries(headers)) res.headers.set(name, value);
  return res;
}

export const config = { matcher: "/api/hello" };
