//! Herald's HTTP server.
//!
//! # Layout
//!
//! - [`listener`]: the accept loop. Each connection's request head is read into a
//!   small buffer ([`head`]) and routed: long-lived streams (`GET /sse`, `GET /stream`,
//!   `GET /.well-known/mercure`) take the
//!   lean path, everything else is handed to hyper with the bytes already read
//!   replayed in front of the socket ([`prefixed`]).
//! - [`routes`]: hyper's request/response routes (publishing, health, 404s).
//! - [`publish`]: turns native publish requests (raw body or JSON) into drafts.
//! - [`transports`]: one module per push technique; each offers the same verbs
//!   (`accept` a request into a subscription, `deliver` events, `close`).
//! - [`protocols`]: other hubs' protocols at the edge: Bayeux 1.0 (CometD,
//!   Faye) at `/bayeux`, its sessions and transports.
//! - [`query`]: query-string parsing shared by every route.
//! - [`rejection`]: every error becomes an HTTP response here, in one place.
//! - [`metrics`]: `/metrics` and `/readyz`, built at scrape time from the counters.
//! - [`operations`]: the connection registry (lifecycle logs, admin
//!   disconnects, presence), telemetry for `/metrics`, draining.
//! - [`ticker`]: the shared heartbeat clock (no timer per connection).
//! - [`options`]: what the server needs to know, already validated.
//! - [`tls`]: rustls configuration (ALPN `h2`, `http/1.1`) and a certificate
//!   reloaded from its files while the server runs. TLS connections skip the
//!   lean path: after the handshake hyper serves HTTP/2 or HTTP/1.1
//!   (`listener/tls.rs`).
//! - [`webhooks`]: the WebSub hub (`/websub`) and webhook API (`/webhooks`):
//!   durable subscriptions whose workers POST each event to a callback, in
//!   order, with retries, back-off, demotion, eviction and an SSRF guard.
//! - [`protocols`]: other protocols' front doors as thin adapters over the hub
//!   ([`protocols::mercure`]: publish form, subscribe, tokens, subscriptions API).
//! - [`web`]: files embedded in the binary: the browser client (`web/herald.js`)
//!   at `/herald.js`, `/openapi.json`, and the dashboard (`web/dashboard/`) at `/`.
//!
//! Data flow: socket → [`head`] → route → [`herald_core::Hub`] → transport writer → socket.

pub mod auth;
pub mod cors;
pub mod head;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod operations;
pub mod options;
pub mod prefixed;
pub mod protocols;
pub mod publish;
pub mod query;
pub mod rejection;
pub mod routes;
pub mod ticker;
pub mod tls;
pub mod transports;
pub mod web;
pub mod webhooks;

pub use listener::{Server, serve};
pub use options::ServerOptions;

/// Milliseconds since the Unix epoch, the time stamped on accepted events.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
