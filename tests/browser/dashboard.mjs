// Browser test of the admin dashboard (/dashboard) in the system's headless Chromium (/usr/bin/chromium), driven
// by playwright-core (no browser download). `crates/web/tests/browser.rs` starts the real app with known data and
// runs this script; it can also run against any server (see README.md).
//
// Every step runs even when an earlier one failed (each loads its own page), so one broken page does not hide the
// state of the others. A step also fails on any uncaught page error or console error during it: the dashboard's
// Content-Security-Policy violations are reported as console errors, so an inline script or style fails the test.
// Exits 0 only when every step passed.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

function need(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`dashboard.mjs: set ${name} (see tests/browser/README.md)`);
    process.exit(2);
  }
  return value;
}

const BASE_URL = need('BASE_URL').replace(/\/$/, '');
const ADMIN_EMAIL = need('ADMIN_EMAIL');
const ADMIN_PASSWORD = need('ADMIN_PASSWORD');
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || path.resolve('screenshots');
// A conversation (external id) with failures whose transcript contains EXPECT_SEARCH.
const EXPECT_CONVERSATION = process.env.EXPECT_CONVERSATION || '';
const EXPECT_SEARCH = process.env.EXPECT_SEARCH || '';
// The text the model answers in the Playground.
const EXPECT_ANSWER = process.env.EXPECT_ANSWER || '';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });

const url = (p) => BASE_URL + p;
const problems = []; // page errors and console errors, in order
const results = [];
const shots = [];
const state = {}; // what later steps use from earlier ones

function watch(page, label) {
  page.on('pageerror', (err) => problems.push(`[${label}] page error on ${page.url()}: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') {
      const where = msg.location()?.url ? ` (${msg.location().url})` : '';
      problems.push(`[${label}] console error on ${page.url()}: ${msg.text()}${where}`);
    }
  });
  page.on('dialog', (d) => d.accept());
}

async function shoot(page, name) {
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  shots.push(file);
}

/** Loads a dashboard page, asserting it answers 200 (a 404 means the page is not there yet). */
async function open(page, p, heading) {
  const res = await page.goto(url(p), { waitUntil: 'load' });
  assert.ok(res, `no response for ${p}`);
  assert.equal(res.status(), 200, `GET ${p} answered ${res.status()}${res.status() === 404 ? ' (page not there yet)' : ''}; now at ${page.url()}`);
  if (heading) {
    await page.getByRole('heading', { level: 1, name: heading, exact: true }).waitFor({ state: 'visible' });
  }
  return res;
}

/** Waits for the htmx request that `action` triggers (an `HX-Request` GET or POST to a path starting with `prefix`). */
async function htmx(page, prefix, action) {
  const [res] = await Promise.all([
    page.waitForResponse((r) => r.url().startsWith(url(prefix)) && r.request().headers()['hx-request'] === 'true'),
    action(),
  ]);
  assert.ok(res.status() < 400, `htmx ${res.request().method()} ${res.url()} answered ${res.status()}`);
  // Let htmx swap and settle (its default settle delay is 20 ms).
  await page.waitForTimeout(100);
  return res;
}

async function step(name, page, fn) {
  const before = problems.length;
  const started = Date.now();
  let error = null;
  try {
    await fn();
  } catch (e) {
    error = e;
  }
  await page.waitForTimeout(50); // late console messages of this step
  const mine = problems.slice(before);
  if (!error && mine.length) {
    error = new Error(`page or console errors:\n    ${mine.join('\n    ')}`);
  } else if (error && mine.length) {
    error.message += `\n  and page or console errors:\n    ${mine.join('\n    ')}`;
  }
  const ms = Date.now() - started;
  if (error) {
    results.push({ name, ok: false });
    console.log(`not ok - ${name} (${ms} ms)\n  ${String(error.message || error).split('\n').join('\n  ')}`);
    try {
      await shoot(page, `FAILED-${results.length}`);
    } catch {
      // the page may be gone
    }
  } else {
    results.push({ name, ok: true });
    console.log(`ok - ${name} (${ms} ms)`);
  }
}

/** The conversations result rows as {id, failures}. */
async function conversationRows(page) {
  return page.locator('#results #conversation-table tbody tr').evaluateAll((trs) =>
    trs.map((tr) => {
      const heads = [...tr.closest('table').querySelectorAll('thead th')].map((th) => th.textContent.trim());
      const cells = [...tr.querySelectorAll('td')];
      const at = heads.indexOf('Failures');
      return {
        id: cells[0]?.querySelector('a')?.textContent.trim() ?? '',
        failures: Number((cells[at]?.textContent ?? '').replace(/[^0-9]/g, '')),
      };
    }),
  );
}

/** Applies "with failures" and, when given, a search, through the htmx filter form. */
async function filterWithFailures(page, search) {
  await htmx(page, '/dashboard/conversations', () =>
    page.getByLabel('Failures', { exact: true }).selectOption({ label: 'with failures' }),
  );
  await page.waitForURL(/has_failures=true/);
  if (search) {
    await page.getByLabel('Search messages').fill(search);
    await htmx(page, '/dashboard/conversations', () => page.getByLabel('Search messages').press('Enter'));
    await page.waitForURL(/[?&]q=/);
  }
}

/** In the page: how wide the document is, and the outermost elements that stick out past the viewport. */
function sideways() {
  const width = document.documentElement.clientWidth;
  const scrollWidth = document.documentElement.scrollWidth;
  const culprits = [];
  if (scrollWidth > width) {
    for (const el of document.querySelectorAll('body *')) {
      const parent = el.parentElement;
      if (el.getBoundingClientRect().right > width + 1 && parent && parent.getBoundingClientRect().right <= width + 1) {
        const what = el.tagName.toLowerCase() + (el.id ? `#${el.id}` : '') + [...el.classList].map((c) => `.${c}`).join('');
        const inside = parent.tagName.toLowerCase() + (parent.id ? `#${parent.id}` : '') + [...parent.classList].map((c) => `.${c}`).join('');
        culprits.push(`${what} in ${inside} (right edge ${Math.round(el.getBoundingClientRect().right)} px)`);
      }
    }
  }
  return { width, scrollWidth, culprits: culprits.slice(0, 6) };
}

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
console.log(`Chromium ${browser.version()} against ${BASE_URL}; screenshots in ${SCREENSHOT_DIR}`);
const context = await browser.newContext({ viewport: DESKTOP });
context.setDefaultTimeout(10_000);
const page = await context.newPage();
watch(page, 'desktop');

try {
  await step('1. log in', page, async () => {
    await page.goto(url('/dashboard'));
    assert.match(new URL(page.url()).pathname, /^\/dashboard\/login$/, `/dashboard did not redirect to the login page: ${page.url()}`);
    await page.getByRole('heading', { level: 1 }).waitFor();
    await shoot(page, 'login');
    await page.getByLabel('Email').fill(ADMIN_EMAIL);
    await page.getByLabel('Password', { exact: true }).fill(ADMIN_PASSWORD);
    await Promise.all([
      page.waitForURL((u) => u.pathname === '/dashboard'),
      page.getByRole('button', { name: 'Sign in', exact: true }).click(),
    ]);
    await page.getByRole('heading', { level: 1, name: 'Overview', exact: true }).waitFor();
    await shoot(page, 'overview');
  });

  await step('2. filter conversations (with failures, then a search)', page, async () => {
    await open(page, '/dashboard/conversations', 'Conversations');
    await shoot(page, 'conversations');
    await filterWithFailures(page, null);
    assert.match(page.url(), /has_failures=true/);
    const rows = await conversationRows(page);
    assert.ok(rows.length > 0, 'no conversation with failures is listed');
    for (const r of rows) {
      assert.ok(r.failures > 0, `"with failures" lists ${r.id} with ${r.failures} failures`);
    }
    assert.ok(EXPECT_SEARCH, 'set EXPECT_SEARCH');
    await page.getByLabel('Search messages').fill(EXPECT_SEARCH);
    await htmx(page, '/dashboard/conversations', () => page.getByLabel('Search messages').press('Enter'));
    await page.waitForURL(/[?&]q=/);
    assert.match(page.url(), /has_failures=true/, 'the search dropped the failures filter');
    const found = await conversationRows(page);
    assert.ok(
      found.some((r) => r.id === EXPECT_CONVERSATION),
      `${EXPECT_CONVERSATION} is not among the results of "${EXPECT_SEARCH}": ${JSON.stringify(found)}`,
    );
    state.filteredUrl = page.url();
    await shoot(page, 'conversations-filtered');
  });

  await step('3. open the conversation: transcript, flagged message, health breakdown', page, async () => {
    if (state.filteredUrl) {
      await page.goto(state.filteredUrl);
    } else {
      await open(page, `/dashboard/conversations?q=${encodeURIComponent(EXPECT_SEARCH)}`, 'Conversations');
    }
    await Promise.all([
      page.waitForURL(/\/dashboard\/conversations\/[^/?]+$/),
      page.locator('#results').getByRole('link', { name: EXPECT_CONVERSATION, exact: true }).click(),
    ]);
    state.detailUrl = page.url();
    await page.getByRole('heading', { level: 1, name: EXPECT_CONVERSATION, exact: true }).waitFor();
    await page.getByRole('region', { name: 'Transcript' }).waitFor();
    const messages = await page.locator('.transcript .msg').count();
    assert.ok(messages > 0, 'the transcript shows no message');
    const flagged = page.locator('.msg.flagged');
    assert.ok((await flagged.count()) > 0, 'no message is flagged with a failure (.msg.flagged)');
    await flagged.first().locator('.failure').first().waitFor({ state: 'visible' });
    await page.getByRole('heading', { name: 'Health breakdown' }).waitFor();
    const components = await page
      .locator('section', { has: page.getByRole('heading', { name: 'Health breakdown' }) })
      .locator('tbody tr')
      .count();
    assert.ok(components > 0, 'the health breakdown lists no component');
    await shoot(page, 'conversation');
  });

  await step('4. acknowledge a failure (htmx), still acknowledged after a reload', page, async () => {
    assert.ok(state.detailUrl, 'no conversation page (step 3 failed)');
    await page.goto(state.detailUrl);
    const failure = page.locator('.msg.flagged .failure').filter({ has: page.getByRole('button', { name: 'Acknowledge', exact: true }) }).first();
    const id = await failure.getAttribute('id');
    assert.ok(id, 'no failure with an Acknowledge button on a flagged message');
    await htmx(page, '/dashboard/failures/', () => failure.getByRole('button', { name: 'Acknowledge', exact: true }).click());
    const swapped = page.locator(`#${id}`);
    await swapped.locator('.status').filter({ hasText: /^ack$/ }).waitFor();
    assert.match((await swapped.getAttribute('class')) ?? '', /\back\b/);
    assert.equal(await swapped.getByRole('button', { name: 'Acknowledge', exact: true }).count(), 0, 'still offers Acknowledge');
    assert.equal(new URL(page.url()).pathname, new URL(state.detailUrl).pathname, 'the click left the page (no htmx swap)');
    await page.reload();
    await page.locator(`#${id} .status`).filter({ hasText: /^ack$/ }).waitFor();
    await shoot(page, 'conversation-acknowledged');
  });

  await step('5a. save a view from a filtered page (loaded with its filters), open it', page, async () => {
    const filters = `has_failures=true&q=${encodeURIComponent(EXPECT_SEARCH)}`;
    await open(page, `/dashboard/conversations?${filters}`, 'Conversations');
    const name = `Failing ${Date.now()}`;
    await page.getByLabel('Save these filters as').fill(name);
    await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Save view', exact: true }).click()]);
    const link = page.getByRole('complementary', { name: 'Saved views' }).getByRole('link', { name, exact: true });
    await link.waitFor();
    await Promise.all([page.waitForURL(/has_failures=true/), link.click()]);
    assert.match(page.url(), /has_failures=true/);
    assert.match(page.url(), /[?&]q=/);
    assert.equal(await page.getByLabel('Failures', { exact: true }).inputValue(), 'true', 'the Failures filter is not restored');
  });

  await step('5b. save a view right after filtering with htmx (no reload), open it', page, async () => {
    await open(page, '/dashboard/conversations', 'Conversations');
    await filterWithFailures(page, EXPECT_SEARCH);
    const name = `Filtered ${Date.now()}`;
    await page.getByLabel('Save these filters as').fill(name);
    await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Save view', exact: true }).click()]);
    const link = page.getByRole('complementary', { name: 'Saved views' }).getByRole('link', { name, exact: true });
    await link.waitFor();
    const href = await link.getAttribute('href');
    await link.click();
    await page.waitForLoadState('load');
    assert.match(
      page.url(),
      /has_failures=true/,
      `the saved view "${name}" lost the filters shown on the page (its link is ${href}): the save form's hidden "filters" input is not updated when htmx swaps #results`,
    );
    assert.match(page.url(), /[?&]q=/);
  });

  await step('6. settings: create an API key, shown once, then revoke it', page, async () => {
    await open(page, '/dashboard/settings', 'Settings');
    const name = `browser-${Date.now()}`;
    await page.getByLabel('Name', { exact: true }).fill(name);
    await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Create key', exact: true }).click()]);
    await page.getByText('Copy it now: it will not be shown again.').waitFor();
    const values = await page.locator('input[readonly]').evaluateAll((inputs) => inputs.map((i) => i.value));
    const key = values.find((v) => v.startsWith('sk_sensei_'));
    assert.ok(key, `no readonly input holds a key starting with sk_sensei_: ${JSON.stringify(values)}`);
    assert.ok(key.length > 20, `the key looks truncated: ${key}`);
    await shoot(page, 'settings-key-created');
    await open(page, '/dashboard/settings', 'Settings');
    assert.ok(!(await page.content()).includes(key), 'the full key is still on the settings page after loading it again');
    assert.equal(await page.getByText('Copy it now: it will not be shown again.').count(), 0);
    await page.getByRole('cell', { name, exact: true }).waitFor();
    await shoot(page, 'settings');
    const revoke = page.getByRole('button', { name: `Revoke ${name}`, exact: true });
    if ((await revoke.count()) === 0) {
      console.log(`  (no Revoke button for ${name})`);
      return;
    }
    await Promise.all([page.waitForURL(/\/dashboard\/settings/), page.waitForLoadState('load'), revoke.click()]);
    await page.getByRole('heading', { level: 1, name: 'Settings', exact: true }).waitFor();
    await page.getByRole('cell', { name, exact: true }).waitFor();
    assert.equal(await page.getByRole('button', { name: `Revoke ${name}`, exact: true }).count(), 0, 'the key still offers Revoke after revoking');
  });

  await step('7. playground: send a message, the answer streams in', page, async () => {
    await open(page, '/dashboard/playground', 'Playground');
    const agent = page.getByLabel('Agent', { exact: true });
    const options = await agent.locator('option').count();
    assert.ok(options > 0, 'the Agent select has no option');
    await agent.selectOption({ index: 0 });
    await page.getByLabel('Message', { exact: true }).fill('How should I price a full-day session?');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    const transcript = page.locator('#playground-transcript');
    await transcript.getByText('How should I price a full-day session?').waitFor();
    assert.ok(EXPECT_ANSWER, 'set EXPECT_ANSWER');
    await transcript.getByText(EXPECT_ANSWER).waitFor({ timeout: 20_000 });
    await page.getByRole('button', { name: 'New conversation', exact: true }).waitFor();
    await shoot(page, 'playground');
  });

  const pages = [
    ['failures', '/dashboard/failures', 'Failures'],
    ['patterns', '/dashboard/patterns', 'Patterns'],
    ['sessions', '/dashboard/sessions', 'Mentor sessions'],
    ['llm-calls', '/dashboard/llm-calls', 'LLM calls'],
  ];
  for (const [name, p, heading] of pages) {
    await step(`8. screenshot ${name} (${p})`, page, async () => {
      await open(page, p, heading);
      await shoot(page, name);
    });
  }

  await step('8. screenshot an LLM call', page, async () => {
    await open(page, '/dashboard/llm-calls', 'LLM calls');
    const link = page.locator('#results a[href^="/dashboard/llm-calls/"]').first();
    if ((await link.count()) === 0) {
      console.log('  (no LLM call listed)');
      return;
    }
    const href = await link.getAttribute('href');
    await open(page, href, null);
    await page.getByRole('heading', { level: 1 }).waitFor();
    await shoot(page, 'llm-call');
  });

  await step('8. phone screenshots (390x844) of the overview and conversations', page, async () => {
    const phone = await browser.newContext({ viewport: PHONE, storageState: await context.storageState(), isMobile: true, hasTouch: true });
    const small = await phone.newPage();
    watch(small, 'phone');
    state.phone = [];
    try {
      for (const [name, p, heading] of [
        ['phone-overview', '/dashboard', 'Overview'],
        ['phone-conversations', '/dashboard/conversations', 'Conversations'],
      ]) {
        await open(small, p, heading);
        await shoot(small, name);
        state.phone.push({ path: p, ...(await small.evaluate(sideways)) });
      }
    } finally {
      await phone.close();
    }
  });

  await step('8. phone pages fit 390 px (no sideways scrolling of the whole page)', page, async () => {
    assert.ok(state.phone?.length, 'no phone page was measured (the phone step failed)');
    const wide = state.phone.filter((m) => m.scrollWidth > m.width);
    assert.ok(
      wide.length === 0,
      `pages wider than the phone's ${PHONE.width} px viewport (scrollWidth; outermost overflowing elements):\n${wide
        .map((m) => `  ${m.path}: ${m.scrollWidth} px; ${m.culprits.join(', ')}`)
        .join('\n')}`,
    );
  });
} finally {
  await browser.close();
}

const failed = results.filter((r) => !r.ok);
console.log(`\nscreenshots (${shots.length}):\n  ${shots.join('\n  ')}`);
console.log(`\n${results.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
