// The framework subpaths as a user's TypeScript project uses them (compiled by types.test.mjs).
import { createServer } from "node:http";
import { Hono } from "hono";
import Fastify from "fastify";
import { Ratelimit, Redis } from "ratelimit-native";
import { rateLimiter } from "ratelimit-native/hono";
import { rateLimit as expressRateLimit, type RateLimitedRequest } from "ratelimit-native/express";
import { rateLimit as fastifyRateLimit } from "ratelimit-native/fastify";
import { instrumentRatelimit, type DecisionMessage } from "ratelimit-native/otel";

const limiter = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.slidingWindow(10, "10 s") });
const paid = new Ratelimit({ redis: Redis.memory(), limiter: Ratelimit.tokenBucket(5, "1 s", 50) });

const app = new Hono();
app.use(
  "/api/*",
  rateLimiter({
    limiter: (c) => (c.req.header("x-plan") === "paid" ? paid : limiter),
    identify: (c, { clientAddress }) => c.req.header("x-api-key") ?? clientAddress ?? "anonymous",
    trustProxy: ["10.0.0.0/8"],
    headers: "both",
    onLimited: (c, decision) => c.json({ wait: decision.retryAfter }, 429),
  }),
);
app.get("/api/x", (c) => {
  const remaining: number = c.get("rateLimit").remaining;
  return c.json({ remaining });
});

const middleware = expressRateLimit({ limiter, trustProxy: 1, rate: (req) => (req.method === "POST" ? 2 : 1) });
createServer((req, res) => {
  middleware(req, res, (error) => {
    if (error) throw error;
    const result = (req as RateLimitedRequest).rateLimit;
    res.end(String(result?.remaining));
  });
});

const fastify = Fastify();
void fastify.register(fastifyRateLimit, { limiter, ipHeader: "fly-client-ip", skip: (request) => request.url === "/health" });
fastify.get("/x", async (request) => ({ remaining: request.rateLimit?.remaining }));

const stop: () => void = instrumentRatelimit({ spans: true });
stop();
const seen: DecisionMessage["outcome"][] = ["allowed", "limited", "denied", "timeout", "error"];
void seen;

// ioredis and node-redis clients as `redis:` (their own types, no cast).
import IORedis from "ioredis";
import { createClient } from "redis";
new Ratelimit({ redis: new IORedis(), limiter: Ratelimit.fixedWindow(1, "1 s") });
new Ratelimit({ redis: new IORedis.Cluster([{ host: "127.0.0.1", port: 7000 }]), limiter: Ratelimit.fixedWindow(1, "1 s") });
new Ratelimit({ redis: createClient(), limiter: Ratelimit.slidingWindow(1, "1 s") });
