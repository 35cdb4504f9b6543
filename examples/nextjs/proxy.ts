// Next.js 16 "proxy" (formerly middleware), rate limited by ratelimit-native/next: 10 requests
// per sliding minute per client IP, with X-RateLimit-* and the IETF RateLimit headers, 429 and
// Retry-After when over, `pending` handed to the platform's waitUntil. On Next.js 15.5 name this
// file middleware.ts and export it as `middleware` (see README.md).
import { Ratelimit } from "ratelimit-native"; // was: import { Ratelimit } from "@upstash/ratelimit"
import { rateLimitProxy } from "ratelimit-native/next";
import { lazyRatelimit } from "./lib/ratelimit";

const ratelimit = lazyRatelimit(
  (redis) =>
    new Ratelimit({
      redis,
      limiter: Ratelimit.slidingWindow(10, "1 m"),
      analytics: true,
      prefix: "ratelimit-native-example:proxy",
    }),
);

// The client is the address the platform (Vercel, or the proxy in front of `next start`)
// appended to X-Forwarded-For; a forged leftmost entry is never taken.
export const proxy = rateLimitProxy({
  limiter: () => ratelimit(),
  onLimited: (_request, decision) =>
    Response.json({ error: "Too many requests", limitedBy: "proxy" }, { status: 429, headers: decision.headers }),
});

export const config = {
  // The home page and every API route, except the two routes that apply their own limits (a
  // request to them would otherwise be counted twice, by two different policies).
  matcher: ["/", "/api/((?!hello$|route-handler$).*)"],
};
