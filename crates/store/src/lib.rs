//! Herald's embedded durable log: [`herald_core::Log`] on one [redb] file.
//!
//! # Layout
//!
//! - [`RedbLog`] (`redb_log.rs`): the handle the hub holds. It opens the data
//!   dir, starts the writer thread, sends appends to it and runs reads itself.
//! - `writer.rs`: the one writer thread. It drains every waiting command into a
//!   group, applies the group in ONE write transaction (one `fsync`), commits,
//!   publishes the new counters, hands the committed events to the
//!   [`herald_core::Fanout`] in `seq` order, then answers each appender. The same
//!   thread sweeps age retention every [`StoreOptions::trim_interval`], applies
//!   the admin API's per-topic trims in order with the appends, and times each
//!   group's apply and commit (`Log::timings`).
//! - `apply.rs`: what one append or one trim does to the tables inside that
//!   transaction; a step-for-step mirror of [`herald_core::MemoryLog`], the
//!   reference model the property tests compare against.
//! - `read.rs`: `read`, `lookup_id` and the per-topic listing on a read transaction (a snapshot), run
//!   on tokio's blocking pool, concurrently with the writer.
//! - Webhook records ([`herald_core::WebhookStore`] on [`RedbLog`]): the
//!   `webhooks` table in the same file; changes go through the writer thread
//!   (a `Records` command, committed with the group), loads read a snapshot.
//! - `tables.rs`: the seven tables and the meta record (epoch, next `seq`,
//!   global trim mark, total bytes); `codec.rs`: the postcard form of an event
//!   (also [`event_codec`], which the broker logs store in their streams).
//! - `stats.rs`: [`StoreStats`], kept in atomics by the writer so reading them
//!   costs nothing, the latency histograms and the last write's failure
//!   (readiness); `error.rs`: [`StoreError`].
//!
//! Data flow: `Hub::publish` → [`RedbLog`]`::append` → channel → writer thread
//! (group of appends → one transaction → commit + `fsync`) → `last_seq` →
//! `Fanout::deliver` → reply to each appender. Reads never wait for the writer.

#![warn(missing_docs)]

mod apply;
mod codec;
mod error;
mod read;
mod redb_log;
mod stats;
mod tables;
mod writer;

use std::time::Duration;

use herald_core::Retention;

pub use error::StoreError;
pub use redb_log::RedbLog;
pub use stats::StoreStats;

/// The stored form of an event (postcard), shared with the broker logs so an
/// event has one encoding wherever it is kept. `seq` and hub-generated ids are
/// not in the bytes: the key holds `seq`, and the id is rebuilt from the epoch.
pub mod event_codec {
    use herald_core::Event;

    use crate::error::Fault;

    fn describe(fault: Fault) -> String {
        match fault {
            Fault::Corrupt(s) | Fault::Incompatible(s) => s,
            Fault::Db(e) => e.to_string(),
        }
    }

    /// The bytes that store `ev` (its `seq` and hub id are left out).
    pub fn encode(ev: &Event) -> Result<Vec<u8>, String> {
        crate::codec::encode(ev).map_err(describe)
    }

    /// Rebuilds the event stored as `bytes` at `seq` in a log of `epoch`.
    pub fn decode(seq: u64, epoch: u64, bytes: &[u8]) -> Result<Event, String> {
        crate::codec::decode(seq, epoch, bytes).map_err(describe)
    }
}

/// [`StoreOptions::commit_linger`]'s default, in microseconds.
pub const DEFAULT_COMMIT_LINGER_US: u64 = 200;

/// How the embedded log keeps history and batches its writes.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// What history to keep (per-topic count, total bytes, age).
    pub retention: Retention,
    /// Most events folded into one group commit: bounds how long one commit
    /// holds back the appenders queued behind it (a larger single batch still
    /// commits, alone).
    pub max_batch_events: usize,
    /// How often the writer removes events older than `retention.max_age`.
    /// Appends trim too, so this only matters when publishing stops.
    pub trim_interval: Duration,
    /// How long the writer may wait for more appenders before committing a
    /// group, when the group before it had several: publishers that take turns
    /// (one request each in flight) then share one `fsync` instead of
    /// splitting into cohorts that each pay for one. A lone publisher is never
    /// delayed. Zero turns it off.
    pub commit_linger: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            retention: Retention::default(),
            max_batch_events: 4096,
            trim_interval: Duration::from_secs(1),
            commit_linger: Duration::from_micros(DEFAULT_COMMIT_LINGER_US),
        }
    }
}
