/**
 * `@convosensei/sdk`: track LLM conversations into Sensei. `init()` once, then `track()` (never throws, never
 * waits for the network) or `wrap()` your OpenAI / Anthropic client or `fetch`.
 */
import { SenseiClient } from './client.js';
import type { InitOptions, Stats, TrackInput, WrapOptions } from './types.js';
import { wrapWith } from './wrap.js';

export { SenseiClient } from './client.js';
export { SenseiError } from './types.js';
export type {
  FetchLike,
  InitOptions,
  JsonObject,
  Role,
  Stats,
  TrackBody,
  TrackInput,
  TrackMessage,
  TrackNowResult,
  WrapOptions,
} from './types.js';
export { VERSION } from './version.js';

let defaultClient: SenseiClient | undefined;

/** Creates a client and makes it the default one used by the module-level functions (the previous one is shut down). */
export function init(options: InitOptions): SenseiClient {
  const previous = defaultClient;
  defaultClient = new SenseiClient(options);
  if (previous) void previous.shutdown();
  return defaultClient;
}

/** Creates an independent client (not the default one). */
export function createClient(options: InitOptions): SenseiClient {
  return new SenseiClient(options);
}

/** The default client, if `init()` was called. */
export function getClient(): SenseiClient | undefined {
  return defaultClient;
}

/** Queues messages on the default client. Before `init()` it does nothing (returns `undefined`). Never throws. */
export function track(input: TrackInput): string | undefined {
  try {
    return defaultClient ? defaultClient.track(input) : undefined;
  } catch {
    return undefined;
  }
}

/** Instruments an OpenAI client, Anthropic client or fetch for the default client (resolved at call time). */
export function wrap<T>(target: T, options?: WrapOptions): T {
  return wrapWith(() => defaultClient, target, options);
}

/** Flushes the default client. */
export function flush(): Promise<void> {
  return defaultClient ? defaultClient.flush() : Promise.resolve();
}

/** Flushes and stops the default client. */
export function shutdown(timeoutMs?: number): Promise<void> {
  return defaultClient ? defaultClient.shutdown(timeoutMs) : Promise.resolve();
}

/** The default client's counters (all zero before `init()`). */
export function stats(): Stats {
  return defaultClient ? defaultClient.stats() : { queued: 0, sent: 0, dropped: 0, failed: 0, retries: 0, pending: 0 };
}
