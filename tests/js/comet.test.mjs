// Comet transports in a real browser (Debian's Chromium via playwright-core):
// JSONP script-tag polling from a page on another origin, and the forever
// iframe calling into its parent page.

import assert from 'node:assert/strict';
import http from 'node:http';
import { hubTest, launchBrowser, parseId, uniqueTopic, waitFor } from './helpers.mjs';

/** Records page errors and console lines for failure messages. */
function watch(page) {
  const lines = [];
  page.on('console', (m) => lines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => lines.push(`pageerror: ${e}`));
  page.on('requestfailed', (r) => lines.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => lines.push(`response: ${r.status()} ${r.url()}`));
  return lines;
}

hubTest('chromium: JSONP script tags poll the hub from another origin, without loss', async (ctx) => {
  const hub = await ctx.startHub();
  const browser = await launchBrowser(ctx);
  const topic = uniqueTopic('jsonp');
  const expected = [];
  const pub = async (data) => expected.push({ id: await hub.publish(topic, data), data });
  await pub('before the page');
  const start = `${parseId(expected[0].id).epoch}-0`;

  // The page comes from a real server on 127.0.0.2, the hub answers on
  // 127.0.0.1: another origin, both on loopback (so Chromium's local-network
  // checks see a loopback page asking a loopback server, as on one machine).
  const body = `<!doctype html><meta charset="utf-8"><script>
      window.received = []; window.polls = 0; window.resets = 0;
      let since = ${JSON.stringify(start)};
      function poll() {
        const s = document.createElement('script');
        window.onBatch = (r) => {
          s.remove();
          window.polls += 1;
          if (r.reset) window.resets += 1;
          for (const e of r.events) window.received.push({ id: e.id, data: e.data });
          since = r.last_event_id;
          setTimeout(poll, 0);
        };
        s.onerror = () => { s.remove(); setTimeout(poll, 250); };
        s.src = ${JSON.stringify(hub.url)} + '/poll?topic=' + encodeURIComponent(${JSON.stringify(topic)})
          + '&timeout=5&callback=onBatch&since=' + encodeURIComponent(since);
        document.head.appendChild(s);
      }
      poll();
    </script>`;
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(body);
  });
  await new Promise((resolve, reject) => server.listen(0, '127.0.0.2', resolve).on('error', reject));
  ctx.defer(() => new Promise((resolve) => server.close(resolve)));
  const origin = `http://127.0.0.2:${server.address().port}`;
  const page = await browser.newPage();
  const lines = watch(page);
  // A held poll's script delays `load` for as long as it is held.
  await page.goto(`${origin}/jsonp.html`, { timeout: 30_000, waitUntil: 'domcontentloaded' });
  assert.notEqual(new URL(page.url()).origin, new URL(hub.url).origin);

  await pub('</script><script>window.pwned = 1</script>');
  await pub('two\nlines \u2028 ✓');
  const state = () => page.evaluate(() => ({ received: window.received, polls: window.polls, resets: window.resets, pwned: window.pwned }));
  let last;
  await waitFor('3 events through JSONP', async () => (last = await state()).received.length >= 3,
    { timeoutMs: 30_000, intervalMs: 100, describe: () => `${JSON.stringify(last)}\n${lines.join('\n')}` });
  const s = await state();
  assert.deepEqual(s.received, expected);
  assert.equal(s.resets, 0);
  assert.equal(s.pwned, undefined, 'data must never run as script');
});

hubTest('chromium: the forever iframe calls its parent page once per event', async (ctx) => {
  const hub = await ctx.startHub();
  const browser = await launchBrowser(ctx);
  const topic = uniqueTopic('iframe');
  const expected = [];
  const pub = async (data) => expected.push({ id: await hub.publish(topic, data), data });
  await pub('replayed');
  const start = `${parseId(expected[0].id).epoch}-0`;

  const page = await browser.newPage();
  const lines = watch(page);
  const src = `/stream?format=iframe&callback=herald.push&topic=${encodeURIComponent(topic)}&last_event_id=${start}`;
  await page.route('**/__iframe.html', (route) => route.fulfill({
    status: 200,
    contentType: 'text/html; charset=utf-8',
    body: `<!doctype html><meta charset="utf-8"><script>
      window.received = [];
      window.herald = { push: (m) => { if (m.op === 'event') window.received.push({ id: m.id, data: m.data }); } };
    </script><iframe src="${src}"></iframe>`,
  }));
  // A forever frame never finishes loading, so the page never fires `load`.
  await page.goto(`${hub.url}/__iframe.html`, { timeout: 30_000, waitUntil: 'domcontentloaded' });
  await pub('</script><script>parent.pwned = 1</script>');
  await pub('live ✓');
  const state = () => page.evaluate(() => ({ received: window.received, pwned: window.pwned }));
  let last;
  await waitFor('3 events through the iframe', async () => (last = await state()).received.length >= 3,
    { timeoutMs: 30_000, intervalMs: 100, describe: () => `${JSON.stringify(last)}\n${lines.join('\n')}` });
  const s = await state();
  assert.deepEqual(s.received, expected);
  assert.equal(s.pwned, undefined, 'data must never run as script');
});
