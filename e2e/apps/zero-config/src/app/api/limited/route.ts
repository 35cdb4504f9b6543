// An App Router route handler that limits by itself (no next.config): 10 per minute per IP.
import { Ratelimit, Redis, engine } from "ratelimit-native";

const ratelimit = new Ratelimit({
  redis: Redis.fromEnv(),
  limiter: Ratelimit.fixedWindow(10, "60 s"),
  analytics: true,
  prefix: "zero-config:route",
});

export async function GET(request: Request) {
  const ip = request.headers.get("x-forwarded-for") ?? "127.0.0.1";
  const { success, limit, remaining, reset, pending } = await ratelimit.limit(ip);
  await pending;
  const headers = {
    "X-RateLimit-Limit": String(limit),
    "X-RateLimit-Remaining": String(remaining),
    "X-RateLimit-Reset": String(Math.ceil(reset / 1000)),
    "X-RateLimit-Engine": engine,
  };
  if (!success) {
    const retryAfter = String(Math.max(1, Math.ceil((reset - Date.now()) / 1000)));
    return Response.json({ error: "Too many requests" }, { status: 429, headers: { ...headers, "Retry-After": retryAfter } });
  }
  return Response.json({ ok: true }, { headers });
}
