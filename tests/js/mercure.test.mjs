// Mercure against a real browser, both generations: the publisher is Node
// code written as a Mercure app writes it (a form POST with a bearer JWT),
// the subscriber is Chromium's own EventSource authenticated by the hub's
// cookie, on a page served from the hub's origin (Playwright answers for the
// page's URL; only the EventSource requests reach the hub).
//
// Each test checks: private updates reach only the subscriber whose token
// grants one of their topics (an alternate topic), the SSE id Chromium sees is
// the publisher-supplied id, a first connection resumes from a
// publisher-supplied id given in the query, and Chromium's own reconnection
// (Last-Event-ID) resumes after the hub is killed and restarted.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { hubTest, launchBrowser, uniqueTopic, waitFor } from './helpers.mjs';

const SECRET = 'mercure-js-secret-mercure-js-secret-0123456789';
const DETAIL = 'https://mercure.rocks/authorization-detail';

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** An HS256 JWT, as an application's auth code would sign it. */
function jwt(header, claims) {
  const head = `${b64({ alg: 'HS256', ...header })}.${b64(claims)}`;
  return `${head}.${createHmac('sha256', SECRET).update(head).digest('base64url')}`;
}

const exp = () => Math.floor(Date.now() / 1000) + 600;

/** Mercure 1.0 access token for `aud` (one or more hub URLs): `grants` are [actions, [{match, match_type}]] pairs. */
function v1Token(hubUrl, grants) {
  return jwt({ typ: 'at+jwt' }, {
    iss: 'https://app.example', aud: hubUrl, exp: exp(), sub: 'user',
    authorization_details: grants.map(([actions, topics]) => ({ type: DETAIL, actions, topics })),
  });
}

/** Mercure 0.x token with the `mercure` claim. */
function legacyToken(publish, subscribe) {
  return jwt({ typ: 'JWT' }, { exp: exp(), mercure: { publish, subscribe } });
}

/** Publishes like a Mercure app: form POST with a bearer token; returns the id. */
async function publish(hub, token, fields) {
  const body = new URLSearchParams();
  for (const [k, v] of fields) body.append(k, v);
  const res = await hub.request('POST', '/.well-known/mercure', {
    body: body.toString(),
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
  });
  assert.equal(res.status, 200, `publish: ${res.body}`);
  assert.match(res.headers['content-type'], /^text\/plain/);
  return res.body;
}

/** A page on the hub's origin whose EventSource uses `query`; the cookie the page sets carries the token. */
async function openPage(browser, origin, { cookie, token, query }) {
  const context = await browser.newContext();
  const page = await context.newPage();
  // The app sets the cookie with its page (discovery), as a Mercure app does.
  const secure = cookie.startsWith('__Secure-') ? '; Secure' : '';
  const setCookie = `${cookie}=${token}; Path=/.well-known/mercure; HttpOnly; SameSite=Strict${secure}`;
  const html = `<!doctype html><meta charset="utf-8"><title>mercure</title><script>
    window.received = []; window.opens = 0; window.errors = 0;
    window.open_stream = (q) => {
      if (window.es) window.es.close();
      window.es = new EventSource('/.well-known/mercure?' + q, { withCredentials: true });
      window.es.onopen = () => { window.opens += 1; };
      window.es.onerror = () => { window.errors += 1; };
      window.es.onmessage = (e) => { window.received.push({ id: e.lastEventId, data: e.data }); };
    };
    window.open_stream(${JSON.stringify(query)});
  </script>`;
  await page.route('**/__mercure.html', (route) =>
    route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', headers: { 'set-cookie': setCookie }, body: html }));
  await page.goto(`${origin}/__mercure.html`, { timeout: 30_000 });
  const state = () => page.evaluate(() => ({ received: window.received, opens: window.opens, errors: window.errors }));
  const until = (what, pred) => {
    let last = '';
    return waitFor(what, async () => { const s = await state(); last = JSON.stringify(s); return pred(s) && s; },
      { timeoutMs: 30_000, intervalMs: 50, describe: () => `page state: ${last}` });
  };
  const ids = async () => (await state()).received.map((e) => e.id);
  return { page, state, until, ids };
}

/**
 * The scenario both generations share. `gen` says how to subscribe and sign.
 */
async function scenario(ctx, gen) {
  const hub = await ctx.startHub({ dev: false, args: ['--jwt-secret', SECRET, ...gen.args] });
  // Secure cookies (1.0's __Secure- one) need a secure context: http://localhost
  // is one, http://127.0.0.1 is not to cookies. Tokens name both hub URLs in aud.
  const origin = gen.localhost ? hub.url.replace('127.0.0.1', 'localhost') : hub.url;
  const hubUrl = [`${hub.url}/.well-known/mercure`, `${origin}/.well-known/mercure`];
  const browser = await launchBrowser(ctx);
  const topic = uniqueTopic(`mercure-${gen.name}`);
  const alternate = `/users/42${topic}`;
  const publisher = gen.publisher(hubUrl);

  const user42 = await openPage(browser, origin, { cookie: gen.cookie, token: gen.subscriber(hubUrl, '/users/42'), query: gen.query(topic) });
  const user43 = await openPage(browser, origin, { cookie: gen.cookie, token: gen.subscriber(hubUrl, '/users/43'), query: gen.query(topic) });
  await user42.until('user 42 to open', (s) => s.opens >= 1);
  await user43.until('user 43 to open', (s) => s.opens >= 1);

  // A private update with an alternate topic, then a public one; publisher ids.
  const p1 = await publish(hub, publisher, [['topic', topic], ['topic', alternate], ['data', 'for 42 only'], ['private', 'on'], ['id', `urn:${gen.name}:1`]]);
  const p2 = await publish(hub, publisher, [['topic', topic], ['data', 'for everyone'], ['id', `urn:${gen.name}:2`]]);
  assert.deepEqual([p1, p2], [`urn:${gen.name}:1`, `urn:${gen.name}:2`]);
  await user42.until('both updates for user 42', (s) => s.received.length >= 2);
  await user43.until('the public update for user 43', (s) => s.received.length >= 1);
  assert.deepEqual((await user42.state()).received, [
    { id: p1, data: 'for 42 only' }, { id: p2, data: 'for everyone' },
  ], 'the SSE id is the publisher-supplied id');
  assert.deepEqual(await user43.ids(), [p2], 'a private update reaches only a subscriber granted one of its topics');

  // A first connection resumes from a publisher-supplied id given in the query.
  await user42.page.evaluate(() => window.es.close());
  const p3 = await publish(hub, publisher, [['topic', topic], ['data', 'three'], ['id', `urn:${gen.name}:3`]]);
  await user42.page.evaluate((q) => { window.received = []; window.open_stream(q); }, `${gen.query(topic)}&${gen.cursorParam}=${encodeURIComponent(p2)}`);
  await user42.until('the replay after p2', (s) => s.received.length >= 1);
  assert.deepEqual(await user42.ids(), [p3]);

  // Chromium's own reconnection (Last-Event-ID: p3) after a crash and restart.
  await hub.kill();
  await hub.restart();
  const p4 = await publish(hub, publisher, [['topic', topic], ['data', 'four'], ['id', `urn:${gen.name}:4`]]);
  await user42.until('p4 after the restart', (s) => s.received.some((e) => e.id === p4));
  assert.deepEqual(await user42.ids(), [p3, p4], 'resumed after p3: nothing lost, nothing repeated');
  await user43.until('p3 and p4 for user 43', (s) => s.received.some((e) => e.id === p4));
  assert.deepEqual(await user43.ids(), [p2, p3, p4]);
}

hubTest('mercure 1.0: Chromium EventSource with the __Secure- cookie, private updates, resume by publisher id', async (ctx) => {
  await scenario(ctx, {
    name: 'v1',
    args: [],
    localhost: true,
    cookie: '__Secure-mercure_access_token',
    query: (topic) => `match=${encodeURIComponent(topic)}`,
    cursorParam: 'last_event_id',
    publisher: (hubUrl) => v1Token(hubUrl, [[['publish'], [{ match: '*' }]]]),
    subscriber: (hubUrl, prefix) => v1Token(hubUrl, [[['subscribe'], [{ match: `${prefix}/*`, match_type: 'urlpattern' }]]]),
  });
});

hubTest('mercure 0.x: Chromium EventSource with the mercureAuthorization cookie, URI template topics, lastEventID', async (ctx) => {
  await scenario(ctx, {
    name: 'legacy',
    args: ['--mercure-generation', '0.x'],
    cookie: 'mercureAuthorization',
    // A URI template selector that matches the test's topic.
    query: (topic) => `topic=${encodeURIComponent(topic.replace(/[^/]+$/, '{id}'))}`,
    cursorParam: 'lastEventID',
    publisher: () => legacyToken(['*'], []),
    subscriber: (_hubUrl, prefix) => legacyToken([], [`${prefix}{+rest}`]),
  });
});
