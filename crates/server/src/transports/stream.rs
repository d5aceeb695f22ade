//! Long-lived streams (`GET /sse`, `GET /stream`), whatever their [`Format`].
//!
//! Two ways in, one set of frames:
//! - the **lean path** ([`serve_lean`]): the first request on a connection. The
//!   head was parsed into a small buffer that is already gone; the stream then
//!   runs in its own task ([`run_stream`]) holding the socket, the subscription,
//!   the format and a ticker receiver, writing each event's shared bytes and
//!   coalescing pending events into one `writev`;
//! - through **hyper** ([`serve_hyper`]): a stream requested on a keep-alive
//!   connection hyper already serves. Same frames, a streaming body.

use std::convert::Infallible;
use std::future::Future;
use std::io::ErrorKind;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use herald_core::{Event, Selector, Subscription, SubscriptionEnd};
use hyper::HeaderMap;

use crate::auth;
use crate::cors;
use crate::head::StreamRequest;
use crate::limits::Slot;
use crate::listener::Shared;
use crate::operations::{OpenStream, Opening};
use crate::query::Query;
use crate::rejection::Rejection;
use crate::ticker;
use crate::transports::format::Format;
use crate::transports::write::{self, MAX_COALESCE, WriteError};

/// An accepted stream: its format, its subscription, and when its token
/// expires (the stream ends then).
struct Accepted {
    format: Format,
    sub: Subscription,
    deadline: Option<tokio::time::Instant>,
    /// What the connection registry records about it.
    opening: Opening,
}

/// Turns a request into a format and an authorized subscription (`accept`).
async fn accept(
    path: &str,
    query: Option<&str>,
    last_event_id: Option<&str>,
    headers: &HeaderMap,
    shared: &Shared,
) -> Result<Accepted, Rejection> {
    let access = auth::access(&shared.opts, headers, query)?;
    let q = Query::parse(query);
    let format = Format::for_request(path, &q, &shared.opts)?;
    let limits = shared.hub.limits();
    let topics = q.topics(limits)?;
    access.may_subscribe(&shared.opts, &topics)?;
    let resume = q.resume(last_event_id)?;
    let mut sub = shared
        .hub
        .subscribe(&Selector::exact(topics.iter().cloned()), resume)
        .await?;
    if let Some(filter) = access.private_filter() {
        sub.set_private_filter(filter);
    }
    Ok(Accepted {
        format,
        sub,
        deadline: access.deadline(),
        opening: access.opening(topics),
    })
}

/// Accepts one stream on the lean path: answers the request, then hands the
/// socket and subscription to a fresh task ([`run_stream`]) whose future holds
/// only what an open stream needs.
pub async fn serve_lean(
    mut stream: TcpStream,
    req: StreamRequest,
    slot: Arc<Slot>,
    shared: Arc<Shared>,
) {
    let accepted = accept(
        &req.path,
        req.query.as_deref(),
        req.last_event_id.as_deref(),
        &req.headers,
        &shared,
    )
    .await;
    let verdict = cors::verdict(&shared.opts, &req.headers);
    drop(req);
    let Accepted {
        format,
        sub,
        deadline,
        mut opening,
    } = match accepted {
        Ok(x) => x,
        Err(rej) => {
            shared.ops.telemetry.refused(rej.status, rej.code);
            let _ = stream.write_all(&rej.to_http1()).await;
            let _ = stream.shutdown().await;
            return;
        }
    };
    let mut head = String::from("HTTP/1.1 200 OK\r\n");
    for (k, v) in format.headers() {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if sub.reset().is_some() {
        head.push_str("Herald-Resume: reset\r\n");
    }
    for (k, v) in cors::lean_headers(&verdict) {
        head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or_default()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let pre = format.preamble(&sub, &shared.opts);
    let frames: [&[u8]; 2] = [head.as_bytes(), &pre];
    if write::write_all(
        &stream,
        &frames,
        shared.opts.write_timeout,
        &shared.shutdown,
    )
    .finish()
    .await
    .is_ok()
    {
        let tracker = shared.tracker.clone();
        let expiry = deadline.map(|at| Box::pin(tokio::time::sleep_until(at)));
        opening.peer = stream.peer_addr().ok();
        let open = shared.stream_guard(format.transport(), opening);
        tracker.spawn(run_stream(stream, sub, format, expiry, slot, open));
    }
}

/// An open lean stream: delivers until the stream ends, then closes the socket.
pub(crate) fn run_stream(
    stream: TcpStream,
    sub: Subscription,
    format: Format,
    expiry: Option<Expiry>,
    slot: Arc<Slot>,
    open: OpenStream,
) -> impl Future<Output = ()> + Send {
    let mut lean = LeanStream {
        stream,
        sub,
        format,
        expiry,
        open,
        _slot: slot,
    };
    // Built from a struct used in place: an `async fn` taking these as
    // arguments would store them twice in its future.
    async move { lean.run().await }
}

/// What an open lean stream holds, and nothing else.
struct LeanStream {
    stream: TcpStream,
    sub: Subscription,
    format: Format,
    /// Fires at the token's `exp` (boxed: most streams have none).
    expiry: Option<Expiry>,
    /// Counts and registers the stream until it is dropped; holds the shared state.
    open: OpenStream,
    /// Counts the connection against the connection limits.
    _slot: Arc<Slot>,
}

impl LeanStream {
    async fn run(&mut self) {
        let end = match self.expiry.take() {
            None => deliver(&self.stream, &mut self.sub, &self.format, &self.open).await,
            // Boxed: only streams opened with an expiring token pay for the timer.
            Some(expiry) => {
                let work = deliver(&self.stream, &mut self.sub, &self.format, &self.open);
                Box::pin(until_expiry(expiry, work)).await
            }
        };
        let shared = self.open.shared();
        shared.stats.stream_ended(&end);
        if matches!(end, End::Shutdown | End::Kicked) && matches!(self.format, Format::Sse) {
            // Best effort and without waiting: the last block was complete, so
            // the client resumes cleanly whether or not this arrives.
            let _ = self.stream.try_write(&goodbye(shared, &end));
        }
        self.open.closed(end.reason());
    }
}

/// Why a stream ended.
#[derive(Debug)]
pub enum End {
    /// The client went away.
    PeerClosed,
    /// The client did not read for the whole write timeout.
    Stalled,
    /// The server is shutting down.
    Shutdown,
    /// The format's byte budget is spent; the client reopens from its last id.
    Budget,
    /// The subscription ended (fell behind retention, store failure).
    Subscription(SubscriptionEnd),
    /// The token the stream was opened with expired.
    Expired,
    /// An administrator disconnected it (`POST /admin/connections/{id}/disconnect`).
    Kicked,
}

impl End {
    /// Why, in the connection log's words.
    pub fn reason(&self) -> &'static str {
        match self {
            End::PeerClosed => "client_closed",
            End::Stalled => "slow_subscriber",
            End::Shutdown => "shutdown",
            End::Budget => "byte_budget",
            End::Subscription(SubscriptionEnd::Closed) => "shutdown",
            End::Subscription(_) => "subscription_ended",
            End::Expired => "token_expired",
            End::Kicked => "disconnected_by_admin",
        }
    }
}

/// What an SSE stream ending by shutdown, drain or an admin says last: while
/// draining, a `retry:` hint so clients reconnect (to another node) soon.
fn goodbye(shared: &Shared, end: &End) -> Vec<u8> {
    match end {
        End::Kicked => b": disconnected by an administrator\n\n".to_vec(),
        _ if shared.ops.draining() => format!(
            "retry: {}\n: herald is draining; reconnect to resume on another node\n\n",
            shared.opts.drain_retry_ms
        )
        .into_bytes(),
        _ => b": herald is shutting down; reconnect to resume\n\n".to_vec(),
    }
}

/// A timer that fires when a stream's token expires.
pub type Expiry = Pin<Box<tokio::time::Sleep>>;

/// Runs `work` until `expiry` fires.
async fn until_expiry(expiry: Expiry, work: impl Future<Output = End>) -> End {
    tokio::select! {
        biased;
        () = expiry => End::Expired,
        end = work => end,
    }
}

/// Waits for `expiry`, or forever when there is none.
fn expired(expiry: &mut Option<Expiry>) -> impl Future<Output = ()> + '_ {
    std::future::poll_fn(move |cx| match expiry {
        Some(sleep) => sleep.as_mut().poll(cx),
        None => std::task::Poll::Pending,
    })
}

/// The `deliver` loop: events, heartbeats, shutdown and peer close, until one ends it.
///
/// Every future it waits on is kept small on purpose: this loop is what an
/// idle subscriber costs (see the `tasks_stay_small` test).
pub(crate) async fn deliver(
    stream: &TcpStream,
    sub: &mut Subscription,
    format: &Format,
    open: &OpenStream,
) -> End {
    let mut ticks = open.shared().ticks.clone();
    ticks.mark_unchanged();
    if open.shared().shutdown.is_cancelled() {
        return End::Shutdown;
    }
    let mut wrote_since_tick = false;
    let mut spent = 0usize;
    let (timeout, stop) = (open.shared().opts.write_timeout, &open.shared().shutdown);
    loop {
        let events: Vec<Arc<Event>> = tokio::select! {
            biased;
            r = ticks.changed() => {
                let tick = *ticks.borrow_and_update();
                if r.is_err() || tick == ticker::SHUTDOWN {
                    return End::Shutdown;
                }
                if open.is_kicked() {
                    return End::Kicked;
                }
                if ticker::is_heartbeat(tick) && !std::mem::take(&mut wrote_since_tick) {
                    let beat: [&[u8]; 1] = [format.heartbeat()];
                    if let Err(e) = write::write_all(stream, &beat, timeout, stop).finish().await {
                        return e.into();
                    }
                }
                continue;
            }
            r = sub.next() => match r {
                Ok(first) => gather(first, sub),
                Err(SubscriptionEnd::Closed) => return End::Shutdown,
                Err(e) => return End::Subscription(e),
            },
            // Readable on a push stream means the client left (or sent junk).
            r = std::future::poll_fn(|cx| stream.poll_read_ready(cx)) => {
                let mut scratch = [0u8; 64];
                match r.and_then(|()| stream.try_read(&mut scratch)) {
                    Ok(0) => return End::PeerClosed,
                    Err(e) if e.kind() != ErrorKind::WouldBlock => return End::PeerClosed,
                    _ => continue,
                }
            }
        };
        let mut slices: Vec<&[u8]> = Vec::with_capacity(events.len() * 3);
        for ev in &events {
            format.push_frames(ev, &mut slices);
        }
        if let Err(e) = write::write_all(stream, &slices, timeout, stop)
            .finish()
            .await
        {
            return e.into();
        }
        open.delivered(events.len());
        wrote_since_tick = true;
        if let Some(budget) = format.budget() {
            spent += slices.iter().map(|s| s.len()).sum::<usize>();
            if spent >= budget {
                return End::Budget;
            }
        }
    }
}

/// The first ready event and whatever else is ready, up to [`MAX_COALESCE`].
fn gather(first: Arc<Event>, sub: &mut Subscription) -> Vec<Arc<Event>> {
    let mut events = Vec::with_capacity(8);
    events.push(first);
    while events.len() < MAX_COALESCE {
        match sub.try_next() {
            Some(ev) => events.push(ev),
            None => break,
        }
    }
    events
}

impl From<WriteError> for End {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Io(_) => End::PeerClosed,
            WriteError::Stalled => End::Stalled,
            WriteError::Shutdown => End::Shutdown,
        }
    }
}

/// The body type of hyper routes.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Serves a stream through hyper (a keep-alive connection's later request).
pub async fn serve_hyper(
    req: Request<hyper::body::Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Rejection> {
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let Accepted {
        format,
        sub,
        deadline,
        mut opening,
    } = accept(
        req.uri().path(),
        req.uri().query(),
        last_event_id,
        req.headers(),
        &shared,
    )
    .await?;
    opening.peer = req
        .extensions()
        .get::<crate::listener::ConnInfo>()
        .map(|c| c.peer);
    let mut resp = Response::builder();
    for (k, v) in format.headers() {
        resp = resp.header(*k, *v);
    }
    if sub.reset().is_some() {
        resp = resp.header("Herald-Resume", "reset");
    }
    let preamble = format.preamble(&sub, &shared.opts);
    let open = shared.stream_guard(format.transport(), opening);
    let body = hyper_body(preamble, format, sub, deadline, &shared, open, None);
    resp.body(body).map_err(|e| {
        Rejection::new(
            hyper::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e.to_string(),
        )
    })
}

/// A stream body served through hyper: `preamble`, then `sub`'s events in
/// `format`, heartbeats, until the client leaves, `deadline` passes or the
/// server shuts down. `open` is its connection-registry entry; `keep` lives
/// as long as the body (a protocol's guard).
pub(crate) fn hyper_body(
    preamble: Bytes,
    format: Format,
    sub: Subscription,
    deadline: Option<tokio::time::Instant>,
    shared: &Arc<Shared>,
    open: OpenStream,
    keep: Option<Box<dyn Send>>,
) -> Body {
    let state = HyperStream {
        preamble: Some(preamble),
        open,
        ending: None,
        ticks: {
            let mut t = shared.ticks.clone();
            t.mark_unchanged();
            t
        },
        wrote_since_tick: false,
        spent: 0,
        expiry: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
        format,
        sub,
        _keep: keep,
    };
    StreamBody::new(stream::unfold(state, HyperStream::next_frame)).boxed_unsync()
}

/// The state of a stream body served through hyper.
struct HyperStream {
    /// Sent first, then `None`.
    preamble: Option<Bytes>,
    /// Keeps the stream counted and registered until the body is dropped.
    open: OpenStream,
    /// Why the stream is ending, once it is (its last frame may still be sent).
    ending: Option<&'static str>,
    ticks: tokio::sync::watch::Receiver<u64>,
    wrote_since_tick: bool,
    /// Bytes sent, against the format's budget.
    spent: usize,
    /// Fires at the token's `exp`.
    expiry: Option<Expiry>,
    format: Format,
    sub: Subscription,
    /// Dropped with the body (see [`hyper_body`]).
    _keep: Option<Box<dyn Send>>,
}

impl HyperStream {
    /// The next body frame, or `None` to end the stream. Cancel-safe.
    async fn next_frame(mut self) -> Option<(Result<Frame<Bytes>, Infallible>, Self)> {
        if let Some(pre) = self.preamble.take() {
            return Some((Ok(Frame::data(pre)), self));
        }
        if self.ending.is_some() {
            return None;
        }
        if self.format.budget().is_some_and(|b| self.spent >= b) {
            self.ending = Some(End::Budget.reason());
            return None;
        }
        loop {
            tokio::select! {
                biased;
                r = self.ticks.changed() => {
                    let tick = *self.ticks.borrow_and_update();
                    let end = if r.is_err() || tick == ticker::SHUTDOWN {
                        Some(End::Shutdown)
                    } else if self.open.is_kicked() {
                        Some(End::Kicked)
                    } else {
                        None
                    };
                    if let Some(end) = end {
                        self.ending = Some(end.reason());
                        if !matches!(self.format, Format::Sse) {
                            return None;
                        }
                        let bye = Bytes::from(goodbye(self.open.shared(), &end));
                        return Some((Ok(Frame::data(bye)), self));
                    }
                    if ticker::is_heartbeat(tick) && !std::mem::take(&mut self.wrote_since_tick) {
                        let beat = Bytes::from_static(self.format.heartbeat());
                        return Some((Ok(Frame::data(beat)), self));
                    }
                }
                () = expired(&mut self.expiry) => {
                    self.ending = Some(End::Expired.reason());
                    return None;
                }
                r = self.sub.next() => {
                    let Ok(first) = r else {
                        self.ending = Some("subscription_ended");
                        return None;
                    };
                    let mut buf = Vec::new();
                    let mut slices = Vec::new();
                    let events = gather(first, &mut self.sub);
                    for ev in &events {
                        self.format.push_frames(ev, &mut slices);
                    }
                    for s in &slices {
                        buf.extend_from_slice(s);
                    }
                    drop(slices);
                    self.open.delivered(events.len());
                    self.spent += buf.len();
                    self.wrote_since_tick = true;
                    return Some((Ok(Frame::data(Bytes::from(buf))), self));
                }
            }
        }
    }
}

impl Drop for HyperStream {
    fn drop(&mut self) {
        // A body dropped before it ended: hyper saw the client go.
        let reason = self.ending.unwrap_or(End::PeerClosed.reason());
        self.open.closed(reason);
    }
}
