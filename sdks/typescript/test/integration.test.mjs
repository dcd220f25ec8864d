// Against the REAL Sensei server: runs only when SENSEI_URL and SENSEI_API_KEY are set (the Rust test
// crates/web/tests/sdk_typescript.rs sets them). Optional: FAKE_OPENAI_URL (an OpenAI-compatible base URL ending
// in /v1) for the wrap(fetch) scenario; SENSEI_CONVERSATION_ID / SENSEI_WRAP_CONVERSATION_ID to choose the ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createClient } from '../dist/esm/index.js';

const URL_ = process.env.SENSEI_URL?.replace(/\/+$/, '');
const KEY = process.env.SENSEI_API_KEY;
const FAKE_OPENAI_URL = process.env.FAKE_OPENAI_URL?.replace(/\/+$/, '');
const SKIP = !URL_ || !KEY ? 'SENSEI_URL and SENSEI_API_KEY are not set: skipping the tests against a real Sensei server' : false;

/** A fetch that records what the SDK sent (to replay a batch as a retry would). */
function recording() {
  const sent = [];
  const f = async (url, init) => {
    sent.push({ url, init });
    return fetch(url, init);
  };
  return { f, sent };
}

test('tracks two messages once: a re-sent batch is a duplicate, and /conversations/track sees 0 accepted, 2 duplicates', { skip: SKIP }, async () => {
  const conversationId = process.env.SENSEI_CONVERSATION_ID || `sdk-it-${randomUUID()}`;
  const errors = [];
  const { f, sent } = recording();
  const client = createClient({ apiKey: KEY, baseUrl: URL_, fetch: f, flushOnExit: false, onError: (e) => errors.push(e) });
  assert.equal(await client.health(), true, 'GET /healthz answers');
  const t0 = Date.now() - 60_000;
  const messages = [
    { role: 'user', content: 'Hi, can I book a tattoo next week?', timestamp: new Date(t0).toISOString() },
    { role: 'assistant', content: 'Of course! Which day suits you?', timestamp: t0 + 1500 },
  ];
  assert.ok(client.track({ conversationId, messages, userId: 'user-it', agentId: 'agent-it', metadata: { suite: 'sdk-typescript' } }));
  await client.flush();
  assert.deepEqual(errors.map((e) => e.message), []);
  assert.deepEqual(client.stats(), { queued: 1, sent: 1, dropped: 0, failed: 0, retries: 0, pending: 0 });
  const ingest = sent.filter((s) => s.url.endsWith('/api/v1/ingest'));
  assert.equal(ingest.length, 1);

  // A retry of the same batch (same X-Request-Id, same event id): the server answers that it was already stored.
  const again = await fetch(ingest[0].url, ingest[0].init);
  assert.equal(again.status, 207, await again.clone().text());
  const answer = await again.json();
  assert.deepEqual(answer.errors, []);
  assert.equal(answer.successes.length, 1);
  assert.equal(answer.successes[0].status, 200, `a re-sent event is reported as a duplicate: ${JSON.stringify(answer)}`);
  const eventId = JSON.parse(ingest[0].init.body).batch[0].id;
  assert.equal(answer.successes[0].id, eventId);

  // The same messages through the synchronous route: all duplicates, so they were stored once.
  const res = await client.trackNow({ conversationId, messages });
  assert.deepEqual(res, { accepted: 0, duplicates: 2 });
  await client.shutdown();
  console.log(`SENSEI_IT_CONVERSATION_ID=${conversationId}`);
});

test('a bad API key: onError gets a 401, nothing throws, nothing is retried', { skip: SKIP }, async () => {
  const errors = [];
  const client = createClient({ apiKey: 'sk_sensei_not_a_real_key', baseUrl: URL_, flushOnExit: false, onError: (e) => errors.push(e) });
  assert.ok(client.track({ conversationId: `sdk-it-${randomUUID()}`, messages: [{ role: 'user', content: 'hello' }] }));
  await client.flush();
  assert.equal(errors.length, 1, errors.map((e) => e.message).join('; '));
  assert.equal(errors[0].status, 401);
  assert.ok(!errors[0].message.includes('sk_sensei_not_a_real_key'));
  assert.deepEqual(client.stats(), { queued: 1, sent: 0, dropped: 0, failed: 1, retries: 0, pending: 0 });
  await client.shutdown();
});

test('wrap(fetch) against an OpenAI-compatible server tracks the turn', { skip: SKIP || (!FAKE_OPENAI_URL && 'FAKE_OPENAI_URL is not set: skipping wrap(fetch) against a fake OpenAI server') }, async () => {
  const conversationId = process.env.SENSEI_WRAP_CONVERSATION_ID || `sdk-it-wrap-${randomUUID()}`;
  const errors = [];
  const client = createClient({ apiKey: KEY, baseUrl: URL_, flushOnExit: false, onError: (e) => errors.push(e) });
  const tracked = client.wrap(fetch, { conversationId, agentId: 'agent-it' });
  const call = async (stream) => {
    const res = await tracked(`${FAKE_OPENAI_URL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-fake' },
      body: JSON.stringify({ model: 'gpt-4o-mini', stream, messages: [{ role: 'user', content: stream ? 'And streamed?' : 'Hello there' }] }),
    });
    assert.equal(res.status, 200);
    return stream ? res.text() : res.json();
  };
  const json = await call(false);
  assert.ok(json.choices[0].message.content.length > 0);
  const text = await call(true);
  assert.match(text, /data: \[DONE\]/);
  await client.flush();
  assert.deepEqual(errors.map((e) => e.message), []);
  assert.equal(client.stats().sent, 2);
  // Both turns (user + assistant each) are stored: re-sending the user messages would need their timestamps,
  // so the Rust side checks the store; here the server acknowledged both events.
  await client.shutdown();
  console.log(`SENSEI_IT_WRAP_CONVERSATION_ID=${conversationId}`);
});
