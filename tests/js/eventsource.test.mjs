// Herald against the npm `eventsource` client (4.x, WHATWG EventSource for Node):
// delivery, framing, resumption after SIGKILL and SIGTERM, and explicit cursors.
//
// The client's `MessageEvent.lastEventId` comes only from the event's own
// block (docs: specs/sse.md §3); Herald puts an `id:` in every event, and the
// reconnection cursor is checked on the `Last-Event-ID` request header itself,
// seen through the client's `fetch` hook.

import assert from 'node:assert/strict';
import http from 'node:http';
import { EventSource } from 'eventsource';
import { hubTest, parseId, sleep, uniqueTopic, waitFor, HUB_ID, SSE_RETRY_MS } from './helpers.mjs';

/** How long to keep listening after the expected events, to catch duplicates. */
const SETTLE_MS = 750;

/**
 * Opens an EventSource on `hub`'s `/sse?<query>` and records what it sees.
 * `types` lists the event types to listen for besides `message`.
 * `firstRequestHeaders` are added to the first request only.
 */
function openClient(ctx, hub, query, { types = [], firstRequestHeaders } = {}) {
  const state = { received: [], requests: [], errors: [], opens: 0 };
  const url = `${hub.url}/sse?${query}`;
  const es = new EventSource(url, {
    fetch: (input, init) => {
      const headers = new Headers(init?.headers);
      if (firstRequestHeaders && state.requests.length === 0) {
        for (const [k, v] of Object.entries(firstRequestHeaders)) headers.set(k, v);
      }
      state.requests.push({
        lastEventId: headers.get('last-event-id'),
        lastReceived: state.received.at(-1)?.id ?? null,
      });
      return fetch(input, { ...init, headers });
    },
  });
  const record = (e) => state.received.push({ type: e.type, id: e.lastEventId, data: e.data });
  for (const type of new Set(['message', ...types])) es.addEventListener(type, record);
  es.addEventListener('open', () => { state.opens += 1; });
  es.addEventListener('error', (e) => {
    state.errors.push(e.message ?? `stream ended (readyState ${es.readyState})`);
  });
  ctx.defer(() => es.close());
  state.es = es;
  state.describe = () => `client state: ${JSON.stringify({
    readyState: es.readyState, opens: state.opens, requests: state.requests,
    errors: state.errors.slice(-5), received: state.received,
  }, null, 1)}`;
  return state;
}

/** Waits until the client has fired `open` at least `n` times. */
const waitOpen = (client, n = 1) =>
  waitFor(`EventSource open #${n}`, () => client.opens >= n, { describe: client.describe });

/** Waits until `client` has received at least `n` events, then a little longer. */
async function waitReceived(client, n, timeoutMs = 30_000) {
  await waitFor(`${n} events`, () => client.received.length >= n, { timeoutMs, describe: client.describe });
  await sleep(SETTLE_MS);
}

/** Asserts the ids are hub ids with strictly increasing seq in one epoch. */
function assertIdsOrdered(ids) {
  const parsed = ids.map(parseId);
  for (let i = 1; i < parsed.length; i++) {
    assert.equal(parsed[i].epoch, parsed[0].epoch, `epoch changed between ${ids[i - 1]} and ${ids[i]}`);
    assert.ok(parsed[i].seq > parsed[i - 1].seq, `ids not increasing: ${ids[i - 1]} then ${ids[i]}`);
  }
}

/** Every request after the first carried the last id the client had seen. */
function assertReconnectionsCarriedCursor(client) {
  assert.ok(client.requests.length >= 2, `the client never reconnected: ${client.describe()}`);
  for (const [i, r] of client.requests.slice(1).entries()) {
    assert.ok(r.lastReceived, `reconnection ${i + 1} happened before any event was received`);
    assert.equal(r.lastEventId, r.lastReceived,
      `reconnection ${i + 1} sent Last-Event-ID ${r.lastEventId}, last event seen was ${r.lastReceived}`);
  }
}

hubTest('(a) eventsource receives published events with their data, types, ids, in order', async (ctx) => {
  const hub = await ctx.startHub();
  const topic = uniqueTopic('a');
  const client = openClient(ctx, hub, new URLSearchParams({ topic }), { types: ['multi', 'greeting'] });
  await waitOpen(client);

  const published = [
    { data: 'hello', type: undefined, expect: 'hello' },
    { data: 'line one\nline two\n\nline four', type: 'multi', expect: 'line one\nline two\n\nline four' },
    { data: ' leading space and  two', type: undefined, expect: ' leading space and  two' },
    { data: 'crlf\r\nthen cr\rend', type: undefined, expect: 'crlf\nthen cr\nend' },
    { data: 'unicode ✓ é 日本語', type: 'greeting', expect: 'unicode ✓ é 日本語' },
    { data: 'id: 9', type: undefined, expect: 'id: 9' },
  ];
  const ids = [];
  for (const p of published) ids.push(await hub.publish(topic, p.data, { type: p.type }));
  for (const id of ids) assert.match(id, HUB_ID);
  assertIdsOrdered(ids);

  await waitReceived(client, published.length);
  assert.deepEqual(client.received, published.map((p, i) => ({
    type: p.type ?? 'message', id: ids[i], data: p.expect,
  })));
});

hubTest('(a2) eventsource receives events published as JSON, single and batch', async (ctx) => {
  const hub = await ctx.startHub();
  const topic = uniqueTopic('a2');
  const client = openClient(ctx, hub, new URLSearchParams({ topic }), { types: ['jt'] });
  await waitOpen(client);

  const single = await hub.request('POST', '/publish', {
    body: JSON.stringify({ topic, data: 'json single' }),
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(single.status, 200, `JSON publish: ${single.body}`);
  const singleId = JSON.parse(single.body).id;
  assert.match(singleId, HUB_ID);

  const batchIds = await hub.publishJson([
    { topic, data: 'json batch 1' },
    { topic, data: 'json batch 2\nsecond line', type: 'jt' },
  ]);
  assert.equal(batchIds.length, 2);
  assertIdsOrdered([singleId, ...batchIds]);

  await waitReceived(client, 3);
  assert.deepEqual(client.received, [
    { type: 'message', id: singleId, data: 'json single' },
    { type: 'message', id: batchIds[0], data: 'json batch 1' },
    { type: 'jt', id: batchIds[1], data: 'json batch 2\nsecond line' },
  ]);
});

hubTest('(b) after SIGKILL and a restart the client resumes by itself: every acknowledged event once, in order', async (ctx) => {
  const hub = await ctx.startHub();
  const topic = uniqueTopic('b');
  const client = openClient(ctx, hub, new URLSearchParams({ topic }));
  await waitOpen(client);

  const expected = [];
  const pub = async (data) => expected.push({ type: 'message', id: await hub.publish(topic, data), data });

  for (let i = 1; i <= 3; i++) await pub(`seen before the crash ${i}`);
  await waitReceived(client, 3);

  // Acknowledged, then the hub dies at once: the client may not have them yet,
  // but they are durable and must come back on resume.
  for (let i = 1; i <= 5; i++) await pub(`acknowledged just before the crash ${i}`);
  const killed = await hub.kill();
  assert.equal(killed.signal, 'SIGKILL');

  await hub.restart();
  // Published right after the restart, probably before the client is back.
  for (let i = 1; i <= 3; i++) await pub(`after the restart ${i}`);

  await waitReceived(client, expected.length);
  // Live after the resume too.
  await pub('live after the resume');
  await waitReceived(client, expected.length);

  assert.deepEqual(client.received, expected, 'events after SIGKILL + restart');
  assertIdsOrdered(expected.map((e) => e.id));
  assertReconnectionsCarriedCursor(client);
});

hubTest('(c) an explicit ?last_event_id= cursor replays the rest of history on the requested topics, then goes live', async (ctx) => {
  const hub = await ctx.startHub();
  const topics = ['A', 'B', 'C'].map((l) => uniqueTopic(`c-${l}`));
  const [A, B, C] = topics;
  const history = [];
  for (let i = 0; i < 12; i++) {
    const topic = topics[i % 3];
    const data = `history ${i} on ${topic}`;
    history.push({ topic, id: await hub.publish(topic, data), data });
  }
  assertIdsOrdered(history.map((e) => e.id));

  const cursor = history[4].id;
  const query = new URLSearchParams([['topic', A], ['topic', B], ['last_event_id', cursor]]);
  const client = openClient(ctx, hub, query);
  const wanted = (e) => e.topic === A || e.topic === B;
  const expected = history.slice(5).filter(wanted).map(({ id, data }) => ({ type: 'message', id, data }));
  await waitReceived(client, expected.length);
  assert.deepEqual(client.received, expected, `replay after ${cursor} on A and B`);

  for (const topic of [A, C, B]) {
    const data = `live on ${topic}`;
    const id = await hub.publish(topic, data);
    if (topic !== C) expected.push({ type: 'message', id, data });
  }
  await waitReceived(client, expected.length);
  assert.deepEqual(client.received, expected, 'replay then live, C never delivered');
  assert.equal(client.requests.length, 1, 'the client reconnected unexpectedly');
});

hubTest('(c2) the Last-Event-ID header wins over ?last_event_id=', async (ctx) => {
  const hub = await ctx.startHub();
  const topic = uniqueTopic('c2');
  const ids = [];
  for (let i = 0; i < 8; i++) ids.push(await hub.publish(topic, `event ${i}`));

  const client = openClient(ctx, hub, new URLSearchParams({ topic, last_event_id: ids[1] }), {
    firstRequestHeaders: { 'Last-Event-ID': ids[5] },
  });
  const expected = [6, 7].map((i) => ({ type: 'message', id: ids[i], data: `event ${i}` }));
  await waitReceived(client, expected.length);
  assert.deepEqual(client.received, expected, `header ${ids[5]} must win over query ${ids[1]}`);
});

hubTest('(d) a graceful SIGTERM ends the stream; the client resumes after the restart without loss', async (ctx) => {
  const hub = await ctx.startHub();
  const topic = uniqueTopic('d');
  const client = openClient(ctx, hub, new URLSearchParams({ topic }));
  await waitOpen(client);

  const expected = [];
  const pub = async (data) => expected.push({ type: 'message', id: await hub.publish(topic, data), data });
  for (let i = 1; i <= 3; i++) await pub(`before shutdown ${i}`);
  await waitReceived(client, 3);

  const started = Date.now();
  const exit = await hub.terminate();
  const took = Date.now() - started;
  assert.deepEqual(exit, { code: 0, signal: null }, 'SIGTERM must exit 0');
  // The default drain deadline is 10 s: an open stream that ignores shutdown
  // shows up as an exit only after it.
  assert.ok(took < 8_000, `graceful shutdown with one open stream took ${took} ms`);
  await waitFor('the client to see the end of the stream', () => client.errors.length >= 1,
    { timeoutMs: 10_000, describe: client.describe });
  assert.equal(client.received.length, 3, 'nothing new may arrive while the hub is down');

  await hub.restart();
  for (let i = 1; i <= 3; i++) await pub(`after restart ${i}`);
  await waitReceived(client, expected.length);
  await waitOpen(client, 2);
  await pub('live after the resume');
  await waitReceived(client, expected.length);

  assert.deepEqual(client.received, expected, 'events across a graceful restart');
  assertIdsOrdered(expected.map((e) => e.id));
  assertReconnectionsCarriedCursor(client);
});

hubTest('(e) the stream answers 200 text/event-stream and opens with a comment and a retry block', async (ctx) => {
  const hub = await ctx.startHub();
  const topic = uniqueTopic('e');
  const { res, first } = await new Promise((resolve, reject) => {
    const req = http.get(`${hub.url}/sse?${new URLSearchParams({ topic })}`, { agent: false }, (res) => {
      res.setEncoding('utf8');
      let text = '';
      const done = () => { clearTimeout(timer); req.destroy(); resolve({ res, first: text }); };
      const timer = setTimeout(done, 3_000);
      res.on('data', (d) => {
        text += d;
        if (/\nretry: ?\d+\n\n/.test(text)) done();
      });
    });
    req.on('error', reject);
  });
  assert.equal(res.statusCode, 200);
  assert.match(res.headers['content-type'] ?? '', /^text\/event-stream/);
  assert.match(res.headers['cache-control'] ?? '', /no-cache/);
  assert.equal(res.headers['content-length'], undefined, 'an event stream has no Content-Length');
  assert.ok(first.startsWith(':'), `stream must start with a comment, got ${JSON.stringify(first)}`);
  const retry = /(?:^|\n)retry: ?(\d+)\n/.exec(first);
  assert.ok(retry, `no retry: field in the opening bytes ${JSON.stringify(first)}`);
  const ms = Number(retry[1]);
  assert.ok(ms >= SSE_RETRY_MS * 0.8 - 1 && ms <= SSE_RETRY_MS * 1.2 + 1,
    `retry ${ms} ms is not HERALD_SSE_RETRY_MS=${SSE_RETRY_MS} ±20%`);
});
