// An App Router route handler with its own limiter: 10 requests per rolling 60 seconds per IP.
import { after, type NextRequest } from "next/server";
import { Ratelimit } from "ratelimit-native";
import { clientIp, lazyRatelimit, rateLimitHeaders } from "../../../lib/ratelimit";

// Rate limiting is per request: never prerender or cache this route.
export const dynamic = "force-dynamic";

const ratelimit = lazyRatelimit(
  (redis) =>
    new Ratelimit({
      redis,
      limiter: Ratelimit.slidingWindow(10, "60 s"),
      prefix: "ratelimit-native-example:route-handler",
    }),
);

export async function GET(request: NextRequest) {
  const ip = clientIp((name) => request.headers.get(name));
  const result = await ratelimit().limit(ip);
  after(() => result.pending);

  if (!result.success) {
    return Response.json(
      { error: "Too many requests", limitedBy: "app/api/route-handler" },
      { status: 429, headers: rateLimitHeaders(result, true) },
    );
  }
  return Response.json({ ok: true, remaining: result.remaining }, { headers: rateLimitHeaders(result) });
}
