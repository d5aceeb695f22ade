// Herald's BOSH connection manager (POST /bosh) driven by strophe.js, a
// maintained BOSH client, from Node. Strophe expects XMPP authentication after
// creating a session, so the test creates the session itself (pre-binding)
// and attaches Strophe to it. Herald's payloads are <op xmlns="urn:herald:1">
// elements holding JSON operations. After a hub restart the session is gone;
// a new session resumes from the last id seen and loses nothing.

import assert from 'node:assert/strict';
import XHR from 'xmlhttprequest-ssl';
import { DOMParser } from '@xmldom/xmldom';
import { hubTest, uniqueTopic, waitFor } from './helpers.mjs';

// Strophe reads responseXML, which this XMLHttpRequest fills only through the
// xmlParser option; install the class before Strophe is loaded.
class XmlHttpRequest extends XHR {
  constructor() {
    super({ xmlParser: (text) => new DOMParser().parseFromString(text, 'text/xml') });
  }
}
globalThis.XMLHttpRequest = XmlHttpRequest;
const { Strophe, $build } = await import('strophe.js');
Strophe.setLogLevel(Strophe.LogLevel.WARN);

/** Stops a connection's timers and requests, whatever state it is in. */
function stop(conn) {
  try { conn._doDisconnect(); } catch { /* already down */ }
}

const NS = 'urn:herald:1';
const BOSH_NS = 'http://jabber.org/protocol/httpbind';

/** Creates a session with one raw request; returns { sid, rid, text }. */
async function createSession(hub, payloads = '') {
  const rid = 4_000_000 + Math.floor(Math.random() * 1_000_000);
  const res = await hub.request('POST', '/bosh', {
    headers: { 'content-type': 'text/xml; charset=utf-8' },
    body: `<body xmlns='${BOSH_NS}' rid='${rid}' wait='10' hold='1' ver='1.6' to='herald' xml:lang='en'>${payloads}</body>`,
  });
  assert.equal(res.status, 200, res.body);
  const sid = /sid='([0-9a-f]+)'/.exec(res.body)?.[1];
  assert.ok(sid, `no sid in ${res.body}`);
  return { sid, rid, text: res.body };
}

const opXml = (op) => `<op xmlns='${NS}'>${JSON.stringify(op).replace(/&/g, '&amp;').replace(/</g, '&lt;')}</op>`;

/** Attaches a Strophe connection to `sid`; resolves once ATTACHED. */
async function attach(hub, session, received) {
  const conn = new Strophe.Connection(`${hub.url}/bosh`);
  conn.addHandler((el) => { received.push(JSON.parse(el.textContent)); return true; }, NS, 'op');
  const statuses = [];
  await new Promise((resolve, reject) => {
    conn.attach('reader@herald/test', session.sid, session.rid + 1, (status, condition) => {
      statuses.push({ status, condition });
      if (status === Strophe.Status.ATTACHED) resolve();
      if (status === Strophe.Status.CONNFAIL || status === Strophe.Status.DISCONNECTED) reject(new Error(`status ${status}`));
    });
  });
  return { conn, statuses };
}

const sendOp = (conn, op) => conn.send($build('op', { xmlns: NS }).t(JSON.stringify(op)).tree());

hubTest('strophe.js: a BOSH session subscribes, receives, publishes, and resumes in a new session after a restart', async (ctx) => {
  const hub = await ctx.startHub();
  const topic = uniqueTopic('bosh');
  const received = [];
  const { conn, statuses } = await attach(hub, await createSession(hub), received);
  ctx.defer(() => stop(conn));
  const wait = (what, pred) => waitFor(what, () => pred(received), {
    timeoutMs: 30_000, intervalMs: 50, describe: () => JSON.stringify(received),
  });

  sendOp(conn, { op: 'subscribe', topics: [topic], ref: 'sub' });
  await wait('the subscribe answer', (r) => r.some((m) => m.op === 'ok' && m.ref === 'sub'));

  const first = await hub.publish(topic, 'over http </op> & <b>');
  await wait('the first event', (r) => r.some((m) => m.op === 'event' && m.id === first));
  assert.deepEqual(received.find((m) => m.id === first), { op: 'event', topic, id: first, data: 'over http </op> & <b>' });

  sendOp(conn, { op: 'publish', topic, data: 'from strophe', ref: 'pub' });
  await wait('the publish answer', (r) => r.some((m) => m.op === 'ok' && m.ref === 'pub'));
  const mine = received.find((m) => m.ref === 'pub').id;
  await wait('its event', (r) => r.some((m) => m.op === 'event' && m.id === mine));

  // The hub restarts: the session is gone, and Strophe is told so
  // (item-not-found). A new session subscribes from the last id this client
  // saw and gets what it missed, once.
  await hub.kill();
  await hub.restart();
  const missed = await hub.publish(topic, 'while away');
  await waitFor('Strophe to hear the session is gone', () => statuses.some((s) => s.status === Strophe.Status.DISCONNECTED), {
    timeoutMs: 45_000, describe: () => JSON.stringify(statuses),
  });
  assert.ok(statuses.some((s) => s.condition === 'item-not-found'), JSON.stringify(statuses));
  const again = [];
  const session = await createSession(hub, opXml({ op: 'subscribe', topics: [topic], last_event_id: mine, ref: 'resume' }));
  assert.match(session.text, /"ref":"resume"/);
  const { conn: conn2 } = await attach(hub, session, again);
  ctx.defer(() => stop(conn2));
  await waitFor('the missed event', () => again.some((m) => m.id === missed), { timeoutMs: 30_000, describe: () => JSON.stringify(again) });
  const live = await hub.publish(topic, 'live');
  await waitFor('the live event', () => again.some((m) => m.id === live), { timeoutMs: 30_000, describe: () => JSON.stringify(again) });
  assert.deepEqual(again.filter((m) => m.op === 'event').map((m) => m.id), [missed, live]);

  // Strophe's disconnect sends type="terminate"; the session then is over.
  await new Promise((resolve) => {
    conn2.connect_callback = (status) => { if (status === Strophe.Status.DISCONNECTED) resolve(); };
    conn2.disconnect('done');
  });
  const after = await hub.request('POST', '/bosh', {
    body: `<body xmlns='${BOSH_NS}' sid='${session.sid}' rid='${session.rid + 50}'/>`,
  });
  assert.match(after.body, /condition='item-not-found'/);
});
