// A Pages Router API route with its own limiter: 10 requests per fixed 60-second window per IP.
import type { NextApiRequest, NextApiResponse } from "next";
import { Ratelimit } from "ratelimit-native";
import { clientIp, lazyRatelimit, rateLimitHeaders } from "../../lib/ratelimit";

const ratelimit = lazyRatelimit(
  (redis) =>
    new Ratelimit({
      redis,
      limiter: Ratelimit.fixedWindow(10, "60 s"),
      prefix: "ratelimit-native-example:hello",
    }),
);

export default async function handler(req: NextApiRequest, res: NextApiResponse) {
  const ip = clientIp((name) => {
    const value = req.headers[name];
    return Array.isArray(value) ? value[0] : value;
  }, req.socket.remoteAddress);
  const result = await ratelimit().limit(ip);
  await result.pending;

  for (const [name, value] of Object.entries(rateLimitHeaders(result, !result.success))) res.setHeader(name, value);
  if (!result.success) {
    res.status(429).json({ error: "Too many requests", limitedBy: "pages/api/hello" });
    return;
  }
  res.status(200).json({ hello: "world", remaining: result.remaining });
}
