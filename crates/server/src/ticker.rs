//! The shared heartbeat clock: one task ticks, every idle stream listens on a
//! `watch` receiver (16 bytes each) instead of owning a timer.
//!
//! The same channel announces shutdown (the value becomes [`SHUTDOWN`]), so a
//! stream waits on one future for both, which keeps its task small.

use std::time::Duration;

use std::sync::Arc;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// The tick value that means "the server is shutting down".
pub const SHUTDOWN: u64 = u64::MAX;

/// Whether a tick value is a heartbeat (even) rather than a wake-up out of
/// turn (odd: an admin disconnect, which streams answer by looking at the
/// registry, without writing a heartbeat or a ping).
pub fn is_heartbeat(v: u64) -> bool {
    v & 1 == 0
}

/// Starts a ticker that bumps a counter every `period` (and whenever `now`
/// is notified: an admin disconnect wakes every stream to look) until `stop`
/// fires, then publishes [`SHUTDOWN`].
pub fn start(period: Duration, stop: CancellationToken, now: Arc<Notify>) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0u64);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    tx.send_replace(SHUTDOWN);
                    return;
                }
                // Heartbeats are even, wake-ups odd; neither is ever SHUTDOWN.
                _ = every.tick() => tx.send_modify(|n| *n = (*n | 1).wrapping_add(1)),
                () = now.notified() => tx.send_modify(|n| *n |= 1),
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ticks_at_the_period() {
        let stop = CancellationToken::new();
        let now = Arc::new(Notify::new());
        let mut rx = start(Duration::from_secs(15), stop.clone(), now.clone());
        let t0 = tokio::time::Instant::now();
        rx.changed().await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_secs(15));
        rx.changed().await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_secs(30));
        assert!(is_heartbeat(*rx.borrow()));
        now.notify_one();
        rx.changed().await.unwrap();
        assert_eq!(
            t0.elapsed(),
            Duration::from_secs(30),
            "a wake-up comes at once"
        );
        assert!(!is_heartbeat(*rx.borrow()));
        rx.changed().await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_secs(45));
        assert!(is_heartbeat(*rx.borrow()));
        stop.cancel();
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow(), SHUTDOWN);
    }
}
