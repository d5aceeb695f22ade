// Cross-origin EventSource with credentials in Chromium: a page on a listed
// origin (cors_origins) opens `new EventSource(hubUrl, {withCredentials: true})`
// and receives events; Chromium accepts the stream only if the hub echoes the
// origin and allows credentials. A page on an unlisted origin gets nothing.

import assert from 'node:assert/strict';
import http from 'node:http';
import { hubTest, launchBrowser, sleep, uniqueTopic, waitFor } from './helpers.mjs';

/** Serves `body` on 127.0.0.<host>:0; returns its origin. */
async function pageServer(ctx, host, body) {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(body());
  });
  await new Promise((resolve, reject) => server.listen(0, host, resolve).on('error', reject));
  ctx.defer(() => new Promise((resolve) => server.close(resolve)));
  return `http://${host}:${server.address().port}`;
}

hubTest('chromium: a listed origin reads a withCredentials EventSource; an unlisted one cannot', async (ctx) => {
  const topic = uniqueTopic('cors');
  let hubUrl = '';
  // The page script is built once the hub's URL is known.
  const body = () => `<!doctype html><meta charset="utf-8"><script>
      window.received = []; window.errors = 0; window.opened = 0;
      const es = new EventSource(${JSON.stringify(`${hubUrl}/sse?topic=${topic}`)}, { withCredentials: true });
      es.onopen = () => { window.opened += 1; };
      es.onerror = () => { window.errors += 1; };
      es.onmessage = (e) => window.received.push({ id: e.lastEventId, data: e.data });
    </script>`;
  const listed = await pageServer(ctx, '127.0.0.2', body);
  const unlisted = await pageServer(ctx, '127.0.0.3', body);
  const hub = await ctx.startHub({ args: ['--cors-origins', listed] });
  hubUrl = hub.url;
  const browser = await launchBrowser(ctx);

  const good = await browser.newPage();
  await good.goto(`${listed}/`, { timeout: 30_000, waitUntil: 'domcontentloaded' });
  const bad = await browser.newPage();
  await bad.goto(`${unlisted}/`, { timeout: 30_000, waitUntil: 'domcontentloaded' });

  const state = (p) => p.evaluate(() => ({ received: window.received, errors: window.errors, opened: window.opened }));
  let last;
  await waitFor('the listed page to open its stream', async () => (last = await state(good)).opened >= 1,
    { timeoutMs: 30_000, intervalMs: 100, describe: () => JSON.stringify(last) });
  const id = await hub.publish(topic, 'for the listed origin');
  await waitFor('the event in the listed page', async () => (last = await state(good)).received.length >= 1,
    { timeoutMs: 30_000, intervalMs: 100, describe: () => JSON.stringify(last) });
  assert.deepEqual((await state(good)).received, [{ id, data: 'for the listed origin' }]);

  await waitFor('the unlisted page to fail', async () => (last = await state(bad)).errors >= 1,
    { timeoutMs: 30_000, intervalMs: 100, describe: () => JSON.stringify(last) });
  await sleep(500);
  const b = await state(bad);
  assert.equal(b.opened, 0, 'Chromium must refuse a stream without CORS headers');
  assert.deepEqual(b.received, []);
});
