//! The accept loop, per-connection dispatch, and graceful shutdown.
//!
//! Shutdown (STYLE.md 9): when the token fires the loop stops accepting, every
//! stream ends after a complete block (clients reconnect and resume), hyper
//! connections finish their in-flight requests, and [`Server::run`] waits for
//! all of it up to the grace deadline.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use herald_core::Hub;

use crate::head::{self, HeadError, Route};
use crate::limits::{Connections, PublishLimits, Slot};
use crate::options::ServerOptions;
use crate::prefixed::Prefixed;
use crate::rejection::Rejection;
use crate::transports::stream::{End, serve_lean};
use crate::{routes, ticker};

/// State shared by every connection.
pub struct Shared {
    /// The hub every route publishes to and subscribes from.
    pub hub: Hub,
    /// Validated options.
    pub opts: ServerOptions,
    /// Fires at shutdown; every endless loop watches it.
    pub shutdown: CancellationToken,
    /// The shared heartbeat clock.
    pub ticks: watch::Receiver<u64>,
    /// Connection and stream counters.
    pub stats: Stats,
    /// Every connection and stream task, so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Open BOSH sessions.
    pub bosh: crate::transports::bosh::Registry,
    /// Open connections, in total and per client address.
    pub connections: Arc<Connections>,
    /// Publish rate limits.
    pub publish_limits: PublishLimits,
    /// Webhook subscriptions and their delivery workers.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// Open Bayeux sessions.
    pub bayeux: crate::protocols::bayeux::Registry,
    /// Mercure's compiled selectors and active subscriptions.
    pub mercure: crate::protocols::mercure::State,
    /// Operations: connection registry, telemetry, draining (`operations.rs`).
    pub ops: crate::operations::Ops,
}

/// What hyper routes know about their connection (a request extension).
#[derive(Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The connection's slot: a route that outlives the connection's HTTP
    /// life (a WebSocket session) keeps a clone so it stays counted.
    pub slot: Arc<Slot>,
}

/// How a subscriber is served (a metrics label; never a topic or a client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `GET /sse`.
    Sse,
    /// `GET /stream` (NDJSON).
    Ndjson,
    /// `GET /stream?format=iframe`.
    Iframe,
    /// `GET /poll` (held long-polls).
    Poll,
    /// `GET /ws` (WebSocket sessions).
    Ws,
    /// `POST /bosh` (BOSH sessions).
    Bosh,
}

impl Transport {
    /// Every transport, in [`Stats::open_streams`] order.
    pub const ALL: [Transport; 6] = [
        Transport::Sse,
        Transport::Ndjson,
        Transport::Iframe,
        Transport::Poll,
        Transport::Ws,
        Transport::Bosh,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::Ndjson => "ndjson",
            Transport::Iframe => "iframe",
            Transport::Poll => "poll",
            Transport::Ws => "ws",
            Transport::Bosh => "bosh",
        }
    }
}

/// Counters the server keeps; `metrics.rs` exports them with the hub's and
/// the store's at scrape time, so the hot path only bumps atomics.
#[derive(Default)]
pub struct Stats {
    /// Streams (and held polls) currently open, per [`Transport::ALL`].
    pub open_streams: [AtomicI64; 6],
    /// Events accepted by publishing.
    pub published: AtomicU64,
    /// Streams ended because the client did not read (slow subscribers).
    pub stalled_streams: AtomicU64,
    /// Connections accepted.
    pub accepted: AtomicU64,
}

pub use crate::operations::OpenStream;

impl Stats {
    /// Records why a stream ended (slow subscribers are logged and counted).
    pub fn stream_ended(&self, end: &End) {
        if let End::Stalled = end {
            self.stalled_streams.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                "slow subscriber disconnected: it did not read within the write timeout"
            );
        }
    }
}

impl Shared {
    /// Counts, registers and logs a stream as open for as long as the guard lives.
    pub fn stream_guard(
        self: &Arc<Self>,
        transport: Transport,
        opening: crate::operations::Opening,
    ) -> OpenStream {
        OpenStream::new(self.clone(), transport, opening)
    }
}

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds nothing itself: takes a bound listener (tests bind port 0).
    /// Webhook subscriptions are kept in memory (see [`Server::with_store`]).
    pub fn new(
        listener: TcpListener,
        hub: Hub,
        opts: ServerOptions,
        shutdown: CancellationToken,
    ) -> Server {
        let store = Arc::new(herald_core::MemoryWebhookStore::default());
        Server::with_store(listener, hub, opts, shutdown, store)
    }

    /// The same, keeping webhook subscriptions in `store` (the embedded
    /// store's history file, so they survive restarts).
    pub fn with_store(
        listener: TcpListener,
        hub: Hub,
        opts: ServerOptions,
        shutdown: CancellationToken,
        store: Arc<dyn herald_core::WebhookStore>,
    ) -> Server {
        let ops = crate::operations::Ops::default();
        let ticks = ticker::start(
            opts.heartbeat,
            shutdown.clone(),
            ops.registry.tick_now.clone(),
        );
        let tracker = TaskTracker::new();
        let webhooks = crate::webhooks::Webhooks::new(
            opts.webhooks.clone(),
            store,
            hub.clone(),
            shutdown.clone(),
            tracker.clone(),
        );
        let shared = Arc::new(Shared {
            ops,
            hub,
            shutdown,
            ticks,
            stats: Stats::default(),
            tracker,
            bosh: Default::default(),
            connections: Default::default(),
            publish_limits: PublishLimits::new(&opts),
            webhooks,
            bayeux: Default::default(),
            mercure: Default::default(),
            opts,
        });
        if let Some(tls) = &shared.opts.tls {
            crate::tls::reload::spawn(tls.clone(), shared.shutdown.clone());
        }
        Server { listener, shared }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (for counters).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Accepts until shutdown, then drains within the grace period. Returns
    /// `false` if connections were still open at the deadline.
    pub async fn run(self) -> bool {
        let tracker = self.shared.tracker.clone();
        tokio::spawn(prune_limits(self.shared.clone()));
        self.shared.webhooks.start().await;
        crate::operations::spawn_tasks(&self.shared);
        loop {
            tokio::select! {
                _ = self.shared.shutdown.cancelled() => break,
                r = self.listener.accept() => match r {
                    Ok((stream, peer)) => {
                        self.shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
                        match self.shared.connections.admit(peer.ip(), &self.shared.opts) {
                            Ok(slot) => {
                                tracker.spawn(connection(stream, peer, slot, self.shared.clone()));
                            }
                            Err(rej) => {
                                tracing::debug!(%peer, error = rej.message, "connection refused");
                                tracker.spawn(refuse(stream, rej));
                            }
                        }
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(self.listener);
        tracker.close();
        let open = tracker.len();
        tracing::info!(connections = open, "shutting down: draining connections");
        tokio::time::timeout(self.shared.opts.shutdown_grace, tracker.wait())
            .await
            .is_ok()
    }
}

/// Serves on `listener` until `shutdown` fires (convenience for [`Server`]).
pub async fn serve(
    listener: TcpListener,
    hub: Hub,
    opts: ServerOptions,
    shutdown: CancellationToken,
) -> bool {
    Server::new(listener, hub, opts, shutdown).run().await
}

fn is_stream_route(method: &str, path: &str) -> bool {
    method == "GET" && matches!(path, "/sse" | "/stream")
}

/// WebSocket upgrades as a connection's first request take the lean path too
/// (`transports/ws.rs`: `serve_lean`).
fn is_websocket_route(opts: &ServerOptions, method: &str, path: &str) -> bool {
    method == "GET" && (path == "/ws" || (path == "/ws/echo" && opts.ws_echo))
}

/// Mercure subscriptions are long-lived SSE streams too: same lean path.
fn is_mercure_stream(opts: &ServerOptions, method: &str, path: &str) -> bool {
    opts.mercure.enabled && method == "GET" && path == crate::protocols::mercure::HUB_PATH
}

/// Answers a connection over a limit and closes it, without reading it.
async fn refuse(mut stream: TcpStream, rej: Rejection) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        let _ = stream.write_all(&rej.to_http1()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Forgets idle rate-limit keys on every tick, until shutdown.
async fn prune_limits(shared: Arc<Shared>) {
    let mut ticks = shared.ticks.clone();
    while ticks.changed().await.is_ok() && *ticks.borrow_and_update() != ticker::SHUTDOWN {
        shared.publish_limits.prune();
    }
}

async fn connection(mut stream: TcpStream, peer: SocketAddr, slot: Arc<Slot>, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    if shared.opts.tls.is_some() {
        // TLS skips the lean path (`listener/tls.rs`). Boxed, as below.
        return Box::pin(tls::serve(stream, ConnInfo { peer, slot }, shared)).await;
    }
    let opts = &shared.opts;
    let route = tokio::select! {
        _ = shared.shutdown.cancelled() => return,
        r = head::read(&mut stream, opts.max_header_bytes, opts.header_timeout, |m, p| {
            is_stream_route(m, p) || is_mercure_stream(opts, m, p) || is_websocket_route(opts, m, p)
        }) => r,
    };
    let rejection = match route {
        // Boxed: Mercure's accept (tokens, subscription events) must not size
        // every connection's future.
        Ok(Route::Stream(req)) if req.path == crate::protocols::mercure::HUB_PATH => {
            let serve = crate::protocols::mercure::subscribe::serve_lean(stream, req, slot, shared);
            return Box::pin(serve).await;
        }
        // Boxed: the handshake's checks must not size every connection's future.
        Ok(Route::Stream(req)) if req.path.starts_with("/ws") => {
            return Box::pin(crate::transports::ws::serve_lean(stream, req, slot, shared)).await;
        }
        Ok(Route::Stream(req)) => return serve_lean(stream, req, slot, shared).await,
        // Boxed: hyper's connection state is large and must not size every stream task.
        Ok(Route::Hyper(prefix)) => {
            let info = ConnInfo { peer, slot };
            return Box::pin(serve_hyper(Prefixed::new(prefix, stream), info, shared)).await;
        }
        Err(HeadError::Closed | HeadError::Io(_)) => return,
        Err(e @ HeadError::TooLarge(_)) => Rejection::new(
            hyper::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "header_too_large",
            e.to_string(),
        ),
        Err(e @ HeadError::Timeout(_)) => {
            Rejection::new(hyper::StatusCode::REQUEST_TIMEOUT, "timeout", e.to_string())
        }
        Err(e @ HeadError::Malformed(_)) => {
            Rejection::bad_request("malformed_request", e.to_string())
        }
    };
    tracing::debug!(%peer, error = rejection.message, "bad request head");
    let _ = stream.write_all(&rejection.to_http1()).await;
    let _ = stream.shutdown().await;
}

async fn serve_hyper(io: Prefixed<TcpStream>, info: ConnInfo, shared: Arc<Shared>) {
    let svc_shared = shared.clone();
    let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(info.clone());
        routes::handle(req, svc_shared.clone())
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.opts.header_timeout)
        .max_buf_size(shared.opts.max_header_bytes.max(8192))
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = shared.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

mod tls;

#[cfg(test)]
mod tests;
