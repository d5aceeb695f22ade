// Types for herald.js, Herald's browser client (served by every hub at
// /herald.js, these types at /herald.d.ts). The wire contract is
// docs/PROTOCOL.md.

/** A way to reach the hub: WebSocket, EventSource, long-polling with fetch, JSONP script tags. */
export type Transport = 'ws' | 'sse' | 'poll' | 'jsonp';

/** The transports in the default order of preference. */
export declare const TRANSPORTS: readonly Transport[];

/**
 * `connecting` until a transport works for the first time, `open` while one
 * does, `reconnecting` after it dropped (including the back-off wait),
 * `closed` after `close()`.
 */
export type State = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** A token, or a function returning one (called before every connection, so it can refresh). */
export type TokenSource = string | null | undefined | (() => string | null | undefined | Promise<string | null | undefined>);

export interface HeraldEvent {
  /** The event's id: where a subscription resumes from. */
  id: string;
  /**
   * The event's canonical (first) topic. EventSource does not carry topics:
   * on `sse` it is the subscribed topic when there is one, else `null`.
   */
  topic: string | null;
  /** The publisher's event type, when it set one. */
  type?: string;
  /** The payload, as published (on `sse`, CR and CRLF line breaks arrive as LF). */
  data: string;
  /** The publisher's reconnection hint, in ms (not on `sse`). */
  retry?: number;
}

export interface ResetInfo {
  /**
   * Why continuity is broken: the hub's `epoch`, `unknown` or `expired` (see
   * docs/PROTOCOL.md), or `no_position`: a connection dropped before any event
   * or position arrived, so events published while it was down may be missing.
   */
  reason: 'epoch' | 'unknown' | 'expired' | 'no_position' | (string & {});
  /** Where delivery continues from (null for `no_position` before anything arrived). */
  lastEventId: string | null;
}

export interface StateChange {
  state: State;
  transport: Transport | null;
}

export interface SubscribeOptions {
  /** Called once per event, in order. */
  onEvent?: (event: HeraldEvent) => void;
  /** Called when the hub could not resume from the position asked (events may be missing). */
  onReset?: (reset: ResetInfo) => void;
  onStateChange?: (change: StateChange) => void;
  /** Every failure, including those the client recovers from by reconnecting. */
  onError?: (error: HeraldError) => void;
  /** Transports to try, in order. Default `['ws', 'sse', 'poll', 'jsonp']`. */
  transports?: readonly Transport[];
  /** Resume after this id (stored from an earlier `lastEventId`) instead of starting live. */
  lastEventId?: string | null;
  /**
   * The token. `poll` sends it as `Authorization: Bearer`. WebSocket,
   * EventSource and script tags cannot send headers: they rely on the
   * `herald_token` cookie unless `tokenInQuery` is set.
   */
  token?: TokenSource;
  /**
   * Send the token as `?access_token=` on `ws`, `sse` and `jsonp`. Only for
   * hubs with `token_query = true` (others refuse such requests with
   * `token_in_url_disabled`); tokens in URLs end up in logs.
   */
  tokenInQuery?: boolean;
  /**
   * Send cookies on cross-origin `sse` (`new EventSource(url, {withCredentials: true})`)
   * and `poll` requests: the page's origin must be in the hub's `cors_origins`.
   */
  withCredentials?: boolean;
  /**
   * `sse` only: the event types to receive. An EventSource hands typed events
   * only to listeners for their type, so typed events not listed here are not
   * delivered on `sse` (untyped events always are).
   */
  eventTypes?: readonly string[];
  /** First back-off ceiling, ms (default 500); doubles per failure... */
  backoffInitialMs?: number;
  /** ...up to this ceiling, ms (default 30000). Each delay is uniform in [0, ceiling). */
  backoffMaxMs?: number;
  /** Failed reconnections in a row on a transport that worked before the list is tried again (default 4). */
  fallbackAfter?: number;
  /** A connection that does not work within this many ms fails (default 10000; 0: no limit). */
  connectTimeoutMs?: number;
  /** How long the hub may hold a poll, s (default 25; capped by the hub's `poll_timeout_max_secs`). */
  pollTimeoutSecs?: number;
  /** `ws`: send a ping this often, ms, and reconnect after twice as long without a word (default 30000; 0: off). */
  heartbeatMs?: number;
}

export interface Subscription {
  /** The transport in use or being tried; null once closed. */
  readonly transport: Transport | null;
  /** Where the subscription resumes from: the last event's id, a reset's, or a poll cursor. */
  readonly lastEventId: string | null;
  readonly state: State;
  readonly topics: readonly string[];
  readonly hubUrl: string;
  /** Stops for good: the connection is closed; after onStateChange reports `closed`, no callback runs. */
  close(): void;
}

export interface PublishOptions {
  /** The event type (`event:` on SSE). */
  type?: string;
  /** A publisher-chosen id (must be unique; see docs/PROTOCOL.md). */
  id?: string;
  /** The `retry:` hint for SSE clients, ms. */
  retry?: number;
  /** Deliver only to subscribers whose token covers one of the topics. */
  private?: boolean;
  /** Sent as `Authorization: Bearer`. */
  token?: TokenSource;
  /** Send cookies on a cross-origin publish (the page's origin must be in `cors_origins`). */
  withCredentials?: boolean;
  signal?: AbortSignal;
}

export declare class HeraldError extends Error {
  constructor(message: string, init?: { status?: number; code?: string; transport?: Transport; cause?: unknown });
  /** HTTP status of a refused request, or a WebSocket close code. */
  readonly status?: number;
  /** The hub's error code (`invalid_topic`, `forbidden`, `token_expired`, …). */
  readonly code?: string;
  readonly transport?: Transport;
}

/**
 * Subscribes to `topics` (a topic or an array of them) on the hub at `hubUrl`
 * (its base URL, e.g. `https://hub.example`), with the first transport that
 * works; reconnects with exponential back-off and full jitter, resuming from
 * the last id.
 */
export declare function subscribe(hubUrl: string | URL, topics: string | readonly string[], options?: SubscribeOptions): Subscription;

/**
 * Publishes one event (`POST /publish`, JSON) to a topic or several. `data`
 * that is not a string is sent as its JSON text. Resolves with the event's id
 * once the hub stored it; rejects with a `HeraldError` (with the hub's `code`).
 * A cross-origin page needs its origin in the hub's `cors_origins`.
 */
export declare function publish(hubUrl: string | URL, topic: string | readonly string[], data: unknown, options?: PublishOptions): Promise<{ id: string }>;

declare const herald: {
  readonly subscribe: typeof subscribe;
  readonly publish: typeof publish;
  readonly HeraldError: typeof HeraldError;
  readonly TRANSPORTS: typeof TRANSPORTS;
};
export default herald;
