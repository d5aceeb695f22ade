// Herald's WebSocket (GET /ws) against Chromium's own WebSocket, driven by
// playwright-core. The page subscribes with a JSON operation, publishes
// through the socket, and reconnects by itself after the hub closes it: on a
// graceful shutdown (close code 1001) and after a SIGKILL (no close frame,
// code 1006). Either way it resumes from the last id it saw and must end with
// every acknowledged event exactly once, in order.

import assert from 'node:assert/strict';
import http from 'node:http';
import { hubTest, launchBrowser, sleep, uniqueTopic, waitFor, parseId } from './helpers.mjs';

const SETTLE_MS = 750;

/** The page: a WebSocket to `hubHost` that (re)subscribes to `topic` from its last id. */
function testPage(hubHost, topic) {
  return `<!doctype html>
<meta charset="utf-8">
<title>herald websocket test</title>
<script>
  window.received = [];
  window.answers = [];
  window.closes = [];
  window.opens = 0;
  let lastId = null;
  function connect() {
    const ws = new WebSocket('ws://' + ${JSON.stringify(hubHost)} + '/ws');
    window.ws = ws;
    ws.onopen = () => {
      window.opens += 1;
      const op = { op: 'subscribe', topics: [${JSON.stringify(topic)}], ref: 'sub-' + window.opens };
      if (lastId) op.last_event_id = lastId;
      ws.send(JSON.stringify(op));
    };
    ws.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      if (msg.op === 'event') {
        lastId = msg.id;
        window.received.push({ id: msg.id, data: msg.data });
      } else {
        window.answers.push(msg);
      }
    };
    ws.onclose = (e) => {
      window.closes.push({ code: e.code, reason: e.reason });
      setTimeout(connect, 200);
    };
  }
  connect();
  window.publish = (data, ref) => window.ws.send(JSON.stringify({ op: 'publish', topic: ${JSON.stringify(topic)}, data, ref }));
</script>`;
}

hubTest('chromium: WebSocket subscribes, publishes, and resumes after a 1001 shutdown and after SIGKILL', async (ctx) => {
  const hub = await ctx.startHub();
  const browser = await launchBrowser(ctx);
  const topic = uniqueTopic('ws');
  const page = await browser.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e}`));
  // A real page server on loopback (a page Playwright fulfils has no address,
  // and Chromium's local-network checks then refuse sockets to loopback).
  const body = testPage(new URL(hub.url).host, topic);
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(body);
  });
  await new Promise((resolve, reject) => server.listen(0, '127.0.0.1', resolve).on('error', reject));
  ctx.defer(() => new Promise((resolve) => server.close(resolve)));
  await page.goto(`http://127.0.0.1:${server.address().port}/`, { timeout: 30_000 });

  const state = () => page.evaluate(() => ({
    received: window.received, answers: window.answers, closes: window.closes, opens: window.opens,
  }));
  let last = '';
  const waitState = (what, pred, timeoutMs = 30_000) => waitFor(what, async () => {
    const s = await state();
    last = JSON.stringify(s);
    return pred(s) && s;
  }, { timeoutMs, intervalMs: 100, describe: () => `last page state: ${last}\nconsole: ${consoleLines.join('\n')}` });

  const subscribed = (n) => (s) => s.answers.filter((a) => a.op === 'ok' && a.ref === `sub-${n}`).length === 1;
  await waitState('the first subscribe to be answered', subscribed(1));

  const expected = [];
  const pub = async (data) => expected.push({ id: await hub.publish(topic, data), data });
  await pub('over http');
  // Published by the page through its socket: answered with the id, then delivered.
  await page.evaluate(() => window.publish('from the page </script>', 'p1'));
  const s1 = await waitState('the page publish to be answered', (s) => s.answers.some((a) => a.ref === 'p1'));
  const answer = s1.answers.find((a) => a.ref === 'p1');
  assert.equal(answer.op, 'ok', JSON.stringify(answer));
  expected.push({ id: answer.id, data: 'from the page </script>' });
  await waitState('2 events in the page', (s) => s.received.length >= 2);

  // Graceful shutdown: the hub closes with 1001; events published while it is
  // down arrive after the page reconnects and resubscribes from its last id.
  await hub.terminate();
  await hub.restart();
  await pub('after the graceful restart');
  await waitState('the resubscribe after 1001', subscribed(2), 45_000);

  // A crash: no close frame at all.
  for (let i = 1; i <= 3; i++) await pub(`acknowledged before the crash ${i}`);
  await hub.kill();
  await hub.restart();
  await pub('after the crash');
  await waitState('the resubscribe after SIGKILL', subscribed(3), 45_000);
  await pub('live at the end');
  await waitState(`${expected.length} events in the page`, (s) => s.received.length >= expected.length);
  await sleep(SETTLE_MS);

  const final = await state();
  assert.deepEqual(final.received, expected, `events: ${last}`);
  const seqs = final.received.map((e) => parseId(e.id).seq);
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], 'ids must increase');
  assert.equal(final.closes[0].code, 1001, `first close: ${JSON.stringify(final.closes)}`);
  assert.match(final.closes[0].reason, /resume/);
  assert.equal(final.closes[1].code, 1006, `second close: ${JSON.stringify(final.closes)}`);
  assert.ok(!final.answers.some((a) => a.op === 'error' || a.op === 'reset'), JSON.stringify(final.answers));
});
