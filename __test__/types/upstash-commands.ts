// Compile-only (tsc --noEmit, strict, skipLibCheck: false), with @upstash/redis installed: a
// custom algorithm that uses `ctx.redis` as upstream types it (@upstash/redis' Redis). Without
// @upstash/redis the commands below do not exist on the context's client (a type error about
// them, not about the package: __test__/types.test.mjs checks both).

import { Ratelimit, MultiRegionRatelimit, Redis, type Algorithm, type RegionContext, type MultiRegionContext } from "ratelimit-native";

const counter: Algorithm<RegionContext> = () => ({
  async limit(ctx, identifier, rate) {
    const used = await ctx.redis.incrby(identifier, rate ?? 1);
    await ctx.redis.hset(`${identifier}:meta`, { last: Date.now() });
    const p = ctx.redis.pipeline();
    p.pexpire(identifier, 10_000);
    p.incr(`${ctx.prefix}:calls`);
    await p.exec();
    const limit = await ctx.redis.eval<[], number>("return 10", [identifier], []);
    return { success: used <= limit, limit, remaining: Math.max(0, limit - used), reset: Date.now() + 10_000, pending: Promise.resolve() };
  },
  async getRemaining(ctx, identifier) {
    const used = Number((await ctx.redis.get<string>(identifier)) ?? 0);
    const ttl = await ctx.redis.pttl(identifier);
    return { remaining: Math.max(0, 10 - used), reset: Date.now() + Math.max(ttl, 0), limit: 10 };
  },
  async resetTokens(ctx, identifier) {
    await ctx.redis.del(identifier, `${identifier}:meta`);
  },
});

const regional: Algorithm<MultiRegionContext> = () => ({
  async limit(ctx, identifier) {
    const counts = await Promise.all(ctx.regionContexts.map((region) => region.redis.incr(`${region.prefix}:${identifier}`)));
    await ctx.regionContexts[0].redis.expire(identifier, 10);
    const used = Math.max(...counts);
    return { success: used <= 10, limit: 10, remaining: 10 - used, reset: 0, pending: Promise.resolve() };
  },
  async getRemaining(ctx, identifier) {
    const members = await ctx.regionContexts[0].redis.smembers(identifier);
    return { remaining: 10 - members.length, reset: 0, limit: 10 };
  },
  async resetTokens(ctx, identifier) {
    await Promise.all(ctx.regionContexts.map((region) => region.redis.del(identifier)));
  },
});

const redis = new Redis({ url: "http://127.0.0.1:8079", token: "t" });
new Ratelimit({ redis, limiter: counter });
new MultiRegionRatelimit({ redis: [redis], limiter: regional });
