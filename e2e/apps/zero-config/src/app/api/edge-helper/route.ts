// An Edge route handler wrapped by ratelimit-native/next's withRateLimit: 10 per minute per IP
// (the X-Forwarded-For entry the platform appended), its pending analytics write handed to after().
import { Ratelimit, Redis, engine } from "ratelimit-native";
import { withRateLimit } from "ratelimit-native/next";

export const runtime = "edge";

const ratelimit = new Ratelimit({
  redis: Redis.fromEnv(),
  limiter: Ratelimit.fixedWindow(10, "60 s"),
  analytics: true,
  prefix: "zero-config:edge-helper",
});

export const GET = withRateLimit(() => Response.json({ ok: true }, { headers: { "X-RateLimit-Engine": engine } }), {
  limiter: ratelimit,
  onLimited: (_request, decision) =>
    Response.json({ error: "Too many requests" }, { status: 429, headers: [...decision.headers, ["X-RateLimit-Engine", engine]] }),
});
