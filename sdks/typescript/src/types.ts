/** Who said a message. */
export type Role = 'user' | 'assistant' | 'system' | 'tool';

/** A JSON object. */
export type JsonObject = { [key: string]: unknown };

/** One message of a tracked conversation. */
export interface TrackMessage {
  /** Your id for the message (must not start with `h_`). Without one the server deduplicates by role + content + timestamp. */
  id?: string;
  role: Role;
  /** The text; at most 64 KiB of UTF-8. */
  content: string;
  /** RFC 3339 string, `Date`, or epoch milliseconds. Defaults to the time of the `track()` call. */
  timestamp?: string | number | Date;
  metadata?: JsonObject;
}

/** What `track()` takes: new messages of one conversation. */
export interface TrackInput {
  conversationId: string;
  messages: TrackMessage[];
  metadata?: JsonObject;
  userId?: string;
  agentId?: string;
  /** Overrides the client's `environment` for this conversation. */
  environment?: string;
}

/** The wire body of a track event (`POST /api/v1/conversations/track`, or `body` of a batch event). */
export interface TrackBody {
  conversationId: string;
  messages: Array<{ id?: string; role: Role; content: string; timestamp: string | number; metadata?: JsonObject }>;
  metadata?: JsonObject;
  userId?: string;
  agentId?: string;
  environment?: string;
}

/** The `fetch` function the SDK uses (the global one unless given). */
export type FetchLike = (input: any, init?: any) => Promise<Response>;

export interface InitOptions {
  /** A Sensei project API key (`sk_sensei_…`). Never logged. */
  apiKey: string;
  /** The Sensei server, e.g. `https://sensei.example.com` (no trailing `/api`). */
  baseUrl: string;
  /** Sent as `environment` on every event (the API key's environment when absent). */
  environment?: string;
  /** Flush as soon as this many events are queued. Default 20. */
  flushAt?: number;
  /** Flush queued events at least this often. Default 1000 ms. */
  flushIntervalMs?: number;
  /** Most events held in memory; when full the oldest is dropped. Default 1000. */
  maxQueueSize?: number;
  /** Retries of a failed request (network error, 408, 429, 5xx). Default 3. */
  maxRetries?: number;
  /** Timeout of one HTTP request. Default 10000 ms. */
  requestTimeoutMs?: number;
  /** First backoff delay; doubles per retry, with jitter. Default 500 ms. */
  retryBaseDelayMs?: number;
  /** Longest backoff delay (and longest `Retry-After` honoured). Default 30000 ms. */
  retryMaxDelayMs?: number;
  /** Most events in one request. Default 100 (the server accepts 1000). */
  maxBatchEvents?: number;
  /** Largest request body, in bytes. Default 1 000 000 (the server accepts 3.5 MB). */
  maxBatchBytes?: number;
  /** The fetch implementation. Default: the global `fetch`. */
  fetch?: FetchLike;
  /** Called with every delivery or validation problem. The SDK never throws into your code. */
  onError?: (error: SenseiError) => void;
  /** Log what the SDK does with `console.debug` (never the API key). */
  debug?: boolean;
  /** Flush on Node's `beforeExit` and on page hide in browsers. Default true. */
  flushOnExit?: boolean;
}

/** Delivery counters of a client. */
export interface Stats {
  /** Events accepted by `track()` (cumulative). */
  queued: number;
  /** Events the server acknowledged (stored, or already stored). */
  sent: number;
  /** Events dropped because the queue was full (oldest first). */
  dropped: number;
  /** Events given up on: rejected by the server, invalid, or out of retries. */
  failed: number;
  /** Retry attempts made (requests re-sent). */
  retries: number;
  /** Events currently waiting in memory (queued or in flight). */
  pending: number;
}

/** Options of `wrap()`. */
export interface WrapOptions {
  /** The conversation the wrapped calls belong to: fixed, or computed per call. Default: one new id per wrapped client. */
  conversationId?: string | (() => string);
  userId?: string;
  agentId?: string;
  /** Conversation metadata sent with every tracked turn. */
  metadata?: JsonObject;
}

/** The answer of `POST /api/v1/conversations/track`. */
export interface TrackNowResult {
  accepted: number;
  duplicates: number;
}

/** Every problem the SDK reports through `onError`. */
export class SenseiError extends Error {
  /** HTTP status, when the server answered. */
  readonly status?: number;
  /** The server's error code, when it gave one. */
  readonly code?: string;
  /** The client event ids concerned. */
  readonly eventIds?: string[];
  /** `validation`, `http`, `network`, `queue_full`, `internal`. */
  readonly kind: 'validation' | 'http' | 'network' | 'queue_full' | 'internal';

  constructor(
    message: string,
    opts: { kind: SenseiError['kind']; status?: number; code?: string; eventIds?: string[]; cause?: unknown },
  ) {
    super(message);
    this.name = 'SenseiError';
    this.kind = opts.kind;
    if (opts.status !== undefined) this.status = opts.status;
    if (opts.code !== undefined) this.code = opts.code;
    if (opts.eventIds !== undefined) this.eventIds = opts.eventIds;
    if (opts.cause !== undefined) (this as { cause?: unknown }).cause = opts.cause;
  }
}
