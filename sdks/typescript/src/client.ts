import { SDK_NAME } from './version.js';
import {
  SenseiError,
  type FetchLike,
  type InitOptions,
  type Stats,
  type TrackBody,
  type TrackInput,
  type TrackNowResult,
  type WrapOptions,
} from './types.js';
import { isObject, sleep, unref, utf8Length, uuid } from './util.js';
import { wrapWith } from './wrap.js';

const ROLES = new Set(['user', 'assistant', 'system', 'tool']);
const MAX_CONTENT_BYTES = 64 * 1024;
const MAX_MESSAGES = 500;
/** The server refuses a batch event whose JSON exceeds 512 KiB (a per-event 413): larger ones are split. */
const MAX_EVENT_BYTES = 512 * 1024;
/** Browsers refuse keepalive requests whose bodies add up to more than 64 KiB. */
const KEEPALIVE_MAX_BYTES = 60_000;

interface QueuedEvent {
  id: string;
  json: string;
  /** Size estimate (UTF-16 code units of the JSON). */
  size: number;
}

interface Resolved {
  apiKey: string;
  baseUrl: string;
  environment: string | undefined;
  flushAt: number;
  flushIntervalMs: number;
  maxQueueSize: number;
  maxRetries: number;
  requestTimeoutMs: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  maxBatchEvents: number;
  maxBatchBytes: number;
  fetch: FetchLike | undefined;
  onError: ((e: SenseiError) => void) | undefined;
  debug: boolean;
  flushOnExit: boolean;
}

function num(v: unknown, dflt: number, min: number): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= min ? v : dflt;
}

function resolveOptions(o: Partial<InitOptions>): Resolved {
  return {
    apiKey: typeof o.apiKey === 'string' ? o.apiKey.trim() : '',
    baseUrl: typeof o.baseUrl === 'string' ? o.baseUrl.trim().replace(/\/+$/, '') : '',
    environment: typeof o.environment === 'string' && o.environment ? o.environment : undefined,
    flushAt: Math.floor(num(o.flushAt, 20, 1)),
    flushIntervalMs: num(o.flushIntervalMs, 1000, 0),
    maxQueueSize: Math.floor(num(o.maxQueueSize, 1000, 1)),
    maxRetries: Math.floor(num(o.maxRetries, 3, 0)),
    requestTimeoutMs: num(o.requestTimeoutMs, 10_000, 1),
    retryBaseDelayMs: num(o.retryBaseDelayMs, 500, 0),
    retryMaxDelayMs: num(o.retryMaxDelayMs, 30_000, 0),
    maxBatchEvents: Math.min(1000, Math.floor(num(o.maxBatchEvents, 100, 1))),
    maxBatchBytes: Math.min(3_400_000, num(o.maxBatchBytes, 1_000_000, 1024)),
    fetch: typeof o.fetch === 'function' ? o.fetch : undefined,
    onError: typeof o.onError === 'function' ? o.onError : undefined,
    debug: o.debug === true,
    flushOnExit: o.flushOnExit !== false,
  };
}

function retryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** `Retry-After` in milliseconds (seconds or an HTTP date), 0 when absent. */
function retryAfterMs(res: Response): number {
  const raw = res.headers && typeof res.headers.get === 'function' ? res.headers.get('retry-after') : null;
  if (!raw) return 0;
  const secs = Number(raw);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(raw);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : 0;
}

async function readBody(res: Response): Promise<{ text: string; json: unknown }> {
  let text = '';
  try {
    text = await res.text();
  } catch {
    return { text: '', json: undefined };
  }
  try {
    return { text, json: JSON.parse(text) };
  } catch {
    return { text, json: undefined };
  }
}

function errorOf(json: unknown, status: number, text: string): { code?: string; message: string } {
  const e = isObject(json) && isObject(json.error) ? json.error : undefined;
  const code = e && typeof e.code === 'string' ? e.code : undefined;
  const message = e && typeof e.message === 'string' ? e.message : text.slice(0, 200) || `HTTP ${status}`;
  return code === undefined ? { message } : { code, message };
}

/**
 * A Sensei client: `track()` queues events in memory and returns at once; a background loop sends them in
 * batches to `POST /api/v1/ingest`, retrying what can be retried. Nothing it does throws into your code.
 */
export class SenseiClient {
  private readonly o: Resolved;
  private readonly ingestUrl: string;
  private queue: QueuedEvent[] = [];
  private inFlight = 0;
  private readonly counters = { queued: 0, sent: 0, dropped: 0, failed: 0, retries: 0 };
  private timer: ReturnType<typeof setTimeout> | undefined;
  private pumping: Promise<void> | null = null;
  private closed = false;
  private readonly disabledReason: string | undefined;
  private readonly detachers: Array<() => void> = [];

  constructor(options: InitOptions) {
    this.o = resolveOptions(isObject(options) ? (options as Partial<InitOptions>) : {});
    this.ingestUrl = `${this.o.baseUrl}/api/v1/ingest`;
    if (!this.o.apiKey) this.disabledReason = 'init: apiKey is required; events are discarded';
    else if (!/^https?:\/\//i.test(this.o.baseUrl)) this.disabledReason = 'init: baseUrl must be an http(s) URL; events are discarded';
    else if (!this.fetchImpl()) this.disabledReason = 'init: no fetch implementation (pass options.fetch); events are discarded';
    if (this.disabledReason) {
      this.report(new SenseiError(this.disabledReason, { kind: 'validation' }));
      return;
    }
    if (this.o.flushOnExit) this.attachExitHooks();
    this.log(`ready: ${this.ingestUrl}`);
  }

  /**
   * Queues new messages of a conversation. Returns the event's id, or `undefined` when the input was refused
   * (reported to `onError`). Never throws and never waits for the network.
   */
  track(input: TrackInput): string | undefined {
    try {
      if (this.disabledReason || this.closed) {
        this.counters.failed++;
        if (this.closed) this.report(new SenseiError('track() after shutdown(); event discarded', { kind: 'validation' }));
        return undefined;
      }
      const events = this.toEvents(this.toBody(input));
      for (const e of events) this.enqueue(e);
      const id = events[0]!.id;
      return id;
    } catch (e) {
      this.counters.failed++;
      this.report(
        e instanceof SenseiError ? e : new SenseiError(`track() failed: ${String(e)}`, { kind: 'internal', cause: e }),
      );
      return undefined;
    }
  }

  /** Sends everything queued; resolves when the queue is empty (delivered or given up). Never rejects. */
  flush(): Promise<void> {
    try {
      this.clearTimer();
      if (this.disabledReason) return Promise.resolve();
      if (!this.pumping) {
        this.pumping = this.pump()
          .catch((e) => this.report(new SenseiError(`flush failed: ${String(e)}`, { kind: 'internal', cause: e })))
          .finally(() => {
            this.pumping = null;
            if (this.queue.length && !this.closed) this.armTimer();
          });
      }
      return this.pumping;
    } catch {
      return Promise.resolve();
    }
  }

  /** Flushes, waits at most `timeoutMs` (default 5000) for it, then stops timers and exit hooks. Never rejects. */
  async shutdown(timeoutMs = 5000): Promise<void> {
    try {
      this.clearTimer();
      for (const d of this.detachers.splice(0)) d();
      const flushed = this.flush();
      this.closed = true;
      await Promise.race([flushed, sleep(timeoutMs, false)]);
      this.clearTimer();
    } catch {
      // never throws
    }
  }

  /** Delivery counters. */
  stats(): Stats {
    return { ...this.counters, pending: this.queue.length + this.inFlight };
  }

  /** Instruments an OpenAI client, an Anthropic client or a fetch function so every turn is tracked here. */
  wrap<T>(target: T, options?: WrapOptions): T {
    return wrapWith(() => this, target, options);
  }

  /**
   * Sends one conversation synchronously through `POST /api/v1/conversations/track` (no queue). Resolves with
   * `{accepted, duplicates}`; unlike `track()` it rejects (with a `SenseiError`) when delivery fails.
   */
  async trackNow(input: TrackInput): Promise<TrackNowResult> {
    if (this.disabledReason) throw new SenseiError(this.disabledReason, { kind: 'validation' });
    const body = JSON.stringify(this.toBody(input));
    const requestId = uuid();
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await this.post(`${this.o.baseUrl}/api/v1/conversations/track`, body, requestId, false);
      } catch (e) {
        if (attempt < this.o.maxRetries) {
          this.counters.retries++;
          await sleep(this.backoff(attempt + 1, 0));
          continue;
        }
        throw new SenseiError(`network error: ${String(e)}`, { kind: 'network', cause: e });
      }
      const { text, json } = await readBody(res);
      if (res.ok && isObject(json)) {
        return { accepted: Number(json.accepted) || 0, duplicates: Number(json.duplicates) || 0 };
      }
      if (retryableStatus(res.status) && attempt < this.o.maxRetries) {
        this.counters.retries++;
        await sleep(this.backoff(attempt + 1, retryAfterMs(res)));
        continue;
      }
      const err = errorOf(json, res.status, text);
      throw new SenseiError(`track failed with HTTP ${res.status}: ${err.message}`, {
        kind: 'http',
        status: res.status,
        ...(err.code ? { code: err.code } : {}),
      });
    }
  }

  /** `GET /healthz`: true when the server answers 2xx. Never rejects. */
  async health(): Promise<boolean> {
    try {
      const f = this.fetchImpl();
      if (!f) return false;
      const res = await f(`${this.o.baseUrl}/healthz`, { method: 'GET' });
      await res.text().catch(() => '');
      return res.ok;
    } catch {
      return false;
    }
  }

  // ---------------------------------------------------------------------------------------------------------

  private toBody(input: TrackInput): TrackBody {
    const bad = (field: string, reason: string): never => {
      throw new SenseiError(`invalid track input: ${field}: ${reason}`, { kind: 'validation' });
    };
    if (!isObject(input)) bad('input', 'expected an object');
    const { conversationId, messages } = input;
    if (typeof conversationId !== 'string' || !conversationId.trim()) bad('conversationId', 'a non-empty string is required');
    if (!Array.isArray(messages) || messages.length === 0) bad('messages', 'a non-empty array is required');
    if (messages.length > MAX_MESSAGES) bad('messages', `at most ${MAX_MESSAGES} per call`);
    const stamp = new Date().toISOString();
    const out: TrackBody['messages'] = new Array(messages.length);
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i];
      if (!isObject(m)) bad(`messages[${i}]`, 'expected an object');
      const role = m.role;
      if (typeof role !== 'string' || !ROLES.has(role)) bad(`messages[${i}].role`, 'expected user, assistant, system or tool');
      const content = m.content;
      if (typeof content !== 'string') bad(`messages[${i}].content`, 'expected a string');
      if (content.length * 3 > MAX_CONTENT_BYTES && utf8Length(content) > MAX_CONTENT_BYTES) {
        bad(`messages[${i}].content`, 'larger than 64 KiB');
      }
      let ts: string | number;
      const t = m.timestamp;
      if (t === undefined || t === null) ts = stamp;
      else if (typeof t === 'string') ts = t;
      else if (typeof t === 'number' && Number.isFinite(t)) ts = Math.round(t);
      else if (t instanceof Date && !Number.isNaN(t.getTime())) ts = t.toISOString();
      else ts = bad(`messages[${i}].timestamp`, 'expected an RFC 3339 string, a Date or epoch milliseconds');
      const msg: TrackBody['messages'][number] = { role: role as TrackBody['messages'][number]['role'], content, timestamp: ts };
      if (m.id !== undefined && m.id !== null) {
        if (typeof m.id !== 'string' || !m.id) bad(`messages[${i}].id`, 'expected a non-empty string');
        if (m.id.startsWith('h_')) bad(`messages[${i}].id`, "ids starting with 'h_' are reserved");
        msg.id = m.id;
      }
      if (m.metadata !== undefined && m.metadata !== null) {
        if (!isObject(m.metadata)) bad(`messages[${i}].metadata`, 'expected an object');
        msg.metadata = m.metadata;
      }
      out[i] = msg;
    }
    const body: TrackBody = { conversationId, messages: out };
    if (input.metadata !== undefined && input.metadata !== null) {
      if (!isObject(input.metadata)) bad('metadata', 'expected an object');
      body.metadata = input.metadata;
    }
    for (const k of ['userId', 'agentId', 'environment'] as const) {
      const v = input[k];
      if (v !== undefined && v !== null) {
        if (typeof v !== 'string' || !v) bad(k, 'expected a non-empty string');
        body[k] = v;
      }
    }
    if (body.environment === undefined && this.o.environment) body.environment = this.o.environment;
    return body;
  }

  /**
   * Serializes a body as one event, or, when its JSON is over the server's per-event limit, as several events of
   * the same conversation, each with a share of the messages.
   */
  private toEvents(body: TrackBody): QueuedEvent[] {
    const id = uuid();
    const json = JSON.stringify({ id, type: 'track', timestamp: new Date().toISOString(), body });
    if (json.length * 3 <= MAX_EVENT_BYTES || utf8Length(json) <= MAX_EVENT_BYTES) return [{ id, json, size: json.length }];
    if (body.messages.length < 2) {
      throw new SenseiError(`event is larger than ${MAX_EVENT_BYTES / 1024} KiB (message metadata too large?)`, {
        kind: 'validation',
      });
    }
    const mid = Math.ceil(body.messages.length / 2);
    return [
      ...this.toEvents({ ...body, messages: body.messages.slice(0, mid) }),
      ...this.toEvents({ ...body, messages: body.messages.slice(mid) }),
    ];
  }

  private enqueue(e: QueuedEvent): void {
    if (this.queue.length >= this.o.maxQueueSize) {
      const oldest = this.queue.shift();
      this.counters.dropped++;
      // Building an Error costs a stack trace: only when someone listens.
      if (oldest && (this.o.onError || this.o.debug)) {
        this.report(
          new SenseiError(`queue full (${this.o.maxQueueSize} events); dropped the oldest event`, {
            kind: 'queue_full',
            eventIds: [oldest.id],
          }),
        );
      }
    }
    this.queue.push(e);
    this.counters.queued++;
    if (this.queue.length >= this.o.flushAt) void this.flush();
    else this.armTimer();
  }

  private armTimer(): void {
    if (this.timer !== undefined || this.closed) return;
    this.timer = unref(
      setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.o.flushIntervalMs),
    );
  }

  private clearTimer(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  /** Takes the next batch off the queue: at most maxBatchEvents and about maxBatchBytes (always one event). */
  private take(maxBytes: number): QueuedEvent[] {
    let n = 0;
    let bytes = 12;
    while (n < this.queue.length && n < this.o.maxBatchEvents) {
      const size = this.queue[n]!.size + 1;
      if (n > 0 && bytes + size > maxBytes) break;
      bytes += size;
      n++;
    }
    return this.queue.splice(0, n);
  }

  private async pump(): Promise<void> {
    while (this.queue.length) {
      const batch = this.take(this.o.maxBatchBytes);
      this.inFlight += batch.length;
      try {
        await this.deliver(batch, false);
      } finally {
        this.inFlight -= batch.length;
      }
    }
  }

  /** Sends `events` until each is acknowledged or given up; retries what may be retried. */
  private async deliver(events: QueuedEvent[], keepalive: boolean): Promise<void> {
    let pending = events;
    let requestId = uuid();
    for (let attempt = 0; pending.length; ) {
      const body = `{"batch":[${pending.map((e) => e.json).join(',')}]}`;
      let retry: QueuedEvent[] = [];
      let wait = 0;
      let why: SenseiError;
      let res: Response | undefined;
      try {
        res = await this.post(this.ingestUrl, body, requestId, keepalive);
      } catch (e) {
        why = new SenseiError(`network error: ${e instanceof Error ? e.message : String(e)}`, {
          kind: 'network',
          cause: e,
        });
      }
      if (!res) {
        retry = pending;
      } else if (res.status === 207) {
        const { json } = await readBody(res);
        if (!isObject(json)) {
          retry = pending;
          why = new SenseiError('unreadable 207 response', { kind: 'http', status: 207 });
        } else {
          const byId = new Map(pending.map((e) => [e.id, e] as const));
          const errors = Array.isArray(json.errors) ? json.errors : [];
          for (const err of errors) {
            if (!isObject(err) || typeof err.id !== 'string') continue;
            const ev = byId.get(err.id);
            if (!ev) continue;
            byId.delete(err.id);
            const status = typeof err.status === 'number' ? err.status : 0;
            const message = typeof err.message === 'string' ? err.message : `status ${status}`;
            if (status === 429 || status === 503) {
              retry.push(ev);
              why = new SenseiError(`event ${ev.id} refused with ${status}: ${message}`, {
                kind: 'http',
                status,
                eventIds: [ev.id],
              });
            } else {
              this.counters.failed++;
              this.report(
                new SenseiError(`event ${ev.id} rejected with ${status}: ${message}`, {
                  kind: 'http',
                  status,
                  eventIds: [ev.id],
                }),
              );
            }
          }
          this.counters.sent += byId.size;
          wait = retryAfterMs(res);
          this.log(`batch ${requestId}: ${byId.size} stored, ${retry.length} to retry`);
        }
      } else if (res.ok) {
        await readBody(res);
        this.counters.sent += pending.length;
        this.log(`batch ${requestId}: ${pending.length} sent (HTTP ${res.status})`);
        return;
      } else if (res.status === 413 && pending.length > 1) {
        await readBody(res);
        const mid = Math.ceil(pending.length / 2);
        this.log(`batch ${requestId}: 413, splitting ${pending.length} events in two`);
        await this.deliver(pending.slice(0, mid), keepalive);
        await this.deliver(pending.slice(mid), keepalive);
        return;
      } else {
        const { text, json } = await readBody(res);
        const err = errorOf(json, res.status, text);
        why = new SenseiError(`ingest failed with HTTP ${res.status}: ${err.message}`, {
          kind: 'http',
          status: res.status,
          ...(err.code ? { code: err.code } : {}),
          eventIds: pending.map((e) => e.id),
        });
        if (retryableStatus(res.status)) {
          retry = pending;
          wait = retryAfterMs(res);
        } else {
          this.counters.failed += pending.length;
          this.report(why);
          return;
        }
      }
      if (!retry.length) return;
      if (attempt >= this.o.maxRetries) {
        this.counters.failed += retry.length;
        this.report(
          new SenseiError(`gave up on ${retry.length} event(s) after ${attempt} retries: ${why!.message}`, {
            kind: why!.kind,
            ...(why!.status !== undefined ? { status: why!.status } : {}),
            ...(why!.code !== undefined ? { code: why!.code } : {}),
            eventIds: retry.map((e) => e.id),
          }),
        );
        return;
      }
      attempt++;
      this.counters.retries++;
      const delay = this.backoff(attempt, wait);
      this.log(`batch ${requestId}: retry ${attempt} of ${retry.length} event(s) in ${Math.round(delay)} ms (${why!.message})`);
      await sleep(delay);
      // The same body keeps its request id; a subset of it is a different request.
      if (retry.length !== pending.length) requestId = uuid();
      pending = retry;
    }
  }

  /** Exponential backoff with jitter, at least `minMs` (Retry-After), at most retryMaxDelayMs. */
  private backoff(attempt: number, minMs: number): number {
    const exp = this.o.retryBaseDelayMs * 2 ** (attempt - 1);
    const jittered = exp / 2 + (Math.random() * exp) / 2;
    return Math.min(Math.max(jittered, minMs), this.o.retryMaxDelayMs);
  }

  private fetchImpl(): FetchLike | undefined {
    if (this.o.fetch) return this.o.fetch;
    const g = (globalThis as { fetch?: FetchLike }).fetch;
    return typeof g === 'function' ? g.bind(globalThis) : undefined;
  }

  private async post(url: string, body: string, requestId: string, keepalive: boolean): Promise<Response> {
    const f = this.fetchImpl()!;
    const ctrl = typeof AbortController === 'function' ? new AbortController() : undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = unref(
        setTimeout(() => {
          ctrl?.abort();
          reject(new Error(`request timed out after ${this.o.requestTimeoutMs} ms`));
        }, this.o.requestTimeoutMs),
      );
    });
    const init: Record<string, unknown> = {
      method: 'POST',
      headers: {
        Authorization: `Bearer ${this.o.apiKey}`,
        'Content-Type': 'application/json',
        'X-Request-Id': requestId,
        'User-Agent': SDK_NAME,
        'x-sensei-sdk': SDK_NAME,
      },
      body,
    };
    if (ctrl) init.signal = ctrl.signal;
    if (keepalive) init.keepalive = true;
    try {
      return await Promise.race([f(url, init), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Flushes on Node's beforeExit, and on page hide in browsers (keepalive fetch: see README). */
  private attachExitHooks(): void {
    const g = globalThis as {
      process?: { on?: Function; off?: Function; removeListener?: Function; versions?: { node?: string } };
      document?: { addEventListener?: Function; removeEventListener?: Function; visibilityState?: string };
      addEventListener?: Function;
      removeEventListener?: Function;
    };
    try {
      const doc = g.document;
      if (doc && typeof doc.addEventListener === 'function' && typeof g.addEventListener === 'function') {
        const onHide = () => {
          if (doc.visibilityState === undefined || doc.visibilityState === 'hidden') this.flushKeepalive();
        };
        const onPageHide = () => this.flushKeepalive();
        doc.addEventListener('visibilitychange', onHide);
        g.addEventListener('pagehide', onPageHide);
        this.detachers.push(() => {
          doc.removeEventListener?.('visibilitychange', onHide);
          g.removeEventListener?.('pagehide', onPageHide);
        });
      } else if (g.process && typeof g.process.on === 'function' && g.process.versions?.node) {
        const proc = g.process;
        // `exit` handlers cannot await; `beforeExit` fires when the event loop empties, so a flush started
        // there (an HTTP request keeps the loop alive) completes before the process ends.
        const onBeforeExit = () => {
          if (this.queue.length && !this.pumping) void this.flush();
        };
        proc.on!('beforeExit', onBeforeExit);
        this.detachers.push(() => (proc.off ?? proc.removeListener)?.call(proc, 'beforeExit', onBeforeExit));
      }
    } catch {
      // no hooks: flush() and shutdown() still work
    }
  }

  /** Page is going away: send the queue now with keepalive requests (each under the 64 KiB keepalive limit). */
  private flushKeepalive(): void {
    try {
      this.clearTimer();
      while (this.queue.length) {
        if (this.queue[0]!.size + 16 > KEEPALIVE_MAX_BYTES) {
          // Too big for a keepalive request: leave it to a normal flush if the page comes back.
          void this.flush();
          return;
        }
        const batch = this.take(KEEPALIVE_MAX_BYTES);
        this.inFlight += batch.length;
        void this.deliver(batch, true)
          .catch(() => undefined)
          .finally(() => {
            this.inFlight -= batch.length;
          });
      }
    } catch {
      // never throws
    }
  }

  private report(e: SenseiError): void {
    this.log(e.message);
    const cb = this.o.onError;
    if (cb) {
      try {
        cb(e);
      } catch {
        // a throwing onError must not break delivery
      }
    }
  }

  private log(message: string): void {
    if (!this.o.debug) return;
    try {
      console.debug(`[sensei] ${message}`);
    } catch {
      // no console
    }
  }
}
