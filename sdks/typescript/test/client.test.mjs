// Unit tests of the queue, batching, retries and never-throwing behaviour, against a local imitation server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, init, track, flush, stats, shutdown, SenseiError, VERSION } from '../dist/esm/index.js';
import { startServer, sleep, waitFor, msg } from './helpers.mjs';

const quiet = { flushIntervalMs: 60_000, retryBaseDelayMs: 5, retryMaxDelayMs: 2000, flushOnExit: false };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('batches by size (flushAt) and sends the contract headers and body', async (t) => {
  const srv = await startServer();
  t.after(srv.close);
  const c = createClient({ apiKey: 'sk_sensei_test', baseUrl: srv.url + '/', flushAt: 3, ...quiet, environment: 'staging' });
  const track1 = (i) =>
    assert.match(c.track({ conversationId: 'c1', messages: [msg(`m${i}`)], userId: 'u1', agentId: 'a1', metadata: { k: i } }), UUID);
  for (let i = 0; i < 3; i++) track1(i);
  await waitFor(() => srv.ingest().length === 1, 3000, 'a size-triggered batch');
  assert.equal(srv.ingest()[0].json.batch.length, 3);
  await waitFor(() => c.stats().sent === 3, 3000, 'the first batch acknowledged');
  for (let i = 3; i < 5; i++) track1(i);
  await sleep(100);
  assert.equal(srv.ingest().length, 1, 'fewer than flushAt events wait for the timer');
  for (let i = 5; i < 7; i++) track1(i);
  // The pump sends what is left (the 7th event) right after: by the next poll there may be 3 requests already.
  await waitFor(() => srv.ingest().length >= 2, 3000, 'a second size-triggered batch');
  await c.flush();
  assert.deepEqual(srv.ingest().map((r) => r.json.batch.length), [3, 3, 1], 'the 6th track() started a batch of 3');
  const r = srv.ingest()[0];
  assert.equal(r.method, 'POST');
  assert.equal(r.headers.authorization, 'Bearer sk_sensei_test');
  assert.equal(r.headers['content-type'], 'application/json');
  assert.match(r.headers['x-request-id'], UUID);
  assert.equal(r.headers['x-sensei-sdk'], `@convosensei/sdk/${VERSION}`);
  assert.equal(r.headers['user-agent'], `@convosensei/sdk/${VERSION}`);
  const ev = r.json.batch[0];
  assert.deepEqual(Object.keys(r.json), ['batch']);
  assert.match(ev.id, UUID);
  assert.equal(ev.type, 'track');
  assert.ok(!Number.isNaN(Date.parse(ev.timestamp)));
  assert.deepEqual(Object.keys(ev.body).sort(), ['agentId', 'conversationId', 'environment', 'messages', 'metadata', 'userId']);
  assert.equal(ev.body.environment, 'staging');
  assert.equal(ev.body.messages[0].role, 'user');
  assert.equal(ev.body.messages[0].content, 'm0');
  assert.match(ev.body.messages[0].timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'stamped with toISOString()');
  assert.deepEqual(c.stats(), { queued: 7, sent: 7, dropped: 0, failed: 0, retries: 0, pending: 0 });
  await c.shutdown();
});

test('batches by time (flushIntervalMs)', async (t) => {
  const srv = await startServer();
  t.after(srv.close);
  const c = createClient({ apiKey: 'k', baseUrl: srv.url, ...quiet, flushAt: 100, flushIntervalMs: 50 });
  c.track({ conversationId: 'c', messages: [msg('a')] });
  c.track({ conversationId: 'c', messages: [msg('b')] });
  assert.equal(srv.requests.length, 0, 'nothing is sent synchronously');
  await waitFor(() => srv.ingest().length === 1, 2000, 'the timed flush');
  assert.equal(srv.ingest()[0].json.batch.length, 2);
  c.track({ conversationId: 'c', messages: [msg('c')] });
  await waitFor(() => srv.ingest().length === 2, 2000, 'a second timed flush');
  await c.shutdown();
});

test('caps a request at maxBatchEvents and about maxBatchBytes', async (t) => {
  const srv = await startServer();
  t.after(srv.close);
  const c = createClient({ apiKey: 'k', baseUrl: srv.url, ...quiet, flushAt: 1000 });
  for (let i = 0; i < 250; i++) c.track({ conversationId: 'c', messages: [msg(`m${i}`)] });
  await c.flush();
  assert.deepEqual(srv.ingest().map((r) => r.json.batch.length), [100, 100, 50]);
  const big = 'x'.repeat(60_000);
  for (let i = 0; i < 40; i++) c.track({ conversationId: 'c', messages: [msg(big)] });
  await c.flush();
  const sizes = srv.ingest().slice(3).map((r) => Buffer.byteLength(r.body));
  assert.ok(sizes.length >= 3 && sizes.every((s) => s <= 1_000_000), `request sizes ${sizes}`);
  assert.equal(c.stats().sent, 290);
  await c.shutdown();
});

test('retries a 500 with the same X-Request-Id and event ids, then succeeds', async (t) => {
  const srv = await startServer((r) => (r.n < 2 ? { status: 500, body: { error: { code: 'internal', message: 'boom' } } } : undefined));
  t.after(srv.close);
  const errors = [];
  const c = createClient({ apiKey: 'k', baseUrl: srv.url, ...quiet, onError: (e) => errors.push(e) });
  c.track({ conversationId: 'c', messages: [msg('a')] });
  c.track({ conversationId: 'c', messages: [msg('b')] });
  await c.flush();
  const reqs = srv.ingest();
  assert.equal(reqs.length, 3);
  assert.equal(new Set(reqs.map((r) => r.headers['x-request-id'])).size, 1, 'one request id across retries');
  assert.equal(new Set(reqs.map((r) => r.body)).size, 1, 'identical bodies, same event ids');
  assert.deepEqual(c.stats(), { queued: 2, sent: 2, dropped: 0, failed: 0, retries: 2, pending: 0 });
  assert.deepEqual(errors, [], 'a recovered failure is not reported');
});

test('honours Retry-After (seconds) as the minimum delay on 429', async (t) => {
  const srv = await startServer((r) =>
    r.n === 0 ? { status: 429, headers: { 'retry-after': '1' }, body: { error: { code: 'rate_limited', message: 'slow down' } } } : undefined,
  );
  t.after(srv.close);
  const c = createClient({ apiKey: 'k', baseUrl: srv.url, ...quiet });
  c.track({ conversationId: 'c', messages: [msg('a')] });
  await c.flush();
  const [a, b] = srv.ingest();
  assert.ok(b.at - a.at >= 950, `waited ${b.at - a.at} ms`);
  assert.equal(c.stats().sent, 1);
  assert.equal(c.stats().retries, 1);
});

test('retries 408 and network errors; gives up after maxRetries and reports it', async (t) => {
  const srv = await startServer((r) => (r.n === 0 ? { status: 408, body: {} } : { status: 503, body: { error: { code: 'unavailable', message: 'down' } } }));
  t.after(srv.close);
  const errors = [];
  const c = createClient({ apiKey: 'k', baseUrl: srv.url, ...quiet, maxRetries: 2, onError: (e) => errors.push(e) });
  c.track({ conversationId: 'c', messages: [msg('a')] });
  await c.flush();
  assert.equal(srv.ingest().length, 3);
  assert.deepEqual(c.stats(), { queued: 1, sent: 0, dropped: 0, failed: 1, retries: 2, pending: 0 });
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof SenseiError);
  assert.equal(errors[0].status, 503);
  assert.equal(errors[0].code, 'unavailable');
});

test('never retries other 4xx (400, 401, 403, 422)', async (t) => {
  for (const status of [400, 401, 403, 422]) {
    const srv = await startServer(() => ({ status, body: { error: { code: 'nope', message: 'refused' } } }));
    const errors = [];
    const c = createClient({ apiKey: 'k', baseUrl: srv.url, ...quiet, onError: (e) => errors.push(e) });
    c.track({ conversationId: 'c', messages: [msg('a')] });
    c.track({ conversationId: 'c', messages: [msg('b')] });
    await c.flush();
    assert.equal(srv.ingest().length, 1, `${status} is not retried`);
    assert.equal(c.stats().failed, 2);
    assert.equal(c.stats().retries, 0);
    assert.equal(errors.length, 1);
    assert.equal(errors[0].status, status);
    assert.equal(errors[0].eventIds.length, 2);
    await srv.close();
  }
});

test('from a 207, retries only the events answered 429 or 503; drops 400/413/422 and reports them', async (t) => {
  const statusFor = { a: 201, b: 429, c: 503, d: 400, e: 413, f: 422, g: 200 };
  const srv = await startServer((r) => {
    const batch = r.json.batch;
    const successes = [];
    const errors = [];
    for (const ev of batch) {
      const s = r.n === 0 ? statusFor[ev.body.messages[0].content] : 201;
      if (s < 300) successes.push({ id: ev.id, status: s });
      else errors.push({ id: ev.id, status: s, message: `status ${s}` });
    }
    return { status: 207, body: { successes, errors }, headers: r.n === 0 ? { 'retry-after': '0' } : {} };
  });
  t.after(srv.close);
  const errors = [];
  const c = createClient({ apiKey: 'k', baseUrl: srv.url, ...quiet, onError: (e) => errors.push(e) });
  const ids = {};
  for (const k of Object.keys(statusFor)) ids[k] = c.track({ conversationId: 'c', messages: [msg(k)] });
  await c.flush();
  const reqs = srv.ingest();
  assert.equal(reqs.length, 2);
  assert.deepEqual(reqs[1].json.batch.map((e) => e.id), [ids.b, ids.c], 'only the 429 and 503 events are re-sent, same ids');
  assert.deepEqual(reqs[1].json.batch, reqs[0].json.batch.filter((e) => e.id === ids.b || e.id === ids.c), 'unchanged events');
  assert.notEqual(reqs[1].headers['x-request-id'], reqs[0].headers['x-request-id'], 'a subset is a new request');
  assert.deepEqual(c.stats(), { queued: 7, sent: 4, dropped: 0, failed: 3, retries: 1, pending: 0 });
  assert.deepEqual(errors.map((e) => e.status).sort(), [400, 413, 422]);
  assert.deepEqual(errors.map((e) => e.eventIds[0]).sort(), [ids.d, ids.e, ids.f].sort());
});

test('a whole-request 413 halves the batch until it fits', async (t) => {
  const srv = await startServer((r) => (r.json.batch.length > 2 ? { status: 413, body: { error: { code: 'payload_too_large', message: 'too big' } } } : undefined));
  t.after(srv.close);
  const c = createClient({ apiKey: 'k', baseUrl: srv.url, ...quiet });
  const ids = [];
  for (let i = 0; i < 7; i++) ids.push(c.track({ conversationId: 'c', messages: [msg(`m${i}`)] }));
  await c.flush();
  const delivered = srv.ingest().filter((r) => r.json.batch.length <= 2).flatMap((r) => r.json.batch.map((e) => e.id));
  assert.deepEqual(delivered, ids, 'every event once, in order');
  assert.deepEqual(srv.ingest().map((r) => r.json.batch.length), [7, 4, 2, 2, 3, 2, 1]);
  assert.equal(c.stats().sent, 7);
  assert.equal(c.stats().failed, 0);
});

test('a single event refused with 413 is given up', async (t) => {
  const srv = await startServer(() => ({ status: 413, body: { error: { code: 'payload_too_large', message: 'too big' } } }));
  t.after(srv.close);
  const errors = [];
  const c = createClient({ apiKey: 'k', baseUrl: srv.url, ...quiet, onError: (e) => errors.push(e) });
  c.track({ conversationId: 'c', messages: [msg('a')] });
  await c.flush();
  assert.equal(srv.ingest().length, 1);
  assert.equal(c.stats().failed, 1);
  assert.equal(errors[0].status, 413);
});

test('a full queue drops the oldest event and counts it', async (t) => {
  const srv = await startServer();
  t.after(srv.close);
  const errors = [];
  const c = createClient({ apiKey: 'k', baseUrl: srv.url, ...quiet, flushAt: 100, maxQueueSize: 3, onError: (e) => errors.push(e) });
  for (let i = 0; i < 5; i++) c.track({ conversationId: `c${i}`, messages: [msg('x')] });
  assert.equal(c.stats().dropped, 2);
  assert.equal(c.stats().pending, 3);
  assert.deepEqual(errors.map((e) => e.kind), ['queue_full', 'queue_full']);
  await c.flush();
  assert.deepEqual(srv.ingest()[0].json.batch.map((e) => e.body.conversationId), ['c2', 'c3', 'c4']);
  assert.deepEqual(c.stats(), { queued: 5, sent: 3, dropped: 2, failed: 0, retries: 0, pending: 0 });
});

test('a slow server times out (requestTimeoutMs) and the retry gets through', async (t) => {
  const srv = await startServer((r) => (r.n === 0 ? { status: 207, delayMs: 800, body: { successes: [], errors: [] } } : undefined));
  t.after(srv.close);
  const errors = [];
  const c = createClient({ apiKey: 'k', baseUrl: srv.url, ...quiet, requestTimeoutMs: 150, onError: (e) => errors.push(e) });
  const started = Date.now();
  c.track({ conversationId: 'c', messages: [msg('a')] });
  await c.flush();
  assert.ok(Date.now() - started < 700, 'did not wait for the slow answer');
  assert.equal(srv.ingest().length, 2);
  assert.equal(srv.ingest()[0].body, srv.ingest()[1].body, 'same event id on the retry');
  assert.deepEqual(c.stats(), { queued: 1, sent: 1, dropped: 0, failed: 0, retries: 1, pending: 0 });
  assert.deepEqual(errors, []);
});

test('never throws: bad input, a throwing onError, a server that is down, no apiKey, after shutdown', async () => {
  const errors = [];
  const c = createClient({
    apiKey: 'sk_sensei_secret_value',
    baseUrl: 'http://127.0.0.1:9', // nothing listens on the discard port
    ...quiet,
    maxRetries: 1,
    onError: (e) => {
      errors.push(e);
      throw new Error('a broken onError');
    },
  });
  const bad = [
    undefined,
    null,
    42,
    {},
    { conversationId: '', messages: [msg('a')] },
    { conversationId: 'c', messages: [] },
    { conversationId: 'c', messages: 'hi' },
    { conversationId: 'c', messages: [{ role: 'bot', content: 'x' }] },
    { conversationId: 'c', messages: [{ role: 'user', content: 42 }] },
    { conversationId: 'c', messages: [{ role: 'user', content: 'x'.repeat(64 * 1024 + 1) }] },
    { conversationId: 'c', messages: [{ role: 'user', content: 'é'.repeat(40_000) }] },
    { conversationId: 'c', messages: [{ id: 'h_reserved', role: 'user', content: 'x' }] },
    { conversationId: 'c', messages: [{ role: 'user', content: 'x', timestamp: {} }] },
    { conversationId: 'c', messages: [{ role: 'user', content: 'x', metadata: 'm' }] },
    { conversationId: 'c', messages: [msg('x')], metadata: [1] },
    { conversationId: 'c', messages: [msg('x')], userId: 7 },
    { conversationId: 'c', messages: Array.from({ length: 501 }, () => msg('x')) },
  ];
  for (const input of bad) assert.equal(c.track(input), undefined, JSON.stringify(input)?.slice(0, 80));
  assert.equal(errors.length, bad.length);
  assert.ok(errors.every((e) => e.kind === 'validation'));
  assert.equal(c.stats().failed, bad.length);
  assert.equal(c.stats().queued, 0);

  // Accepted inputs: Date and epoch-ms timestamps.
  assert.ok(c.track({ conversationId: 'c', messages: [{ role: 'user', content: 'x', timestamp: new Date('2026-01-02T03:04:05Z') }] }));
  assert.ok(c.track({ conversationId: 'c', messages: [{ role: 'tool', content: 'x', timestamp: 1767323045000 }] }));
  await c.flush(); // server down: resolves
  assert.equal(c.stats().failed, bad.length + 2);
  const net = errors.at(-1);
  assert.equal(net.kind, 'network');
  for (const e of errors) assert.ok(!String(e.message).includes('sk_sensei_secret_value'), 'never shows the key');
  await c.shutdown();
  assert.equal(c.track({ conversationId: 'c', messages: [msg('late')] }), undefined, 'after shutdown');

  const noKey = [];
  const d = createClient({ baseUrl: 'http://127.0.0.1:9', onError: (e) => noKey.push(e), flushOnExit: false });
  assert.equal(d.track({ conversationId: 'c', messages: [msg('x')] }), undefined);
  await d.flush();
  await d.shutdown();
  assert.match(noKey[0].message, /apiKey/);
  const e = createClient(undefined);
  assert.equal(e.track({ conversationId: 'c', messages: [msg('x')] }), undefined);
});

test('a fetch that throws synchronously is a network error, not an exception', async () => {
  const errors = [];
  const c = createClient({
    apiKey: 'k',
    baseUrl: 'http://sensei.invalid',
    ...quiet,
    maxRetries: 0,
    fetch: () => {
      throw new TypeError('sync boom');
    },
    onError: (e) => errors.push(e),
  });
  c.track({ conversationId: 'c', messages: [msg('x')] });
  await c.flush();
  assert.equal(errors[0].kind, 'network');
  assert.equal(c.stats().failed, 1);
});

test('shutdown flushes what is queued, stops the timer and respects its timeout', async (t) => {
  const srv = await startServer();
  t.after(srv.close);
  const c = createClient({ apiKey: 'k', baseUrl: srv.url, flushAt: 100, flushIntervalMs: 10, retryBaseDelayMs: 5, flushOnExit: false });
  c.track({ conversationId: 'c', messages: [msg('a')] });
  await c.shutdown();
  assert.equal(srv.ingest().length, 1);
  await sleep(50);
  assert.equal(srv.ingest().length, 1, 'no timer fires after shutdown');

  const never = createClient({ apiKey: 'k', baseUrl: 'http://x.invalid', ...quiet, fetch: () => new Promise(() => {}) });
  never.track({ conversationId: 'c', messages: [msg('a')] });
  const started = Date.now();
  await never.shutdown(100);
  assert.ok(Date.now() - started < 1000, 'shutdown(100) returns within its timeout');
});

test('the default singleton: init, track, flush, stats, shutdown', async (t) => {
  const srv = await startServer();
  t.after(srv.close);
  assert.equal(track({ conversationId: 'c', messages: [msg('before init')] }), undefined);
  init({ apiKey: 'k', baseUrl: srv.url, ...quiet });
  assert.ok(track({ conversationId: 'c', messages: [msg('a')] }));
  await flush();
  assert.equal(stats().sent, 1);
  await shutdown();
  assert.equal(srv.ingest().length, 1);
});

test('the beforeExit hook flushes a process that ends without calling flush()', async (t) => {
  const srv = await startServer();
  t.after(srv.close);
  const { spawn } = await import('node:child_process');
  const script = `
    import { init, track } from ${JSON.stringify(new URL('../dist/esm/index.js', import.meta.url).href)};
    init({ apiKey: 'k', baseUrl: ${JSON.stringify(srv.url)}, flushIntervalMs: 60000 });
    track({ conversationId: 'exit', messages: [{ role: 'user', content: 'bye' }] });
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'inherit' });
  const code = await new Promise((r) => child.on('exit', r));
  assert.equal(code, 0);
  assert.equal(srv.ingest().length, 1);
  assert.equal(srv.ingest()[0].json.batch[0].body.conversationId, 'exit');
});

test('a track() over the server’s 512 KiB per-event limit is split into several events of the same conversation', async (t) => {
  const srv = await startServer();
  t.after(srv.close);
  const c = createClient({ apiKey: 'k', baseUrl: srv.url, ...quiet });
  const messages = Array.from({ length: 20 }, (_, i) => msg(`${i}:` + 'é'.repeat(30_000)));
  assert.ok(c.track({ conversationId: 'big', messages, userId: 'u' }));
  await c.flush();
  const events = srv.ingest().flatMap((r) => r.json.batch);
  assert.ok(events.length >= 3, `${events.length} events`);
  for (const e of events) {
    assert.ok(Buffer.byteLength(JSON.stringify(e)) <= 512 * 1024);
    assert.equal(e.body.conversationId, 'big');
    assert.equal(e.body.userId, 'u');
  }
  assert.deepEqual(events.flatMap((e) => e.body.messages.map((m) => m.content.split(':')[0])), messages.map((_, i) => String(i)));
  assert.equal(c.stats().sent, events.length);
});

test('browsers: page hide sends the queue at once with keepalive fetches under 64 KiB, with the auth header', async () => {
  const listeners = {};
  const doc = { visibilityState: 'visible', addEventListener: (t, f) => ((listeners[t] ??= []).push(f)), removeEventListener() {} };
  globalThis.document = doc;
  globalThis.addEventListener = (t, f) => ((listeners[t] ??= []).push(f));
  globalThis.removeEventListener = () => {};
  try {
    const calls = [];
    const c = createClient({
      apiKey: 'k',
      baseUrl: 'https://sensei.test',
      flushIntervalMs: 60_000,
      flushAt: 1000,
      fetch: async (url, init) => {
        calls.push(init);
        const batch = JSON.parse(init.body).batch;
        return new Response(JSON.stringify({ successes: batch.map((e) => ({ id: e.id, status: 201 })), errors: [] }), { status: 207 });
      },
    });
    for (let i = 0; i < 10; i++) c.track({ conversationId: 'c', messages: [msg('x'.repeat(20_000))] });
    assert.equal(calls.length, 0);
    doc.visibilityState = 'hidden';
    for (const f of listeners.visibilitychange) f();
    assert.ok(calls.length >= 4, `${calls.length} keepalive requests`);
    for (const init of calls) {
      assert.equal(init.keepalive, true);
      assert.equal(init.headers.Authorization, 'Bearer k');
      assert.ok(Buffer.byteLength(init.body) < 64 * 1024);
    }
    await waitFor(() => c.stats().sent === 10, 2000, 'all sent');
    assert.equal(listeners.pagehide.length, 1, 'pagehide is hooked too');
    await c.shutdown();
  } finally {
    delete globalThis.document;
    delete globalThis.addEventListener;
    delete globalThis.removeEventListener;
  }
});
