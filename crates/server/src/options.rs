//! Runtime options of the server, validated by the caller (the CLI's config layer).

use std::time::Duration;

use crate::tls::Tls;

/// What the server needs to know. Every limit here is configurable.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Development mode: anyone may publish and subscribe.
    pub dev: bool,
    /// Interval of heartbeat comments on idle streams.
    pub heartbeat: Duration,
    /// Reconnection delay sent to SSE clients (jittered ±20% per connection).
    pub sse_retry_ms: u32,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Time allowed for a client to send its request head.
    pub header_timeout: Duration,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Time a stream may wait on a client that does not read before it is
    /// disconnected (it then resumes with Last-Event-ID and loses nothing).
    pub write_timeout: Duration,
    /// Time allowed for draining streams and requests at shutdown.
    pub shutdown_grace: Duration,
    /// Longest a long-poll is held (a client's `timeout` is capped to it).
    pub poll_timeout_max: Duration,
    /// Most events one poll answer carries (a client's `max` is capped to it).
    pub poll_max_events: usize,
    /// Bytes after which a forever-iframe stream ends, so the page's DOM stays
    /// bounded; the page reopens it from its last id.
    pub iframe_max_bytes: usize,
    /// Largest WebSocket message a client may send, in bytes (larger: close 1009).
    pub ws_max_message: usize,
    /// Serve `GET /ws/echo`, an echo endpoint on the production WebSocket
    /// stack for conformance suites. Off unless asked for.
    pub ws_echo: bool,
    /// Longest a BOSH request is held (a session's `wait` is capped to it).
    pub bosh_wait_max: Duration,
    /// Most BOSH requests a session may have held at once.
    pub bosh_hold_max: usize,
    /// Time with no request held after which a BOSH session ends.
    pub bosh_inactivity: Duration,
    /// Shortest interval between empty polls in a polling BOSH session.
    pub bosh_polling: Duration,
    /// Most BOSH sessions open at once.
    pub bosh_max_sessions: usize,
    /// Token verification and the anonymous policy.
    pub auth: crate::auth::AuthOptions,
    /// Origins whose pages may use the hub cross-origin (`*`: any, without
    /// credentials). Empty: same-origin pages only.
    pub cors_origins: Vec<String>,
    /// Most connections open at once (more: 503).
    pub max_connections: usize,
    /// Most connections open at once from one client address (more: 429).
    pub max_connections_per_address: usize,
    /// Events per second one client address may publish (0: no limit; off in dev).
    pub publish_rate_per_address: u32,
    /// Events per second one token may publish (0: no limit; off in dev).
    pub publish_rate_per_token: u32,
    /// TLS (the loaded certificate, and the files it is reloaded from);
    /// `None` serves plain TCP.
    pub tls: Option<Tls>,
    /// Webhooks and the WebSub hub: leases, timeouts, concurrency, back-off,
    /// eviction, signatures, the SSRF guard.
    pub webhooks: crate::webhooks::WebhookOptions,
    /// Most Bayeux sessions open at once (more: the handshake fails with 503).
    pub bayeux_max_sessions: usize,
    /// Longest a Bayeux `/meta/connect` is held; advertised as `advice.timeout`.
    pub bayeux_connect_timeout: Duration,
    /// Time a Bayeux session lives with no connect held (CometD's `maxInterval`).
    pub bayeux_max_interval: Duration,
    /// Most Bayeux messages in one request or WebSocket frame.
    pub bayeux_max_messages: usize,
    /// Most subscriptions one Bayeux session may hold.
    pub bayeux_max_subscriptions: usize,
    /// Most events delivered in one Bayeux response or frame; the rest wait in
    /// the hub's rings and history for the next one.
    pub bayeux_max_deliveries: usize,
    /// The Mercure front door at `/.well-known/mercure` (docs/PROTOCOL.md, Mercure).
    pub mercure: crate::protocols::mercure::MercureOptions,
    // Operations (`operations.rs`).
    /// Reconnection delay (`retry:`) sent to SSE streams ended by a drain, in ms.
    pub drain_retry_ms: u32,
    /// Publish join and leave events on `$herald/presence/<topic>`.
    pub presence_events: bool,
    /// Interval of the `$herald/stats` snapshot (zero: off).
    pub stats_interval: Duration,
    /// Most items one admin listing returns (a client's `limit` is capped to it).
    pub admin_page_max: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            dev: false,
            heartbeat: Duration::from_secs(15),
            sse_retry_ms: 3000,
            max_header_bytes: 8192,
            header_timeout: Duration::from_secs(10),
            max_body_bytes: 1024 * 1024 + 64 * 1024,
            write_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            poll_timeout_max: Duration::from_secs(30),
            poll_max_events: 1000,
            iframe_max_bytes: 128 * 1024,
            ws_max_message: 1024 * 1024 + 64 * 1024,
            ws_echo: false,
            bosh_wait_max: Duration::from_secs(60),
            bosh_hold_max: 2,
            bosh_inactivity: Duration::from_secs(60),
            bosh_polling: Duration::from_secs(2),
            bosh_max_sessions: 10_000,
            auth: Default::default(),
            cors_origins: Vec::new(),
            max_connections: 50_000,
            max_connections_per_address: 1_000,
            publish_rate_per_address: 5_000,
            publish_rate_per_token: 1_000,
            tls: None,
            webhooks: Default::default(),
            bayeux_max_sessions: 10_000,
            bayeux_connect_timeout: Duration::from_secs(25),
            bayeux_max_interval: Duration::from_secs(10),
            bayeux_max_messages: 100,
            bayeux_max_subscriptions: 100,
            bayeux_max_deliveries: 100,
            mercure: Default::default(),
            drain_retry_ms: 1000,
            presence_events: false,
            stats_interval: Duration::from_secs(1),
            admin_page_max: 1000,
        }
    }
}
