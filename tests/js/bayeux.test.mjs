// Bayeux 1.0 against unmodified clients: the npm `cometd` client (with
// `cometd-nodejs-client`, which supplies XMLHttpRequest and WebSocket in
// Node) and the npm `faye` client, over websocket and over forced
// long-polling; native SSE and /publish on the same topics; a re-handshake
// after the hub restarts; callback-polling (JSONP) from Chromium with the
// CometD client's own CallbackPollingTransport.
//
// Every test has a hard time limit (TEST_TIMEOUT_MS) and every wait inside
// it is bounded.

import assert from 'node:assert/strict';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { adapt } from 'cometd-nodejs-client';
import { CometD } from 'cometd';
import faye from 'faye';
import { EventSource } from 'eventsource';
import { hubTest, launchBrowser, uniqueTopic, waitFor, withTimeout, sleep } from './helpers.mjs';

adapt();

const TEST_TIMEOUT_MS = 60_000;
const STEP_MS = 15_000;
const require = createRequire(import.meta.url);

/** A unique Bayeux channel (the topic helper's names fit the grammar). */
const channel = (label) => uniqueTopic(label).replace(/[^A-Za-z0-9/_-]/g, '_');

// ------------------------------------------------------------- CometD

/** A CometD client on `hub`, with only `transports` registered. */
function cometdClient(ctx, hub, transports) {
  const cometd = new CometD();
  for (const name of cometd.getTransportTypes()) {
    if (!transports.includes(name)) cometd.unregisterTransport(name);
  }
  cometd.configure({ url: `${hub.url}/bayeux`, logLevel: 'warn', maxNetworkDelay: 5_000 });
  ctx.defer(() => new Promise((resolve) => {
    if (cometd.isDisconnected()) return resolve();
    cometd.disconnect(() => resolve());
    setTimeout(resolve, 2_000);
  }));
  return cometd;
}

const cometdCall = (what, start) => withTimeout(new Promise((resolve, reject) => {
  start((reply) => (reply.successful ? resolve(reply) : reject(new Error(`${what} failed: ${JSON.stringify(reply)}`))));
}), STEP_MS, what);

async function cometdRoundTrip(ctx, transport) {
  const hub = await ctx.startHub();
  const cometd = cometdClient(ctx, hub, [transport]);
  const room = channel('cometd');
  const shake = await cometdCall('handshake', (cb) => cometd.handshake(cb));
  assert.match(shake.clientId, /^[0-9a-f]{32}$/);
  assert.equal(cometd.getTransport().type, transport);

  const exact = [];
  const wild = [];
  let handle;
  await cometdCall('subscribe', (cb) => { handle = cometd.subscribe(`${room}/a`, (m) => exact.push(m), cb); });
  const sse = new EventSource(`${hub.url}/sse?topic=${encodeURIComponent(`${room}/a`)}`);
  ctx.defer(() => sse.close());
  const sseData = [];
  sse.onmessage = (e) => sseData.push(e.data);
  await withTimeout(new Promise((resolve) => { sse.onopen = resolve; }), STEP_MS, 'SSE open');

  // A Bayeux publish reaches the Bayeux subscriber and the SSE subscriber.
  await cometdCall('publish', (cb) => cometd.publish(`${room}/a`, { text: 'hello', n: 1 }, cb));
  await waitFor('the CometD delivery', () => exact.length === 1, { timeoutMs: STEP_MS });
  assert.equal(exact[0].channel, `${room}/a`);
  assert.deepEqual(exact[0].data, { text: 'hello', n: 1 });
  await waitFor('the SSE delivery', () => sseData.length === 1, { timeoutMs: STEP_MS });
  assert.deepEqual(JSON.parse(sseData[0]), { text: 'hello', n: 1 });

  // A native publish of plain text reaches Bayeux as a JSON string.
  await hub.publish(`${room}/a`, 'native text');
  await waitFor('the native event', () => exact.length === 2, { timeoutMs: STEP_MS });
  assert.equal(exact[1].data, 'native text');

  // Wildcards: /room/* sees /room/b but not /room/b/c; each event once.
  await cometdCall('subscribe wildcard', (cb) => cometd.subscribe(`${room}/*`, (m) => wild.push(m), cb));
  await hub.publish(`${room}/b/c`, '"deep"');
  await hub.publish(`${room}/b`, '"shallow"');
  await waitFor('the wildcard delivery', () => wild.length >= 1, { timeoutMs: STEP_MS });
  await sleep(300);
  assert.deepEqual(wild.map((m) => [m.channel, m.data]), [[`${room}/b`, 'shallow']]);

  // Unsubscribe: no more deliveries on that channel.
  await cometdCall('unsubscribe', (cb) => cometd.unsubscribe(handle, cb));
  await hub.publish(`${room}/a`, '"after unsubscribe"');
  await hub.publish(`${room}/b`, '"still wild"');
  // The wildcard still covers /room/a: it gets both, the exact listener neither.
  await waitFor('the wildcard deliveries after unsubscribe', () => wild.length === 3, { timeoutMs: STEP_MS });
  assert.deepEqual(wild.slice(1).map((m) => [m.channel, m.data]), [[`${room}/a`, 'after unsubscribe'], [`${room}/b`, 'still wild']]);
  assert.equal(exact.length, 2, 'an unsubscribed channel receives nothing');
  await cometdCall('disconnect', (cb) => cometd.disconnect(cb));
  assert.ok(cometd.isDisconnected());
}

hubTest('CometD over websocket: handshake, subscribe, publish, receive, wildcard, native, disconnect', async (ctx) => {
  await cometdRoundTrip(ctx, 'websocket');
}, { timeout: TEST_TIMEOUT_MS });

hubTest('CometD over forced long-polling: the same round trip', async (ctx) => {
  await cometdRoundTrip(ctx, 'long-polling');
}, { timeout: TEST_TIMEOUT_MS });

hubTest('CometD unsubscribe stops deliveries and /service/echo answers the publisher only', async (ctx) => {
  const hub = await ctx.startHub();
  const cometd = cometdClient(ctx, hub, ['long-polling']);
  const room = channel('unsub');
  await cometdCall('handshake', (cb) => cometd.handshake(cb));
  const got = [];
  const sub = cometd.subscribe(room, (m) => got.push(m.data));
  await waitFor('subscribed', () => cometd.getStatus() === 'connected', { timeoutMs: STEP_MS });
  await sleep(200);
  await hub.publish(room, '1');
  await waitFor('first event', () => got.length === 1, { timeoutMs: STEP_MS });
  await cometdCall('unsubscribe', (cb) => cometd.unsubscribe(sub, cb));
  await hub.publish(room, '2');
  const echoes = [];
  cometd.addListener('/service/echo', (m) => echoes.push(m.data));
  await cometdCall('service publish', (cb) => cometd.publish('/service/echo', { ping: 1 }, cb));
  await waitFor('the echo', () => echoes.length === 1, { timeoutMs: STEP_MS });
  assert.deepEqual(echoes[0], { ping: 1 });
  await sleep(300);
  assert.deepEqual(got, [1]);
}, { timeout: TEST_TIMEOUT_MS });

// --------------------------------------------------------------- Faye

async function fayeRoundTrip(ctx, { websocket }) {
  const hub = await ctx.startHub();
  const client = new faye.Client(`${hub.url}/bayeux`, { timeout: 20, retry: 1 });
  if (!websocket) client.disable('websocket');
  ctx.defer(() => client.disconnect());
  const room = channel('faye');
  const exact = [];
  const deep = [];
  const s1 = client.subscribe(`${room}/x`, (m) => exact.push(m));
  const s2 = client.subscribe(`${room}/**`, (m) => deep.push(m));
  await withTimeout(Promise.all([s1, s2]), STEP_MS, 'Faye subscribes');
  await withTimeout(client.publish(`${room}/x`, { hello: 'faye' }), STEP_MS, 'Faye publish');
  await waitFor('the Faye delivery', () => exact.length === 1 && deep.length === 1, { timeoutMs: STEP_MS });
  assert.deepEqual(exact[0], { hello: 'faye' });
  await hub.publish(`${room}/y/z`, '{"deep":true}');
  await waitFor('the ** delivery', () => deep.length === 2, { timeoutMs: STEP_MS });
  assert.deepEqual(deep[1], { deep: true });
  assert.equal(exact.length, 1);
  s1.cancel();
  await sleep(500);
  await hub.publish(`${room}/x`, '"after"');
  await waitFor('the ** delivery after cancel', () => deep.length === 3, { timeoutMs: STEP_MS });
  assert.equal(exact.length, 1, 'a cancelled subscription receives nothing');
  if (websocket) {
    await waitFor('Faye on websocket', () => client._dispatcher._transport?.connectionType === 'websocket', { timeoutMs: STEP_MS });
  }
  await withTimeout(client.disconnect(), STEP_MS, 'Faye disconnect');
}

hubTest('Faye over websocket: subscribe, ** wildcard, publish, native event, cancel, disconnect', async (ctx) => {
  await fayeRoundTrip(ctx, { websocket: true });
}, { timeout: TEST_TIMEOUT_MS });

hubTest('Faye over forced long-polling: the same round trip', async (ctx) => {
  await fayeRoundTrip(ctx, { websocket: false });
}, { timeout: TEST_TIMEOUT_MS });

async function restartRoundTrip(ctx, transport) {
  const hub = await ctx.startHub();
  const room = channel(`restart-${transport}`);
  const fayeClient = new faye.Client(`${hub.url}/bayeux`, { timeout: 5, retry: 0.5 });
  if (transport !== 'websocket') fayeClient.disable('websocket');
  ctx.defer(() => fayeClient.disconnect());
  const fayeGot = [];
  await withTimeout(fayeClient.subscribe(room, (m) => fayeGot.push(m)), STEP_MS, 'Faye subscribe');

  const cometd = cometdClient(ctx, hub, [transport]);
  const cometdGot = [];
  let handshakes = 0;
  // CometD's documented pattern: subscribe in the handshake listener, so a
  // re-handshake resubscribes.
  cometd.addListener('/meta/handshake', (m) => {
    if (!m.successful) return;
    handshakes += 1;
    cometd.batch(() => cometd.subscribe(room, (msg) => cometdGot.push(msg.data)));
  });
  cometd.handshake();
  await waitFor('CometD handshake', () => handshakes === 1, { timeoutMs: STEP_MS });
  await sleep(300);

  await hub.publish(room, '"before"');
  await waitFor('deliveries before the restart', () => fayeGot.length === 1 && cometdGot.length === 1, { timeoutMs: STEP_MS });

  await hub.kill();
  await hub.restart();
  await waitFor('CometD re-handshake', () => handshakes === 2, { timeoutMs: 30_000 });
  // Faye re-handshakes on 402 too; publish until both have resubscribed.
  await waitFor('deliveries after the restart', async () => {
    await hub.publish(room, '"after"');
    await sleep(250);
    return fayeGot.includes('after') && cometdGot.includes('after');
  }, { timeoutMs: 30_000, intervalMs: 250 });
  assert.equal(fayeGot[0], 'before');
  assert.equal(cometdGot[0], 'before');
}

for (const transport of ['long-polling', 'websocket']) {
  hubTest(`after a hub restart, Faye and CometD (${transport}) handshake again, resubscribe and receive`, async (ctx) => {
    await restartRoundTrip(ctx, transport);
  }, { timeout: TEST_TIMEOUT_MS });
}

// ----------------------------------------------------- callback-polling

/** Serves the CometD module files to the page from node_modules. */
async function routeCometd(page, origin) {
  const dir = path.dirname(require.resolve('cometd/package.json'));
  await page.route(`${origin}/cometd-lib/**`, async (route) => {
    const name = path.basename(new URL(route.request().url()).pathname);
    const body = await readFile(path.join(dir, name)).catch(() => null);
    if (!body) return route.fulfill({ status: 404, body: 'no such file' });
    return route.fulfill({ status: 200, contentType: 'text/javascript', body });
  });
}

hubTest('Chromium: the CometD client over callback-polling (JSONP script tags)', async (ctx) => {
  const hub = await ctx.startHub();
  const browser = await launchBrowser(ctx);
  const page = await browser.newPage();
  const origin = hub.url;
  const room = channel('jsonp');
  await routeCometd(page, origin);
  await page.route(`${origin}/bayeux-page.html`, (route) => route.fulfill({
    status: 200,
    contentType: 'text/html',
    body: `<!doctype html><meta charset="utf-8"><title>bayeux jsonp</title>
<script type="module">
  import { CometD } from '/cometd-lib/cometd.js';
  window.received = [];
  window.log = [];
  const cometd = new CometD();
  for (const t of cometd.getTransportTypes()) if (t !== 'callback-polling') cometd.unregisterTransport(t);
  cometd.configure({ url: '${origin}/bayeux', logLevel: 'warn' });
  cometd.addListener('/meta/*', (m) => window.log.push(m.channel + ':' + m.successful));
  cometd.handshake((h) => {
    window.transport = cometd.getTransport() && cometd.getTransport().type;
    if (!h.successful) { window.failed = JSON.stringify(h); return; }
    cometd.subscribe('${room}', (m) => window.received.push(m.data), (s) => {
      window.subscribed = s.successful;
      cometd.publish('${room}', { from: 'browser' }, (p) => { window.published = p.successful; });
    });
  });
  window.cometd = cometd;
</script>`,
  }));
  const scripts = [];
  page.on('request', (r) => { if (r.resourceType() === 'script' && r.url().includes('/bayeux')) scripts.push(r.url()); });
  // Not 'load': the held /meta/connect is a script element that delays it.
  await page.goto(`${origin}/bayeux-page.html`, { waitUntil: 'domcontentloaded' });
  const describe = () => `script requests: ${scripts.join('\n')}`;
  page.on('console', (m) => scripts.push('console: ' + m.text()));
  page.on('response', async (r) => { if (r.url().includes('/bayeux')) scripts.push('response: ' + r.status() + ' ' + (await r.text().catch(() => '?'))); });
  await waitFor('subscribe and publish over JSONP', () => page.evaluate(() => window.subscribed && window.published), { timeoutMs: STEP_MS, describe });
  assert.equal(await page.evaluate(() => window.transport), 'callback-polling');
  await waitFor('the browser receives its own publish', () => page.evaluate(() => window.received.length >= 1), { timeoutMs: STEP_MS });
  await hub.publish(room, 'from native\u2028line');
  await waitFor('the native event', () => page.evaluate(() => window.received.length >= 2), { timeoutMs: STEP_MS });
  const received = await page.evaluate(() => window.received);
  assert.deepEqual(received, [{ from: 'browser' }, 'from native\u2028line']);
  assert.ok(scripts.some((u) => /[?&]jsonp=_cometd_jsonp_\d+&message=/.test(u)), `JSONP script requests: ${scripts}`);
  await page.evaluate(() => new Promise((resolve) => window.cometd.disconnect(resolve)));
}, { timeout: TEST_TIMEOUT_MS });
