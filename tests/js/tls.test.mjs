// Herald over HTTPS in a real browser: Debian's Chromium negotiates HTTP/2
// with ALPN, so one page holds ten EventSources at once (over HTTP/1.1 a
// browser allows six connections per host), all on one connection, and each
// receives the event. A WebSocket on the same page still works: Chromium
// opens it on an HTTP/1.1 connection, since Herald offers no extended CONNECT.
//
// The certificate is made at test time with openssl (self-signed, for
// 127.0.0.1); Chromium is told to ignore certificate errors, the harness's
// own publishing trusts the certificate.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { hubTest, launchBrowser, uniqueTopic, waitFor } from './helpers.mjs';

const STREAMS = 10;

/** A self-signed certificate for 127.0.0.1 in a fresh dir: `{cert, key, pem}`. */
async function selfSigned(ctx) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'herald-js-tls-'));
  ctx.defer(() => rm(dir, { recursive: true, force: true }));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', key, '-out', cert], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
  return { cert, key, pem: await readFile(cert, 'utf8') };
}

function testPage(topic, wsUrl) {
  const q = new URLSearchParams({ topic }).toString();
  return `<!doctype html>
<meta charset="utf-8">
<title>herald tls test</title>
<script>
  window.opens = 0;
  window.received = [];
  window.ws = { open: false, events: [] };
  for (let i = 0; i < ${STREAMS}; i++) {
    const es = new EventSource('/sse?${q}&n=' + i);
    es.onopen = () => { window.opens += 1; };
    es.onmessage = (e) => { window.received.push({ stream: i, data: e.data }); };
  }
  const ws = new WebSocket(${JSON.stringify(wsUrl)});
  ws.onopen = () => { window.ws.open = true; };
  ws.onclose = (e) => { window.ws.closed = e.code + ' ' + e.reason; };
  ws.onmessage = (m) => { const v = JSON.parse(m.data); if (v.op === 'event') window.ws.events.push(v.data); };
</script>`;
}

hubTest('chromium over https: ten EventSources share one HTTP/2 connection, and a wss:// WebSocket works', async (ctx) => {
  const tls = await selfSigned(ctx);
  const hub = await ctx.startHub({ args: ['--tls-cert', tls.cert, '--tls-key', tls.key], ca: tls.pem });
  assert.match(hub.url, /^https:/);
  // The page is answered by Playwright (not by an address Chromium connected
  // to), so Local Network Access would block its WebSocket to 127.0.0.1.
  const browser = await launchBrowser(ctx, {
    args: ['--ignore-certificate-errors', '--disable-features=LocalNetworkAccessChecks'],
  });
  const page = await browser.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  const topic = uniqueTopic('tls');

  // What Chromium saw on the wire for every /sse and /ws response.
  const responses = [];
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  cdp.on('Network.responseReceived', (e) => {
    const p = new URL(e.response.url).pathname;
    if (p === '/sse') responses.push({ path: p, protocol: e.response.protocol, connectionId: e.response.connectionId });
  });
  const handshakes = [];
  cdp.on('Network.webSocketHandshakeResponseReceived', (e) => handshakes.push(e.response.status));

  const wsUrl = `${hub.url.replace(/^https:/, 'wss:')}/ws?topic=${encodeURIComponent(topic)}`;
  await page.route('**/__test.html', (route) =>
    route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: testPage(topic, wsUrl) }));
  await page.goto(`${hub.url}/__test.html`, { timeout: 30_000 });

  const state = () => page.evaluate(() => ({ opens: window.opens, received: window.received, ws: window.ws }));
  let last;
  const describe = () => `page: ${JSON.stringify(last)}\nresponses: ${JSON.stringify(responses)}\nconsole: ${consoleLines.join('\n')}`;
  await waitFor(`all ${STREAMS} EventSources and the WebSocket to open`, async () => {
    last = await state();
    return last.opens === STREAMS && last.ws.open;
  }, { intervalMs: 100, describe });

  await hub.publish(topic, 'over h2');
  await waitFor(`the event on all ${STREAMS} streams and the WebSocket`, async () => {
    last = await state();
    return new Set(last.received.filter((r) => r.data === 'over h2').map((r) => r.stream)).size === STREAMS
      && last.ws.events.includes('over h2');
  }, { intervalMs: 100, describe });

  assert.equal(responses.length, STREAMS, describe());
  for (const r of responses) assert.equal(r.protocol, 'h2', describe());
  assert.equal(new Set(responses.map((r) => r.connectionId)).size, 1, `one connection: ${describe()}`);
  assert.deepEqual(handshakes, [101]);
});
