import type { NextConfig } from "next";

const nextConfig: NextConfig = {
  // ratelimit-native is a native addon (a `.node` binary). Bundlers cannot put it into a chunk,
  // so Next.js must leave it to Node's own `require` at run time. Without this line `next build`
  // fails with "... .node (node addon) is not placeable in ESM chunks".
  serverExternalPackages: ["ratelimit-native"],

  // This app lives inside the ratelimit-native repository, which has its own package-lock.json;
  // without these two lines Next.js would take the repository root for the workspace root.
  turbopack: { root: __dirname },
  outputFileTracingRoot: __dirname,
};

export default nextConfig;
