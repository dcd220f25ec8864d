// Test helpers: a local node:http server that imitates Sensei's ingest contract, and small utilities.
import http from 'node:http';

/**
 * Starts a server on 127.0.0.1:0. `handler({method, path, headers, body, json, n})` returns
 * `{status, headers?, body?, delayMs?}` (body: object → JSON) or nothing (→ 207 all stored).
 * Every request is recorded in `server.requests`.
 */
export async function startServer(handler = () => undefined) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json;
      try {
        json = body ? JSON.parse(body) : undefined;
      } catch {
        json = undefined;
      }
      const url = new URL(req.url, 'http://x');
      const rec = { method: req.method, path: url.pathname, headers: req.headers, body, json, n: requests.length, at: Date.now() };
      requests.push(rec);
      let out;
      try {
        out = (await handler(rec)) ?? storedAll(rec);
      } catch (e) {
        out = { status: 500, body: { error: { code: 'test', message: String(e) } } };
      }
      if (out.delayMs) await new Promise((r) => setTimeout(r, out.delayMs));
      if (res.destroyed) return;
      const isString = typeof out.body === 'string';
      res.writeHead(out.status, {
        'content-type': isString ? out.contentType ?? 'text/plain' : 'application/json',
        ...(out.headers ?? {}),
      });
      if (out.chunks) {
        for (const c of out.chunks) {
          if (res.destroyed) return;
          res.write(c);
          if (out.chunkDelayMs) await new Promise((r) => setTimeout(r, out.chunkDelayMs));
        }
        res.end();
      } else {
        res.end(out.body === undefined ? '' : isString ? out.body : JSON.stringify(out.body));
      }
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    /** Requests to the ingest route. */
    ingest: () => requests.filter((r) => r.path === '/api/v1/ingest'),
    close: () =>
      new Promise((r) => {
        server.closeAllConnections?.();
        server.close(() => r());
      }),
  };
}

/** The 207 answer storing every event of a batch. */
export function storedAll(rec) {
  const batch = rec.json?.batch ?? [];
  return { status: 207, body: { successes: batch.map((e) => ({ id: e.id, status: 201 })), errors: [] } };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits until `cond()` is true (polling), or fails after `timeoutMs`. */
export async function waitFor(cond, timeoutMs = 3000, what = 'condition') {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** A fetch stub that records ingest bodies and answers 207 (all stored). */
export function recordingFetch() {
  const batches = [];
  const f = async (url, init) => {
    const json = JSON.parse(init.body);
    batches.push({ url, headers: init.headers, json });
    return new Response(JSON.stringify(storedAll({ json }).body), { status: 207, headers: { 'content-type': 'application/json' } });
  };
  f.batches = batches;
  f.events = () => batches.flatMap((b) => b.json.batch);
  return f;
}

export const msg = (content, role = 'user') => ({ role, content });
