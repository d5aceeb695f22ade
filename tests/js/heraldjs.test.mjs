// web/herald.js, the browser client, in Chromium (playwright-core). Every page
// comes from a node server on another loopback address than the hub's, and
// imports the module from the hub's own /herald.js: a cross-origin module
// import, as a real site would do. Hubs list the page's origin in
// cors_origins unless a test says otherwise (EventSource, fetch polls and
// publishes need it; WebSocket and JSONP script tags do not).
//
// Covered: each transport forced in turn (exact ids, types and data, resets
// reported, nothing after close); a blocked WebSocket falling back to
// EventSource, and to JSONP when the hub does not list the page's origin;
// the hub stopped and killed under the page, which is kept away until events
// were published and then resumes with no loss and no duplicate on every
// transport; publishing from the page; where tokens go.

import assert from 'node:assert/strict';
import http from 'node:http';
import { hubTest, launchBrowser, parseId, sleep, uniqueTopic, waitFor } from './helpers.mjs';

/** Quick back-off and short polls, so tests do not wait long. */
const FAST = { backoffInitialMs: 100, backoffMaxMs: 1000, pollTimeoutSecs: 5, connectTimeoutMs: 5000 };
/** Hard limit of each test. */
const LIMIT = { timeout: 100_000 };
const SETTLE_MS = 600;

/** The page: imports herald.js from the hub and offers `start` to the test. */
function pageHtml(hubUrl) {
  return `<!doctype html>
<meta charset="utf-8">
<title>herald.js test</title>
<script type="module">
  import herald, { subscribe, publish, HeraldError } from ${JSON.stringify(`${hubUrl}/herald.js`)};
  window.herald = herald;
  window.named = { subscribe, publish, HeraldError };
  window.start = (hubUrl, topics, options) => {
    window.sub?.close();
    const log = window.log = { events: [], resets: [], states: [], errors: [] };
    // Functions cannot cross page.evaluate: \`asyncToken\` becomes a token function.
    if (options.asyncToken) options.token = async () => options.asyncToken;
    window.sub = herald.subscribe(hubUrl, topics, {
      ...options,
      onEvent: (e) => log.events.push(e),
      onReset: (r) => log.resets.push(r),
      onStateChange: (s) => log.states.push(s),
      onError: (e) => log.errors.push({ message: String(e.message), code: e.code ?? null, transport: e.transport ?? null }),
    });
  };
  window.ready = true;
</script>`;
}

/** Serves `body()` on 127.0.0.<n>:0 for every path; returns the origin. */
async function pageServer(ctx, host, body) {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(body());
  });
  await new Promise((resolve, reject) => server.listen(0, host, resolve).on('error', reject));
  ctx.defer(() => new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(resolve);
  }));
  return `http://${host}:${server.address().port}`;
}

/** Records page errors, console lines and failed requests for failure messages. */
function watch(page) {
  const lines = [];
  page.on('console', (m) => lines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => lines.push(`pageerror: ${e}`));
  page.on('requestfailed', (r) => lines.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
  return lines;
}

/**
 * A hub, Chromium, and a page on another loopback origin that has loaded
 * herald.js from the hub. `cors`: list the page's origin on the hub;
 * `init`: a script run in the page before any other (to break WebSocket).
 */
async function setup(ctx, { cors = true, init } = {}) {
  let hubUrl = '';
  const origin = await pageServer(ctx, '127.0.0.2', () => pageHtml(hubUrl));
  const hub = await ctx.startHub({ args: cors ? ['--cors-origins', origin] : [] });
  hubUrl = hub.url;
  const browser = await launchBrowser(ctx);
  const page = await browser.newPage();
  const lines = watch(page);
  if (init) await page.addInitScript(init);
  // Held polls and streams keep `load` from firing.
  await page.goto(`${origin}/`, { timeout: 30_000, waitUntil: 'domcontentloaded' });
  await waitFor('herald.js to load in the page', () => page.evaluate(() => window.ready === true),
    { timeoutMs: 30_000, intervalMs: 50, describe: () => lines.join('\n') });

  const state = () => page.evaluate(() => ({
    ...window.log,
    transport: window.sub?.transport ?? null,
    lastEventId: window.sub?.lastEventId ?? null,
    state: window.sub?.state ?? null,
    pwned: window.pwned ?? null,
  }));
  let last = '';
  const until = (what, pred, timeoutMs = 30_000) => waitFor(what, async () => {
    const s = await state();
    last = JSON.stringify(s);
    return pred(s) && s;
  }, { timeoutMs, intervalMs: 50, describe: () => `page: ${last}\n${lines.slice(-40).join('\n')}` });
  const start = (topics, options = {}) => page.evaluate(([u, t, o]) => window.start(u, t, o), [hub.url, topics, { ...FAST, ...options }]);
  return { hub, page, origin, lines, state, until, start };
}

/** Publishes through the hub and records what the page must receive. */
function recorder(hub, topic) {
  const expected = [];
  const pub = async (data, type) => {
    const id = await hub.publish(topic, data, type === undefined ? {} : { type });
    const e = { id, topic, data };
    if (type !== undefined) e.type = type;
    expected.push(e);
    return id;
  };
  return { expected, pub };
}

/** An epoch that is not the hub's. */
function otherEpoch(id) {
  const { epoch } = parseId(id);
  return epoch.replace(/.$/, (c) => (c === '0' ? '1' : '0'));
}

// ------------------------------------------------------- each transport

for (const transport of ['ws', 'sse', 'poll', 'jsonp']) {
  hubTest(`herald.js forced to ${transport}: exact events, a reset reported, nothing after close`, async (ctx) => {
    const { hub, until, start, page, state } = await setup(ctx);
    const topic = uniqueTopic(`heraldjs-${transport}`);
    const { expected, pub } = recorder(hub, topic);

    await start([topic], { transports: [transport], eventTypes: ['price'] });
    let s = await until(`${transport} to open`, (st) => st.state === 'open');
    assert.equal(s.transport, transport);
    assert.deepEqual(s.states, [{ state: 'connecting', transport }, { state: 'open', transport }]);

    await pub('plain');
    await pub('{"px":12.5}', 'price');
    await pub('two\nlines');
    await pub('</script><script>window.pwned = 1</script>');
    await pub('unicode ✓ \u2028 end');
    s = await until('5 events', (st) => st.events.length >= expected.length);
    await sleep(SETTLE_MS);
    s = await until('the same 5 events', () => true);
    assert.deepEqual(s.events, expected);
    assert.equal(s.lastEventId, expected.at(-1).id);
    assert.deepEqual(s.resets, []);
    assert.equal(s.pwned, null, 'data must never run as script');

    // close(): nothing more arrives, no callback runs, no more requests.
    await page.evaluate(() => window.sub.close());
    s = await until('closed', (st) => st.state === 'closed');
    assert.equal(s.transport, null);
    await pub('after close');
    await sleep(SETTLE_MS);
    s = await state();
    assert.equal(s.events.length, 5, JSON.stringify(s.events));

    // A position from another epoch of the log: the hub says continuity is
    // broken, and live events follow.
    const foreign = `${otherEpoch(expected[0].id)}-3`;
    await start([topic], { transports: [transport], lastEventId: foreign });
    s = await until(`a reset on ${transport}`, (st) => st.resets.length >= 1 && st.state === 'open');
    assert.equal(s.resets[0].reason, 'epoch', JSON.stringify(s.resets));
    assert.equal(parseId(s.resets[0].lastEventId).epoch, parseId(expected[0].id).epoch);
    const live = await pub('live after the reset');
    s = await until('the live event', (st) => st.events.some((e) => e.id === live));
    assert.deepEqual(s.events, [expected.at(-1)]);
  }, LIMIT);
}

hubTest('herald.js: several topics, one event once, and a stored position replays', async (ctx) => {
  const { hub, until, start } = await setup(ctx);
  const a = uniqueTopic('heraldjs-a');
  const b = uniqueTopic('heraldjs-b');
  const first = await hub.publish(a, 'before: a');
  const both = await hub.publish([a, b], 'before: a and b');
  const onlyB = await hub.publish(b, 'before: b');
  for (const transport of ['ws', 'sse', 'poll', 'jsonp']) {
    // Resuming after `first` replays the two later events, each once.
    await start([a, b], { transports: [transport], lastEventId: first });
    const s = await until(`2 replayed events on ${transport}`, (st) => st.events.length >= 2);
    await sleep(SETTLE_MS);
    const final = await until('the same events', () => true);
    assert.deepEqual(final.events.map((e) => [e.id, e.data]), [[both, 'before: a and b'], [onlyB, 'before: b']], transport);
    // Topics: the canonical one; EventSource cannot tell with several topics.
    assert.deepEqual(final.events.map((e) => e.topic), transport === 'sse' ? [null, null] : [a, b], transport);
    assert.equal(s.transport, transport);
  }
}, LIMIT);

// ------------------------------------------------------------ fallback

/** An init script: a WebSocket that never connects, as behind a proxy that refuses upgrades. */
const BLOCK_WEBSOCKET = `
  window.wsAttempts = 0;
  window.WebSocket = class BlockedWebSocket extends EventTarget {
    constructor(url) {
      super();
      window.wsAttempts += 1;
      this.url = url;
      this.readyState = 0;
      setTimeout(() => {
        this.readyState = 3;
        this.onerror?.(new Event('error'));
        this.onclose?.(Object.assign(new Event('close'), { code: 1006, reason: '', wasClean: false }));
      }, 20);
    }
    send() { throw new Error('not open'); }
    close() { this.readyState = 3; }
  };`;

hubTest('herald.js: a blocked WebSocket falls back to EventSource, which also resumes after a restart', async (ctx) => {
  const { hub, until, start, page } = await setup(ctx, { init: BLOCK_WEBSOCKET });
  const topic = uniqueTopic('heraldjs-fallback');
  const { expected, pub } = recorder(hub, topic);
  await start([topic]);
  let s = await until('the fallback to open', (st) => st.state === 'open');
  assert.equal(s.transport, 'sse');
  assert.ok(s.errors.some((e) => e.transport === 'ws'), JSON.stringify(s.errors));
  assert.equal(await page.evaluate(() => window.wsAttempts), 1);
  await pub('over the fallback');
  await until('the event', (st) => st.events.length >= 1);

  // After a restart the list is tried again from the start when the
  // reconnection keeps failing, and EventSource is still what works.
  await hub.kill();
  await hub.restart();
  await pub('after the restart');
  s = await until('the event published after the restart', (st) => st.events.length >= 2 && st.state === 'open', 45_000);
  assert.equal(s.transport, 'sse');
  await sleep(SETTLE_MS);
  assert.deepEqual((await until('final', () => true)).events, expected);
}, LIMIT);

hubTest('herald.js: with WebSocket blocked and the page origin not listed, JSONP is what works', async (ctx) => {
  // EventSource and fetch polls need CORS, which this hub gives nobody; a
  // script tag does not.
  const { hub, until, start } = await setup(ctx, { cors: false, init: BLOCK_WEBSOCKET });
  const topic = uniqueTopic('heraldjs-jsonp-fallback');
  const { expected, pub } = recorder(hub, topic);
  await start([topic]);
  const s = await until('the fallback to open', (st) => st.state === 'open');
  assert.equal(s.transport, 'jsonp');
  assert.deepEqual([...new Set(s.errors.map((e) => e.transport))], ['ws', 'sse', 'poll'], JSON.stringify(s.errors));
  await pub('through a script tag');
  await pub('and another');
  await until('2 events', (st) => st.events.length >= 2);
  await sleep(SETTLE_MS);
  assert.deepEqual((await until('final', () => true)).events, expected);
}, LIMIT);

// -------------------------------------------------------- hub restarts

/**
 * An init script: while `window.holdNet` is true, every new connection the
 * page opens (WebSocket, EventSource, fetch, script tag to /poll) goes to a
 * port where nothing answers. Tests hold the page off the restarted hub until
 * they have published, so reconnection must replay what was missed.
 */
const HOLD_NETWORK = `
  window.holdNet = false;
  window.heldAttempts = 0;
  const nowhere = (url) => { window.heldAttempts += 1; const u = new URL(url); u.port = '1'; return u.toString(); };
  const RealWebSocket = window.WebSocket;
  window.WebSocket = class extends RealWebSocket {
    constructor(url, protocols) { super(window.holdNet ? nowhere(url) : url, protocols); }
  };
  const RealEventSource = window.EventSource;
  window.EventSource = class extends RealEventSource {
    constructor(url, init) { super(window.holdNet ? nowhere(url) : url, init); }
  };
  const realFetch = window.fetch;
  window.fetch = (input, init) => realFetch(window.holdNet ? nowhere(String(input)) : input, init);
  const src = Object.getOwnPropertyDescriptor(HTMLScriptElement.prototype, 'src');
  Object.defineProperty(HTMLScriptElement.prototype, 'src', {
    configurable: true,
    get() { return src.get.call(this); },
    set(v) { src.set.call(this, window.holdNet && String(v).includes('/poll') ? nowhere(String(v)) : v); },
  });`;

for (const transport of ['ws', 'sse', 'poll', 'jsonp']) {
  hubTest(`herald.js on ${transport}: the hub stopped and killed under the page, no loss, no duplicate`, async (ctx) => {
    const { hub, until, start, page } = await setup(ctx, { init: HOLD_NETWORK });
    const topic = uniqueTopic(`heraldjs-restart-${transport}`);
    const { expected, pub } = recorder(hub, topic);
    await start([topic], { transports: [transport], eventTypes: ['kind'] });
    await until('open', (st) => st.state === 'open');
    await pub('before 1');
    await pub('before 2');
    await until('2 events', (st) => st.events.length >= 2);
    const hold = (on) => page.evaluate((v) => { window.holdNet = v; window.heldAttempts = 0; }, on);
    const heldAttempts = () => page.evaluate(() => window.heldAttempts);

    // Graceful stop (WebSocket close 1001, SSE end of stream, held polls
    // answered); the page is kept away from the restarted hub until events
    // were published, so it must replay them from its last id.
    await hold(true);
    await hub.terminate();
    await hub.restart();
    await pub('after the stop 1');
    await pub('after the stop 2', 'kind');
    await waitFor('the page to try to reconnect', async () => (await heldAttempts()) >= 1, { timeoutMs: 30_000 });
    await hold(false);
    await until('the events published after the stop', (st) => st.events.length >= 4 && st.state === 'open', 45_000);

    // A crash: no goodbye at all.
    await pub('before the crash');
    await until('5 events', (st) => st.events.length >= 5);
    await hold(true);
    await hub.kill();
    await hub.restart();
    await pub('after the crash');
    await waitFor('the page to try to reconnect', async () => (await heldAttempts()) >= 1, { timeoutMs: 30_000 });
    await hold(false);
    await until('the event published after the crash', (st) => st.events.length >= 6 && st.state === 'open', 45_000);
    await pub('live at the end');
    await until('7 events', (st) => st.events.length >= 7);
    await sleep(SETTLE_MS);

    const s = await until('final', () => true);
    assert.deepEqual(s.events, expected);
    assert.equal(s.transport, transport);
    assert.deepEqual(s.resets, [], 'resuming must not report a reset');
    const seen = s.states.map((c) => c.state);
    assert.equal(seen.filter((x) => x === 'open').length >= 3, true, JSON.stringify(seen));
    assert.ok(seen.includes('reconnecting'), JSON.stringify(seen));
  }, LIMIT);
}

hubTest('herald.js: a drop before any event or position is reported as no_position', async (ctx) => {
  const { hub, until, start } = await setup(ctx);
  const topic = uniqueTopic('heraldjs-nopos');
  await start([topic], { transports: ['ws'] });
  await until('open', (st) => st.state === 'open');
  await hub.kill();
  await hub.restart();
  const id = await hub.publish(topic, 'after');
  const s = await until('the reset and the live event', (st) => st.resets.length >= 1 && st.state === 'open', 45_000);
  assert.deepEqual(s.resets, [{ reason: 'no_position', lastEventId: null }]);
  // Whether the event published in the gap arrives depends on timing; a later one does.
  const live = await hub.publish(topic, 'live');
  const s2 = await until('a live event', (st) => st.events.some((e) => e.id === live));
  assert.ok(s2.events.every((e) => e.id === id || e.id === live), JSON.stringify(s2.events));
}, LIMIT);

// ---------------------------------------------------------- publishing

hubTest('herald.js: publish from the page, and its errors', async (ctx) => {
  const { hub, until, start, page } = await setup(ctx);
  const topic = uniqueTopic('heraldjs-publish');
  await start([topic], { transports: ['ws'] });
  await until('open', (st) => st.state === 'open');

  const results = await page.evaluate(async ([hubUrl, t]) => {
    const out = {};
    out.plain = await herald.publish(hubUrl, t, 'from the page');
    out.typed = await herald.publish(hubUrl, [t, `${t}/other`], 'typed', { type: 'note', token: () => 'ignored-by-a-dev-hub' });
    out.object = await window.named.publish(new URL(hubUrl), t, { n: 1 });
    try {
      await herald.publish(hubUrl, '', 'no topic');
      out.bad = 'no error';
    } catch (e) {
      out.bad = { name: e.name, isHeraldError: e instanceof herald.HeraldError, status: e.status, code: e.code };
    }
    try {
      await herald.publish('http://127.0.0.1:9', t, 'nobody listens there');
      out.down = 'no error';
    } catch (e) {
      out.down = { name: e.name, status: e.status ?? null };
    }
    return out;
  }, [hub.url, topic]);

  assert.deepEqual(results.bad, { name: 'HeraldError', isHeraldError: true, status: 400, code: 'invalid_topic' });
  assert.deepEqual(results.down, { name: 'HeraldError', status: null });
  const ids = [results.plain.id, results.typed.id, results.object.id];
  for (const id of ids) parseId(id);
  const s = await until('the 3 published events', (st) => st.events.length >= 3);
  assert.deepEqual(s.events, [
    { id: ids[0], topic, data: 'from the page' },
    { id: ids[1], topic, data: 'typed', type: 'note' },
    { id: ids[2], topic, data: '{"n":1}' },
  ]);
}, LIMIT);

// -------------------------------------------------------------- tokens

hubTest('herald.js: where the token goes on each transport', async (ctx) => {
  const { hub, until, start, page } = await setup(ctx);
  const topic = uniqueTopic('heraldjs-token');
  const urls = [];
  const headers = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.origin === hub.url) {
      urls.push(r.url());
      headers.push({ path: u.pathname, authorization: r.headers().authorization ?? null });
    }
  });
  page.on('websocket', (ws) => urls.push(ws.url()));
  const seen = (path) => urls.filter((u) => new URL(u).pathname === path);

  for (const transport of ['ws', 'sse', 'jsonp']) {
    // Without tokenInQuery the token stays out of URLs (the cookie would carry it).
    await start([topic], { transports: [transport], token: 'tok-1' });
    await until(`${transport} open`, (st) => st.state === 'open');
    await start([topic], { transports: [transport], asyncToken: 'tok-2', tokenInQuery: true });
    await until(`${transport} open with the token in the URL`, (st) => st.state === 'open');
  }
  await start([topic], { transports: ['poll'], token: 'tok-3' });
  await until('poll open', (st) => st.state === 'open');
  await page.evaluate(() => window.sub.close());

  for (const path of ['/ws', '/sse', '/poll']) {
    const tokens = seen(path).map((u) => new URL(u).searchParams.get('access_token'));
    // JSONP and fetch polls share /poll: JSONP's carry a callback.
    const list = path === '/poll'
      ? seen(path).filter((u) => new URL(u).searchParams.has('callback')).map((u) => new URL(u).searchParams.get('access_token'))
      : tokens;
    assert.ok(list.includes(null), `${path}: ${JSON.stringify(urls)}`);
    assert.ok(list.includes('tok-2'), `${path}: ${JSON.stringify(urls)}`);
    assert.ok(!list.includes('tok-1'), `${path}: ${JSON.stringify(urls)}`);
  }
  const fetchPolls = seen('/poll').filter((u) => !new URL(u).searchParams.has('callback'));
  assert.ok(fetchPolls.length >= 1, JSON.stringify(urls));
  assert.ok(fetchPolls.every((u) => !new URL(u).searchParams.has('access_token')), JSON.stringify(fetchPolls));
  const pollHeaders = headers.filter((h) => h.path === '/poll' && h.authorization);
  assert.ok(pollHeaders.length >= 1 && pollHeaders.every((h) => h.authorization === 'Bearer tok-3'), JSON.stringify(headers));
}, LIMIT);
