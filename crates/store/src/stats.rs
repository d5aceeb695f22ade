//! [`StoreStats`]: the store's gauges and counters, kept in atomics by the
//! writer so `/metrics` and the dashboard read them without touching the disk.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use herald_core::Latency;

use crate::error::Fault;

use crate::tables::{Meta, Shape};

/// A snapshot of the store's size and activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Retained events.
    pub events: u64,
    /// Approximate bytes of retained events (what byte retention counts).
    pub bytes: u64,
    /// Topics with at least one retained event.
    pub topics: u64,
    /// Lowest retained `seq` (0 when the history is empty).
    pub first_seq: u64,
    /// Highest committed `seq` (0 before the first event).
    pub last_seq: u64,
    /// Write transactions committed since this process opened the store: with
    /// group commit, fewer than the appends when publishers are concurrent.
    pub commits: u64,
}

/// The live values behind [`StoreStats`]; written by the writer thread only.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    events: AtomicU64,
    bytes: AtomicU64,
    topics: AtomicU64,
    first_seq: AtomicU64,
    last_seq: AtomicU64,
    commits: AtomicU64,
    /// Time to apply a group's operations to the tables, before its commit.
    pub(crate) append: Latency,
    /// Time to commit a group (its `fsync`).
    pub(crate) commit: Latency,
    /// Why the last write transaction failed, until one succeeds (readiness).
    fault: Mutex<Option<String>>,
}

impl Counters {
    /// Counters for a store whose committed state is `meta` and `shape`.
    pub(crate) fn new(meta: &Meta, shape: &Shape) -> Counters {
        let c = Counters::default();
        c.publish(meta, shape);
        c
    }

    /// Publishes a committed state. `last_seq` is stored last (Release), so a
    /// reader that sees it also sees the rest.
    pub(crate) fn publish(&self, meta: &Meta, shape: &Shape) {
        self.events.store(shape.events, Ordering::Relaxed);
        self.topics.store(shape.topics, Ordering::Relaxed);
        self.first_seq.store(shape.first_seq, Ordering::Relaxed);
        self.bytes.store(meta.bytes, Ordering::Relaxed);
        self.last_seq
            .store(meta.next_seq.saturating_sub(1), Ordering::Release);
    }

    /// Counts one committed write transaction.
    pub(crate) fn count_commit(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the outcome of a write transaction: a failure makes the store
    /// unready until a later one succeeds.
    pub(crate) fn set_fault(&self, fault: Option<&Fault>) {
        let mut f = self.fault.lock().unwrap_or_else(|e| e.into_inner());
        match fault {
            None if f.is_none() => {}
            None => *f = None,
            Some(fault) => *f = Some(format!("{fault:?}")),
        }
    }

    /// Why the store cannot write, if its last write failed.
    pub(crate) fn fault(&self) -> Option<String> {
        self.fault.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The highest committed `seq`.
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Acquire)
    }

    /// A snapshot (fields may be from adjacent commits).
    pub(crate) fn snapshot(&self) -> StoreStats {
        StoreStats {
            last_seq: self.last_seq(),
            events: self.events.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            topics: self.topics.load(Ordering::Relaxed),
            first_seq: self.first_seq.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
        }
    }
}
