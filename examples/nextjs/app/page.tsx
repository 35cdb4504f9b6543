// The home page is static; proxy.ts rate-limits it (10 requests per minute per IP) before it is served.
export default function Home() {
  return (
    <main>
      <h1>ratelimit-native × Next.js 16</h1>
      <p>Every route below is rate limited by IP with ratelimit-native, a native drop-in for @upstash/ratelimit.</p>
      <ul>
        <li>
          <code>/</code> and <code>/api/*</code> — <code>proxy.ts</code>, sliding window, 10 per minute
        </li>
        <li>
          <a href="/api/hello">
            <code>/api/hello</code>
          </a>{" "}
          — Pages Router API route, fixed window, 10 per 60 s
        </li>
        <li>
          <a href="/api/route-handler">
            <code>/api/route-handler</code>
          </a>{" "}
          — App Router route handler, sliding window, 10 per 60 s
        </li>
      </ul>
      <p>Over the limit you get a 429 with Retry-After and X-RateLimit-Limit / -Remaining / -Reset.</p>
    </main>
  );
}
