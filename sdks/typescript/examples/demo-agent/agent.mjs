#!/usr/bin/env node
// A tiny CLI chat agent: talks to Anthropic or an OpenAI-compatible API with plain fetch (streamed), and tracks
// every turn into Sensei through the SDK's wrap(fetch). Configuration: .env in this folder (see .env.example).
import { readFileSync, existsSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { randomUUID } from 'node:crypto';
import { stdin, stdout, argv, exit } from 'node:process';
// The SDK from the built package (run `npm run build` in sdks/typescript first; `npm run demo:agent` there does).
import { init, wrap, flush, shutdown, stats } from '../../dist/esm/index.js';

/** Minimal .env parser: KEY=value lines, # comments, optional quotes, `export ` prefix. Real env vars win. */
function loadEnv(path) {
  if (!existsSync(path)) return;
  for (const raw of readFileSync(path, 'utf8').split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/);
    if (!m) continue;
    let value = m[2];
    const quoted = value.match(/^(['"])(.*)\1$/);
    if (quoted) value = quoted[1] === '"' ? quoted[2].replace(/\\n/g, '\n') : quoted[2];
    else value = value.replace(/\s+#.*$/, '');
    if (process.env[m[1]] === undefined) process.env[m[1]] = value;
  }
}

loadEnv(new URL('.env', import.meta.url));
const env = process.env;
const SENSEI_URL = env.SENSEI_URL || 'http://127.0.0.1:3000';
const SYSTEM = env.AGENT_SYSTEM_PROMPT || 'You are a friendly, concise assistant. Answer in a few sentences.';
const useAnthropic = Boolean(env.ANTHROPIC_API_KEY);

if (!env.SENSEI_API_KEY) {
  console.error('SENSEI_API_KEY is missing: create one with `mentorfy keys create --name demo` (see README.md).');
  exit(1);
}
if (!useAnthropic && !env.OPENAI_API_KEY && !env.OPENAI_BASE_URL) {
  console.error('Set ANTHROPIC_API_KEY, or OPENAI_BASE_URL (+ OPENAI_API_KEY, OPENAI_MODEL), in .env (see .env.example).');
  exit(1);
}

init({
  apiKey: env.SENSEI_API_KEY,
  baseUrl: SENSEI_URL,
  environment: env.SENSEI_ENVIRONMENT || undefined,
  debug: env.SENSEI_DEBUG === '1',
  onError: (e) => console.error(`\n[sensei] ${e.message}`),
});

const conversationId = argv[2] || `demo-${randomUUID()}`;
// Every call through this fetch to /v1/messages or /chat/completions is tracked (user turn + reply).
const trackedFetch = wrap(fetch, { conversationId, agentId: 'demo-agent', metadata: { app: 'demo-agent' } });

/** Reads an SSE body, calling onData with each event's data. */
async function readSse(res, onData) {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of res.body) {
    buf += decoder.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      if (data && data !== '[DONE]') onData(JSON.parse(data));
    }
  }
}

async function askAnthropic(history, onText) {
  const base = (env.ANTHROPIC_BASE_URL || 'https://api.anthropic.com').replace(/\/+$/, '');
  const res = await trackedFetch(`${base}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': env.ANTHROPIC_API_KEY, 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ model: env.ANTHROPIC_MODEL || 'claude-sonnet-4-5', max_tokens: 1024, system: SYSTEM, stream: true, messages: history }),
  });
  if (!res.ok) throw new Error(`Anthropic answered ${res.status}: ${await res.text()}`);
  let text = '';
  await readSse(res, (ev) => {
    if (ev.type === 'content_block_delta' && ev.delta?.type === 'text_delta') {
      text += ev.delta.text;
      onText(ev.delta.text);
    } else if (ev.type === 'error') throw new Error(ev.error?.message || 'stream error');
  });
  return text;
}

async function askOpenAI(history, onText) {
  const base = (env.OPENAI_BASE_URL || 'https://api.openai.com/v1').replace(/\/+$/, '');
  const headers = { 'content-type': 'application/json' };
  if (env.OPENAI_API_KEY) headers.authorization = `Bearer ${env.OPENAI_API_KEY}`;
  const res = await trackedFetch(`${base}/chat/completions`, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      model: env.OPENAI_MODEL || 'gpt-4o-mini',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'system', content: SYSTEM }, ...history],
    }),
  });
  if (!res.ok) throw new Error(`${base} answered ${res.status}: ${await res.text()}`);
  let text = '';
  await readSse(res, (chunk) => {
    const delta = chunk.choices?.[0]?.delta?.content;
    if (delta) {
      text += delta;
      onText(delta);
    }
  });
  return text;
}

const provider = useAnthropic ? `Anthropic (${env.ANTHROPIC_MODEL || 'claude-sonnet-4-5'})` : `${env.OPENAI_BASE_URL || 'OpenAI'} (${env.OPENAI_MODEL || 'gpt-4o-mini'})`;
console.log(`Demo agent on ${provider}; tracking into ${SENSEI_URL} as conversation ${conversationId}.`);
console.log('Type a message; /quit (or Ctrl-D) to leave.\n');

const rl = createInterface({ input: stdin, output: stdout });
const history = [];
let closed = false;
rl.on('close', () => (closed = true));
while (!closed) {
  let line;
  try {
    line = (await rl.question('you> ')).trim();
  } catch {
    break; // Ctrl-D
  }
  if (!line) continue;
  if (line === '/quit' || line === '/exit') break;
  history.push({ role: 'user', content: line });
  stdout.write('agent> ');
  try {
    const reply = await (useAnthropic ? askAnthropic : askOpenAI)(history, (t) => stdout.write(t));
    history.push({ role: 'assistant', content: reply });
    stdout.write('\n\n');
  } catch (e) {
    history.pop();
    console.error(`\n(error: ${e.message})\n`);
  }
  void flush();
}
rl.close();
await shutdown(5000);
const s = stats();
console.log(`\nSensei: ${s.sent} event(s) delivered, ${s.failed} failed, ${s.dropped} dropped. Conversation: ${conversationId}`);
