// wrap(): OpenAI-shaped and Anthropic-shaped fake clients, and fetch against a local OpenAI/Anthropic imitation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, wrap } from '../dist/esm/index.js';
import { startServer, recordingFetch } from './helpers.mjs';

function setup(extra = {}) {
  const f = recordingFetch();
  const errors = [];
  const client = createClient({ apiKey: 'k', baseUrl: 'http://sensei.test', flushIntervalMs: 60_000, flushOnExit: false, fetch: f, onError: (e) => errors.push(e), ...extra });
  return {
    client,
    errors,
    /** The tracked bodies after a flush. */
    async tracked() {
      await client.flush();
      return f.events().map((e) => e.body);
    },
  };
}

const completion = {
  id: 'chatcmpl-1',
  object: 'chat.completion',
  model: 'gpt-4o-mini-2024',
  choices: [{ index: 0, message: { role: 'assistant', content: 'Hello Ana!' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 11, completion_tokens: 3, total_tokens: 14 },
};

function openaiChunks(text) {
  const words = text.split(/(?= )/);
  return [
    { id: 'chatcmpl-2', model: 'gpt-4o-mini-2024', choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] },
    ...words.map((w) => ({ id: 'chatcmpl-2', model: 'gpt-4o-mini-2024', choices: [{ index: 0, delta: { content: w }, finish_reason: null }] })),
    { id: 'chatcmpl-2', model: 'gpt-4o-mini-2024', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
    { id: 'chatcmpl-2', model: 'gpt-4o-mini-2024', choices: [], usage: { prompt_tokens: 9, completion_tokens: words.length } },
  ];
}

/** An async-iterable stream like the SDKs' `Stream`, recording whether the consumer stopped it. */
function fakeStream(items) {
  const s = {
    stopped: false,
    controller: { abort() {} },
    async *[Symbol.asyncIterator]() {
      try {
        for (const it of items) {
          await new Promise((r) => setTimeout(r, 1));
          yield it;
        }
      } finally {
        s.stopped = true;
      }
    },
  };
  return s;
}

function fakeOpenAI() {
  const calls = [];
  let lastStream;
  const client = {
    apiKey: 'sk-openai',
    models: { list() { return ['gpt-4o-mini']; } },
    chat: {
      completions: {
        marker: 'completions',
        create(params, opts) {
          calls.push({ params, opts, self: this });
          if (params.model === 'boom-sync') throw new Error('sync failure');
          if (params.model === 'boom') return Promise.reject(Object.assign(new Error('HTTP 500'), { status: 500 }));
          if (params.stream) return Promise.resolve((lastStream = fakeStream(openaiChunks('Hi there, Ana. How are you?'))));
          return Promise.resolve(completion);
        },
      },
    },
  };
  return { client, calls, stream: () => lastStream };
}

const history = [
  { role: 'system', content: 'You are a tattoo studio assistant.' },
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello!' },
  { role: 'user', content: 'I want a booking' },
  { role: 'user', content: [{ type: 'text', text: 'next week' }, { type: 'image_url', image_url: { url: 'x' } }] },
];

test('wrap(openai): a non-streaming call is returned unchanged and tracks the new turn', async () => {
  const { client, tracked } = setup();
  const { client: openai, calls } = fakeOpenAI();
  const w = client.wrap(openai, { conversationId: 'conv-1', userId: 'u1', agentId: 'agent-1', metadata: { app: 'test' } });
  assert.equal(w.apiKey, 'sk-openai');
  assert.deepEqual(w.models.list(), ['gpt-4o-mini'], 'other methods pass through');
  assert.equal(w.chat.completions.marker, 'completions');
  const res = await w.chat.completions.create({ model: 'gpt-4o-mini', messages: history }, { timeout: 5 });
  assert.equal(res, completion, 'the very same result object');
  assert.deepEqual(calls[0].opts, { timeout: 5 }, 'extra arguments are passed');
  assert.equal(calls[0].self, openai.chat.completions, 'called with its own this');
  const [body] = await tracked();
  assert.equal(body.conversationId, 'conv-1');
  assert.equal(body.userId, 'u1');
  assert.equal(body.agentId, 'agent-1');
  assert.deepEqual(body.metadata, { app: 'test' });
  assert.deepEqual(body.messages.map((m) => [m.role, m.content]), [
    ['user', 'I want a booking'],
    ['user', 'next week'],
    ['assistant', 'Hello Ana!'],
  ]);
  const meta = body.messages[2].metadata;
  assert.equal(meta.provider, 'openai');
  assert.equal(meta.model, 'gpt-4o-mini-2024');
  assert.equal(meta.inputTokens, 11);
  assert.equal(meta.outputTokens, 3);
  assert.equal(typeof meta.latencyMs, 'number');
  assert.equal(meta.finishReason, 'stop');
});

test('wrap(openai): the first turn includes the system prompt with a stable id; one conversation id per wrapped client', async () => {
  const { client, tracked } = setup();
  const w = client.wrap(fakeOpenAI().client);
  const first = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }];
  await w.chat.completions.create({ model: 'm', messages: first });
  await w.chat.completions.create({ model: 'm', messages: [...first, { role: 'assistant', content: 'Hello Ana!' }, { role: 'user', content: 'Again' }] });
  const other = client.wrap(fakeOpenAI().client);
  await other.chat.completions.create({ model: 'm', messages: first });
  const [a, b, c] = await tracked();
  assert.deepEqual(a.messages.map((m) => m.role), ['system', 'user', 'assistant']);
  assert.match(a.messages[0].id, /^sys_[0-9a-f]{16}$/);
  assert.equal(c.messages[0].id, a.messages[0].id, 'same prompt, same id');
  assert.deepEqual(b.messages.map((m) => [m.role, m.content]), [['user', 'Again'], ['assistant', 'Hello Ana!']]);
  assert.equal(a.conversationId, b.conversationId);
  assert.notEqual(a.conversationId, c.conversationId);
  assert.match(a.conversationId, /^[0-9a-f-]{36}$/);
});

test('wrap(openai): conversationId may be a function, called per call', async () => {
  const { client, tracked } = setup();
  let n = 0;
  const w = client.wrap(fakeOpenAI().client, { conversationId: () => `conv-${++n}` });
  await w.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'a' }] });
  await w.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'b' }] });
  assert.deepEqual((await tracked()).map((b) => b.conversationId), ['conv-1', 'conv-2']);
});

test('wrap(openai): streaming yields every chunk unchanged and tracks the whole reply', async () => {
  const { client, tracked } = setup();
  const fake = fakeOpenAI();
  const w = client.wrap(fake.client, { conversationId: 'conv-s' });
  const stream = await w.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'Hi' }] });
  assert.equal(stream.controller, fake.stream().controller, 'other properties of the stream read through');
  const seen = [];
  for await (const chunk of stream) seen.push(chunk);
  const original = [];
  for await (const chunk of fakeStream(openaiChunks('Hi there, Ana. How are you?'))) original.push(chunk);
  assert.deepEqual(seen, original);
  const [body] = await tracked();
  assert.deepEqual(body.messages.map((m) => [m.role, m.content]), [['user', 'Hi'], ['assistant', 'Hi there, Ana. How are you?']]);
  const meta = body.messages[1].metadata;
  assert.equal(meta.model, 'gpt-4o-mini-2024');
  assert.equal(meta.inputTokens, 9);
  assert.equal(meta.outputTokens, 6);
  assert.equal(typeof meta.ttftMs, 'number');
  assert.ok(meta.ttftMs <= meta.latencyMs);
  assert.equal(meta.aborted, undefined);
});

test('wrap(openai): a consumer that breaks early still tracks what was produced (aborted)', async () => {
  const { client, tracked } = setup();
  const fake = fakeOpenAI();
  const w = client.wrap(fake.client, { conversationId: 'conv-b' });
  const stream = await w.chat.completions.create({ model: 'm', stream: true, messages: [{ role: 'user', content: 'Hi' }] });
  let n = 0;
  for await (const _ of stream) if (++n === 3) break;
  assert.equal(fake.stream().stopped, true, 'the underlying stream was stopped');
  const [body] = await tracked();
  assert.equal(body.messages[1].content, 'Hi there,');
  assert.equal(body.messages[1].metadata.aborted, true);
});

test('wrap(openai): the call’s own errors are rethrown unchanged and nothing is tracked', async () => {
  const { client, tracked } = setup();
  const w = client.wrap(fakeOpenAI().client);
  assert.throws(() => w.chat.completions.create({ model: 'boom-sync', messages: [] }), /sync failure/);
  await assert.rejects(w.chat.completions.create({ model: 'boom', messages: [{ role: 'user', content: 'x' }] }), (e) => e.status === 500);
  assert.deepEqual(await tracked(), []);
});

test('wrap() before init() and of unknown targets changes nothing', async () => {
  const fake = fakeOpenAI();
  const w = wrap(fake.client);
  assert.equal(await w.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] }), completion);
  const plain = { a: 1 };
  assert.equal(wrap(plain), plain);
  assert.equal(wrap(null), null);
  assert.equal(wrap(42), 42);
});

// ----------------------------------------------------------------------------------------------- Anthropic

const message = {
  id: 'msg_1',
  type: 'message',
  role: 'assistant',
  model: 'claude-sonnet-4-5',
  content: [{ type: 'text', text: 'Sure, ' }, { type: 'text', text: 'Tuesday works.' }],
  stop_reason: 'end_turn',
  usage: { input_tokens: 20, output_tokens: 5 },
};

function anthropicEvents() {
  return [
    { type: 'message_start', message: { id: 'msg_2', model: 'claude-sonnet-4-5', usage: { input_tokens: 21, output_tokens: 1 } } },
    { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
    { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Tuesday' } },
    { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ' at 3pm' } },
    { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ' works.' } },
    { type: 'content_block_stop', index: 0 },
    { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 7 } },
    { type: 'message_stop' },
  ];
}

function fakeAnthropic() {
  let last;
  const client = {
    messages: {
      create(params) {
        if (params.model === 'boom') return Promise.reject(new Error('overloaded'));
        return Promise.resolve(params.stream ? (last = fakeStream(anthropicEvents())) : message);
      },
      countTokens() {
        return 3;
      },
    },
  };
  return { client, stream: () => last };
}

test('wrap(anthropic): non-streaming, with system and block content', async () => {
  const { client, tracked } = setup();
  const w = client.wrap(fakeAnthropic().client, { conversationId: 'conv-a' });
  assert.equal(w.messages.countTokens(), 3);
  const res = await w.messages.create({
    model: 'claude-sonnet-4-5',
    max_tokens: 100,
    system: [{ type: 'text', text: 'You book tattoos.' }],
    messages: [{ role: 'user', content: [{ type: 'text', text: 'Can I come Tuesday?' }] }],
  });
  assert.equal(res, message);
  const [body] = await tracked();
  assert.deepEqual(body.messages.map((m) => [m.role, m.content]), [
    ['system', 'You book tattoos.'],
    ['user', 'Can I come Tuesday?'],
    ['assistant', 'Sure, Tuesday works.'],
  ]);
  const meta = body.messages[2].metadata;
  assert.deepEqual([meta.provider, meta.model, meta.inputTokens, meta.outputTokens, meta.finishReason], ['anthropic', 'claude-sonnet-4-5', 20, 5, 'end_turn']);
});

test('wrap(anthropic): streaming events are passed through and the reply tracked; early break too', async () => {
  const { client, tracked } = setup();
  const fake = fakeAnthropic();
  const w = client.wrap(fake.client, { conversationId: 'conv-as' });
  const params = { model: 'claude-sonnet-4-5', max_tokens: 100, stream: true, system: 'Be kind.', messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }, { role: 'user', content: 'Tuesday?' }] };
  const seen = [];
  for await (const ev of await w.messages.create(params)) seen.push(ev);
  assert.deepEqual(seen, anthropicEvents());
  let n = 0;
  for await (const _ of await w.messages.create(params)) if (++n === 4) break;
  assert.equal(fake.stream().stopped, true);
  await assert.rejects(w.messages.create({ ...params, model: 'boom' }), /overloaded/);
  const [full, partial] = await tracked();
  assert.deepEqual(full.messages.map((m) => [m.role, m.content]), [['user', 'Tuesday?'], ['assistant', 'Tuesday at 3pm works.']], 'no system prompt after the first turn');
  const meta = full.messages[1].metadata;
  assert.deepEqual([meta.inputTokens, meta.outputTokens, meta.model, meta.aborted], [21, 7, 'claude-sonnet-4-5', undefined]);
  assert.equal(typeof meta.ttftMs, 'number');
  assert.equal(partial.messages[1].content, 'Tuesday at 3pm');
  assert.equal(partial.messages[1].metadata.aborted, true);
});

// ----------------------------------------------------------------------------------------------- fetch

function sse(events, { done = true } = {}) {
  return events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join('') + (done ? 'data: [DONE]\n\n' : '');
}

async function llmServer() {
  return startServer((r) => {
    if (r.path === '/v1/chat/completions') {
      if (r.json.stream) {
        const body = sse(openaiChunks('Streaming hello from the fake.'));
        // Split mid-line to exercise the incremental parser.
        const chunks = [body.slice(0, 37), body.slice(37, 200), body.slice(200)];
        return { status: 200, contentType: 'text/event-stream', body: 'x', chunks, chunkDelayMs: 5, headers: { 'content-type': 'text/event-stream', 'x-request-id': 'req_1' } };
      }
      return { status: 200, body: completion, headers: { 'x-request-id': 'req_1' } };
    }
    if (r.path === '/v1/messages') {
      const body = anthropicEvents().map((e) => `event: ${e.type}\r\ndata: ${JSON.stringify(e)}\r\n\r\n`).join('');
      return { status: 200, body: 'x', chunks: [body], headers: { 'content-type': 'text/event-stream' } };
    }
    if (r.path === '/v1/error') return { status: 429, body: { error: { message: 'rate' } } };
    return { status: 200, body: { other: true } };
  });
}

test('wrap(fetch): JSON chat completion is tracked; the caller’s response is unaffected', async (t) => {
  const llm = await llmServer();
  t.after(llm.close);
  const { client, tracked } = setup();
  const f = client.wrap(fetch, { conversationId: 'conv-f' });
  const res = await f(`${llm.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi via fetch' }] }),
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-request-id'), 'req_1');
  assert.deepEqual(await res.json(), completion);
  const other = await f(`${llm.url}/v1/other`, { method: 'POST', body: '{}' });
  assert.deepEqual(await other.json(), { other: true });
  const err = await f(`${llm.url}/v1/error`, { method: 'POST', body: '{}' });
  assert.equal(err.status, 429);
  const bodies = await tracked();
  assert.equal(bodies.length, 1, 'only the LLM call is tracked');
  assert.deepEqual(bodies[0].messages.map((m) => [m.role, m.content]), [['user', 'Hi via fetch'], ['assistant', 'Hello Ana!']]);
  assert.equal(bodies[0].messages[1].metadata.inputTokens, 11);
  assert.equal(bodies[0].conversationId, 'conv-f');
});

test('wrap(fetch): an SSE chat completion reaches the caller byte for byte and is tracked', async (t) => {
  const llm = await llmServer();
  t.after(llm.close);
  const { client, tracked } = setup();
  const f = client.wrap(fetch);
  const req = new Request(`${llm.url}/v1/chat/completions`, {
    method: 'POST',
    body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Stream please' }] }),
  });
  const res = await f(req);
  assert.equal(res.status, 200);
  assert.equal(res.url, `${llm.url}/v1/chat/completions`);
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  assert.equal(await res.text(), sse(openaiChunks('Streaming hello from the fake.')));
  const [body] = await tracked();
  assert.deepEqual(body.messages.map((m) => [m.role, m.content]), [['user', 'Stream please'], ['assistant', 'Streaming hello from the fake.']]);
  assert.equal(body.messages[1].metadata.outputTokens, 5);
  assert.equal(typeof body.messages[1].metadata.ttftMs, 'number');
});

test('wrap(fetch): Anthropic SSE (CRLF, event lines) and a cancelled SSE read', async (t) => {
  const llm = await llmServer();
  t.after(llm.close);
  const { client, tracked } = setup();
  const f = client.wrap(fetch, { conversationId: 'conv-fa' });
  const res = await f(`${llm.url}/v1/messages`, { method: 'POST', body: JSON.stringify({ model: 'claude', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'Hi' }] }) });
  await res.text();
  // A consumer that cancels an SSE body mid-way: tracked as aborted with the text so far.
  const slow = await startServer(() => ({ status: 200, body: 'x', chunks: openaiChunks('a b c d e f g h').map((c) => `data: ${JSON.stringify(c)}\n\n`), chunkDelayMs: 30, headers: { 'content-type': 'text/event-stream' } }));
  t.after(slow.close);
  const res2 = await f(`${slow.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'Go' }] }) });
  const reader = res2.body.getReader();
  await reader.read();
  await reader.read();
  await reader.read();
  await reader.cancel();
  const [a, b] = await tracked();
  assert.deepEqual(a.messages.map((m) => m.content), ['Hi', 'Tuesday at 3pm works.']);
  assert.equal(a.messages[1].metadata.provider, 'anthropic');
  assert.equal(b.messages[1].metadata.aborted, true);
  const partial = b.messages[1].content;
  assert.ok(partial.length > 0 && partial.length < 'a b c d e f g h'.length && 'a b c d e f g h'.startsWith(partial), partial);
});

test('wrap(fetch): network errors of the wrapped fetch are rethrown unchanged', async () => {
  const { client, tracked } = setup();
  const boom = new TypeError('fetch failed');
  const f = client.wrap(async () => {
    throw boom;
  });
  await assert.rejects(f('http://x.invalid/v1/chat/completions', { method: 'POST', body: '{"messages":[]}' }), (e) => e === boom);
  const notJson = client.wrap(async () => new Response('ok'));
  assert.equal(await (await notJson('http://x.invalid/v1/chat/completions', { method: 'POST', body: 'not json' })).text(), 'ok');
  assert.deepEqual(await tracked(), []);
});
