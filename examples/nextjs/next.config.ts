import type { NextConfig } from "next";

const nextConfig: NextConfig = {
  // Optional: for the native engine. ratelimit-native's addon is a `.node` binary, which a bundle
  // cannot hold, so this leaves the package to Node's own `require` at run time. Without it the
  // app still builds and runs, on the WebAssembly build of the same core (one warning says so).
  serverExternalPackages: ["ratelimit-native"],

  // This app lives inside the ratelimit-native repository, which has its own package-lock.json;
  // without these two lines Next.js would take the repository root for the workspace root.
  turbopack: { root: __dirname },
  outputFileTracingRoot: __dirname,
};

export default nextConfig;
