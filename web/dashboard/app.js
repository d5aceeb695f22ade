// The Herald dashboard (served at / to browsers). Live numbers and charts
// come from the hub's own stats feed, the reserved topic `$herald/stats`,
// through herald.js (EventSource, falling back to long-polling); the topic
// browser and the first snapshot from the admin API; the console subscribes
// and publishes with herald.js.
//
// With token auth on, the page asks for an admin token, keeps it in this
// tab's sessionStorage (never in a URL), sends it as `Authorization: Bearer`
// and sets the hub's token cookie (SameSite=Strict) so the EventSource,
// which cannot send headers, carries it. See docs/SECURITY.md.

import herald from '/herald.js';
import { Chart, shortNumber } from '/dashboard/chart.js';

const TOKEN_KEY = 'herald.dashboard.token';
/** The hub's default token cookie (`token_cookie`); long-polling with the header is the fallback. */
const TOKEN_COOKIE = 'herald_token';
const STATS_TOPIC = '$herald/stats';
const TRANSPORTS = ['sse', 'ndjson', 'iframe', 'poll', 'ws', 'bosh'];
const TOPICS_PAGE = 50;
/** Events the console list keeps. */
const CONSOLE_KEEP = 200;
const HUB = location.origin;

const $ = (id) => document.getElementById(id);

let token = sessionStorage.getItem(TOKEN_KEY);
let feed = null;
let consoleSub = null;
let previous = null;
let charts = null;
/** `after` cursors of the topic pages shown so far (the first is null). */
let topicPages = [null];
let selectedTopic = null;

// ------------------------------------------------------------------ the hub

/** An error the page shows: the hub's message and code when it gave them. */
class HubError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** A JSON admin request with the token (if any) as a Bearer header; cookies never sent. */
async function api(path, { method = 'GET', useToken = token } = {}) {
  const headers = { accept: 'application/json' };
  if (useToken) headers.authorization = `Bearer ${useToken}`;
  let res;
  try {
    res = await fetch(path, { method, headers, credentials: 'omit', cache: 'no-store' });
  } catch (err) {
    throw new HubError(`the hub cannot be reached (${err.message})`, 0, 'network');
  }
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  if (!res.ok) {
    const code = typeof body?.error === 'string' ? body.error : undefined;
    const message = typeof body?.message === 'string' ? body.message : `HTTP ${res.status}`;
    throw new HubError(code ? `${message} (${code})` : message, res.status, code);
  }
  return body;
}

const refused = (err) => err?.status === 401 || err?.status === 403;

/** Seconds until the token's `exp`, if it has one we can read. */
function lifetime(t) {
  try {
    const part = t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const exp = JSON.parse(atob(part)).exp;
    if (typeof exp === 'number') return Math.max(0, Math.floor(exp - Date.now() / 1000));
  } catch { /* not a JWT we can read: the hub decides */ }
  return 12 * 3600;
}

function setCookie(t) {
  const secure = location.protocol === 'https:' ? '; Secure' : '';
  const value = t ? encodeURIComponent(t) : '';
  const age = t ? lifetime(t) : 0;
  document.cookie = `${TOKEN_COOKIE}=${value}; Path=/; Max-Age=${age}; SameSite=Strict${secure}`;
}

// ------------------------------------------------------------------ sign in

function showLogin(message) {
  stopAll();
  $('main').hidden = true;
  $('sign-out').hidden = true;
  $('login').hidden = false;
  setPill($('feed-state'), 'signed out', 'bad');
  const box = $('login-error');
  box.textContent = message || '';
  box.hidden = !message;
  $('token').value = '';
  $('token').focus();
}

async function onLogin(ev) {
  ev.preventDefault();
  const candidate = $('token').value.trim();
  if (!candidate) return;
  const button = ev.submitter || $('login-form').querySelector('button');
  button.disabled = true;
  try {
    const snap = await api('/admin/stats', { useToken: candidate });
    token = candidate;
    sessionStorage.setItem(TOKEN_KEY, token);
    setCookie(token);
    enter(snap);
  } catch (err) {
    const box = $('login-error');
    box.textContent = refused(err)
      ? `The hub refused this token: ${err.message}. Paste an admin token.`
      : `Cannot check the token: ${err.message}`;
    box.hidden = false;
    $('token').select();
  } finally {
    button.disabled = false;
  }
}

function signOut() {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  setCookie(null);
  showLogin('Signed out.');
}

function stopAll() {
  feed?.close();
  feed = null;
  unsubscribeConsole();
  previous = null;
}

// ------------------------------------------------------------------ stats

function setPill(el, text, kind) {
  el.textContent = text;
  el.classList.toggle('ok', kind === 'ok');
  el.classList.toggle('bad', kind === 'bad');
}

const sum = (o) => Object.values(o || {}).reduce((a, v) => a + (Number(v) || 0), 0);
const int = (v) => (Number.isFinite(v) ? String(v) : '–');

function bytes(n) {
  if (!Number.isFinite(n)) return '–';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = -1;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** Events in and out per second: the feed's rates, else from the previous snapshot. */
function ratesOf(snap, prev) {
  if (snap.rates) return { in: snap.rates.events_in_per_sec, out: snap.rates.events_out_per_sec };
  if (!prev || !(snap.time_ms > prev.time_ms)) return { in: 0, out: 0 };
  const secs = (snap.time_ms - prev.time_ms) / 1000;
  const d = (a, b) => Math.max(0, a - b) / secs;
  return {
    in: d(snap.events_published, prev.events_published),
    out: d(sum(snap.events_delivered), sum(prev.events_delivered)),
  };
}

function render(snap) {
  if (!snap || typeof snap !== 'object') return;
  if (previous && snap.time_ms < previous.time_ms) return; // an older snapshot (resumed feed)
  const rates = ratesOf(snap, previous);
  previous = snap;
  const subs = snap.subscribers || {};
  $('stat-connections').textContent = int(snap.connections_open);
  $('stat-subscribers').textContent = int(sum(subs));
  $('stat-subscribers').title = TRANSPORTS.map((t) => `${t}: ${subs[t] ?? 0}`).join(', ');
  $('stat-topics').textContent = int(snap.topics_watched);
  $('stat-in-rate').textContent = shortNumber(rates.in);
  $('stat-out-rate').textContent = shortNumber(rates.out);
  $('stat-published').textContent = int(snap.events_published);
  $('stat-delivered').textContent = int(sum(snap.events_delivered));
  const h = snap.history || {};
  $('stat-history').textContent = `${int(h.events)} events, ${bytes(h.bytes)}`;
  $('stat-history').title = `${int(h.topics)} topics with history`;
  $('stat-webhook-queue').textContent = snap.webhook_queue == null ? 'n/a' : int(snap.webhook_queue);
  $('stat-webhook-queue').title = `${int(snap.webhook_subscriptions)} webhook subscriptions`;
  $('stat-slow').textContent = int(snap.slow_subscriber_disconnects);
  $('stat-slow').title = `${int(snap.slow_subscriber_catchups)} caught up from the log instead`;
  $('stat-auth-failures').textContent = int(snap.auth_failures);
  const store = snap.store;
  $('stat-store').textContent = snap.draining ? 'draining' : !store ? '–' : store.ready ? 'ready' : 'not ready';
  $('stat-store').title = store?.error || '';
  $('stat-store').classList.toggle('bad', Boolean(snap.draining || (store && !store.ready)));
  $('feed-time').textContent = `updated ${new Date(snap.time_ms).toLocaleTimeString()}`;

  const t = snap.time_ms;
  charts.transports.push(t, TRANSPORTS.map((name) => subs[name] ?? 0));
  charts.rates.push(t, [rates.in, rates.out]);
  charts.history.push(t, [h.events ?? 0]);
  charts.pressure.push(t, [snap.webhook_queue ?? 0, snap.slow_subscriber_disconnects ?? 0]);
}

function makeCharts() {
  const css = getComputedStyle(document.documentElement);
  const color = (i) => css.getPropertyValue(`--c${i}`).trim() || '#888';
  const chart = (name, labels) => {
    const legend = $(`legend-${name}`);
    legend.replaceChildren(...labels.map((label, i) => {
      const li = document.createElement('li');
      li.className = `c${i}`;
      li.textContent = label;
      return li;
    }));
    return new Chart($(`chart-${name}`), { series: labels.map((label, i) => ({ label, color: color(i) })) });
  };
  return {
    transports: chart('transports', TRANSPORTS),
    rates: chart('rates', ['in', 'out']),
    history: chart('history', ['events']),
    pressure: chart('pressure', ['webhook queue', 'slow-subscriber disconnects']),
  };
}

function startFeed() {
  feed?.close();
  feed = herald.subscribe(HUB, STATS_TOPIC, {
    // EventSource first (the cookie carries a token); long-polling sends the header.
    transports: ['sse', 'poll'],
    eventTypes: ['stats'],
    token: () => token,
    backoffMaxMs: 5000,
    // An EventSource refused (an expired cookie) tells no status: long-polling soon does.
    fallbackAfter: 2,
    onEvent: (e) => {
      if (e.type !== undefined && e.type !== 'stats') return;
      try { render(JSON.parse(e.data)); } catch { /* not a snapshot */ }
    },
    onStateChange: ({ state, transport }) => {
      const live = state === 'open';
      setPill($('feed-state'), live ? `live (${transport})` : state, live ? 'ok' : state === 'closed' ? '' : 'bad');
      if (live) showError('main-error', null);
    },
    onError: (err) => {
      // A token that stopped working (expired) is asked for again.
      if (refused(err) && token) showLogin(`The hub refused the token: ${err.message}`);
      else if (feed?.state !== 'open') showError('main-error', `Stats feed: ${err.message}`);
    },
  });
}

function showError(id, message) {
  const box = $(id);
  box.textContent = message || '';
  box.hidden = !message;
}

function enter(snap) {
  $('login').hidden = true;
  $('main').hidden = false;
  $('sign-out').hidden = !token;
  charts ??= makeCharts();
  render(snap);
  startFeed();
  loadTopics(null).catch(() => {});
}

/** Shows an admin API failure where it happened, or the sign-in form when the token no longer works. */
function failed(where, err) {
  if (refused(err) && token) {
    showLogin(`The hub refused the token: ${err.message}`);
  } else {
    showError(where, err.message);
  }
}

// ------------------------------------------------------------------ topics

async function loadTopics(after) {
  const q = new URLSearchParams({ limit: String(TOPICS_PAGE) });
  if (after) q.set('after', after);
  let page;
  try {
    page = await api(`/admin/topics?${q}`);
  } catch (err) {
    failed('topics-error', err);
    return;
  }
  showError('topics-error', null);
  const rows = (page.topics || []).map((t) => {
    const tr = document.createElement('tr');
    tr.dataset.topic = t.topic;
    tr.classList.toggle('selected', t.topic === selectedTopic);
    for (const v of [t.topic, int(t.subscribers), int(t.events)]) {
      const td = document.createElement('td');
      td.textContent = v;
      tr.append(td);
    }
    return tr;
  });
  $('topics').tBodies[0].replaceChildren(...rows);
  $('topics-empty').hidden = rows.length > 0;
  $('topics-first').hidden = !after;
  const next = $('topics-next');
  next.hidden = !page.next_after;
  next.dataset.after = page.next_after || '';
}

async function loadEvents(topic) {
  selectedTopic = topic;
  for (const tr of $('topics').tBodies[0].rows) tr.classList.toggle('selected', tr.dataset.topic === topic);
  const limit = $('events-limit').value;
  const q = new URLSearchParams({ topic, limit });
  let page;
  try {
    page = await api(`/admin/topics/events?${q}`);
  } catch (err) {
    failed('topics-error', err);
    return;
  }
  showError('topics-error', null);
  $('events-title').textContent = `Newest events of ${topic}`;
  $('events-title').hidden = false;
  $('events-controls').hidden = false;
  $('events-truncated').hidden = !page.truncated;
  const items = (page.events || []).slice().reverse().map(eventItem);
  if (items.length === 0) {
    const li = document.createElement('li');
    li.className = 'muted';
    li.textContent = 'No retained events.';
    items.push(li);
  }
  $('events').replaceChildren(...items);
}

/** One event as a list item (text only: data is never parsed as HTML). */
function eventItem(e) {
  const li = document.createElement('li');
  const meta = document.createElement('span');
  meta.className = 'meta';
  meta.textContent = [e.id, e.type ? `type=${e.type}` : '', e.topic && e.topic !== selectedTopic ? e.topic : '']
    .filter(Boolean).join(' ');
  const data = document.createElement('span');
  data.className = 'data';
  data.textContent = e.data;
  li.append(meta, data);
  return li;
}

// ------------------------------------------------------------------ console

function consoleTopic() {
  const topic = $('console-topic').value.trim();
  if (!topic) {
    showError('console-error', 'Name a topic first.');
    $('console-topic').focus();
  }
  return topic;
}

function subscribeConsole() {
  const topic = consoleTopic();
  if (!topic) return;
  consoleSub?.close();
  showError('console-error', null);
  $('console-events').replaceChildren();
  const sub = herald.subscribe(HUB, topic, {
    token: () => token,
    backoffMaxMs: 5000,
    onEvent: (e) => {
      const list = $('console-events');
      list.prepend(eventItem({ ...e, topic: e.topic === topic ? null : e.topic }));
      while (list.children.length > CONSOLE_KEEP) list.lastChild.remove();
    },
    onStateChange: ({ state, transport }) => {
      if (consoleSub !== sub) return;
      const open = state === 'open';
      setPill($('console-state'), open ? `subscribed to ${topic} (${transport})` : state, open ? 'ok' : state === 'closed' ? '' : 'bad');
      if (open) showError('console-error', null);
    },
    onError: (err) => {
      if (consoleSub === sub && sub.state !== 'open') showError('console-error', `Subscribe to ${topic}: ${err.message}`);
    },
  });
  consoleSub = sub;
  $('console-unsubscribe').disabled = false;
}

function unsubscribeConsole() {
  consoleSub?.close();
  consoleSub = null;
  setPill($('console-state'), 'not subscribed', '');
  $('console-unsubscribe').disabled = true;
}

async function publishConsole(ev) {
  ev.preventDefault();
  const topic = consoleTopic();
  if (!topic) return;
  const type = $('console-type').value.trim();
  const button = $('console-publish');
  button.disabled = true;
  $('console-result').textContent = '';
  try {
    const { id } = await herald.publish(HUB, topic, $('console-data').value, {
      type: type || undefined,
      token: () => token,
    });
    showError('console-error', null);
    $('console-result').textContent = `published ${id}`;
  } catch (err) {
    const status = err.status ? ` (HTTP ${err.status})` : '';
    showError('console-error', `Publish refused${status}: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

// ------------------------------------------------------------------ start

function bind() {
  $('login-form').addEventListener('submit', onLogin);
  $('sign-out').addEventListener('click', signOut);
  $('topics-refresh').addEventListener('click', () => loadTopics(topicPages[topicPages.length - 1]));
  $('topics-next').addEventListener('click', () => {
    const after = $('topics-next').dataset.after;
    if (!after) return;
    topicPages.push(after);
    loadTopics(after);
  });
  $('topics-first').addEventListener('click', () => {
    topicPages = [null];
    loadTopics(null);
  });
  $('topics').tBodies[0].addEventListener('click', (ev) => {
    const tr = ev.target.closest('tr');
    if (tr?.dataset.topic) loadEvents(tr.dataset.topic);
  });
  $('events-limit').addEventListener('change', () => selectedTopic && loadEvents(selectedTopic));
  $('console-form').addEventListener('submit', publishConsole);
  $('console-subscribe').addEventListener('click', subscribeConsole);
  $('console-unsubscribe').addEventListener('click', unsubscribeConsole);
}

async function boot() {
  bind();
  try {
    enter(await api('/admin/stats'));
  } catch (err) {
    if (refused(err)) {
      const had = token;
      token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(had ? `The hub refused the saved token: ${err.message}` : null);
    } else {
      $('main').hidden = false;
      showError('main-error', `Cannot load the stats: ${err.message}`);
    }
  }
  document.body.dataset.ready = 'true';
}

boot();
