// Compile-only test (tsc --noEmit, strict): code written for @upstash/ratelimit 2.2.0 compiles
// against ratelimit-native unchanged, and our results can flow into code typed with upstream's
// types. A failing assignment here is a type-level incompatibility.

import * as Up from "@upstash/ratelimit";
import { Redis as UpstashRedis } from "@upstash/redis";
import * as Ours from "../../index";

declare const upstashRedis: UpstashRedis;

// --- Upstream configs and types are accepted by ours -------------------------------------
declare const upConfig: Up.RatelimitConfig;
const ourConfig: Ours.RatelimitConfig = upConfig;
void ourConfig;

const upDuration: Up.Duration = "10 s";
const ourDuration: Ours.Duration = upDuration;
void ourDuration;

declare const upAlgorithm: Up.Algorithm<Parameters<ReturnType<Up.Algorithm<any>>["limit"]>[0]>;
// An upstream algorithm (a custom Algorithm, to us) plugs into our limiter.
new Ours.Ratelimit({ redis: upstashRedis, limiter: Up.Ratelimit.fixedWindow(10, "10 s") });
new Ours.Ratelimit({ redis: upstashRedis, limiter: upAlgorithm });

// The whole upstream README example compiles with only the import changed.
const ratelimit = new Ours.Ratelimit({
  redis: upstashRedis,
  limiter: Ours.Ratelimit.slidingWindow(10, "10 s"),
  analytics: true,
  prefix: "@upstash/ratelimit",
  ephemeralCache: new Map<string, number>(),
  timeout: 1000,
  enableProtection: true,
  denyListThreshold: 6,
  dynamicLimits: true,
  enableTelemetry: false,
  cacheScripts: true,
});
new Ours.Ratelimit({ redis: upstashRedis, limiter: Ours.Ratelimit.tokenBucket(5, "10 s", 10), ephemeralCache: false });
new Ours.Ratelimit({ redis: upstashRedis, limiter: Ours.Ratelimit.cachedFixedWindow(5, "1 m") });
new Ours.Ratelimit({ redis: Ours.Redis.fromEnv(), limiter: Ours.Ratelimit.fixedWindow(5, "1m") });
new Ours.Ratelimit({ redis: Ours.Redis.memory(), limiter: Ours.Ratelimit.fixedWindow(5, "1m") });
new Ours.Ratelimit({ redis: Ours.Redis.memory({ maxKeys: 10_000 }), limiter: Ours.Ratelimit.slidingWindow(5, "1m") });
new Ours.Ratelimit({ redis: new Ours.Redis({ url: "http://127.0.0.1:8079", token: "t" }), limiter: Ours.Ratelimit.fixedWindow(5, "1.5 h") });

// Our Redis fits where upstream's config wants a client.
const upAcceptsOurRedis: Up.RatelimitConfig["redis"] = Ours.Redis.fromEnv();
void upAcceptsOurRedis;

// --- Our results flow into upstream-typed code ----------------------------------------------
type UpLimitResponse = Awaited<ReturnType<Up.Ratelimit["limit"]>>;
type UpRemaining = Awaited<ReturnType<Up.Ratelimit["getRemaining"]>>;

async function results() {
  const res: UpLimitResponse = await ratelimit.limit("id", { rate: 2, ip: "1.2.3.4", geo: { country: "DE" } });
  const remaining: UpRemaining = await ratelimit.getRemaining("id");
  const blocked: UpLimitResponse = await ratelimit.blockUntilReady("id", 1000);
  const reset: void = await ratelimit.resetUsedTokens("id");
  const dyn: { dynamicLimit: number | null } = await ratelimit.getDynamicLimit();
  await ratelimit.setDynamicLimit({ limit: false });
  void [res, remaining, blocked, reset, dyn];
}
void results;

const upLimit: Up.Ratelimit["limit"] = ratelimit.limit;
const upGetRemaining: Up.Ratelimit["getRemaining"] = ratelimit.getRemaining;
const upReset: Up.Ratelimit["resetUsedTokens"] = ratelimit.resetUsedTokens;
const upBlock: Up.Ratelimit["blockUntilReady"] = ratelimit.blockUntilReady;
const upSetDyn: Up.Ratelimit["setDynamicLimit"] = ratelimit.setDynamicLimit;
const upGetDyn: Up.Ratelimit["getDynamicLimit"] = ratelimit.getDynamicLimit;
void [upLimit, upGetRemaining, upReset, upBlock, upSetDyn, upGetDyn];

// Our factories' algorithms are upstream algorithms.
type UpRegionAlgorithm = Up.RatelimitConfig["limiter"];
const a1: UpRegionAlgorithm = Ours.Ratelimit.fixedWindow(1, "1 s");
const a2: UpRegionAlgorithm = Ours.Ratelimit.slidingWindow(1, "1 s");
const a3: UpRegionAlgorithm = Ours.Ratelimit.tokenBucket(1, "1 s", 1);
const a4: UpRegionAlgorithm = Ours.Ratelimit.cachedFixedWindow(1, "1 s");
void [a1, a2, a3, a4];
// ...so an upstream limiter accepts them.
new Up.Ratelimit({ redis: upstashRedis, limiter: Ours.Ratelimit.slidingWindow(10, "10 s") });

// Destructuring works on the type level as upstream (arrow-function properties).
const { limit } = ratelimit;
void limit;

// --- Things that must NOT compile (guard against types becoming too loose) -------------------
// @ts-expect-error a bad duration unit
Ours.Ratelimit.fixedWindow(1, "1 sec");
// @ts-expect-error tokenBucket needs maxTokens
Ours.Ratelimit.tokenBucket(1, "1 s");
// @ts-expect-error a limiter is required
new Ours.Ratelimit({ redis: upstashRedis });

// --- Analytics, IpDenyList, per-identifier dynamic limits -----------------------------------
const ourAnalytics = new Ours.Analytics({ redis: upstashRedis, prefix: "p" });
const upAnalytics: Pick<Up.Analytics, "getUsage" | "getUsageOverTime" | "getMostAllowedBlocked" | "record"> = ourAnalytics;
void upAnalytics;
declare const upAnalyticsConfig: Up.AnalyticsConfig;
new Ours.Analytics(upAnalyticsConfig);
void Ours.IpDenyList.updateIpDenyList(upstashRedis, "p", 6);
void Ours.IpDenyList.disableIpDenyList(upstashRedis, "p");
const thresholdError: Error = new Ours.IpDenyList.ThresholdError(9);
void thresholdError;
const perId = new Ours.Ratelimit({ redis: upstashRedis, limiter: Ours.Ratelimit.fixedWindow(5, "1 m"), dynamicLimits: { perIdentifier: true } });
void perId.setDynamicLimit({ identifier: "user-1", limit: 50 });
void perId.getDynamicLimit({ identifier: "user-1" });
// Self-hosted deployments: a Redis Cluster (one node or a list) and a Sentinel group.
const onCluster = new Ours.Redis({ url: ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"], cluster: true });
const onSentinel = new Ours.Redis({ sentinels: [{ host: "10.0.0.1", port: 26379 }], name: "mymaster", password: "pw" });
const onSentinelUrl = new Ours.Redis({ url: "redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/mymaster" });
for (const redis of [onCluster, onSentinel, onSentinelUrl]) void new Ours.Ratelimit({ redis, limiter: Ours.Ratelimit.slidingWindow(10, "10 s") });
