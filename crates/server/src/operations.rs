//! Running Herald in production: what operators see and do.
//!
//! # Layout
//!
//! - [`registry`]: every open stream and session by id ([`OpenStream`] is the
//!   guard each one holds): the lifecycle log lines, admin listing and
//!   disconnects, presence.
//! - [`request_id`]: the id each hyper request carries in its logs and
//!   response.
//! - [`admin`]: the admin API (`/admin/…`).
//! - [`presence`]: `GET /presence`, join/leave events, the reserved
//!   `$herald/` topics; [`stats`] and [`feed`]: the stats snapshot and its
//!   `$herald/stats` feed.
//! - [`telemetry`]: counters and histograms `/metrics` reads (deliveries per
//!   transport, publish latency, auth failures).
//!
//! [`Ops`] is the one field these add to [`Shared`](crate::listener::Shared).

pub mod admin;
pub mod feed;
pub mod presence;
pub mod registry;
pub mod request_id;
pub mod stats;
pub mod telemetry;

use std::sync::atomic::{AtomicBool, Ordering};

pub use registry::{ConnId, OpenStream, Opening, Registry};
pub use telemetry::Telemetry;

/// The operational state of a running server.
#[derive(Default)]
pub struct Ops {
    /// Open connections.
    pub registry: Registry,
    /// Metrics kept by the server itself.
    pub telemetry: Telemetry,
    /// Joins and leaves waiting to be published (`presence_events`).
    pub presence: presence::Changes,
    /// Set by `POST /admin/drain`: not ready, streams told to go elsewhere.
    draining: AtomicBool,
}

/// Starts the operations layer's background tasks (they end at shutdown).
pub fn spawn_tasks(shared: &std::sync::Arc<crate::listener::Shared>) {
    tokio::spawn(feed::run(shared.clone()));
    if shared.opts.presence_events {
        tokio::spawn(presence::run_events(shared.clone()));
    }
}

impl Ops {
    /// Whether the node is draining.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Marks the node as draining.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
}
