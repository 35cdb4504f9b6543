// Compile-only (tsc --noEmit, strict, skipLibCheck: false), with and without @upstash/redis
// installed: code that extends the limiters and reads every member upstream declares protected,
// and a custom algorithm using the commands every client has.

import { Ratelimit, MultiRegionRatelimit, Redis, type Algorithm, type RegionContext, type MultiRegionContext } from "ratelimit-native";

class AuditedRatelimit extends Ratelimit {
  describe() {
    return {
      limiter: this.limiter,
      ctx: this.ctx,
      prefix: this.prefix,
      timeout: this.timeout,
      primaryRedis: this.primaryRedis,
      analytics: this.analytics,
      enableProtection: this.enableProtection,
      denyListThreshold: this.denyListThreshold,
      dynamicLimits: this.dynamicLimits,
    };
  }
  async usage() {
    return this.analytics ? this.analytics.getUsage(Date.now() - 3_600_000) : {};
  }
}

class AuditedMultiRegion extends MultiRegionRatelimit {
  describe() {
    const regions: number = this.ctx.regionContexts.length;
    return {
      limiter: this.limiter,
      regions,
      prefix: this.prefix,
      timeout: this.timeout,
      primaryRedis: this.primaryRedis,
      analytics: this.analytics,
      enableProtection: this.enableProtection,
      denyListThreshold: this.denyListThreshold,
      dynamicLimits: this.dynamicLimits,
    };
  }
}

const scripted: Algorithm<RegionContext> = () => ({
  async limit(ctx, identifier, rate) {
    const used = await ctx.redis.evalsha<[number], number>("0123456789abcdef0123456789abcdef01234567", [identifier], [rate ?? 1]);
    const stored = await ctx.redis.get<number>(`${ctx.prefix}:limit`);
    await ctx.redis.set(`${ctx.prefix}:last`, Date.now());
    const limit = stored ?? 10;
    return { success: used <= limit, limit, remaining: Math.max(0, limit - used), reset: Date.now() + 1000, pending: Promise.resolve() };
  },
  async getRemaining(ctx, identifier) {
    const used = (await ctx.redis.get<number>(identifier)) ?? 0;
    return { remaining: 10 - used, reset: Date.now() + 1000, limit: 10 };
  },
  async resetTokens(ctx, identifier) {
    await ctx.redis.set(identifier, 0);
  },
});

const everyRegion: Algorithm<MultiRegionContext> = () => ({
  async limit(ctx, identifier) {
    const replies = await Promise.all(ctx.regionContexts.map((region) => region.redis.get<number>(`${region.prefix}:${identifier}`)));
    const used = Math.max(...replies.map((r) => r ?? 0));
    return { success: used < 10, limit: 10, remaining: 10 - used, reset: 0, pending: Promise.resolve() };
  },
  async getRemaining() {
    return { remaining: 10, reset: 0, limit: 10 };
  },
  async resetTokens() {},
});

const redis = new Redis({ url: "http://127.0.0.1:8079", token: "t" });
new AuditedRatelimit({ redis, limiter: scripted, analytics: true }).describe();
new AuditedRatelimit({ redis, limiter: Ratelimit.slidingWindow(10, "10 s") }).usage();
new AuditedMultiRegion({ redis: [redis, redis], limiter: everyRegion }).describe();
