//! The [`Log`] trait: durable, ordered history, and the source of every live
//! event (a log hands each committed batch to the [`Fanout`], in order).
//!
//! Implementations: [`MemoryLog`] here (tests, and a model for the others),
//! the embedded durable log in `herald-store`, broker logs in `herald-broker`.

mod memory;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use memory::MemoryLog;

use crate::event::{Draft, Event};
use crate::latency::LatencySnapshot;
use crate::topic::{Selector, Topic};

/// Most retained events one [`Log::scan`] call examines.
pub const SCAN_BUDGET: usize = 4096;

/// One page of a pattern scan ([`Log::scan`]).
#[derive(Debug, Default)]
pub struct ScanPage {
    /// The matching events, in `seq` order.
    pub events: Vec<Arc<Event>>,
    /// Every retained event with `after < seq <= through` was examined; the
    /// next page starts after it.
    pub through: u64,
    /// Whether retained events after `through` remain to be examined.
    pub more: bool,
}

/// A boxed, sendable future (the trait is used as `Arc<dyn Log>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How much history a log keeps. Every bound applies; an event leaves a topic's
/// history when any of them says so. Defaults are bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Most events kept per topic (`0` = no per-topic bound).
    pub max_events_per_topic: u64,
    /// Most bytes of events kept in all (approximate, see [`Event::stored_size`]).
    pub max_bytes: u64,
    /// Oldest event kept, by the time it was accepted (`None` = no age bound).
    pub max_age: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_events_per_topic: 10_000,
            max_bytes: 1 << 30,
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

/// Why an append failed. Nothing of the batch was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// A publisher-supplied id is already taken by a retained event (or twice in one batch).
    #[error("id {0:?} is already used by another event; ids must be unique")]
    DuplicateId(String),
    /// The log cannot store right now (disk error, store closed, broker down).
    #[error("history store unavailable: {0}")]
    Unavailable(String),
}

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Events after the requested position on one of the topics were already
    /// removed by retention: a replay from there would have a gap.
    #[error("history after that position has expired (kept from {oldest_kept} on)")]
    Expired {
        /// The lowest position from which a replay is complete.
        oldest_kept: u64,
    },
    /// The log cannot be read right now.
    #[error("history store unavailable: {0}")]
    Unavailable(String),
}

/// What a log holds, for metrics. Cheap to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Retained events.
    pub events: u64,
    /// Approximate bytes of retained events.
    pub bytes: u64,
    /// Topics with at least one retained event.
    pub topics: u64,
    /// Write transactions committed since the log was opened (group commit
    /// makes this lower than the appends); 0 where it does not apply.
    pub commits: u64,
}

/// Durable, ordered history. All methods are cancel-safe in the sense that a
/// dropped future leaves the log consistent; a dropped `append` may or may not
/// have stored its batch.
pub trait Log: Send + Sync + 'static {
    /// The log's epoch: chosen at creation, part of every hub-generated id.
    fn epoch(&self) -> u64;

    /// The highest committed `seq` (0 when empty). Every event up to it has been
    /// handed to the fan-out or is being handed to it right now.
    fn last_seq(&self) -> u64;

    /// Appends `batch` atomically and in order, durably, hands the committed
    /// events to the fan-out (in `seq` order, across all appenders) and
    /// returns them. The answer may come just before the hand-over (the
    /// embedded log answers first, so publishers do not queue behind a large
    /// fan-out); `last_seq` covers the events by then, so readers find them.
    fn append(
        &self,
        batch: Vec<Draft>,
        now_ms: u64,
    ) -> BoxFuture<'_, Result<Vec<Arc<Event>>, AppendError>>;

    /// Up to `limit` retained events with `seq > after` published to any of
    /// `topics`, in `seq` order, each once. Fails with [`ReadError::Expired`]
    /// when retention removed events after `after` on one of the topics.
    fn read(
        &self,
        topics: Vec<Topic>,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Arc<Event>>, ReadError>>;

    /// Retained events with `seq > after` whose topics match `selector`
    /// (exact topics and patterns), in `seq` order, each once: examines
    /// events in order and stops after `limit` matches or [`SCAN_BUDGET`]
    /// examined events. For subscriptions with patterns, which cannot use the
    /// per-topic index. Fails with [`ReadError::Expired`] when retention
    /// removed events after `after` from a topic the selector matches.
    fn scan(
        &self,
        selector: Selector,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<ScanPage, ReadError>>;

    /// The `seq` of the retained event with this publisher-supplied id.
    fn lookup_id(&self, id: String) -> BoxFuture<'_, Result<Option<u64>, ReadError>>;

    /// Flushes and stops the log; later appends fail with `Unavailable`.
    fn close(&self) -> BoxFuture<'_, ()>;

    /// What the log holds now (for metrics).
    fn stats(&self) -> LogStats;

    /// How long appends and commits take (for metrics); `None` where the log
    /// does not measure them.
    fn timings(&self) -> Option<LogTimings> {
        None
    }

    /// Whether the log can take appends now (readiness); `Err` says why not.
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }

    /// Topics with retained history whose names sort after `after`, in name
    /// order, at most `limit` (the admin API's listing).
    fn topics(
        &self,
        after: Option<Topic>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<TopicHistory>, ReadError>> {
        let _ = (after, limit);
        Box::pin(async { Err(ReadError::Unavailable(NOT_SUPPORTED.into())) })
    }

    /// Removes part of `topic`'s history (the admin API's trim and delete),
    /// in order with appends, and returns how many events left the topic.
    /// The topic's trim mark rises to the highest `seq` removed, so a client
    /// resuming from before it gets [`ReadError::Expired`] (a reset), never
    /// a silent gap. Events also published to other topics stay in theirs.
    fn trim(&self, topic: Topic, trim: Trim) -> BoxFuture<'_, Result<u64, AppendError>> {
        let _ = (topic, trim);
        Box::pin(async { Err(AppendError::Unavailable(NOT_SUPPORTED.into())) })
    }

    /// Waits until this node has handed every event up to `seq` to the
    /// fan-out, if `seq` was committed at all, and returns [`Log::last_seq`]
    /// then. A log fed by a broker can be a little behind events another node
    /// committed (a client resuming here with a position it got there); a log
    /// that commits locally answers at once. Bounded in time; cancel-safe.
    fn catch_up_to(&self, seq: u64) -> BoxFuture<'_, u64> {
        let _ = seq;
        let last = self.last_seq();
        Box::pin(async move { last })
    }

    /// `Err` with the reason while the log cannot take appends (a broker that
    /// is unreachable): the node is then not ready for traffic.
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
}

/// What the default implementations of optional [`Log`] methods answer.
pub const NOT_SUPPORTED: &str = "not supported by this history log";

/// One topic's retained history (see [`Log::topics`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicHistory {
    /// The topic.
    pub topic: Topic,
    /// Events retained on it.
    pub events: u64,
}

/// Which part of a topic's history [`Log::trim`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    /// Keep the newest `n` events, remove the rest (`0`: delete it all).
    KeepLast(u64),
    /// Remove every event with a `seq` below this one.
    Before(u64),
}

impl Trim {
    /// Given a topic's retained `seqs` (ascending), how many oldest ones go.
    pub fn count(self, seqs: &[u64]) -> usize {
        match self {
            Trim::KeepLast(n) => seqs
                .len()
                .saturating_sub(usize::try_from(n).unwrap_or(usize::MAX)),
            Trim::Before(seq) => seqs.partition_point(|&s| s < seq),
        }
    }
}

/// Latency histograms a log keeps about its own writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogTimings {
    /// Applying an append group to the store, before its commit.
    pub append: LatencySnapshot,
    /// Committing a group durably (the `fsync`, or the broker's acknowledgement).
    pub commit: LatencySnapshot,
}

/// The lowest `after` from which a replay of `topic` is complete, given the
/// log-wide and per-topic trim marks (highest `seq` removed).
pub fn replay_floor(global_mark: u64, topic_mark: u64) -> u64 {
    global_mark.max(topic_mark)
}
