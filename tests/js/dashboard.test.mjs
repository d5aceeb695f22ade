// The dashboard the hub serves at / (web/dashboard/), in Chromium
// (playwright-core), against a real hub, with real Node clients (the npm
// `eventsource` package) as the load and as the console's far end.
//
// Covered: the page loads with no console error, no page error and no failed
// or refused request under its strict Content-Security-Policy; its numbers
// and charts follow the hub's $herald/stats feed (subscriptions, events
// published and delivered, rates) as load is applied and removed; the topic
// browser shows an event published before the page opened and pages
// through more topics than one page holds; the console
// subscribes, and its publish reaches a Node subscriber; a refused publish is
// shown. With token auth on, the page asks for an admin token, refuses a
// wrong one and a non-admin one with a visible message, and works with an
// admin one (the stats feed over EventSource with the token cookie), never
// putting the token in a URL; a token that expires brings the form back
// with the hub's reason. A screenshot is saved to
// target/screenshots/dashboard.png.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { EventSource } from 'eventsource';
import { heraldBin, hubTest, launchBrowser, repoRoot, sleep, uniqueTopic, waitFor } from './helpers.mjs';

const LIMIT = { timeout: 110_000 };
/** Snapshot period of the hubs under test (ms): quick, so numbers move fast. */
const STATS_MS = '200';
const SECRET = 'dashboard-test-secret-0123456789-abcdefghijkl';
const SCREENSHOTS = path.join(repoRoot, 'target', 'screenshots');

/** A token minted by `herald token` (the CLI the docs point operators to). */
function mint(secret, ...flags) {
  return execFileSync(heraldBin, ['token', '--jwt-secret', secret, '--ttl', '10m', ...flags], {
    encoding: 'utf8',
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HERALD_'))),
  }).trim();
}

/** Records console messages, page errors, failed requests and refused answers. */
function watch(page) {
  const seen = { console: [], problems: [], urls: [] };
  page.on('console', (m) => {
    seen.console.push(`${m.type()}: ${m.text()}`);
    if (m.type() === 'error' || m.type() === 'warning') seen.problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => seen.problems.push(`pageerror: ${e}`));
  page.on('requestfailed', (r) => {
    // A stream the page closes on purpose is aborted, not failed.
    if (r.failure()?.errorText !== 'net::ERR_ABORTED') seen.problems.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on('request', (r) => seen.urls.push(r.url()));
  page.on('response', (r) => {
    if (r.status() >= 400) seen.problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  seen.describe = () => `page saw:\n${[...seen.problems, ...seen.console].join('\n')}`;
  return seen;
}

const text = (page, sel) => page.locator(sel).textContent({ timeout: 5_000 });
const num = async (page, sel) => Number(await text(page, sel));

/** Waits until `check(value of sel)` holds; returns the value. */
async function waitText(page, sel, check, what, seen) {
  let last;
  await waitFor(what, async () => check(last = await text(page, sel)), {
    timeoutMs: 20_000,
    describe: () => `${sel} shows ${JSON.stringify(last)}\n${seen.describe()}`,
  });
  return last;
}

/** An EventSource on the hub recording what it receives (types: event types besides `message`). */
function listen(ctx, hub, topic, types = []) {
  const got = { events: [], open: false };
  const es = new EventSource(`${hub.url}/sse?${new URLSearchParams({ topic })}`);
  for (const type of ['message', ...types]) {
    es.addEventListener(type, (e) => got.events.push({ type: e.type, data: e.data, id: e.lastEventId }));
  }
  es.addEventListener('open', () => { got.open = true; });
  got.close = () => es.close();
  ctx.defer(() => es.close());
  return got;
}

/** Whether the canvas has any painted pixel. */
const painted = (page, sel) => page.$eval(sel, (c) => {
  const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) return true;
  return false;
});

hubTest('dashboard: live numbers under load, topic browser, console publish, no console errors', async (ctx) => {
  const hub = await ctx.startHub({ args: ['--stats-interval-ms', STATS_MS] });
  const earlier = uniqueTopic('dash-earlier');
  const loaded = uniqueTopic('dash-load');
  const chat = uniqueTopic('dash-console');
  await hub.publish(earlier, 'published before the page opened', { type: 'note' });
  // More topics than one page of the topic browser (50).
  const pageTopic = uniqueTopic('dash-page');
  const many = Array.from({ length: 60 }, (_, i) => `${pageTopic}/${String(i).padStart(2, '0')}`);
  await hub.publishJson(many.map((topic) => ({ topic, data: 'x' })));

  // The page is what a browser asking / gets; curl still gets the text index.
  const index = await hub.request('GET', '/');
  assert.match(index.body, /^Herald push hub/);
  const html = await hub.request('GET', '/', { headers: { accept: 'text/html' } });
  assert.equal(html.status, 200);
  assert.match(html.headers['content-type'], /^text\/html/);
  assert.match(html.headers['content-security-policy'], /default-src 'self'.*frame-ancestors 'none'/);

  const browser = await launchBrowser(ctx);
  const page = await browser.newPage({ viewport: { width: 1280, height: 1400 }, deviceScaleFactor: 2 });
  const seen = watch(page);
  await page.goto(`${hub.url}/`);
  await waitText(page, '#feed-state', (t) => t === 'live (sse)', 'the stats feed over EventSource', seen);
  assert.equal(await page.locator('#login').isHidden(), true, 'no token is asked in --dev');

  // Idle: the only subscription is the dashboard's own feed.
  await waitText(page, '#stat-subscribers', (t) => t === '1', 'one subscription (the feed)', seen);
  const published0 = await num(page, '#stat-published');
  const delivered0 = await num(page, '#stat-delivered');
  assert.equal(published0, 61, 'the events published before');

  // Load: three Node subscribers and 20 events, a few every 50 ms.
  const subs = [0, 1, 2].map(() => listen(ctx, hub, loaded));
  await waitFor('3 Node EventSources open', () => subs.every((s) => s.open));
  await waitText(page, '#stat-subscribers', (t) => t === '4', 'four subscriptions', seen);
  assert.ok(await num(page, '#stat-connections') >= 4, 'connections count the open streams');
  let outRate = 0;
  const rates = (async () => {
    for (let i = 0; i < 200 && outRate === 0; i += 1) {
      outRate = Number(await text(page, '#stat-out-rate'));
      await sleep(25);
    }
  })();
  for (let i = 0; i < 20; i += 1) {
    await hub.publish(loaded, `load ${i}`);
    await sleep(50);
  }
  await waitFor('each Node subscriber got 20 events', () => subs.every((s) => s.events.length === 20));
  await waitText(page, '#stat-published', (t) => Number(t) === published0 + 20, 'published +20', seen);
  await waitText(page, '#stat-delivered', (t) => Number(t) >= delivered0 + 60, 'delivered +60 (3 × 20)', seen);
  await rates;
  assert.ok(outRate > 0, `events out per second moved (${outRate})`);
  assert.ok(await painted(page, '#chart-rates'), 'the rates chart is drawn');
  assert.ok(await painted(page, '#chart-transports'), 'the transports chart is drawn');
  const backing = await page.$eval('#chart-rates', (c) => [c.width, c.height, c.clientWidth, c.clientHeight]);
  assert.deepEqual(backing.slice(0, 2), [backing[2] * 2, backing[3] * 2], 'drawn at the device pixel ratio');

  // Load removed.
  for (const s of subs) s.close();
  await waitText(page, '#stat-subscribers', (t) => t === '1', 'back to one subscription', seen);

  // The topic browser shows the event published before the page opened.
  await page.click('#topics-refresh');
  const row = page.locator('#topics tbody tr', { hasText: earlier });
  await row.waitFor({ timeout: 10_000 });
  assert.equal(await row.locator('td').nth(2).textContent(), '1');
  await row.click();
  await page.locator('#events li', { hasText: 'published before the page opened' }).waitFor({ timeout: 10_000 });
  assert.match(await text(page, '#events li'), /type=note/);

  // Paging: 50 topics, then the rest, in name order.
  const names = () => page.$$eval('#topics tbody tr', (rows) => rows.map((r) => r.dataset.topic));
  const first = await names();
  assert.equal(first.length, 50);
  await page.click('#topics-next');
  await waitFor('the second page', async () => (await names())[0] !== first[0]);
  const second = await names();
  assert.ok(second.includes(many.at(-1)), JSON.stringify(second));
  assert.ok(second.every((t) => t > first.at(-1)), 'the second page follows the first');
  assert.equal(await page.locator('#topics-next').isHidden(), true, 'the last page');
  await page.click('#topics-first');
  await waitFor('the first page again', async () => (await names())[0] === first[0]);

  // The console: subscribe in the page, publish from it, a Node client receives it.
  const node = listen(ctx, hub, chat, ['greeting']);
  await waitFor('the Node subscriber open', () => node.open);
  await page.fill('#console-topic', chat);
  await page.click('#console-subscribe');
  await waitText(page, '#console-state', (t) => t.startsWith(`subscribed to ${chat}`), 'the console subscribed', seen);
  await page.fill('#console-data', 'hello from the console');
  await page.fill('#console-type', 'greeting');
  await page.click('#console-publish');
  await waitFor('the Node subscriber got the console publish', () => node.events.length === 1, {
    describe: seen.describe,
  });
  assert.deepEqual(
    node.events.map(({ type, data }) => ({ type, data })),
    [{ type: 'greeting', data: 'hello from the console' }],
  );
  await waitText(page, '#console-result', (t) => t === `published ${node.events[0].id}`, 'the id shown', seen);
  await page.locator('#console-events li', { hasText: 'hello from the console' }).waitFor({ timeout: 10_000 });
  await waitText(page, '#stat-published', (t) => Number(t) === published0 + 21, 'published +21', seen);

  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, 'dashboard.png'), fullPage: true });
  assert.deepEqual(seen.problems, [], seen.describe());

  // A refused publish is shown with the hub's reason.
  await page.fill('#console-topic', '$herald/mine');
  await page.click('#console-publish');
  await waitText(page, '#console-error', (t) => /Publish refused \(HTTP 403\).*reserved_topic/.test(t), 'the refusal shown', seen);
  assert.equal(await page.locator('#console-error').isVisible(), true);
}, LIMIT);

hubTest('dashboard with token auth: asks for an admin token, refuses others visibly, never puts it in a URL', async (ctx) => {
  const hub = await ctx.startHub({ dev: false, args: ['--jwt-secret', SECRET, '--stats-interval-ms', STATS_MS] });
  const admin = mint(SECRET, '--admin', '--sub', 'dashboard-admin');
  const publisher = mint(SECRET, '--publish', '/**');
  const forged = mint('another-secret-another-secret-0123456789abc', '--admin');

  const browser = await launchBrowser(ctx);
  const context = await browser.newContext();
  const page = await context.newPage();
  const seen = watch(page);
  await page.goto(`${hub.url}/`);
  await page.locator('#login').waitFor({ state: 'visible', timeout: 10_000 });
  assert.equal(await page.locator('#main').isHidden(), true);

  // A token with the wrong signature, then a valid token that is not an admin's.
  await page.fill('#token', forged);
  await page.click('#login-form button[type=submit]');
  await waitText(page, '#login-error', (t) => /refused this token/.test(t), 'the forged token refused', seen);
  assert.equal(await page.locator('#login-error').isVisible(), true);
  assert.equal(await page.locator('#main').isHidden(), true);
  await page.fill('#token', publisher);
  await page.click('#login-form button[type=submit]');
  await waitText(page, '#login-error', (t) => /not_admin/.test(t), 'the non-admin token refused', seen);
  assert.equal(await page.locator('#main').isHidden(), true);

  // The admin token opens it; the feed runs over EventSource with the cookie.
  await page.fill('#token', admin);
  await page.click('#login-form button[type=submit]');
  await waitText(page, '#feed-state', (t) => t === 'live (sse)', 'the stats feed with the token cookie', seen);
  assert.equal(await page.locator('#login').isHidden(), true);
  await waitText(page, '#stat-subscribers', (t) => t === '1', 'the feed counted', seen);
  await waitText(page, '#stat-auth-failures', (t) => Number(t) >= 3, 'the refusals counted', seen);
  const stored = await page.evaluate(() => sessionStorage.getItem('herald.dashboard.token'));
  assert.equal(stored, admin);
  const cookie = (await context.cookies(hub.url)).find((c) => c.name === 'herald_token');
  assert.equal(cookie?.value, admin);
  assert.equal(cookie?.sameSite, 'Strict');

  // The admin token may not publish: the console says so.
  await page.fill('#console-topic', '/dash/secure');
  await page.fill('#console-data', 'x');
  await page.click('#console-publish');
  await waitText(page, '#console-error', (t) => /Publish refused \(HTTP 403\).*forbidden/.test(t), 'forbidden shown', seen);

  // A reload keeps the tab signed in; no request ever carried the token in its URL.
  await page.reload();
  await waitText(page, '#feed-state', (t) => t === 'live (sse)', 'live again after a reload', seen);
  assert.equal(await page.locator('#login').isHidden(), true);
  const leaks = seen.urls.filter((u) => u.includes(admin) || new URL(u).searchParams.has('access_token'));
  assert.deepEqual(leaks, []);
  // The only refusals were the probe without a token and the three meant ones.
  const unexpected = seen.problems.filter((p) => !/HTTP (401|403)|status of (401|403)/.test(p));
  assert.deepEqual(unexpected, [], seen.describe());

  // Signing out forgets the token and the cookie.
  await page.click('#sign-out');
  await page.locator('#login').waitFor({ state: 'visible', timeout: 10_000 });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('herald.dashboard.token')), null);
  assert.equal((await context.cookies(hub.url)).find((c) => c.name === 'herald_token'), undefined);

  // A token that expires while the page runs: the hub ends the feed, refuses
  // it again, and the page asks for a token with the hub's reason.
  const brief = execFileSync(heraldBin, ['token', '--jwt-secret', SECRET, '--ttl', '4s', '--admin'], {
    encoding: 'utf8',
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HERALD_'))),
  }).trim();
  await page.fill('#token', brief);
  await page.click('#login-form button[type=submit]');
  await waitText(page, '#feed-state', (t) => t === 'live (sse)', 'live with the brief token', seen);
  await page.locator('#login').waitFor({ state: 'visible', timeout: 40_000 });
  await waitText(page, '#login-error', (t) => /refused the token.*token_expired/.test(t), 'the expiry shown', seen);
}, LIMIT);
