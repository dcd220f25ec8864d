// The built package loads as CommonJS and as ESM with the same API, and ships its type declarations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';

const require = createRequire(import.meta.url);
const root = new URL('../', import.meta.url);

test('require() and import load the same API through the exports map', async () => {
  const cjs = require('@convosensei/sdk');
  const esm = await import('@convosensei/sdk');
  const api = ['SenseiClient', 'SenseiError', 'VERSION', 'createClient', 'flush', 'getClient', 'init', 'shutdown', 'stats', 'track', 'wrap'];
  assert.deepEqual(Object.keys(cjs).sort(), api);
  assert.deepEqual(Object.keys(esm).filter((k) => k !== 'default').sort(), api);
  for (const k of api) assert.equal(typeof cjs[k], typeof esm[k], k);
  const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));
  assert.equal(cjs.VERSION, pkg.version);
  assert.equal(esm.VERSION, pkg.version);
  assert.ok(require.resolve('@convosensei/sdk').endsWith('dist/cjs/index.js'));
  assert.equal(JSON.parse(readFileSync(new URL('dist/cjs/package.json', root), 'utf8')).type, 'commonjs');
  const c = cjs.createClient({ apiKey: 'k', baseUrl: 'http://127.0.0.1:9', flushOnExit: false, fetch: () => new Promise(() => {}) });
  assert.ok(c.track({ conversationId: 'c', messages: [{ role: 'user', content: 'x' }] }));
  assert.ok(new cjs.SenseiError('m', { kind: 'http' }) instanceof Error);
});

test('the .d.ts files exist for both builds and declare the public API', () => {
  for (const dir of ['dist/esm', 'dist/cjs']) {
    for (const f of ['index.d.ts', 'client.d.ts', 'types.d.ts', 'wrap.d.ts']) {
      assert.ok(existsSync(new URL(`${dir}/${f}`, root)), `${dir}/${f}`);
    }
  }
  const dts = readFileSync(new URL('dist/esm/index.d.ts', root), 'utf8');
  for (const name of ['init', 'track', 'wrap', 'flush', 'shutdown', 'stats']) assert.match(dts, new RegExp(`export declare function ${name}\\b`));
  const types = readFileSync(new URL('dist/esm/types.d.ts', root), 'utf8');
  for (const name of ['InitOptions', 'TrackInput', 'TrackMessage', 'WrapOptions', 'Stats']) assert.match(types, new RegExp(`interface ${name}\\b`));
});
