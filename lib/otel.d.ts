// ratelimit-native/otel: limit() decisions as OpenTelemetry metrics (and spans). Hand-written.
import type { MeterProvider, TracerProvider } from "@opentelemetry/api";

export interface InstrumentOptions {
  /** Default: the global MeterProvider. */
  meterProvider?: MeterProvider;
  /** A span `ratelimit.limit` per call, and a span `ratelimit.store_request` per request our
   * stores send (a /pipeline POST, a Redis pipeline). Default false. */
  spans?: boolean;
  /** Default: the global TracerProvider. */
  tracerProvider?: TracerProvider;
}

/** Starts recording `ratelimit.decisions` and `ratelimit.duration`; returns what stops it. */
export declare function instrumentRatelimit(options?: InstrumentOptions): () => void;

/** The diagnostics_channel every limiter publishes its decisions on. */
export declare const DECISION_CHANNEL: "ratelimit-native:decision";

/** What the channel carries, one message per limit() call. */
export interface DecisionMessage {
  prefix: string;
  algorithm: "fixedWindow" | "slidingWindow" | "tokenBucket" | "cachedFixedWindow" | "custom";
  outcome: "allowed" | "limited" | "denied" | "timeout" | "error";
  reason?: string;
  limit?: number;
  remaining?: number;
  latencyMs: number;
  engine: "native" | "wasm";
  store: "memory" | "rest" | "tcp" | "client";
  /** A keyed hash of the identifier (the same within a process; the identifier is never sent). */
  identifierHash?: string;
}

/** The diagnostics_channel our stores publish each request they send on (only while someone
 * listens). */
export declare const STORE_REQUEST_CHANNEL: "ratelimit-native:store-request";

/** What that channel carries, one message per request. */
export interface StoreRequestMessage {
  store: "rest" | "tcp" | "cluster" | "sentinel";
  engine: "native" | "wasm";
  /** Commands in the request (a plain limit() call is one). */
  commands: number;
  /** When it was sent, Unix ms. */
  startTime: number;
  durationMs: number;
  /** "not-run": the store certainly did not run it; the same commands follow in another request. */
  outcome: "answered" | "not-run" | "failed";
}
