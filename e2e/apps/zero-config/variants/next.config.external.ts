import type { NextConfig } from "next";

// Left to Node's own require at run time: the native addon loads.
const nextConfig: NextConfig = { serverExternalPackages: ["ratelimit-native"] };

export default nextConfig;
