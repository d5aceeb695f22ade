// Herald against a real browser: Debian's Chromium driven by playwright-core.
// The page is served same-origin with the hub (CORS is not there yet): the
// page's URL is on the hub's origin and Playwright answers for it, so only the
// EventSource requests reach the hub. Chromium's own reconnection, with its
// own Last-Event-ID, must resume after a SIGKILL and a restart on the same port.

import assert from 'node:assert/strict';
import { hubTest, launchBrowser, sleep, uniqueTopic, waitFor, parseId } from './helpers.mjs';

const SETTLE_MS = 750;

/** The test page: one EventSource on `topics`, events recorded in window.received. */
function testPage(topics) {
  const query = new URLSearchParams(topics.map((t) => ['topic', t])).toString();
  return `<!doctype html>
<meta charset="utf-8">
<title>herald chromium test</title>
<script>
  window.received = [];
  window.opens = 0;
  window.errors = 0;
  const es = new EventSource('/sse?${query}');
  es.onopen = () => { window.opens += 1; };
  es.onerror = () => { window.errors += 1; };
  es.onmessage = (e) => { window.received.push({ id: e.lastEventId, data: e.data }); };
  window.es = es;
</script>`;
}

async function openPage(browser, hub, topics) {
  const page = await browser.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e}`));
  // The Last-Event-ID of every stream request that reached the hub, as Chromium
  // put it on the wire (CDP's ExtraInfo; Playwright's request headers omit it).
  const wire = new Map();
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const entry = (id) => wire.get(id) ?? wire.set(id, {}).get(id);
  cdp.on('Network.requestWillBeSent', (e) => {
    entry(e.requestId).stream = new URL(e.request.url).pathname === '/sse';
  });
  cdp.on('Network.requestWillBeSentExtraInfo', (e) => {
    const name = Object.keys(e.headers).find((k) => k.toLowerCase() === 'last-event-id');
    entry(e.requestId).sent = { lastEventId: name ? e.headers[name] : null };
  });
  const streamRequests = () => [...wire.values()].filter((r) => r.stream && r.sent).map((r) => r.sent.lastEventId);
  await page.route('**/__test.html', (route) =>
    route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: testPage(topics) }));
  await page.goto(`${hub.url}/__test.html`, { timeout: 30_000 });
  const state = () => page.evaluate(() => ({
    received: window.received, opens: window.opens, errors: window.errors, readyState: window.es.readyState,
  }));
  const describe = async () => `page state: ${JSON.stringify(await state())}\nconsole: ${consoleLines.join('\n')}`;
  return { page, state, describe, streamRequests };
}

hubTest('chromium: EventSource receives events, and resumes by itself after SIGKILL and a restart', async (ctx) => {
  const hub = await ctx.startHub();
  const browser = await launchBrowser(ctx);
  const topic = uniqueTopic('chromium');
  const { state, describe, streamRequests } = await openPage(browser, hub, [topic]);

  let lastDescription = '';
  const waitState = (what, pred, timeoutMs = 30_000) => waitFor(what, async () => {
    const s = await state();
    lastDescription = JSON.stringify(s);
    return pred(s) && s;
  }, { timeoutMs, intervalMs: 100, describe: () => `last page state: ${lastDescription}` });

  await waitState('the page to open its EventSource', (s) => s.opens >= 1);

  const expected = [];
  const pub = async (data) => expected.push({ id: await hub.publish(topic, data), data });

  await pub('first');
  await pub('two\nlines');
  await pub('third ✓');
  await waitState('3 events in the page', (s) => s.received.length >= 3);
  await sleep(SETTLE_MS);
  assert.deepEqual((await state()).received, expected, `before the crash: ${await describe()}`);

  // Acknowledged, then the hub dies before the page need have seen them.
  for (let i = 1; i <= 3; i++) await pub(`acknowledged just before the crash ${i}`);
  await hub.kill();
  await hub.restart();
  for (let i = 1; i <= 3; i++) await pub(`after the restart ${i}`);

  await waitState(`${expected.length} events in the page`, (s) => s.received.length >= expected.length, 45_000);
  await pub('live after the resume');
  await waitState(`${expected.length} events in the page`, (s) => s.received.length >= expected.length);
  await sleep(SETTLE_MS);

  const final = await state();
  assert.deepEqual(final.received, expected, `after SIGKILL + restart: ${await describe()}`);
  const seqs = final.received.map((e) => parseId(e.id).seq);
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], 'ids must increase');
  assert.ok(final.opens >= 2, 'the page must have reconnected');

  // Chromium's first request carried no Last-Event-ID; each reconnection that
  // reached a hub carried the id of an event the page had already seen, at
  // least the third (the page had it before the crash).
  const headers = streamRequests();
  assert.ok(headers.length >= 2, `expected a reconnection request, saw ${JSON.stringify(headers)}`);
  assert.equal(headers[0], null, 'the first request has no Last-Event-ID');
  const index = new Map(expected.map((e, i) => [e.id, i]));
  for (const h of headers.slice(1)) {
    assert.ok(index.get(h) >= 2, `reconnection carried Last-Event-ID ${JSON.stringify(h)}; requests: ${JSON.stringify(headers)}`);
  }
});
