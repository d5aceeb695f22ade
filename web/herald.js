// herald.js: Herald's browser client. A dependency-free ES module, also served
// by every hub at /herald.js (types at /herald.d.ts).
//
//   import herald from 'https://hub.example/herald.js';
//   const sub = herald.subscribe('https://hub.example', ['/news'], {
//     onEvent: (e) => console.log(e.id, e.topic, e.type, e.data),
//     onReset: (r) => reloadEverything(r.reason),
//   });
//   await herald.publish('https://hub.example', '/news', 'hello', { type: 'greeting' });
//
// subscribe() tries the transports in order (by default WebSocket, then
// EventSource, then long-polling with fetch, then JSONP script tags) and keeps
// the first one that works. A transport works once it is connected: the
// WebSocket's subscribe operation is acknowledged, the EventSource opens, the
// first poll is answered. While none has worked yet, a failure moves on to
// the next one; after the last, the list starts over after a back-off delay.
// Once one has worked, a dropped connection is reopened on the same transport
// with exponential back-off and full jitter, resuming from the last event id;
// after `fallbackAfter` failed reopenings in a row the list is tried again
// from the start. Where the hub cannot resume, onReset says so.
//
// The wire contract is docs/PROTOCOL.md.

/** Transports, in the default order of preference. */
export const TRANSPORTS = Object.freeze(['ws', 'sse', 'poll', 'jsonp']);

const DEFAULTS = Object.freeze({
  backoffInitialMs: 500,
  backoffMaxMs: 30_000,
  fallbackAfter: 4,
  connectTimeoutMs: 10_000,
  pollTimeoutSecs: 25,
  heartbeatMs: 30_000,
});

/** An error from the hub (`status`/`code` as in docs/PROTOCOL.md) or from a transport. */
export class HeraldError extends Error {
  constructor(message, { status, code, transport, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'HeraldError';
    /** HTTP status of a refused request, or the WebSocket close code. */
    this.status = status;
    /** The hub's error code (`invalid_topic`, `forbidden`, …), when it gave one. */
    this.code = code;
    /** The transport that failed, if any. */
    this.transport = transport;
  }
}

// ------------------------------------------------------------------ helpers

/** The hub's URL for `path` with `params` ([name, value] pairs), on `scheme` if given. */
function endpoint(hubUrl, path, params = [], scheme) {
  const base = typeof location === 'undefined' ? undefined : location.href;
  const u = new URL(String(hubUrl) || '/', base);
  u.pathname = u.pathname.replace(/\/+$/, '') + path;
  u.search = new URLSearchParams(params).toString();
  u.hash = '';
  if (scheme) u.protocol = scheme === 'ws' ? (u.protocol === 'https:' ? 'wss:' : 'ws:') : u.protocol;
  return u.toString();
}

async function resolveToken(token) {
  const t = typeof token === 'function' ? await token() : token;
  if (t === undefined || t === null || t === '') return undefined;
  return String(t);
}

/** Reads a refused answer into a HeraldError. */
async function refusal(res, what, transport) {
  let code;
  let message = `${what}: HTTP ${res.status}`;
  try {
    const body = await res.json();
    if (body && typeof body.error === 'string') {
      code = body.error;
      if (body.message) message = `${what}: ${body.message} (${code})`;
    }
  } catch { /* not JSON */ }
  return new HeraldError(message, { status: res.status, code, transport });
}

function defer(fn) {
  setTimeout(fn, 0);
}

let jsonpCounter = 0;
const jsonpPrefix = `__herald${Math.random().toString(36).slice(2, 10)}_`;

/**
 * One JSONP request: a script tag calling a unique global function. Resolves
 * with the payload, rejects on a load error, a script that does not call
 * back, or `timeoutMs`. `signal` aborts it.
 */
function jsonpRequest(url, timeoutMs, signal) {
  return new Promise((resolve, reject) => {
    jsonpCounter += 1;
    const name = `${jsonpPrefix}${jsonpCounter}`;
    const script = document.createElement('script');
    let done = false;
    const finish = (err, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      script.onload = script.onerror = null;
      script.remove();
      if (err) {
        // The script may still arrive: leave a no-op that cleans itself up.
        globalThis[name] = () => { delete globalThis[name]; };
        reject(err);
      } else {
        delete globalThis[name];
        resolve(value);
      }
    };
    const onAbort = () => finish(new HeraldError('JSONP request aborted', { transport: 'jsonp' }));
    const timer = setTimeout(() => finish(new HeraldError(`JSONP request got no answer in ${timeoutMs} ms`, { transport: 'jsonp' })), timeoutMs);
    signal?.addEventListener('abort', onAbort);
    globalThis[name] = (value) => finish(null, value);
    script.onerror = () => finish(new HeraldError('JSONP request failed (network error or refused)', { transport: 'jsonp' }));
    // A script that loaded but did not call back (it runs before `load`).
    script.onload = () => finish(new HeraldError('JSONP answer did not call back', { transport: 'jsonp' }));
    script.async = true;
    script.src = `${url}${url.includes('?') ? '&' : '?'}callback=${name}`;
    (document.head || document.documentElement).appendChild(script);
  });
}

// --------------------------------------------------------------- transports
//
// Each opener starts one connection and reports to `link`:
//   link.opened()          the connection works
//   link.event(msg)        an event in the JSON form ({id, topic, type, data})
//   link.reset(msg)        {reason, last_event_id} from the hub
//   link.cursor(id)        a resume position that is not an event's (poll answers)
//   link.failed(err)       the connection is over (the opener stops by itself)
//   link.error(err)        something to report that does not end the connection
// and returns { close() }, which stops it without reporting anything.

function openWebSocket(link) {
  const { topics, options } = link;
  const params = [];
  if (link.token && options.tokenInQuery) params.push(['access_token', link.token]);
  let ws;
  try {
    ws = new WebSocket(endpoint(link.hubUrl, '/ws', params, 'ws'));
  } catch (err) {
    defer(() => link.failed(new HeraldError(`WebSocket refused: ${err?.message ?? err}`, { transport: 'ws', cause: err })));
    return { close() {} };
  }
  const ref = 'herald.subscribe';
  let lastHeard = Date.now();
  let heartbeat;
  const stop = () => {
    clearInterval(heartbeat);
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
  };
  ws.onopen = () => {
    lastHeard = Date.now();
    const op = { op: 'subscribe', topics, ref };
    const since = link.lastEventId();
    if (since) op.last_event_id = since;
    ws.send(JSON.stringify(op));
    if (options.heartbeatMs > 0) {
      heartbeat = setInterval(() => {
        if (Date.now() - lastHeard > 2 * options.heartbeatMs) {
          stop();
          try { ws.close(); } catch { /* already closing */ }
          link.failed(new HeraldError('WebSocket: no answer to pings', { transport: 'ws' }));
        } else if (ws.readyState === 1) {
          ws.send('{"op":"ping","ref":"herald.ping"}');
        }
      }, options.heartbeatMs);
    }
  };
  ws.onmessage = (m) => {
    lastHeard = Date.now();
    let msg;
    try {
      msg = JSON.parse(m.data);
    } catch {
      link.error(new HeraldError('WebSocket: a message that is not JSON', { transport: 'ws' }));
      return;
    }
    switch (msg?.op) {
      case 'event': link.event(msg); break;
      case 'reset': link.reset(msg); break;
      case 'ok': if (msg.ref === ref) link.opened(); break;
      case 'error': {
        const err = new HeraldError(`WebSocket: ${msg.message ?? msg.error} (${msg.error})`, { code: msg.error, transport: 'ws' });
        if (msg.ref === ref) {
          stop();
          try { ws.close(1000); } catch { /* already closing */ }
          link.failed(err);
        } else {
          link.error(err);
        }
        break;
      }
      default: break; // pong, and whatever a later hub adds
    }
  };
  ws.onerror = () => { /* a close event follows */ };
  ws.onclose = (e) => {
    stop();
    link.failed(new HeraldError(`WebSocket closed (${e.code}${e.reason ? `: ${e.reason}` : ''})`, { status: e.code, transport: 'ws' }));
  };
  return {
    close() {
      stop();
      try { ws.close(1000); } catch { /* already closed */ }
    },
  };
}

function openEventSource(link) {
  const { topics, options } = link;
  const params = topics.map((t) => ['topic', t]);
  const since = link.lastEventId();
  // A new EventSource cannot send Last-Event-ID: the hub reads it from the query.
  if (since) params.push(['last_event_id', since]);
  if (link.token && options.tokenInQuery) params.push(['access_token', link.token]);
  let es;
  try {
    es = new EventSource(endpoint(link.hubUrl, '/sse', params), { withCredentials: !!options.withCredentials });
  } catch (err) {
    defer(() => link.failed(new HeraldError(`EventSource refused: ${err?.message ?? err}`, { transport: 'sse', cause: err })));
    return { close() {} };
  }
  const topic = topics.length === 1 ? topics[0] : null;
  const onEvent = (e) => link.event({ id: e.lastEventId, topic, type: e.type === 'message' ? undefined : e.type, data: e.data });
  const onReset = (e) => {
    let r = {};
    try { r = JSON.parse(e.data) ?? {}; } catch { /* keep the id */ }
    link.reset({ reason: r.reason ?? 'unknown', last_event_id: r.last_event_id ?? e.lastEventId });
  };
  const types = [...new Set(options.eventTypes ?? [])].filter((t) => t !== 'message' && t !== 'herald-reset');
  es.onopen = () => link.opened();
  es.onmessage = onEvent;
  for (const t of types) es.addEventListener(t, onEvent);
  es.addEventListener('herald-reset', onReset);
  const stop = () => {
    es.onopen = es.onmessage = es.onerror = null;
    for (const t of types) es.removeEventListener(t, onEvent);
    es.removeEventListener('herald-reset', onReset);
    es.close();
  };
  // The EventSource would reconnect by itself, at the hub's `retry:` pace;
  // this client reconnects instead, with its own back-off and position.
  es.onerror = () => {
    stop();
    link.failed(new HeraldError('EventSource: the stream failed or was refused', { transport: 'sse' }));
  };
  return { close: stop };
}

/** Long-polling with fetch (`jsonp: false`) or script tags (`jsonp: true`). */
function openPoll(link, jsonp) {
  const { topics, options } = link;
  const transport = jsonp ? 'jsonp' : 'poll';
  const abort = new AbortController();
  let first = true;
  (async () => {
    while (!abort.signal.aborted) {
      // The first request is a short poll: it answers at once, so the
      // transport is known to work, and gives the position to continue from.
      const timeout = first ? 0 : options.pollTimeoutSecs;
      const params = topics.map((t) => ['topic', t]);
      const since = link.lastEventId();
      if (since) params.push(['since', since]);
      params.push(['timeout', String(timeout)]);
      const useQueryToken = link.token && (jsonp ? options.tokenInQuery : false);
      if (useQueryToken) params.push(['access_token', link.token]);
      const url = endpoint(link.hubUrl, '/poll', params);
      const limitMs = (timeout + 15) * 1000;
      let body;
      try {
        if (jsonp) {
          body = await jsonpRequest(url, limitMs, abort.signal);
        } else {
          const timer = setTimeout(() => abort.abort(), limitMs);
          let res;
          try {
            const headers = { Accept: 'application/json' };
            if (link.token) headers.Authorization = `Bearer ${link.token}`;
            res = await fetch(url, {
              headers,
              cache: 'no-store',
              credentials: options.withCredentials ? 'include' : 'same-origin',
              signal: abort.signal,
            });
            if (!res.ok) throw await refusal(res, 'poll', 'poll');
            body = await res.json();
          } finally {
            clearTimeout(timer);
          }
        }
      } catch (err) {
        if (abort.signal.aborted && !link.isCurrent()) return;
        abort.abort();
        link.failed(err instanceof HeraldError ? err : new HeraldError(`${transport}: ${err?.message ?? err}`, { transport, cause: err }));
        return;
      }
      if (abort.signal.aborted) return;
      if (!body || !Array.isArray(body.events)) {
        abort.abort();
        const code = body?.error;
        link.failed(new HeraldError(`${transport}: unexpected answer${code ? ` (${code})` : ''}`, { code, transport }));
        return;
      }
      if (first) {
        first = false;
        link.opened();
        if (abort.signal.aborted) return;
      }
      if (body.reset) link.reset(body.reset);
      for (const e of body.events) {
        if (abort.signal.aborted) return;
        link.event(e);
      }
      if (abort.signal.aborted) return;
      if (typeof body.last_event_id === 'string' && body.last_event_id) link.cursor(body.last_event_id);
    }
  })().catch((err) => {
    abort.abort();
    link.failed(new HeraldError(`${transport}: ${err?.message ?? err}`, { transport, cause: err }));
  });
  return { close() { abort.abort(); } };
}

const OPENERS = {
  ws: openWebSocket,
  sse: openEventSource,
  poll: (link) => openPoll(link, false),
  jsonp: (link) => openPoll(link, true),
};

// ------------------------------------------------------------- subscribing

class Subscription {
  #hubUrl;
  #topics;
  #options;
  #chain;
  #lastEventId;
  #state = 'connecting';
  #transport = null;
  /** The transport that last worked, which reconnections use, or null while falling back. */
  #sticky = null;
  /** Next transport of the chain while falling back. */
  #index = 0;
  /** Failed attempts since a connection last worked (the back-off exponent). */
  #failures = 0;
  #conn = null;
  #attempt = 0;
  #timer = null;
  #connectTimer = null;
  #closed = false;
  /** Set when a connection dropped before any position was known: a gap is possible. */
  #unpositionedDrop = false;
  #everOpened = false;
  /** The transport of the last onStateChange. */
  #reported = null;
  #onOnline = null;

  constructor(hubUrl, topics, options) {
    this.#hubUrl = String(hubUrl);
    endpoint(this.#hubUrl, '/'); // throws a TypeError now for a URL that cannot work
    this.#topics = Object.freeze([].concat(topics).map(String));
    if (this.#topics.length === 0) throw new TypeError('herald.subscribe: at least one topic');
    const opts = { ...DEFAULTS };
    for (const [k, v] of Object.entries(options ?? {})) if (v !== undefined) opts[k] = v;
    this.#options = opts;
    const chain = opts.transports ?? TRANSPORTS;
    for (const t of chain) {
      if (!OPENERS[t]) throw new TypeError(`herald.subscribe: unknown transport ${JSON.stringify(t)} (use ${TRANSPORTS.join(', ')})`);
    }
    if (chain.length === 0) throw new TypeError('herald.subscribe: no transports');
    this.#chain = Object.freeze([...chain]);
    this.#lastEventId = opts.lastEventId ? String(opts.lastEventId) : null;
    // Back online: a connection waiting out its back-off retries at once.
    if (typeof globalThis.addEventListener === 'function') {
      this.#onOnline = () => {
        if (this.#closed || this.#conn || this.#timer === null) return;
        clearTimeout(this.#timer);
        this.#timer = null;
        this.#connect();
      };
      globalThis.addEventListener('online', this.#onOnline);
    }
    // Start after the caller has the handle.
    queueMicrotask(() => this.#connect());
  }

  /** The transport in use (or being tried), or null once closed. */
  get transport() { return this.#transport; }
  /** The position to resume from: the last event's id, a reset's, or a poll cursor. */
  get lastEventId() { return this.#lastEventId; }
  /** 'connecting', 'open', 'reconnecting' or 'closed'. */
  get state() { return this.#state; }
  get topics() { return this.#topics; }
  get hubUrl() { return this.#hubUrl; }

  /** Stops for good: after onStateChange reports 'closed', no callback runs. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#attempt += 1;
    clearTimeout(this.#timer);
    clearTimeout(this.#connectTimer);
    if (this.#onOnline) globalThis.removeEventListener('online', this.#onOnline);
    this.#conn?.close();
    this.#conn = null;
    this.#setState('closed');
    this.#transport = null;
  }

  #call(name, ...args) {
    const fn = this.#options[name];
    if (typeof fn !== 'function') return;
    try {
      fn(...args);
    } catch (err) {
      // A throwing callback must not break delivery; surface it asynchronously.
      setTimeout(() => { throw err; }, 0);
    }
  }

  /** Reports a change of state or of transport. */
  #setState(state) {
    if (this.#state === state && this.#reported === this.#transport) return;
    this.#state = state;
    this.#reported = this.#transport;
    this.#call('onStateChange', { state, transport: this.#transport });
  }

  async #connect() {
    if (this.#closed) return;
    const attempt = ++this.#attempt;
    const name = this.#sticky ?? this.#chain[this.#index];
    this.#transport = name;
    this.#setState(this.#everOpened ? 'reconnecting' : 'connecting');
    let token;
    try {
      token = await resolveToken(this.#options.token);
    } catch (err) {
      if (attempt !== this.#attempt) return;
      this.#call('onError', new HeraldError(`token: ${err?.message ?? err}`, { cause: err }));
      this.#failures += 1;
      this.#schedule();
      return;
    }
    if (attempt !== this.#attempt || this.#closed) return;
    let opened = false;
    const current = () => attempt === this.#attempt && !this.#closed;
    const link = {
      hubUrl: this.#hubUrl,
      topics: this.#topics,
      options: this.#options,
      token,
      isCurrent: current,
      lastEventId: () => this.#lastEventId,
      opened: () => {
        if (!current() || opened) return;
        opened = true;
        clearTimeout(this.#connectTimer);
        this.#onOpened(name);
      },
      event: (msg) => {
        if (!current()) return;
        if (typeof msg?.id === 'string' && msg.id) this.#lastEventId = msg.id;
        const event = { id: msg.id, topic: msg.topic ?? null, data: msg.data };
        if (msg.type !== undefined) event.type = msg.type;
        if (msg.retry !== undefined) event.retry = msg.retry;
        this.#call('onEvent', event);
      },
      reset: (msg) => {
        if (!current()) return;
        if (typeof msg?.last_event_id === 'string' && msg.last_event_id) this.#lastEventId = msg.last_event_id;
        this.#call('onReset', { reason: msg?.reason ?? 'unknown', lastEventId: this.#lastEventId });
      },
      cursor: (id) => {
        if (current()) this.#lastEventId = id;
      },
      error: (err) => {
        if (current()) this.#call('onError', err);
      },
      failed: (err) => {
        if (!current()) return;
        this.#attempt += 1; // later reports from this connection are ignored
        clearTimeout(this.#connectTimer);
        this.#conn?.close();
        this.#conn = null;
        this.#onFailed(name, opened, err);
      },
    };
    clearTimeout(this.#connectTimer);
    if (this.#options.connectTimeoutMs > 0) {
      this.#connectTimer = setTimeout(() => link.failed(new HeraldError(
        `${name}: not connected after ${this.#options.connectTimeoutMs} ms`, { transport: name })),
      this.#options.connectTimeoutMs);
    }
    this.#conn = OPENERS[name](link);
  }

  #onOpened(name) {
    this.#sticky = name;
    this.#index = 0;
    this.#failures = 0;
    this.#everOpened = true;
    this.#setState('open');
    if (this.#unpositionedDrop) {
      this.#unpositionedDrop = false;
      if (!this.#lastEventId) {
        // Nothing had arrived before the drop, so there was no position to
        // resume from: events published while disconnected may be missing.
        this.#call('onReset', { reason: 'no_position', lastEventId: null });
      }
    }
  }

  #onFailed(name, opened, err) {
    this.#call('onError', err);
    if (opened) {
      // A drop: reopen the same transport from the last position.
      if (!this.#lastEventId) this.#unpositionedDrop = true;
      this.#failures = 0;
      this.#setState('reconnecting');
      this.#schedule();
      return;
    }
    if (this.#sticky) {
      this.#failures += 1;
      if (this.#failures >= this.#options.fallbackAfter) {
        // It worked before but no longer does: try the whole list again.
        this.#sticky = null;
        this.#index = 0;
      }
      this.#schedule();
      return;
    }
    // Falling back: the next transport at once; after the last one, start
    // over after a back-off.
    this.#index += 1;
    if (this.#index < this.#chain.length) {
      this.#connect();
      return;
    }
    this.#index = 0;
    this.#failures += 1;
    this.#schedule();
  }

  /** Waits a full-jitter back-off delay, then connects. */
  #schedule() {
    if (this.#closed) return;
    const { backoffInitialMs, backoffMaxMs } = this.#options;
    const cap = Math.min(backoffMaxMs, backoffInitialMs * 2 ** Math.min(this.#failures, 30));
    const delay = Math.floor(Math.random() * cap);
    if (this.#everOpened) this.#setState('reconnecting');
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#connect();
    }, delay);
  }
}

/**
 * Subscribes to `topics` on the hub at `hubUrl`. See herald.d.ts for the options.
 * @returns {Subscription}
 */
export function subscribe(hubUrl, topics, options = {}) {
  return new Subscription(hubUrl, topics, options);
}

/**
 * Publishes one event: POST /publish with a JSON body. Resolves with
 * `{id}` once the hub has stored it; rejects with a HeraldError otherwise.
 */
export async function publish(hubUrl, topic, data, options = {}) {
  const { type, id, retry, token, withCredentials, signal } = options;
  const body = { topic: Array.isArray(topic) ? topic.map(String) : String(topic), data: typeof data === 'string' ? data : JSON.stringify(data) };
  if (body.data === undefined) throw new TypeError('herald.publish: data must be a string or JSON-serialisable');
  if (type !== undefined) body.type = String(type);
  if (id !== undefined) body.id = String(id);
  if (retry !== undefined) body.retry = retry;
  if (options.private !== undefined) body.private = !!options.private;
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
  const t = await resolveToken(token);
  if (t) headers.Authorization = `Bearer ${t}`;
  let res;
  try {
    res = await fetch(endpoint(hubUrl, '/publish'), {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
      credentials: withCredentials ? 'include' : 'same-origin',
      cache: 'no-store',
      signal,
    });
  } catch (err) {
    throw new HeraldError(`publish: ${err?.message ?? err}`, { cause: err });
  }
  if (!res.ok) throw await refusal(res, 'publish');
  const answer = await res.json();
  if (typeof answer?.id !== 'string') throw new HeraldError('publish: the hub answered without an id', { status: res.status });
  return { id: answer.id };
}

export default Object.freeze({ subscribe, publish, HeraldError, TRANSPORTS });
