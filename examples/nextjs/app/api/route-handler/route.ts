// An App Router route handler with its own limiter: 10 requests per rolling 60 seconds per IP,
// wrapped by ratelimit-native/next's withRateLimit (headers on every answer, 429 when over,
// `pending` handed to after()).
import { Ratelimit } from "ratelimit-native";
import { withRateLimit } from "ratelimit-native/next";
import { lazyRatelimit } from "../../../lib/ratelimit";

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

export const GET = withRateLimit((_request, _context, rateLimit) => Response.json({ ok: true, remaining: rateLimit?.remaining }), {
  limiter: () => ratelimit(),
  onLimited: (_request, decision) =>
    Response.json({ error: "Too many requests", limitedBy: "app/api/route-handler" }, { status: 429, headers: decision.headers }),
});
