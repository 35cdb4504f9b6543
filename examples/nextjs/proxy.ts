// Next.js 16 "proxy" (formerly middleware). It always runs on the Node.js runtime, which is what a
// native addon needs. On Next.js 15.5 name this file middleware.ts, rename the function to
// `middleware` and add `runtime: "nodejs"` to `config` (see README.md).
import { NextResponse, type NextFetchEvent, type NextRequest } from "next/server";
import { Ratelimit } from "ratelimit-native"; // was: import { Ratelimit } from "@upstash/ratelimit"
import { clientIp, lazyRatelimit, rateLimitHeaders } from "./lib/ratelimit";

const ratelimit = lazyRatelimit(
  (redis) =>
    new Ratelimit({
      redis,
      limiter: Ratelimit.slidingWindow(10, "1 m"),
      // Accepted for compatibility with @upstash/ratelimit; ratelimit-native does not record
      // analytics yet.
      analytics: true,
      prefix: "ratelimit-native-example:proxy",
    }),
);

export async function proxy(request: NextRequest, event: NextFetchEvent) {
  const ip = clientIp((name) => request.headers.get(name));
  const result = await ratelimit().limit(ip);
  // Background work of the limiter (none for slidingWindow today); let it finish after responding.
  event.waitUntil(result.pending);

  if (!result.success) {
    return NextResponse.json(
      { error: "Too many requests", limitedBy: "proxy" },
      { status: 429, headers: rateLimitHeaders(result, true) },
    );
  }
  const response = NextResponse.next();
  for (const [name, value] of Object.entries(rateLimitHeaders(result))) response.headers.set(name, value);
  return response;
}

export const config = {
  // The home page and every API route, except the two routes that apply their own limits (a
  // request to them would otherwise be counted twice, by two different policies).
  matcher: ["/", "/api/((?!hello$|route-handler$).*)"],
};
