/**
 * `wrap()`: instruments an OpenAI client, an Anthropic client or a `fetch` function (duck-typed; no dependency on
 * either SDK) so that each model call is tracked as a turn: the new input messages and the assistant's reply.
 * Tracking never changes what the wrapped call returns or throws.
 */
import type { JsonObject, TrackInput, TrackMessage, WrapOptions } from './types.js';
import { SseParser } from './sse.js';
import { fnv1a64, isObject, now, safe, truncateUtf8, uuid } from './util.js';

/** Whatever can take a tracked turn (a `SenseiClient`). */
export interface Tracker {
  track(input: TrackInput): unknown;
}

const MAX_CONTENT_BYTES = 64 * 1024;
type Provider = 'openai' | 'anthropic';

/** Per-wrapped-target context: where turns go and under which conversation. */
class Tracking {
  private readonly defaultId = uuid();
  constructor(
    private readonly getClient: () => Tracker | undefined,
    private readonly options: WrapOptions,
  ) {}

  conversationId(): string {
    const c = this.options.conversationId;
    try {
      const v = typeof c === 'function' ? c() : c;
      if (typeof v === 'string' && v.trim()) return v;
    } catch {
      // fall back to the wrapped client's own id
    }
    return this.defaultId;
  }

  emit(conversationId: string, messages: TrackMessage[]): void {
    try {
      const client = this.getClient();
      if (!client || !messages.length) return;
      const input: TrackInput = { conversationId, messages };
      if (this.options.metadata) input.metadata = this.options.metadata;
      if (this.options.userId) input.userId = this.options.userId;
      if (this.options.agentId) input.agentId = this.options.agentId;
      client.track(input);
    } catch {
      // tracking never affects the host
    }
  }
}

/** One call in progress. */
interface Call {
  provider: Provider;
  params: Record<string, unknown>;
  conversationId: string;
  startedAt: string;
  start: number;
}

/** What a model produced (whole response or accumulated stream). */
class Reply {
  text = '';
  model: string | undefined;
  responseId: string | undefined;
  inputTokens: number | undefined;
  outputTokens: number | undefined;
  finishReason: string | undefined;
  ttftMs: number | undefined;
  toolCalls: string[] = [];

  constructor(private readonly start: number) {}

  firstOutput(): void {
    if (this.ttftMs === undefined) this.ttftMs = Math.round(now() - this.start);
  }

  /** An OpenAI `chat.completion.chunk`. */
  openaiChunk(chunk: unknown): void {
    if (!isObject(chunk)) return;
    if (typeof chunk.model === 'string') this.model = chunk.model;
    if (typeof chunk.id === 'string') this.responseId = chunk.id;
    const choice = Array.isArray(chunk.choices) ? chunk.choices[0] : undefined;
    if (isObject(choice)) {
      const delta = isObject(choice.delta) ? choice.delta : undefined;
      if (delta && typeof delta.content === 'string' && delta.content) {
        this.firstOutput();
        this.text += delta.content;
      }
      if (delta && Array.isArray(delta.tool_calls)) {
        for (const tc of delta.tool_calls) {
          if (isObject(tc) && isObject(tc.function) && typeof tc.function.name === 'string' && tc.function.name) {
            this.firstOutput();
            this.toolCalls.push(tc.function.name);
          }
        }
      }
      if (typeof choice.finish_reason === 'string') this.finishReason = choice.finish_reason;
    }
    this.openaiUsage(chunk.usage);
  }

  /** An OpenAI `chat.completion`. */
  openaiCompletion(resp: unknown): void {
    if (!isObject(resp)) return;
    if (typeof resp.model === 'string') this.model = resp.model;
    if (typeof resp.id === 'string') this.responseId = resp.id;
    const choice = Array.isArray(resp.choices) ? resp.choices[0] : undefined;
    if (isObject(choice)) {
      const msg = isObject(choice.message) ? choice.message : undefined;
      if (msg) {
        this.text = openaiText(msg.content);
        if (Array.isArray(msg.tool_calls)) {
          for (const tc of msg.tool_calls) {
            if (isObject(tc) && isObject(tc.function) && typeof tc.function.name === 'string') {
              this.toolCalls.push(tc.function.name);
            }
          }
        }
      }
      if (typeof choice.finish_reason === 'string') this.finishReason = choice.finish_reason;
    }
    this.openaiUsage(resp.usage);
  }

  private openaiUsage(usage: unknown): void {
    if (!isObject(usage)) return;
    if (typeof usage.prompt_tokens === 'number') this.inputTokens = usage.prompt_tokens;
    if (typeof usage.completion_tokens === 'number') this.outputTokens = usage.completion_tokens;
  }

  /** An Anthropic Messages stream event. */
  anthropicEvent(ev: unknown): void {
    if (!isObject(ev)) return;
    switch (ev.type) {
      case 'message_start': {
        const m = isObject(ev.message) ? ev.message : undefined;
        if (m) {
          if (typeof m.model === 'string') this.model = m.model;
          if (typeof m.id === 'string') this.responseId = m.id;
          this.anthropicUsage(m.usage);
        }
        break;
      }
      case 'content_block_start': {
        const b = isObject(ev.content_block) ? ev.content_block : undefined;
        if (b && b.type === 'tool_use' && typeof b.name === 'string') {
          this.firstOutput();
          this.toolCalls.push(b.name);
        }
        break;
      }
      case 'content_block_delta': {
        const d = isObject(ev.delta) ? ev.delta : undefined;
        if (d && d.type === 'text_delta' && typeof d.text === 'string') {
          if (d.text) this.firstOutput();
          this.text += d.text;
        }
        break;
      }
      case 'message_delta': {
        const d = isObject(ev.delta) ? ev.delta : undefined;
        if (d && typeof d.stop_reason === 'string') this.finishReason = d.stop_reason;
        this.anthropicUsage(ev.usage);
        break;
      }
      default:
        break;
    }
  }

  /** An Anthropic `message`. */
  anthropicMessage(resp: unknown): void {
    if (!isObject(resp)) return;
    if (typeof resp.model === 'string') this.model = resp.model;
    if (typeof resp.id === 'string') this.responseId = resp.id;
    if (typeof resp.stop_reason === 'string') this.finishReason = resp.stop_reason;
    if (Array.isArray(resp.content)) {
      const parts: string[] = [];
      for (const b of resp.content) {
        if (!isObject(b)) continue;
        if (b.type === 'text' && typeof b.text === 'string') parts.push(b.text);
        if (b.type === 'tool_use' && typeof b.name === 'string') this.toolCalls.push(b.name);
      }
      this.text = parts.join('');
    }
    this.anthropicUsage(resp.usage);
  }

  private anthropicUsage(usage: unknown): void {
    if (!isObject(usage)) return;
    if (typeof usage.input_tokens === 'number') this.inputTokens = usage.input_tokens;
    if (typeof usage.output_tokens === 'number') this.outputTokens = usage.output_tokens;
  }
}

function openaiText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  const parts: string[] = [];
  for (const p of content) {
    if (typeof p === 'string') parts.push(p);
    else if (isObject(p) && typeof p.text === 'string') parts.push(p.text);
  }
  return parts.join('\n');
}

function anthropicText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  const parts: string[] = [];
  for (const b of content) {
    if (!isObject(b)) continue;
    if (b.type === 'text' && typeof b.text === 'string') parts.push(b.text);
    else if (b.type === 'tool_result') parts.push(anthropicText(b.content));
  }
  return parts.join('\n');
}

function clip(s: string): string {
  return truncateUtf8(s, MAX_CONTENT_BYTES);
}

/** The input messages of the new turn: those after the last assistant message (system ones get stable ids). */
function inputMessages(call: Call): TrackMessage[] {
  const out: TrackMessage[] = [];
  const msgs = Array.isArray(call.params.messages) ? call.params.messages : [];
  let last = -1;
  for (let i = 0; i < msgs.length; i++) if (isObject(msgs[i]) && msgs[i].role === 'assistant') last = i;
  const firstTurn = last < 0;
  if (call.provider === 'anthropic' && firstTurn) {
    const system = anthropicText(call.params.system);
    if (system) out.push({ id: `sys_${fnv1a64(system)}`, role: 'system', content: clip(system), timestamp: call.startedAt });
  }
  for (let i = last + 1; i < msgs.length; i++) {
    const m = msgs[i];
    if (!isObject(m) || typeof m.role !== 'string') continue;
    const raw = m.role;
    const role = raw === 'developer' ? 'system' : raw === 'function' ? 'tool' : raw;
    if (role !== 'user' && role !== 'tool' && role !== 'system') continue;
    const text = call.provider === 'anthropic' ? anthropicText(m.content) : openaiText(m.content);
    if (!text) continue;
    const msg: TrackMessage = { role, content: clip(text), timestamp: call.startedAt };
    if (role === 'system') msg.id = `sys_${fnv1a64(text)}`;
    out.push(msg);
  }
  return out;
}

function finishTurn(
  tracking: Tracking,
  call: Call,
  reply: Reply,
  extra: { aborted?: boolean; error?: unknown } = {},
): void {
  safe(() => {
    const metadata: JsonObject = { provider: call.provider };
    const model = reply.model ?? (typeof call.params.model === 'string' ? call.params.model : undefined);
    if (model) metadata.model = model;
    if (reply.inputTokens !== undefined) metadata.inputTokens = reply.inputTokens;
    if (reply.outputTokens !== undefined) metadata.outputTokens = reply.outputTokens;
    metadata.latencyMs = Math.round(now() - call.start);
    if (reply.ttftMs !== undefined) metadata.ttftMs = reply.ttftMs;
    if (reply.finishReason) metadata.finishReason = reply.finishReason;
    if (reply.responseId) metadata.responseId = reply.responseId;
    if (reply.toolCalls.length) metadata.toolCalls = reply.toolCalls.slice(0, 32);
    if (extra.aborted) metadata.aborted = true;
    if (extra.error !== undefined) metadata.error = String(extra.error instanceof Error ? extra.error.message : extra.error).slice(0, 500);
    const messages = inputMessages(call);
    messages.push({ role: 'assistant', content: clip(reply.text), timestamp: new Date().toISOString(), metadata });
    tracking.emit(call.conversationId, messages);
  });
}

/**
 * Wraps an async-iterable stream: yields every item unchanged, feeds it to `observe`, and calls `finish` once
 * when iteration ends, fails, or the consumer stops early (aborted).
 */
function instrumentStream<S extends object>(
  stream: S,
  observe: (item: unknown) => void,
  finish: (extra: { aborted?: boolean; error?: unknown }) => void,
): S {
  if (typeof (stream as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] !== 'function') return stream;
  let done = false;
  const end = (extra: { aborted?: boolean; error?: unknown }) => {
    if (done) return;
    done = true;
    safe(() => finish(extra));
  };
  async function* iterate(): AsyncGenerator<unknown> {
    let completed = false;
    let error: unknown;
    try {
      for await (const item of stream as AsyncIterable<unknown>) {
        safe(() => observe(item));
        yield item;
      }
      completed = true;
    } catch (e) {
      error = e;
      throw e;
    } finally {
      end(completed ? {} : error !== undefined ? { aborted: true, error } : { aborted: true });
    }
  }
  return new Proxy(stream, {
    get(target, prop) {
      if (prop === Symbol.asyncIterator) return () => iterate();
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' && prop !== 'constructor' ? v.bind(target) : v;
    },
  });
}

/** A view of `target` with some properties replaced; everything else reads through (methods bound to it). */
function overlay<T extends object>(target: T, overrides: Record<string | symbol, unknown>): T {
  return new Proxy(target, {
    get(t, prop) {
      if (Object.prototype.hasOwnProperty.call(overrides, prop)) return overrides[prop];
      const v = Reflect.get(t, prop, t);
      return typeof v === 'function' && prop !== 'constructor' ? v.bind(t) : v;
    },
  });
}

function wrapCreate(provider: Provider, owner: object, create: Function, tracking: Tracking): Function {
  return function trackedCreate(this: unknown, ...args: unknown[]) {
    const params = args[0];
    let call: Call | undefined;
    try {
      if (isObject(params)) {
        call = { provider, params, conversationId: tracking.conversationId(), startedAt: new Date().toISOString(), start: now() };
      }
    } catch {
      call = undefined;
    }
    const result = create.apply(owner, args); // its own exceptions propagate unchanged
    if (!call) return result;
    const c = call;
    try {
      if (c.params.stream === true) {
        // Resolve to the same stream object, instrumented: every chunk reaches the caller unchanged.
        return Promise.resolve(result).then((stream) => {
          if (!isObject(stream) && typeof stream !== 'object') return stream;
          try {
            const reply = new Reply(c.start);
            return instrumentStream(
              stream as object,
              (item) => (provider === 'openai' ? reply.openaiChunk(item) : reply.anthropicEvent(item)),
              (extra) => finishTurn(tracking, c, reply, extra),
            );
          } catch {
            return stream;
          }
        });
      }
      if (result && typeof (result as PromiseLike<unknown>).then === 'function') {
        (result as PromiseLike<unknown>).then(
          (resp) =>
            safe(() => {
              const reply = new Reply(c.start);
              if (provider === 'openai') reply.openaiCompletion(resp);
              else reply.anthropicMessage(resp);
              finishTurn(tracking, c, reply);
            }),
          () => undefined,
        );
      }
    } catch {
      // tracking never affects the call
    }
    return result;
  };
}

function wrapOpenAI<T extends object>(client: T, tracking: Tracking): T {
  const chat = (client as { chat: { completions: { create: Function } } }).chat;
  const completions = chat.completions;
  const create = wrapCreate('openai', completions, completions.create, tracking);
  return overlay(client, { chat: overlay(chat, { completions: overlay(completions, { create }) }) });
}

function wrapAnthropic<T extends object>(client: T, tracking: Tracking): T {
  const messages = (client as { messages: { create: Function } }).messages;
  const create = wrapCreate('anthropic', messages, messages.create, tracking);
  return overlay(client, { messages: overlay(messages, { create }) });
}

function requestUrl(input: unknown): string | undefined {
  if (typeof input === 'string') return input;
  if (input instanceof URL) return input.href;
  if (isObject(input) && typeof input.url === 'string') return input.url;
  return undefined;
}

function providerForUrl(url: string): Provider | undefined {
  let path: string;
  try {
    path = new URL(url, 'http://localhost').pathname.replace(/\/+$/, '');
  } catch {
    return undefined;
  }
  if (path.endsWith('/chat/completions')) return 'openai';
  if (path.endsWith('/v1/messages')) return 'anthropic';
  return undefined;
}

async function requestJson(input: unknown, init: Record<string, unknown> | undefined): Promise<unknown> {
  const body = init ? init.body : undefined;
  let text: string | undefined;
  if (typeof body === 'string') text = body;
  else if (body instanceof Uint8Array) text = new TextDecoder().decode(body);
  else if (body instanceof ArrayBuffer) text = new TextDecoder().decode(new Uint8Array(body));
  else if (body === undefined && isObject(input) && typeof (input as { clone?: unknown }).clone === 'function') {
    text = await (input as unknown as Request).clone().text();
  }
  return text === undefined ? undefined : JSON.parse(text);
}

function wrapFetch<F extends Function>(fetchFn: F, tracking: Tracking): F {
  const tracked = async function trackedFetch(input: unknown, init?: Record<string, unknown>): Promise<Response> {
    let call: Call | undefined;
    try {
      const url = requestUrl(input);
      const method = String((init && init.method) || (isObject(input) && input.method) || 'GET').toUpperCase();
      const provider = url && method === 'POST' ? providerForUrl(url) : undefined;
      if (provider) {
        const params = await requestJson(input, init);
        if (isObject(params)) {
          call = { provider, params, conversationId: tracking.conversationId(), startedAt: new Date().toISOString(), start: now() };
        }
      }
    } catch {
      call = undefined;
    }
    const res: Response = await fetchFn(input, init); // its own errors propagate unchanged
    if (!call) return res;
    try {
      return observeResponse(res, call, tracking);
    } catch {
      return res;
    }
  };
  return tracked as unknown as F;
}

function observeResponse(res: Response, call: Call, tracking: Tracking): Response {
  if (!res || !res.ok) return res;
  const type = (res.headers && res.headers.get('content-type')) || '';
  const reply = new Reply(call.start);
  if (type.includes('text/event-stream') && res.body) {
    const parser = new SseParser((data) => {
      if (data === '[DONE]') return;
      const ev = safe(() => JSON.parse(data));
      if (ev === undefined) return;
      if (call.provider === 'openai') reply.openaiChunk(ev);
      else reply.anthropicEvent(ev);
    });
    let finished = false;
    const finish = (extra: { aborted?: boolean; error?: unknown }) => {
      if (finished) return;
      finished = true;
      safe(() => parser.end());
      finishTurn(tracking, call, reply, extra);
    };
    const reader = res.body.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (e) {
          finish({ aborted: true, error: e });
          controller.error(e);
          return;
        }
        if (chunk.done) {
          finish({});
          controller.close();
          return;
        }
        safe(() => parser.push(chunk.value));
        controller.enqueue(chunk.value);
      },
      cancel(reason) {
        finish({ aborted: true });
        return reader.cancel(reason);
      },
    });
    const out = new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
    for (const prop of ['url', 'redirected', 'type'] as const) {
      safe(() => Object.defineProperty(out, prop, { value: res[prop], enumerable: true }));
    }
    return out;
  }
  if (type.includes('json')) {
    res
      .clone()
      .json()
      .then(
        (json) => {
          if (call.provider === 'openai') reply.openaiCompletion(json);
          else reply.anthropicMessage(json);
          finishTurn(tracking, call, reply);
        },
        () => undefined,
      );
  }
  return res;
}

/** Which kind of target `wrap()` was given. */
export function wrapKind(target: unknown): 'fetch' | 'openai' | 'anthropic' | undefined {
  if (typeof target === 'function') return 'fetch';
  if (!isObject(target) && typeof target !== 'object') return undefined;
  const t = target as Record<string, any>;
  if (t && t.chat && t.chat.completions && typeof t.chat.completions.create === 'function') return 'openai';
  if (t && t.messages && typeof t.messages.create === 'function') return 'anthropic';
  return undefined;
}

/** Instruments `target` for the tracker `getClient()` returns at call time. Unknown targets come back as they are. */
export function wrapWith<T>(getClient: () => Tracker | undefined, target: T, options?: WrapOptions): T {
  try {
    const tracking = new Tracking(getClient, isObject(options) ? options : {});
    switch (wrapKind(target)) {
      case 'fetch':
        return wrapFetch(target as unknown as Function, tracking) as unknown as T;
      case 'openai':
        return wrapOpenAI(target as unknown as object, tracking) as T;
      case 'anthropic':
        return wrapAnthropic(target as unknown as object, tracking) as T;
      default:
        return target;
    }
  } catch {
    return target;
  }
}
