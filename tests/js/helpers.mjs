// Test harness for Herald's real-client tests: starts the real `herald` binary
// on 127.0.0.1:0 with a fresh data dir, restarts it on the same port and data
// dir (an EventSource reconnects to the same URL), kills it with SIGKILL or
// stops it with SIGTERM, and publishes over HTTP (or HTTPS, for a hub started
// with TLS flags and the CA to trust).
//
// Every wait is bounded, and every process and data dir a test creates is
// cleaned up when the test ends, pass or fail: use `hubTest` instead of
// `test`, and get hubs with `ctx.startHub()`.

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const heraldBin = process.env.HERALD_BIN || path.join(repoRoot, 'target', 'debug', 'herald');

/** Reconnection delay the hub tells SSE clients (ms), kept short so tests are quick. */
export const SSE_RETRY_MS = 250;

const STARTUP_TIMEOUT_MS = 20_000;
const EXIT_TIMEOUT_MS = 20_000;
const LOG_TAIL_BYTES = 16 * 1024;
const LISTENING = /^herald: listening on (https?:\/\/127\.0\.0\.1:(\d+))$/;

/** Every hub process still alive, killed if this test file's process exits. */
const live = new Set();
function killAll() {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    killAll();
    process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
  });
}

// ---------------------------------------------------------------- waiting

/** Resolves after `ms` milliseconds. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `check` until it returns a truthy value and returns that value, or
 * throws after `timeoutMs` with `what` and, if given, `describe()` in the message.
 */
export async function waitFor(what, check, { timeoutMs = 30_000, intervalMs = 25, describe } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() >= deadline) {
      const detail = describe ? `\n${describe()}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}

/** Races `promise` against a timeout. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------- the hub

/** Keeps the last `LOG_TAIL_BYTES` of a stream, for failure messages. */
class Tail {
  constructor() { this.text = ''; }
  push(chunk) {
    this.text += chunk;
    if (this.text.length > 2 * LOG_TAIL_BYTES) this.text = this.text.slice(-LOG_TAIL_BYTES);
  }
  toString() { return this.text.slice(-LOG_TAIL_BYTES); }
}

/** Environment of a hub: ours, minus any HERALD_* setting that could change what we test. */
function hubEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('HERALD_') && k !== 'HERALD_LOG') continue;
    env[k] = v;
  }
  env.HERALD_SSE_RETRY_MS = String(SSE_RETRY_MS);
  env.HERALD_LOG ??= 'info';
  env.NO_COLOR = '1'; // plain logs in failure messages
  return env;
}

/**
 * One hub: a data dir and a port that survive restarts, and the current
 * process (if any).
 */
export class Hub {
  /**
   * `args`: extra `herald serve` flags (e.g. `--tls-cert`); `ca`: the PEM
   * certificate this harness trusts when the hub serves HTTPS; `dev: false`
   * starts it without `--dev` (tokens decide, as in production).
   */
  constructor(dataDir, name, { args = [], ca, dev = true } = {}) {
    this.dev = dev;
    this.dataDir = dataDir;
    this.name = name;
    this.args = args;
    this.ca = ca;
    this.port = 0;
    this.url = undefined;
    this.child = undefined;
    /** Output of every run of this hub, in order, for failure messages. */
    this.log = new Tail();
    this.runs = 0;
  }

  /** Starts the hub (port 0 the first time, the same port afterwards). */
  async start() {
    if (this.child) throw new Error(`${this.name} is already running`);
    if (!existsSync(heraldBin)) {
      throw new Error(`no herald binary at ${heraldBin}: run \`cargo build -p herald-cli\` or set HERALD_BIN`);
    }
    // After a kill the port is free at once (the listener is closed; tokio
    // binds with SO_REUSEADDR), but retry a little in case it is not.
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    for (;;) {
      try {
        return await this.#spawnOnce(Math.max(0, deadline - Date.now()));
      } catch (err) {
        if (!err.retryable || Date.now() >= deadline) throw err;
        await sleep(200);
      }
    }
  }

  async #spawnOnce(timeoutMs) {
    this.runs += 1;
    const args = ['serve', ...(this.dev ? ['--dev'] : []), '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir, ...this.args];
    this.log.push(`\n=== ${this.name} run ${this.runs}: ${heraldBin} ${args.join(' ')}\n`);
    const child = spawn(heraldBin, args, { env: hubEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    child.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        live.delete(child);
        this.log.push(`=== ${this.name} run ${this.runs} exited: code=${code} signal=${signal}\n`);
        resolve({ code, signal });
      });
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => this.log.push(d));
    child.stdout.setEncoding('utf8');

    const listening = new Promise((resolve, reject) => {
      let buffered = '';
      let found = false;
      child.stdout.on('data', (d) => {
        this.log.push(`[stdout] ${d}`);
        if (found) return;
        buffered += d;
        let nl;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl).replace(/\r$/, '');
          buffered = buffered.slice(nl + 1);
          const m = LISTENING.exec(line);
          if (m) { found = true; resolve({ url: m[1], port: Number(m[2]) }); return; }
          reject(new Error(`unexpected first stdout line from herald: ${JSON.stringify(line)}`));
          return;
        }
      });
      child.on('error', reject);
      child.exited.then(({ code, signal }) => {
        if (found) return;
        const err = new Error(`herald exited (code=${code} signal=${signal}) before listening\n${this.log}`);
        // A bind failure on restart may be a port not yet free: worth retrying.
        err.retryable = this.port !== 0 && /cannot listen|address already in use/i.test(String(this.log));
        reject(err);
      });
    });

    let bound;
    try {
      bound = await withTimeout(listening, timeoutMs, `${this.name} to print its listening line`);
    } catch (err) {
      child.kill('SIGKILL');
      await child.exited;
      throw err;
    }
    if (this.port !== 0 && bound.port !== this.port) {
      child.kill('SIGKILL');
      throw new Error(`${this.name} restarted on port ${bound.port}, wanted ${this.port}`);
    }
    this.port = bound.port;
    this.url = bound.url;
    this.child = child;
    return this;
  }

  /** Sends `signal` and waits for the process to exit; returns `{code, signal}`. */
  async #signal(signal) {
    const child = this.child;
    if (!child) throw new Error(`${this.name} is not running`);
    this.child = undefined;
    child.kill(signal);
    return withTimeout(child.exited, EXIT_TIMEOUT_MS, `${this.name} to exit after ${signal}`);
  }

  /** Kills the hub with SIGKILL (a crash) and waits until it is gone. */
  kill() { return this.#signal('SIGKILL'); }

  /** Stops the hub with SIGTERM (graceful) and waits; returns `{code, signal}`. */
  terminate() { return this.#signal('SIGTERM'); }

  /** Starts the hub again on the same port and data dir. */
  restart() { return this.start(); }

  /** Kills the process if still running (cleanup; never throws). */
  async dispose() {
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await withTimeout(child.exited, 5_000, 'cleanup kill').catch(() => {});
    }
  }

  // -------------------------------------------------------------- HTTP

  /**
   * One HTTP request on a fresh connection (no keep-alive pool: a pooled
   * socket to a hub we just killed would make the next publish fail or,
   * retried, duplicate). Resolves `{status, headers, body}`.
   */
  request(method, pathAndQuery, { body, headers = {}, timeoutMs = 10_000 } = {}) {
    if (!this.url) throw new Error(`${this.name} has never started`);
    return new Promise((resolve, reject) => {
      const tls = this.url.startsWith('https:');
      const req = (tls ? https : http).request(`${this.url}${pathAndQuery}`, {
        method, headers, agent: false, timeout: timeoutMs, ...(tls ? { ca: this.ca } : {}),
      }, (res) => {
        res.setEncoding('utf8');
        let text = '';
        res.on('data', (d) => { text += d; });
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${pathAndQuery}: no answer in ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /**
   * Publishes one event with a raw body; returns the id the hub assigned.
   * `topic` may be an array (one event on several topics).
   */
  async publish(topic, data, { type, id, retry } = {}) {
    const q = new URLSearchParams();
    for (const t of [].concat(topic)) q.append('topic', t);
    if (type !== undefined) q.set('type', type);
    if (id !== undefined) q.set('id', id);
    if (retry !== undefined) q.set('retry', String(retry));
    const res = await this.request('POST', `/publish?${q}`, {
      body: Buffer.from(data, 'utf8'),
      headers: { 'content-type': 'application/octet-stream' },
    });
    return expectId(res, `POST /publish?${q}`);
  }

  /** Publishes a JSON batch (array of {topic, data, type?}); returns the ids. */
  async publishJson(events) {
    const res = await this.request('POST', '/publish', {
      body: JSON.stringify(events),
      headers: { 'content-type': 'application/json' },
    });
    if (res.status !== 200) throw new Error(`POST /publish (JSON batch): status ${res.status}: ${res.body}`);
    const parsed = JSON.parse(res.body);
    if (!Array.isArray(parsed)) throw new Error(`POST /publish (JSON batch): expected an array, got ${res.body}`);
    return parsed.map((r) => r.id);
  }
}

function expectId(res, what) {
  if (res.status !== 200) throw new Error(`${what}: status ${res.status}: ${res.body}`);
  let parsed;
  try { parsed = JSON.parse(res.body); } catch { throw new Error(`${what}: body is not JSON: ${res.body}`); }
  if (typeof parsed?.id !== 'string' || parsed.id === '') throw new Error(`${what}: no id in ${res.body}`);
  return parsed.id;
}

// ---------------------------------------------------------------- ids

/** Hub ids are `<hex epoch>-<decimal seq>`. */
export const HUB_ID = /^([0-9a-f]+)-(\d+)$/;

/** Splits a hub id into `{epoch, seq}` (seq as BigInt), or throws. */
export function parseId(id) {
  const m = HUB_ID.exec(id);
  if (!m) throw new Error(`not a hub id (<hex epoch>-<seq>): ${JSON.stringify(id)}`);
  return { epoch: m[1], seq: BigInt(m[2]) };
}

// ---------------------------------------------------------------- tests

/** A unique topic name for one test, so tests never see each other's events. */
let topicCounter = 0;
export function uniqueTopic(label) {
  topicCounter += 1;
  return `/test/${label}/${process.pid}-${Date.now().toString(36)}-${topicCounter}`;
}

/**
 * `test(name, fn)` with a context that owns hubs and cleanups: `fn(ctx, t)`
 * where `ctx.startHub()` starts a hub that is killed (and its data dir removed)
 * when the test ends, and `ctx.defer(fn)` registers another cleanup. On
 * failure the error message gets the hubs' output appended.
 */
export function hubTest(name, fn, options = {}) {
  return test(name, options, async (t) => {
    const hubs = [];
    const cleanups = [];
    const ctx = {
      async startHub(options) {
        const dataDir = await mkdtemp(path.join(os.tmpdir(), 'herald-js-test-'));
        const hub = new Hub(dataDir, `hub${hubs.length + 1}`, options);
        hubs.push(hub);
        await hub.start();
        return hub;
      },
      defer(cleanup) { cleanups.push(cleanup); },
    };
    t.after(async () => {
      for (const cleanup of cleanups.reverse()) {
        try { await cleanup(); } catch (err) { console.error(`cleanup failed: ${err}`); }
      }
      for (const hub of hubs) {
        await hub.dispose();
        if (!process.env.HERALD_KEEP_DATA) await rm(hub.dataDir, { recursive: true, force: true });
      }
    });
    try {
      await fn(ctx, t);
    } catch (err) {
      const logs = hubs.map((h) => `--- ${h.name} (data dir ${h.dataDir}) ---\n${h.log}`).join('\n');
      if (err && typeof err === 'object' && logs) {
        try { err.message = `${err.message}\n${logs}`; } catch { /* read-only message */ }
      }
      throw err;
    }
  });
}

// ---------------------------------------------------------------- browser

const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';

/** Debian's Chromium, headless, closed when the test ends. */
export async function launchBrowser(ctx, { args = [] } = {}) {
  const { existsSync } = await import('node:fs');
  const { chromium } = await import('playwright-core');
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (scripts/test does)`);
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', ...args],
    timeout: 60_000,
  });
  ctx.defer(() => browser.close());
  return browser;
}
