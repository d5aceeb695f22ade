//! [`Progress`]: what a node's follower task has done, shared with the log
//! handle: the epoch it follows, the highest `seq` it handed to the fan-out,
//! and whether the broker is reachable.
//!
//! The follower is the only caller of `Fanout::deliver` on a node, so events
//! reach the rings in stream order, one batch at a time, never concurrently.
//! `delivered` only rises within an epoch; an epoch change resets it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// Follower state readable without locks on the hot paths.
pub(crate) struct Progress {
    /// The epoch of the stream this node follows (part of hub-generated ids).
    epoch: AtomicU64,
    /// Highest `seq` handed to the fan-out; waiters watch it.
    delivered: watch::Sender<u64>,
    /// Why the broker is out of reach right now (`None` when it answers).
    down: Mutex<Option<String>>,
}

impl Progress {
    pub(crate) fn new(epoch: u64, delivered: u64) -> Progress {
        Progress {
            epoch: AtomicU64::new(epoch),
            delivered: watch::Sender::new(delivered),
            down: Mutex::new(None),
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub(crate) fn delivered(&self) -> u64 {
        *self.delivered.borrow()
    }

    /// Records that every event up to `seq` reached the fan-out.
    pub(crate) fn set_delivered(&self, seq: u64) {
        self.delivered.send_replace(seq);
    }

    /// Starts following a new epoch of the stream from `seq`.
    pub(crate) fn reset(&self, epoch: u64, seq: u64) {
        self.epoch.store(epoch, Ordering::Release);
        self.delivered.send_replace(seq);
    }

    /// Waits until `seq` was delivered (or the epoch changed), at most `limit`.
    /// Returns whether it was. Cancel-safe.
    pub(crate) async fn wait_delivered(&self, epoch: u64, seq: u64, limit: Duration) -> bool {
        let mut rx = self.delivered.subscribe();
        let reached =
            tokio::time::timeout(limit, rx.wait_for(|&d| d >= seq || self.epoch() != epoch)).await;
        matches!(reached, Ok(Ok(_))) && self.epoch() == epoch
    }

    pub(crate) fn mark_down(&self, why: String) {
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        if down.is_none() {
            tracing::warn!(reason = %why, "broker out of reach: publishes fail until it is back");
        }
        *down = Some(why);
    }

    pub(crate) fn mark_up(&self) {
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        if down.take().is_some() {
            tracing::info!("broker reachable again");
        }
    }

    pub(crate) fn health(&self) -> Result<(), String> {
        match &*self.down.lock().unwrap_or_else(|e| e.into_inner()) {
            None => Ok(()),
            Some(why) => Err(format!("broker out of reach: {why}")),
        }
    }
}

/// Exponential back-off between reconnection attempts, bounded.
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The delay before the next attempt (with ±25% jitter), doubling up to `max`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = rand::random_range(0.75..1.25);
        base.mul_f64(jitter)
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

/// A fresh random epoch (never 0, fits in 48 bits so ids stay short).
pub(crate) fn new_epoch() -> u64 {
    rand::random_range(1..1u64 << 48)
}
