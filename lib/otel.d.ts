// ratelimit-native/otel: limit() decisions as OpenTelemetry metrics (and spans). Hand-written.
import type { MeterProvider, TracerProvider } from "@opentelemetry/api";

export interface InstrumentOptions {
  /** Default: the global MeterProvider. */
  meterProvider?: MeterProvider;
  /** A span `ratelimit.limit` per call. Default false. */
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
