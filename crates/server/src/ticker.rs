//! The shared heartbeat clock: one task ticks, every idle stream listens on a
//! `watch` receiver (16 bytes each) instead of owning a timer.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Starts a ticker that bumps a counter every `period` until `stop` fires.
pub fn start(period: Duration, stop: CancellationToken) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0u64);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = every.tick() => tx.send_modify(|n| *n = n.wrapping_add(1)),
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
        let mut rx = start(Duration::from_secs(15), stop.clone());
        let t0 = tokio::time::Instant::now();
        rx.changed().await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_secs(15));
        rx.changed().await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_secs(30));
        stop.cancel();
    }
}
