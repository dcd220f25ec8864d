// Measures what one track() call costs the host: N calls with a fetch stub that never resolves (so no network
// work overlaps the measurement), timing each call with process.hrtime. Run: npm run bench [-- N]
import { createClient } from '../dist/esm/index.js';

const N = Number(process.argv[2]) || 100_000;
const never = () => new Promise(() => {});

function run(label, options) {
  const c = createClient({ apiKey: 'sk_sensei_bench', baseUrl: 'http://127.0.0.1:9', fetch: never, flushOnExit: false, ...options });
  const input = (i) => ({
    conversationId: `conv-${i % 100}`,
    userId: 'user-1',
    messages: [
      { role: 'user', content: 'Hi! I would like to book a tattoo for next Tuesday afternoon, is that possible?' },
      { role: 'assistant', content: 'Of course. Tuesday at 3pm is free; shall I book it for you?', metadata: { model: 'gpt-4o-mini' } },
    ],
  });
  for (let i = 0; i < 10_000; i++) c.track(input(i)); // warm-up (JIT)
  const samples = new Float64Array(N);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const s = process.hrtime.bigint();
    c.track(input(i));
    samples[i] = Number(process.hrtime.bigint() - s) / 1000;
  }
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  samples.sort();
  const mean = samples.reduce((a, b) => a + b, 0) / N;
  const pct = (p) => samples[Math.min(N - 1, Math.floor(p * N))];
  const st = c.stats();
  console.log(
    `${label.padEnd(44)} mean ${mean.toFixed(2)} µs  p50 ${pct(0.5).toFixed(2)} µs  p99 ${pct(0.99).toFixed(2)} µs  ` +
      `max ${samples[N - 1].toFixed(0)} µs  (${N} calls in ${wall.toFixed(0)} ms; dropped ${st.dropped})`,
  );
}

console.log(`track() cost, Node ${process.version}, ${N} calls of a 2-message event`);
run('default queue (1000; full: drops the oldest)', {});
run(`queue large enough for every call (${N + 10_000})`, { maxQueueSize: N + 10_000, flushAt: N + 10_000 });
process.exit(0);
