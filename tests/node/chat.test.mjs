// Client-side conformance test of Mentorfy's `POST /api/chat` (Vercel AI SDK UI message stream v1),
// run against two installs of `ai`: 6.0.0 (strict chunk schema) and the latest 6.x (loose).
//
//   1. setup               the two pinned versions are really the ones loaded
//   2. local controls      golden fixtures must pass, corrupted streams must be rejected (no server needed)
//   3. Mentorfy server     plain / tool / fail scenarios, raw and through DefaultChatTransport + AbstractChat
//                          (skipped unless MENTORFY_URL is set)
//
// See README.md for the environment variables.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

import {
  AI_PACKAGES,
  loadAi,
  pinnedVersions,
  buildChatBody,
  fetchChat,
  assertStreamHeaders,
  checkFraming,
  parseChunks,
  assemble,
  analyzeStream,
  checkPlainScenario,
  checkToolScenario,
  checkFailScenario,
  checkErrorTextIsSafe,
  createTestChat,
  messageText,
  truncate,
} from './harness.mjs';

const versions = await Promise.all(AI_PACKAGES.map(loadAi));

/** Run `fn`; on failure print the raw SSE body as a test diagnostic, then rethrow. */
async function showingRawOnFailure(t, label, raw, fn) {
  try {
    return await fn();
  } catch (error) {
    t.diagnostic(`raw response body (${label}):\n${truncate(raw, 8000)}`);
    throw error;
  }
}

// =============================================================================================
// 1. Setup
// =============================================================================================

test('both pinned ai versions are loaded side by side', () => {
  const pinned = pinnedVersions();
  const [strict, latest] = versions;
  assert.equal(strict.name, 'ai');
  assert.equal(latest.name, 'ai');
  assert.equal(strict.version, '6.0.0', 'the "ai" dependency must be exactly 6.0.0 (strict chunk schema)');
  assert.equal(strict.version, pinned.ai);
  assert.equal(latest.version, pinned['ai-latest'], 'ai-latest must be the version pinned in package.json');
  assert.match(latest.version, /^6\.\d+\.\d+$/);
  assert.notEqual(strict.mod.uiMessageChunkSchema, latest.mod.uiMessageChunkSchema, 'two distinct module instances');
  for (const ai of versions) {
    for (const name of ['parseJsonEventStream', 'uiMessageChunkSchema', 'readUIMessageStream', 'DefaultChatTransport', 'AbstractChat']) {
      assert.equal(typeof ai.mod[name], 'function', `${ai.label} exports ${name}`);
    }
  }
});

// =============================================================================================
// 2. Local controls: golden fixtures pass, corrupted streams are rejected
// =============================================================================================

const FIXTURES_DIR = fileURLToPath(new URL('../../../shared/specs/fixtures/', import.meta.url));
const HAVE_FIXTURES = existsSync(FIXTURES_DIR);
const FIXTURE_SKIP = `golden fixtures not found at ${FIXTURES_DIR} (shared/ is not beside the repository)`;
const fixture = (name) => readFileSync(join(FIXTURES_DIR, name), 'utf8');

const SPEC_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  'x-vercel-ai-ui-message-stream': 'v1',
  'x-accel-buffering': 'no',
};

const sse = (chunks) => `${chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`).join('')}data: [DONE]\n\n`;

/** A valid plain answer, written from the spec's chunk catalog (§3); non-ASCII on purpose. */
const PLAIN_TEXT = 'Hello, wörld ✓ 👋';
const plainChunks = () => [
  { type: 'start', messageId: 'msg_local_1' },
  { type: 'start-step' },
  { type: 'text-start', id: '0' },
  { type: 'text-delta', id: '0', delta: 'Hello, ' },
  { type: 'text-delta', id: '0', delta: 'wörld ✓ 👋' },
  { type: 'text-end', id: '0' },
  { type: 'finish-step' },
  { type: 'message-metadata', messageMetadata: { inputTokens: 3, outputTokens: 4 } },
  { type: 'finish', finishReason: 'stop' },
];

/** Insert SSE comment keep-alives (": keep-alive" and a bare ":") between events. */
const withKeepAlives = (body) =>
  `: keep-alive\n\n${body
    .split('\n\n')
    .filter(Boolean)
    .map((event, i) => `${event}\n\n${i % 2 === 0 ? ':\n\n' : ': keep-alive\n\n'}`)
    .join('')}`.replace(/(data: \[DONE\]\n\n)(:[^\n]*\n\n)$/, '$1'); // nothing after [DONE]

/**
 * Corrupted plain streams. `layer` is the ai package's layer that must catch it: 'schema'
 * (parseJsonEventStream + uiMessageChunkSchema) or 'assembly' (readUIMessageStream);
 * `acceptedBy` lists the ai packages for which the stream is valid after all.
 */
const CORRUPTIONS = {
  'null providerMetadata': {
    body: () => sse(plainChunks().map((c) => (c.type === 'text-start' ? { ...c, providerMetadata: null } : c))),
    layer: 'schema',
    acceptedBy: [],
  },
  'unknown chunk type {"type":"text"}': {
    body: () => {
      const chunks = plainChunks();
      chunks.splice(3, 0, { type: 'text', text: 'hi' });
      return sse(chunks);
    },
    layer: 'schema',
    acceptedBy: [],
  },
  'text-delta before text-start': {
    body: () => {
      const chunks = plainChunks();
      const [start] = chunks.splice(2, 1); // move text-start after the first delta
      chunks.splice(3, 0, start);
      return sse(chunks);
    },
    layer: 'assembly',
    // 6.0.0 has no guard and dies on `undefined.text` (like 5.x); later 6.x names the problem.
    reducerError: { ai: /Cannot read properties of undefined \(reading 'text'\)/, 'ai-latest': /Received text-delta for missing text part/ },
    acceptedBy: [],
  },
  'extra unknown key': {
    body: () => sse(plainChunks().map((c) => (c.type === 'text-delta' ? { ...c, extraKey: 'x' } : c))),
    layer: 'schema',
    acceptedBy: ['ai-latest'], // strict in 6.0.0–6.0.230, loose from 6.0.231 (spec §2.3)
  },
  'finishReason "unknown" (5.x only)': {
    body: () => sse(plainChunks().map((c) => (c.type === 'finish' ? { ...c, finishReason: 'unknown' } : c))),
    layer: 'schema',
    acceptedBy: [],
  },
};

/** Raw-framing corruptions: caught before any ai code runs, so the same for both versions. */
const FRAMING_CORRUPTIONS = {
  'pretty-printed JSON': `data: {\n  "type": "start"\n}\n\n${sse(plainChunks().slice(1))}`,
  'non-compact JSON': `data: {"type": "start"}\n\n${sse(plainChunks().slice(1))}`,
  'missing [DONE]': sse(plainChunks()).replace('data: [DONE]\n\n', ''),
  'chunk after [DONE]': `${sse(plainChunks())}data: {"type":"finish"}\n\n`,
  'event: line': `event: message\n${sse(plainChunks())}`,
  'CRLF line endings': sse(plainChunks()).replace(/\n/g, '\r\n'),
  'no blank line after [DONE]': sse(plainChunks()).replace(/\n\n$/, ''),
};

/** Streams the local server serves: path → { body, status?, headers? }. */
const ROUTES = new Map([
  ['/plain', { body: () => sse(plainChunks()) }],
  ['/plain-keepalive', { body: () => withKeepAlives(sse(plainChunks())) }],
  ['/plain-no-ui-header', { body: () => sse(plainChunks()), headers: { 'x-vercel-ai-ui-message-stream': undefined } }],
  ['/plain-500', { body: () => 'upstream failed', status: 500, headers: { 'content-type': 'text/plain' } }],
  ['/leaky-error', {
    body: () => sse([
      { type: 'start', messageId: 'msg_local_2' },
      { type: 'start-step' },
      { type: 'text-start', id: '0' },
      { type: 'text-delta', id: '0', delta: 'partial' },
      { type: 'error', errorText: 'Error: upstream 529 {"type":"overloaded_error"}' },
      { type: 'finish-step' },
      { type: 'finish', finishReason: 'error' },
    ]),
  }],
  ...Object.entries(CORRUPTIONS).map(([name, c]) => [`/corrupt/${name}`, { body: c.body }]),
  ...Object.entries(FRAMING_CORRUPTIONS).map(([name, body]) => [`/framing/${name}`, { body: () => body }]),
  ...(HAVE_FIXTURES
    ? [
        ['/fixture/two-steps', { body: () => fixture('ui-v1-server-tool-two-steps.sse') }],
        ['/fixture/two-steps-keepalive', { body: () => withKeepAlives(fixture('ui-v1-server-tool-two-steps.sse')) }],
        ['/fixture/with-metadata', { body: () => fixture('ui-v1-with-metadata.sse') }],
        ['/fixture/midstream-error', { body: () => fixture('ui-v1-midstream-error.sse') }],
      ]
    : []),
]);

describe('local controls (no Mentorfy server needed)', () => {
  let server;
  let base;
  const requests = [];

  before(async () => {
    server = http.createServer((req, res) => {
      let received = '';
      req.setEncoding('utf8');
      req.on('data', (d) => (received += d));
      req.on('end', async () => {
        requests.push({ method: req.method, url: req.url, headers: req.headers, body: received });
        const route = ROUTES.get(req.url.split('/').map(decodeURIComponent).join('/'));
        if (!route) {
          res.writeHead(404, { 'content-type': 'text/plain' }).end(`no route ${req.url}`);
          return;
        }
        const headers = { ...SPEC_HEADERS, ...route.headers };
        for (const [k, v] of Object.entries(headers)) if (v === undefined) delete headers[k];
        res.writeHead(route.status ?? 200, headers);
        // Deliver in 5-byte pieces so events (and multi-byte characters) are split across reads.
        const bytes = Buffer.from(route.body(), 'utf8');
        for (let i = 0; i < bytes.length; i += 5) {
          res.write(bytes.subarray(i, i + 5));
          await new Promise((r) => setImmediate(r));
        }
        res.end();
      });
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${server.address().port}`;
  });

  after(() => new Promise((resolve) => server.close(resolve)));

  const url = (path) => `${base}${path.split('/').map(encodeURIComponent).join('/')}`;
  const localBody = () => buildChatBody({ text: '[plain] hello', sessionId: 'sess_local', agentId: 'rafael-chat' });

  /** fetch → headers → framing → schema → assembly, exactly as for the Mentorfy server. */
  async function fetchAndAnalyze(ai, path) {
    const { res, bytes, text } = await fetchChat(url(path), localBody());
    assertStreamHeaders(res, { bodyForMessage: text });
    return analyzeStream(ai, bytes, text);
  }

  // --- the harness accepts valid streams -------------------------------------------------------

  for (const ai of versions) {
    describe(ai.label, () => {
      test('a valid plain stream passes the plain checks', async () => {
        checkPlainScenario(await fetchAndAnalyze(ai, '/plain'), { expectText: PLAIN_TEXT });
      });

      test('SSE comment keep-alives (": keep-alive", ":") are tolerated', async () => {
        const analyzed = await fetchAndAnalyze(ai, '/plain-keepalive');
        assert.ok(analyzed.framing.comments >= 5, 'the body really contained comments');
        checkPlainScenario(analyzed, { expectText: PLAIN_TEXT });
      });

      test('golden ui-v1-server-tool-two-steps.sse passes the tool checks', { skip: !HAVE_FIXTURES && FIXTURE_SKIP }, async () => {
        for (const path of ['/fixture/two-steps', '/fixture/two-steps-keepalive']) {
          const analyzed = await fetchAndAnalyze(ai, path);
          const { message, tool } = checkToolScenario(analyzed, {
            toolName: 'get_weather',
            finalText: 'It is sunny in Paris.',
            requireMessageId: false, // the fixture's start chunk has no messageId
          });
          assert.deepEqual(
            message.parts.map((p) => p.type),
            ['step-start', 'reasoning', 'text', 'tool-get_weather', 'step-start', 'text'],
          );
          assert.equal(message.parts[1].text, 'thinking...');
          assert.equal(message.parts[2].text, 'Let me check the weather.');
          assert.deepEqual(tool.input, { city: 'Paris' });
          assert.deepEqual(tool.output, { city: 'Paris', tempC: 21 });
        }
      });

      test('golden ui-v1-with-metadata.sse passes the tool checks and merges metadata', { skip: !HAVE_FIXTURES && FIXTURE_SKIP }, async () => {
        const analyzed = await fetchAndAnalyze(ai, '/fixture/with-metadata');
        const { message } = checkToolScenario(analyzed, { toolName: 'get_weather', finalText: 'It is sunny in Paris.' });
        assert.equal(message.id, 'msg-abc');
        assert.equal(message.metadata.createdAt, 0);
        assert.equal(message.metadata.totalUsage.totalTokens, 30);
      });

      test('golden ui-v1-midstream-error.sse passes the fail checks (the error surfaces)', { skip: !HAVE_FIXTURES && FIXTURE_SKIP }, async () => {
        const analyzed = await fetchAndAnalyze(ai, '/fixture/midstream-error');
        const { errorText } = checkFailScenario(analyzed, { partial: 'partial', requireMessageId: false });
        assert.equal(errorText, 'An error occurred.');
        // Without terminateOnError the reducer still reports the error through onError.
        const lenient = await assemble(ai, analyzed.chunks, { terminateOnError: false });
        assert.equal(lenient.thrown, undefined);
        assert.equal(lenient.onErrorCalls[0]?.message, 'An error occurred.');
      });

      test('end to end: DefaultChatTransport + AbstractChat on the golden streams', { skip: !HAVE_FIXTURES && FIXTURE_SKIP }, async () => {
        const ok = createTestChat(ai, { api: url('/fixture/two-steps'), body: { sessionId: 'sess_local', agentId: 'rafael-chat' } });
        const sentIndex = requests.length;
        await ok.chat.sendMessage({ text: '[tool] what is my goal?' });
        assert.equal(ok.chat.status, 'ready', `status ${ok.chat.status}: ${ok.chat.error?.message}`);
        assert.equal(ok.chat.error, undefined);
        assert.equal(ok.chat.messages.length, 2);
        const last = ok.chat.messages.at(-1);
        assert.equal(last.role, 'assistant');
        assert.equal(last.parts.find((p) => p.type === 'tool-get_weather')?.state, 'output-available');
        assert.equal(last.parts.filter((p) => p.type === 'text').at(-1).text, 'It is sunny in Paris.');
        assert.equal(ok.events.finishes.length, 1);
        assert.equal(ok.events.finishes[0].isError, false);

        // The request the real transport sent has the same shape the raw scenario tests send.
        const sent = JSON.parse(requests[sentIndex].body);
        const handmade = localBody();
        assert.deepEqual(Object.keys(sent).sort(), Object.keys(handmade).sort());
        assert.equal(sent.trigger, 'submit-message');
        assert.equal(sent.sessionId, 'sess_local');
        assert.equal(sent.agentId, 'rafael-chat');
        assert.equal(sent.id, ok.chat.id);
        assert.deepEqual(Object.keys(sent.messages[0]).sort(), Object.keys(handmade.messages[0]).sort());
        assert.deepEqual(sent.messages[0].parts, [{ type: 'text', text: '[tool] what is my goal?' }]);
        assert.equal(sent.messages[0].role, 'user');
        assert.match(requests[sentIndex].headers['content-type'], /^application\/json/);

        const failed = createTestChat(ai, { api: url('/fixture/midstream-error'), body: { sessionId: 'sess_local', agentId: 'rafael-chat' } });
        await failed.chat.sendMessage({ text: '[fail] tell me something' });
        assert.equal(failed.chat.status, 'error');
        assert.equal(failed.chat.error?.message, 'An error occurred.');
        assert.equal(failed.events.errors.length, 1);
        assert.equal(failed.events.finishes[0]?.isError, true);
        assert.equal(messageText(failed.chat.messages.at(-1)), 'partial');
      });
    });
  }

  // --- the harness rejects invalid streams -----------------------------------------------------

  for (const ai of versions) {
    describe(`${ai.label} negative controls`, () => {
      for (const [name, corruption] of Object.entries(CORRUPTIONS)) {
        const accepted = corruption.acceptedBy.includes(ai.pkg);
        test(`${accepted ? 'accepts' : 'rejects'}: ${name}`, async () => {
          const path = `/corrupt/${name}`;
          if (accepted) {
            checkPlainScenario(await fetchAndAnalyze(ai, path), { expectText: PLAIN_TEXT });
          } else {
            // The whole harness rejects it …
            await assert.rejects(
              async () => checkPlainScenario(await fetchAndAnalyze(ai, path), { expectText: PLAIN_TEXT }),
              (e) => {
                assert.match(e.message, /^(framing|schema|nulls|assembly|scenario)/);
                return true;
              },
            );
            // … and the ai package's own layer catches it, not just our extra checks.
            const { res, bytes, text } = await fetchChat(url(path), localBody());
            assertStreamHeaders(res); // served as a proper stream: the rejection is about the body
            if (corruption.layer === 'schema') {
              await assert.rejects(parseChunks(ai, bytes), /^Error: schema/);
            } else {
              const chunks = await parseChunks(ai, bytes); // schema-valid …
              const assembled = await assemble(ai, chunks); // … but the reducer throws
              assert.ok(assembled.thrown, `readUIMessageStream must throw for ${name}`);
              assert.match(assembled.thrown.message, corruption.reducerError[ai.pkg]);
              assert.ok(checkFraming(text));
            }
          }

          // Same verdict through the real transport: useChat would end in status "error".
          const { chat } = createTestChat(ai, { api: url(path), body: { sessionId: 'sess_local' } });
          await chat.sendMessage({ text: '[plain] hello' });
          assert.equal(chat.status, accepted ? 'ready' : 'error', `transport status (${chat.error?.message})`);
        });
      }

      if (ai.pkg === 'ai') {
        test('the extra-key case is decided by the strict schema of 6.0.0 (names the key)', async () => {
          const { res, bytes } = await fetchChat(url('/corrupt/extra unknown key'), localBody());
          assertStreamHeaders(res);
          await assert.rejects(parseChunks(ai, bytes), /extraKey/);
        });
      }

      test('rejects a leaky errorText (stack trace / "Error:" / upstream JSON)', async () => {
        const analyzed = await fetchAndAnalyze(ai, '/leaky-error');
        assert.throws(() => checkFailScenario(analyzed, { partial: 'partial' }), /^Error: scenario: errorText contains/);
      });
    });
  }

  describe('framing negative controls (before any ai code)', () => {
    for (const name of Object.keys(FRAMING_CORRUPTIONS)) {
      test(`rejects: ${name}`, async () => {
        const { res, text, bytes } = await fetchChat(url(`/framing/${name}`), localBody());
        assertStreamHeaders(res);
        await assert.rejects(async () => analyzeStream(versions[0], bytes, text), /^Error: framing:/);
      });
    }

    test('rejects wrong headers and non-200 status', async () => {
      for (const [path, why] of [
        ['/plain-no-ui-header', /x-vercel-ai-ui-message-stream/],
        ['/plain-500', /status is 500/],
      ]) {
        const { res, text } = await fetchChat(url(path), localBody());
        assert.throws(() => assertStreamHeaders(res, { bodyForMessage: text }), why);
      }
    });

    test('accepts a valid plain stream (positive control for the checks above)', async () => {
      const { res, text } = await fetchChat(url('/plain'), localBody());
      assertStreamHeaders(res);
      const { payloads, comments } = checkFraming(text);
      assert.equal(payloads.length, plainChunks().length);
      assert.equal(comments, 0);
    });

    test('errorText safety check accepts friendly texts', () => {
      for (const ok of ['An error occurred.', 'The model is overloaded. Please retry.', 'Something went wrong — please try again.']) {
        checkErrorTextIsSafe(ok);
      }
      for (const bad of ['', 'Error: boom', 'boom\n    at foo (x.js:1:2)', 'thread panicked at src/x.rs:10:5', '{"error":{"type":"overloaded_error"}}', 'failed: https://api.example.com/v1']) {
        assert.throws(() => checkErrorTextIsSafe(bad), /^Error: scenario: errorText/);
      }
    });
  });
});

// =============================================================================================
// 3. The Mentorfy server (started by the Rust driver together with a fake model)
// =============================================================================================

const env = process.env;
const SERVER = env.MENTORFY_URL?.replace(/\/+$/, '');
const SKIP_SERVER = 'MENTORFY_URL is not set: no Mentorfy server to test (the Rust driver sets MENTORFY_URL, MENTORFY_SESSION_ID and MENTORFY_EXPECT_*)';
const TIMEOUT_MS = Number(env.MENTORFY_TIMEOUT_MS ?? 30_000);

/** Read env vars the driver must pass; an unset one is a clear failure, an empty string is a value. */
function requireEnv(...names) {
  const missing = names.filter((n) => env[n] === undefined);
  if (missing.length > 0) throw new Error(`MENTORFY_URL is set but ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not`);
  return Object.fromEntries(names.map((n) => [n, env[n]]));
}

const serverContext = () => {
  const { MENTORFY_SESSION_ID: sessionId } = requireEnv('MENTORFY_SESSION_ID');
  return { sessionId, agentId: env.MENTORFY_AGENT_ID || 'rafael-chat', api: `${SERVER}/api/chat` };
};

/** The three scenarios, chosen by the fake model from the user's text. */
const SCENARIOS = [
  {
    name: 'plain',
    text: '[plain] hello',
    check: (analyzed) => {
      const { MENTORFY_EXPECT_PLAIN } = requireEnv('MENTORFY_EXPECT_PLAIN');
      checkPlainScenario(analyzed, { expectText: MENTORFY_EXPECT_PLAIN });
    },
  },
  {
    name: 'tool',
    text: '[tool] what is my goal?',
    check: (analyzed) => {
      const e = requireEnv('MENTORFY_EXPECT_TOOL_NAME', 'MENTORFY_EXPECT_TOOL_FINAL');
      checkToolScenario(analyzed, { toolName: e.MENTORFY_EXPECT_TOOL_NAME, finalText: e.MENTORFY_EXPECT_TOOL_FINAL });
    },
  },
  {
    name: 'fail',
    text: '[fail] tell me something',
    check: (analyzed) => {
      const { MENTORFY_EXPECT_PARTIAL } = requireEnv('MENTORFY_EXPECT_PARTIAL');
      checkFailScenario(analyzed, { partial: MENTORFY_EXPECT_PARTIAL });
    },
  },
];

describe('Mentorfy POST /api/chat', () => {
  for (const ai of versions) {
    describe(ai.label, () => {
      for (const scenario of SCENARIOS) {
        test(`${scenario.name}: raw stream for ${JSON.stringify(scenario.text)}`, { timeout: TIMEOUT_MS + 5_000 }, async (t) => {
          if (!SERVER) {
            t.skip(SKIP_SERVER);
            return;
          }
          const { sessionId, agentId, api } = serverContext();
          const body = buildChatBody({ text: scenario.text, sessionId, agentId });
          const { res, bytes, text } = await fetchChat(api, body, { timeoutMs: TIMEOUT_MS });
          await showingRawOnFailure(t, `${ai.label} ${scenario.name}`, text, async () => {
            assertStreamHeaders(res, { bodyForMessage: text });
            scenario.check(await analyzeStream(ai, bytes, text));
          });
        });
      }

      // End to end through the real transport: what useChat would end up with.
      const endToEnd = (name, fn) =>
        test(`end to end (DefaultChatTransport + AbstractChat): ${name}`, { timeout: TIMEOUT_MS + 5_000 }, async (t) => {
          if (!SERVER) {
            t.skip(SKIP_SERVER);
            return;
          }
          const { sessionId, agentId, api } = serverContext();
          const { chat, events } = createTestChat(ai, { api, body: { sessionId, agentId } });
          await fn({ chat, events });
        });

      endToEnd('plain → status "ready", the answer is the last message', async ({ chat, events }) => {
        const { MENTORFY_EXPECT_PLAIN } = requireEnv('MENTORFY_EXPECT_PLAIN');
        await chat.sendMessage({ text: '[plain] hello' });
        assert.equal(chat.status, 'ready', `status ${chat.status}: ${chat.error?.message}`);
        assert.equal(chat.error, undefined);
        assert.equal(events.errors.length, 0);
        assert.equal(chat.messages.length, 2);
        const answer = chat.messages.at(-1);
        assert.equal(answer.role, 'assistant');
        assert.deepEqual(answer.parts.map((p) => p.type), ['step-start', 'text']);
        assert.equal(messageText(answer), MENTORFY_EXPECT_PLAIN);
        assert.equal(events.finishes[0]?.isError, false);
      });

      endToEnd('tool → status "ready", the tool part has its output, the final text follows', async ({ chat, events }) => {
        const e = requireEnv('MENTORFY_EXPECT_TOOL_NAME', 'MENTORFY_EXPECT_TOOL_FINAL');
        await chat.sendMessage({ text: '[tool] what is my goal?' });
        assert.equal(chat.status, 'ready', `status ${chat.status}: ${chat.error?.message}`);
        assert.equal(events.errors.length, 0);
        assert.equal(chat.messages.length, 2);
        const answer = chat.messages.at(-1);
        assert.equal(answer.role, 'assistant');
        const toolPart = answer.parts.find((p) => p.type === `tool-${e.MENTORFY_EXPECT_TOOL_NAME}`);
        assert.equal(toolPart?.state, 'output-available', `tool part: ${JSON.stringify(toolPart)}`);
        assert.equal(answer.parts.filter((p) => p.type === 'step-start').length, 2);
        assert.equal(answer.parts.filter((p) => p.type === 'text').at(-1)?.text, e.MENTORFY_EXPECT_TOOL_FINAL);
      });

      endToEnd('fail → status "error", error.message is a safe errorText, the partial text is kept', async ({ chat, events }) => {
        const { MENTORFY_EXPECT_PARTIAL } = requireEnv('MENTORFY_EXPECT_PARTIAL');
        await chat.sendMessage({ text: '[fail] tell me something' });
        assert.equal(chat.status, 'error', 'useChat must end in status "error"');
        assert.ok(chat.error instanceof Error);
        checkErrorTextIsSafe(chat.error.message);
        assert.equal(events.errors.length, 1);
        assert.equal(events.finishes[0]?.isError, true);
        if (MENTORFY_EXPECT_PARTIAL.length > 0) {
          assert.equal(chat.messages.at(-1).role, 'assistant');
          assert.equal(messageText(chat.messages.at(-1)), MENTORFY_EXPECT_PARTIAL);
        }
      });
    });
  }
});
