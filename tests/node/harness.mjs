// Client-side conformance harness for the Vercel AI SDK UI message stream v1.
//
// Every check throws an Error whose message starts with the layer that rejected the stream:
//   "headers:"  HTTP status / response headers (spec §2.1)
//   "framing:"  raw SSE body: one `data: <compact JSON>` line per event, comments, `[DONE]` last (§2.2)
//   "schema:"   the `ai` package's own parseJsonEventStream + uiMessageChunkSchema (§2.3, §3)
//   "nulls:"    a null anywhere in a chunk (§2.3 rule 2)
//   "assembly:" the `ai` package's readUIMessageStream reducer, the one useChat runs (§3.2, §4)
//   "scenario:" what a given scenario (plain / tool / fail) must contain
// so that the negative controls can assert *which* layer caught a corruption.

import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';

const require = createRequire(import.meta.url);

/** The two installs of `ai` side by side: the exact 6.0.0 (strict schema) and the latest 6.x (loose). */
export const AI_PACKAGES = ['ai', 'ai-latest'];

/** Load one install of `ai`; `label` carries the real version read from its package.json. */
export async function loadAi(pkg) {
  const mod = await import(pkg);
  const { name, version } = require(`${pkg}/package.json`);
  return { pkg, name, version, label: `${pkg}@${version}`, mod };
}

/** Versions pinned in this folder's package.json: { ai: '6.0.0', 'ai-latest': '6.0.NNN' }. */
export function pinnedVersions() {
  const { dependencies } = require('./package.json');
  const strip = (spec) => spec.replace(/^npm:ai@/, '');
  return { ai: strip(dependencies.ai), 'ai-latest': strip(dependencies['ai-latest']) };
}

// ---------------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------------

/**
 * The body DefaultChatTransport sends for `sendMessage({ text })` on a fresh chat, with the
 * transport's `body` option ({ sessionId, agentId }) merged in at the top level (spec §1).
 */
export function buildChatBody({ text, sessionId, agentId, chatId = `chat_node_${randomUUID()}` }) {
  return {
    sessionId,
    agentId,
    id: chatId,
    messages: [{ id: `msg_user_${randomUUID()}`, role: 'user', parts: [{ type: 'text', text }] }],
    trigger: 'submit-message',
  };
}

/** POST a chat body and read the whole response body once, as bytes and as UTF-8 text. */
export async function fetchChat(url, body, { timeoutMs = 30_000, headers = {} } = {}) {
  let res;
  let bytes;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    bytes = new Uint8Array(await res.arrayBuffer());
  } catch (error) {
    const cause = error.cause ? ` (${error.cause.code ?? error.cause.message})` : '';
    throw new Error(`request: POST ${url} failed after at most ${timeoutMs} ms: ${error.message}${cause}`, { cause: error });
  }
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`framing: the response body is not valid UTF-8 (${bytes.length} bytes)`);
  }
  return { res, bytes, text };
}

// ---------------------------------------------------------------------------------------------
// Headers (§2.1)
// ---------------------------------------------------------------------------------------------

export function assertStreamHeaders(res, { bodyForMessage = '' } = {}) {
  const problems = [];
  if (res.status !== 200) problems.push(`status is ${res.status}, expected 200`);
  const h = (name) => res.headers.get(name);
  const mediaType = (h('content-type') ?? '').split(';')[0].trim().toLowerCase();
  if (mediaType !== 'text/event-stream') {
    problems.push(`content-type is ${JSON.stringify(h('content-type'))}, expected text/event-stream`);
  }
  if (h('x-vercel-ai-ui-message-stream') !== 'v1') {
    problems.push(`x-vercel-ai-ui-message-stream is ${JSON.stringify(h('x-vercel-ai-ui-message-stream'))}, expected "v1"`);
  }
  if (h('x-accel-buffering') !== 'no') {
    problems.push(`x-accel-buffering is ${JSON.stringify(h('x-accel-buffering'))}, expected "no"`);
  }
  if (!/(^|,)\s*no-cache\s*(,|$)/i.test(h('cache-control') ?? '')) {
    problems.push(`cache-control is ${JSON.stringify(h('cache-control'))}, expected it to contain no-cache`);
  }
  const encoding = h('content-encoding');
  if (encoding != null && encoding.toLowerCase() !== 'identity') {
    problems.push(`content-encoding is ${JSON.stringify(encoding)}: the stream must not be compressed`);
  }
  if (problems.length > 0) {
    const snippet = bodyForMessage ? `\nbody: ${truncate(bodyForMessage, 500)}` : '';
    throw new Error(`headers: ${problems.join('; ')}${snippet}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Raw SSE framing (§2.2)
// ---------------------------------------------------------------------------------------------

/** Index of the first whitespace outside a JSON string, or -1: a compact serializer emits none. */
function firstWhitespaceOutsideStrings(json) {
  let inString = false;
  let escaped = false;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      return i;
    }
  }
  return -1;
}

/**
 * Check the raw body: events are separated by blank lines ("\n\n"); every event is either only
 * comment lines (": keep-alive", ":") or exactly one `data: ` line holding compact JSON (an object
 * with a string `type`) or `[DONE]`; `[DONE]` appears once and is the very last event; the body
 * ends with a blank line. Returns { events, payloads, comments }.
 */
export function checkFraming(text) {
  const problems = [];
  if (text.length === 0) throw new Error('framing: the response body is empty');
  if (text.includes('\r')) {
    problems.push('the body contains a carriage return: events must be `data: <json>\\n\\n`');
  }
  if (!text.endsWith('\n\n')) {
    problems.push(`the body does not end with a blank line (last bytes: ${JSON.stringify(text.slice(-40))})`);
  }

  // Group lines into events separated by empty lines (extra blank lines are harmless and skipped).
  const events = [];
  let current = [];
  for (const line of text.replace(/\r/g, '').split('\n')) {
    if (line === '') {
      if (current.length > 0) events.push(current);
      current = [];
    } else {
      current.push(line);
    }
  }
  if (current.length > 0) events.push(current); // unterminated trailing event (already reported)

  const classified = [];
  const payloads = [];
  let comments = 0;
  events.forEach((lines, i) => {
    const where = `event #${i + 1} ${JSON.stringify(truncate(lines.join('\\n'), 200))}`;
    if (lines.every((l) => l.startsWith(':'))) {
      comments += 1;
      classified.push({ kind: 'comment', lines });
      return;
    }
    if (lines.length !== 1) {
      problems.push(`${where} has ${lines.length} lines: each chunk must be a single \`data: \` line (no event:/id:/retry:, no comment mixed in, no pretty-printed JSON)`);
      classified.push({ kind: 'invalid', lines });
      return;
    }
    const [line] = lines;
    if (!line.startsWith('data: ')) {
      problems.push(`${where} is not a \`data: \` line`);
      classified.push({ kind: 'invalid', lines });
      return;
    }
    const payload = line.slice('data: '.length);
    if (payload === '[DONE]') {
      classified.push({ kind: 'done', lines });
      return;
    }
    const ws = firstWhitespaceOutsideStrings(payload);
    if (ws !== -1) problems.push(`${where} is not compact JSON (whitespace at column ${ws})`);
    let value;
    try {
      value = JSON.parse(payload);
    } catch (e) {
      problems.push(`${where} is not valid JSON: ${e.message}`);
      classified.push({ kind: 'invalid', lines });
      return;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value) || typeof value.type !== 'string') {
      problems.push(`${where} is not a JSON object with a string "type"`);
    }
    payloads.push(payload);
    classified.push({ kind: 'data', lines, payload, value });
  });

  const doneIndexes = classified.flatMap((e, i) => (e.kind === 'done' ? [i] : []));
  if (doneIndexes.length === 0) problems.push('there is no `data: [DONE]` event');
  else if (doneIndexes.length > 1) problems.push(`\`data: [DONE]\` appears ${doneIndexes.length} times`);
  if (classified.length > 0 && classified.at(-1).kind !== 'done') {
    problems.push(`the last event is ${JSON.stringify(classified.at(-1).lines.join('\\n'))}, expected \`data: [DONE]\``);
  }
  if (payloads.length === 0) problems.push('there is no JSON chunk at all');

  if (problems.length > 0) throw new Error(`framing: ${problems.join('; ')}`);
  return { events: classified, payloads, comments };
}

// ---------------------------------------------------------------------------------------------
// Schema (§2.3, §3): the ai package's own parser and zod schema
// ---------------------------------------------------------------------------------------------

/** A ReadableStream<Uint8Array> that delivers `bytes` in small slices (splits events and UTF-8). */
export function bytesToStream(bytes, sliceSize = 7) {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.slice(offset, offset + sliceSize));
      offset += sliceSize;
    },
  });
}

/**
 * Run the raw body through `parseJsonEventStream({ stream, schema: uiMessageChunkSchema })` of the
 * given ai install. Every result must be `success: true`; otherwise throws with the raw value(s).
 */
export async function parseChunks(ai, bytes) {
  const { parseJsonEventStream, uiMessageChunkSchema } = ai.mod;
  const chunks = [];
  const failures = [];
  let index = 0;
  for await (const result of parseJsonEventStream({ stream: bytesToStream(bytes), schema: uiMessageChunkSchema })) {
    index += 1;
    if (result.success) {
      chunks.push(result.value);
    } else {
      const detail = (result.error?.message ?? String(result.error)).replace(/\s+/g, ' ');
      failures.push(`chunk #${index} ${JSON.stringify(result.rawValue)} rejected: ${truncate(detail, 600)}`);
    }
  }
  if (failures.length > 0) {
    throw new Error(`schema (${ai.label}): ${failures.length} chunk(s) failed uiMessageChunkSchema: ${failures.join(' | ')}`);
  }
  return chunks;
}

/** Paths of every null inside `value`; keys listed in `skipKeys` are free-form payloads, not walked. */
export function findNulls(value, { skipKeys = [], path = '$' } = {}) {
  if (value === null) return [path];
  if (typeof value !== 'object') return [];
  if (Array.isArray(value)) return value.flatMap((v, i) => findNulls(v, { skipKeys, path: `${path}[${i}]` }));
  return Object.entries(value).flatMap(([k, v]) =>
    skipKeys.includes(k) ? [] : findNulls(v, { skipKeys, path: `${path}.${k}` }),
  );
}

export function assertNoNulls(chunks, { skipKeys = [] } = {}) {
  const found = chunks.flatMap((chunk, i) =>
    findNulls(chunk, { skipKeys, path: `chunk#${i + 1}(${chunk?.type})` }),
  );
  if (found.length > 0) throw new Error(`nulls: null values at ${found.join(', ')}`);
}

// ---------------------------------------------------------------------------------------------
// Assembly (§3.2, §4): the ai package's readUIMessageStream reducer
// ---------------------------------------------------------------------------------------------

/**
 * Replay parsed chunks through `readUIMessageStream({ stream, terminateOnError, onError })`.
 * Never throws: returns { message (last snapshot), snapshots, thrown, onErrorCalls } so that a
 * scenario can require success (plain/tool) or require the error to surface (fail).
 */
export async function assemble(ai, chunks, { terminateOnError = true } = {}) {
  const onErrorCalls = [];
  const stream = new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(structuredClone(chunk));
      controller.close();
    },
  });
  let message;
  let snapshots = 0;
  let thrown;
  try {
    for await (const snapshot of ai.mod.readUIMessageStream({
      stream,
      terminateOnError,
      onError: (error) => onErrorCalls.push(error),
    })) {
      message = snapshot;
      snapshots += 1;
    }
  } catch (error) {
    thrown = error;
  }
  return { message, snapshots, thrown, onErrorCalls };
}

/** Throw "assembly:" if the reducer reported any error. */
export function assertAssembledCleanly(assembled) {
  const err = assembled.thrown ?? assembled.onErrorCalls[0];
  if (err) throw new Error(`assembly: readUIMessageStream failed: ${err.message ?? String(err)}`);
  if (!assembled.message) throw new Error('assembly: readUIMessageStream yielded no message');
}

/**
 * The protocol-level pipeline shared by every scenario: framing → schema → (caller) → assembly.
 * Returns { framing, chunks, assembled }. Does not judge the assembly result (see scenarios).
 */
export async function analyzeStream(ai, bytes, text) {
  const framing = checkFraming(text);
  const chunks = await parseChunks(ai, bytes);
  if (chunks.length !== framing.payloads.length) {
    throw new Error(`schema (${ai.label}): parseJsonEventStream produced ${chunks.length} chunks for ${framing.payloads.length} JSON events`);
  }
  const assembled = await assemble(ai, chunks, { terminateOnError: true });
  return { framing, chunks, assembled };
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

const fail = (msg) => {
  throw new Error(`scenario: ${msg}`);
};
const typesOf = (chunks) => chunks.map((c) => c.type);
const isPlainObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

function requireMessageIdOn(chunks) {
  const start = chunks.find((c) => c.type === 'start');
  if (!start) fail('no `start` chunk');
  if (typeof start.messageId !== 'string' || start.messageId.length === 0) {
    fail(`\`start\` has no messageId: ${JSON.stringify(start)}`);
  }
  return start.messageId;
}

function finishOf(chunks) {
  const last = chunks.at(-1);
  if (!last || last.type !== 'finish') fail(`the last chunk is ${JSON.stringify(last)}, expected \`finish\``);
  if (chunks.filter((c) => c.type === 'finish').length !== 1) fail('more than one `finish` chunk');
  return last;
}

/** Split chunks into steps ([start-step … finish-step]); content outside a step is an error. */
function stepsOf(chunks) {
  const steps = [];
  let open = null;
  const outside = new Set(['start', 'message-metadata', 'finish', 'error']);
  for (const chunk of chunks) {
    if (chunk.type === 'start-step') {
      if (open) fail('`start-step` while a step is already open');
      open = [];
    } else if (chunk.type === 'finish-step') {
      if (!open) fail('`finish-step` without an open step');
      steps.push(open);
      open = null;
    } else if (open) {
      open.push(chunk);
    } else if (!outside.has(chunk.type)) {
      fail(`\`${chunk.type}\` outside of a step`);
    }
  }
  if (open) fail('a step is never closed by `finish-step`');
  return steps;
}

const textParts = (message) => message.parts.filter((p) => p.type === 'text');

/**
 * plain: start{messageId} · start-step · text-start · text-delta+ · text-end · finish-step ·
 * message-metadata* · finish{stop}; no null anywhere; the message is [step-start, text].
 */
export function checkPlainScenario({ chunks, assembled }, { expectText }) {
  const sequence = typesOf(chunks).join(' ');
  if (!/^start start-step text-start( text-delta)+ text-end finish-step( message-metadata)* finish$/.test(sequence)) {
    fail(`chunk types are "${sequence}", expected "start start-step text-start text-delta+ text-end finish-step [message-metadata] finish"`);
  }
  const messageId = requireMessageIdOn(chunks);
  const ids = new Set(chunks.filter((c) => c.type.startsWith('text-')).map((c) => c.id));
  if (ids.size !== 1) fail(`text chunks use several ids: ${[...ids].join(', ')}`);
  const streamed = chunks.filter((c) => c.type === 'text-delta').map((c) => c.delta).join('');
  if (streamed !== expectText) fail(`streamed text ${JSON.stringify(streamed)} !== expected ${JSON.stringify(expectText)}`);
  const finish = finishOf(chunks);
  if (finish.finishReason !== 'stop') fail(`finish.finishReason is ${JSON.stringify(finish.finishReason)}, expected "stop"`);
  assertNoNulls(chunks);

  assertAssembledCleanly(assembled);
  const { message } = assembled;
  if (message.role !== 'assistant') fail(`assembled role is ${message.role}`);
  if (message.id !== messageId) fail(`assembled id ${JSON.stringify(message.id)} !== start.messageId ${JSON.stringify(messageId)}`);
  const partTypes = message.parts.map((p) => p.type).join(',');
  if (partTypes !== 'step-start,text') fail(`assembled parts are [${partTypes}], expected [step-start,text]`);
  const [, text] = message.parts;
  if (text.text !== expectText) fail(`assembled text ${JSON.stringify(text.text)} !== expected ${JSON.stringify(expectText)}`);
  if (text.state !== 'done') fail(`assembled text part state is ${JSON.stringify(text.state)}, expected "done"`);
  return { message, messageId };
}

/**
 * tool: two steps; step 1 calls the tool `toolName` (tool-input-available with an object input) and
 * carries its server-side result (tool-output-available, same toolCallId); step 2 ends with the final
 * text; finish{stop}. The message has two step-start parts, a `tool-<name>` part in
 * output-available, and the last text part === finalText after the second step-start.
 */
export function checkToolScenario({ chunks, assembled }, { toolName, finalText, requireMessageId = true }) {
  if (chunks[0]?.type !== 'start') fail(`the first chunk is ${JSON.stringify(chunks[0])}, expected \`start\``);
  const messageId = requireMessageId ? requireMessageIdOn(chunks) : undefined;
  if (chunks.some((c) => c.type === 'error')) fail(`unexpected error chunk ${JSON.stringify(chunks.find((c) => c.type === 'error'))}`);
  const steps = stepsOf(chunks);
  if (steps.length !== 2) fail(`${steps.length} start-step/finish-step pairs, expected 2 (types: ${typesOf(chunks).join(' ')})`);
  const finish = finishOf(chunks);
  if (finish.finishReason !== 'stop') fail(`finish.finishReason is ${JSON.stringify(finish.finishReason)}, expected "stop"`);

  const [step1, step2] = steps;
  const call = step1.find((c) => c.type === 'tool-input-available');
  if (!call) fail('step 1 has no `tool-input-available`');
  if (call.toolName !== toolName) fail(`tool-input-available.toolName is ${JSON.stringify(call.toolName)}, expected ${JSON.stringify(toolName)}`);
  if (!isPlainObject(call.input)) fail(`tool-input-available.input is not an object: ${JSON.stringify(call.input)}`);
  const result = step1.find((c) => c.type === 'tool-output-available' && c.toolCallId === call.toolCallId);
  if (!result) fail(`step 1 has no \`tool-output-available\` for ${call.toolCallId} (a server-executed tool's result belongs to the step that called it)`);
  if (result.output === undefined) fail('tool-output-available has no output');
  if (step1.some((c) => c.type === 'tool-output-error')) fail('step 1 has a tool-output-error');
  if (step2.some((c) => c.type.startsWith('tool-'))) fail('step 2 calls a tool again');
  const step2Text = step2.filter((c) => c.type === 'text-delta').map((c) => c.delta).join('');
  if (step2Text !== finalText) fail(`step 2 streamed ${JSON.stringify(step2Text)}, expected ${JSON.stringify(finalText)}`);
  assertNoNulls(chunks, { skipKeys: ['input', 'output'] });

  assertAssembledCleanly(assembled);
  const { message } = assembled;
  if (message.role !== 'assistant') fail(`assembled role is ${message.role}`);
  if (requireMessageId && message.id !== messageId) fail(`assembled id ${JSON.stringify(message.id)} !== start.messageId ${JSON.stringify(messageId)}`);
  const stepStarts = message.parts.flatMap((p, i) => (p.type === 'step-start' ? [i] : []));
  if (stepStarts.length !== 2) fail(`assembled message has ${stepStarts.length} step-start parts, expected 2`);
  const toolIndex = message.parts.findIndex((p) => p.type === `tool-${toolName}`);
  if (toolIndex === -1) fail(`assembled message has no \`tool-${toolName}\` part (parts: ${message.parts.map((p) => p.type).join(',')})`);
  const tool = message.parts[toolIndex];
  if (tool.state !== 'output-available') fail(`tool part state is ${JSON.stringify(tool.state)}, expected "output-available"`);
  if (tool.toolCallId !== call.toolCallId) fail('tool part toolCallId differs from the chunks');
  if (!isPlainObject(tool.input)) fail(`tool part input is not an object: ${JSON.stringify(tool.input)}`);
  if (tool.output === undefined) fail('tool part has no output');
  if (!(toolIndex < stepStarts[1])) fail('the tool part is not in the first step');
  const texts = textParts(message);
  const last = texts.at(-1);
  if (!last) fail('assembled message has no text part');
  if (!(message.parts.indexOf(last) > stepStarts[1])) fail('the final text part is not in the second step');
  if (last.text !== finalText) fail(`final text ${JSON.stringify(last.text)} !== expected ${JSON.stringify(finalText)}`);
  if (last.state !== 'done') fail(`final text part state is ${JSON.stringify(last.state)}, expected "done"`);
  return { message, tool, call, result };
}

/** Reasons an errorText would leak internals to users (§5.2). */
const LEAK_PATTERNS = [
  [/Error:/, '"Error:"'],
  [/\n/, 'a line break (stack traces and dumps are multi-line)'],
  [/\bat\s+\S+\s+\(?\S+:\d+:\d+\)?/, 'a stack frame'],
  [/\.rs:\d+/, 'a Rust source location'],
  [/panicked/i, 'a Rust panic message'],
  [/backtrace|traceback/i, 'a backtrace'],
  [/[{[]\s*"/, 'JSON (an upstream body?)'],
  [/https?:\/\//i, 'a URL (upstream endpoint?)'],
  [/\b(sk|pk|rk)-[A-Za-z0-9_-]{8,}/, 'something that looks like a key'],
  [/\bBearer\s/i, 'an authorization header'],
];

export function checkErrorTextIsSafe(errorText) {
  if (typeof errorText !== 'string' || errorText.trim().length === 0) {
    fail(`errorText is empty: ${JSON.stringify(errorText)}`);
  }
  for (const [pattern, what] of LEAK_PATTERNS) {
    if (pattern.test(errorText)) fail(`errorText contains ${what}: ${JSON.stringify(errorText)}`);
  }
}

/**
 * fail: text streamed before one `error` chunk === partial; the error's text is user-safe; after it
 * only finish-step (optional) and finish{error}; the reducer (terminateOnError) surfaces the error
 * with exactly that text, and the partial text is in the message it had assembled until then.
 */
export function checkFailScenario({ chunks, assembled }, { partial, requireMessageId = true }) {
  if (chunks[0]?.type !== 'start') fail(`the first chunk is ${JSON.stringify(chunks[0])}, expected \`start\``);
  if (requireMessageId) requireMessageIdOn(chunks);
  const errorIndexes = chunks.flatMap((c, i) => (c.type === 'error' ? [i] : []));
  if (errorIndexes.length !== 1) fail(`${errorIndexes.length} error chunks, expected exactly 1 (types: ${typesOf(chunks).join(' ')})`);
  const errorIndex = errorIndexes[0];
  const { errorText } = chunks[errorIndex];
  checkErrorTextIsSafe(errorText);

  const before = chunks.slice(0, errorIndex);
  const after = chunks.slice(errorIndex + 1);
  const streamed = before.filter((c) => c.type === 'text-delta').map((c) => c.delta).join('');
  if (streamed !== partial) fail(`text streamed before the error ${JSON.stringify(streamed)} !== expected ${JSON.stringify(partial)}`);
  const afterTypes = typesOf(after).join(' ');
  if (!/^(finish-step )?finish$/.test(afterTypes)) fail(`after the error came "${afterTypes}", expected "[finish-step] finish"`);
  const finish = finishOf(chunks);
  if (finish.finishReason !== 'error') fail(`finish.finishReason is ${JSON.stringify(finish.finishReason)}, expected "error"`);
  stepsOf(chunks); // balanced steps, nothing outside a step
  assertNoNulls(chunks, { skipKeys: ['input', 'output'] });

  // The reducer must surface the error (useChat → status "error", error.message === errorText).
  const surfaced = assembled.thrown;
  if (!surfaced) fail('readUIMessageStream({ terminateOnError: true }) did not throw');
  if (surfaced.message !== errorText) fail(`readUIMessageStream threw ${JSON.stringify(surfaced.message)}, expected the errorText ${JSON.stringify(errorText)}`);
  if (assembled.onErrorCalls[0]?.message !== errorText) fail('onError did not fire first with the errorText');
  if (partial.length > 0) {
    const text = assembled.message ? textParts(assembled.message).map((p) => p.text).join('') : undefined;
    if (text !== partial) fail(`the message assembled before the error has text ${JSON.stringify(text)}, expected ${JSON.stringify(partial)}`);
  }
  return { errorText, message: assembled.message };
}

// ---------------------------------------------------------------------------------------------
// End to end: DefaultChatTransport + a minimal AbstractChat (spec §9)
// ---------------------------------------------------------------------------------------------

/** The state object AbstractChat drives (what @ai-sdk/react's ReactChatState does, without React). */
class TestChatState {
  constructor(messages = []) {
    this.status = 'ready';
    this.error = undefined;
    this.messages = messages;
  }

  pushMessage = (message) => {
    this.messages = this.messages.concat(this.snapshot(message));
  };

  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
  };

  replaceMessage = (index, message) => {
    this.messages = [...this.messages.slice(0, index), this.snapshot(message), ...this.messages.slice(index + 1)];
  };

  snapshot = (value) => structuredClone(value);
}

/**
 * A chat over the real DefaultChatTransport of the given ai install. Returns { chat, events }:
 * events.errors collects onError calls, events.finishes collects onFinish calls.
 */
export function createTestChat(ai, { api, body, headers }) {
  const { AbstractChat, DefaultChatTransport } = ai.mod;
  class TestChat extends AbstractChat {
    constructor(init) {
      super({ ...init, state: new TestChatState() });
    }
  }
  const events = { errors: [], finishes: [] };
  const chat = new TestChat({
    transport: new DefaultChatTransport({ api, body, headers }),
    onError: (error) => events.errors.push(error),
    onFinish: (info) => events.finishes.push(info),
  });
  return { chat, events };
}

export const messageText = (message) => textParts(message).map((p) => p.text).join('');

export function truncate(s, n) {
  return s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s;
}
