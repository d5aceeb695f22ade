// Type-checks web/herald.d.ts against the way herald.js is used (scripts/test
// js runs `tsc -p tests/js/types`, strict). Every `@ts-expect-error` line is a
// wrong use the types must refuse: if a type decayed to `any`, the directive
// would be unused and the check would fail. `Exact` catches the same for
// values the types must describe precisely.

import herald, {
  HeraldError,
  TRANSPORTS,
  publish,
  subscribe,
  type HeraldEvent,
  type PublishOptions,
  type ResetInfo,
  type State,
  type StateChange,
  type SubscribeOptions,
  type Subscription,
  type TokenSource,
  type Transport,
} from '../../../web/herald.js';

/** `true` only when A and B are the same type (`any` equals nothing else). */
type Exact<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function exact<A, B>(_proof: Exact<A, B>): void {}

// ------------------------------------------------------------------ subscribe

const events: HeraldEvent[] = [];
const options: SubscribeOptions = {
  onEvent: (e) => {
    events.push(e);
    exact<typeof e.id, string>(true);
    exact<typeof e.topic, string | null>(true);
    exact<typeof e.type, string | undefined>(true);
    exact<typeof e.data, string>(true);
    exact<typeof e.retry, number | undefined>(true);
  },
  onReset: (r: ResetInfo) => {
    const reason: string = r.reason;
    exact<typeof r.lastEventId, string | null>(true);
    void reason;
  },
  onStateChange: ({ state, transport }: StateChange) => {
    exact<typeof state, State>(true);
    exact<typeof transport, Transport | null>(true);
  },
  onError: (err) => {
    exact<typeof err, HeraldError>(true);
    exact<typeof err.status, number | undefined>(true);
    exact<typeof err.code, string | undefined>(true);
    exact<typeof err.transport, Transport | undefined>(true);
    const m: string = err.message;
    void m;
  },
  transports: ['ws', 'sse', 'poll', 'jsonp'],
  lastEventId: null,
  token: async () => 'token',
  tokenInQuery: false,
  withCredentials: true,
  eventTypes: ['price'],
  backoffInitialMs: 100,
  backoffMaxMs: 1000,
  fallbackAfter: 2,
  connectTimeoutMs: 0,
  pollTimeoutSecs: 5,
  heartbeatMs: 0,
};

const sub: Subscription = subscribe('https://hub.example', ['/a', '/b'], options);
const one = herald.subscribe(new URL('https://hub.example'), '/a');
exact<typeof one, Subscription>(true);
exact<typeof sub.transport, Transport | null>(true);
exact<typeof sub.lastEventId, string | null>(true);
exact<typeof sub.state, State>(true);
exact<typeof sub.topics, readonly string[]>(true);
exact<ReturnType<typeof sub.close>, void>(true);
sub.close();

const tokens: TokenSource[] = ['t', null, undefined, () => 't', () => undefined, async () => null];
void tokens;
exact<typeof TRANSPORTS, readonly Transport[]>(true);
exact<typeof herald.TRANSPORTS, readonly Transport[]>(true);

// @ts-expect-error: a transport that does not exist
subscribe('https://hub.example', '/a', { transports: ['smoke-signals'] });
// @ts-expect-error: topics are strings
subscribe('https://hub.example', 42);
// @ts-expect-error: the hub URL is a string or a URL
subscribe(1234, '/a');
// @ts-expect-error: an unknown option
subscribe('https://hub.example', '/a', { onMessage: () => {} });
// @ts-expect-error: callbacks get events, not strings
subscribe('https://hub.example', '/a', { onEvent: (e: string) => e });
// @ts-expect-error: timeouts are numbers
subscribe('https://hub.example', '/a', { connectTimeoutMs: '10s' });
// @ts-expect-error: a token is a string or a function returning one
subscribe('https://hub.example', '/a', { token: 42 });
// @ts-expect-error: the state is read-only
sub.state = 'open';
// @ts-expect-error: the topics list is read-only
sub.topics.push('/c');
// @ts-expect-error: no such method
sub.reconnect();
// @ts-expect-error: TRANSPORTS is read-only
TRANSPORTS.push('ws');
// @ts-expect-error: not a state
const badState: State = 'opening';
void badState;

// ------------------------------------------------------------------ publish

async function publishing(): Promise<void> {
  const po: PublishOptions = { type: 'note', id: 'my-id', retry: 1000, private: true, token: 't', withCredentials: false };
  const r = await publish('https://hub.example', '/a', 'text', po);
  exact<typeof r, { id: string }>(true);
  const r2 = await herald.publish('https://hub.example', ['/a', '/b'], { any: 'json' }, { signal: new AbortController().signal });
  exact<typeof r2.id, string>(true);
  // @ts-expect-error: the answer has only an id
  r.seq;
  // @ts-expect-error: topics are strings
  await publish('https://hub.example', 7, 'x');
  // @ts-expect-error: retry is a number of ms
  await publish('https://hub.example', '/a', 'x', { retry: 'soon' });
  // @ts-expect-error: private is a boolean
  await publish('https://hub.example', '/a', 'x', { private: 'yes' });
  // @ts-expect-error: data is required
  await publish('https://hub.example', '/a');
  try {
    await publish('https://hub.example', '/a', 'x');
  } catch (err) {
    if (err instanceof HeraldError) {
      exact<typeof err.code, string | undefined>(true);
    }
  }
}
void publishing;

// ------------------------------------------------------------------ errors

const e = new HeraldError('refused', { status: 403, code: 'forbidden', transport: 'ws', cause: new Error('x') });
const asError: Error = e;
void asError;
exact<typeof herald.HeraldError, typeof HeraldError>(true);
// @ts-expect-error: status is a number
new HeraldError('x', { status: '403' });
// @ts-expect-error: status is read-only
e.status = 500;
// @ts-expect-error: a message is required
new HeraldError();
