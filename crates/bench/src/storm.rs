//! The reconnect storm (`--storm`, SSE only, one process).
//!
//! After the first `--events` reached every subscriber, every subscriber
//! closes its socket at once (the drop), `--storm-events` more are published
//! while they are away, and then they all reconnect at once (at most
//! `--reconnect-concurrency` connecting at the same time), each with a
//! `Last-Event-ID` header carrying the id of the last event it saw. The storm
//! is over when each subscriber has every event of its topic, first and away
//! ones alike (its sequence checker counts what is lost, duplicated or out of
//! order): the times from the drop and from the reconnect start to that
//! moment are the storm's figures.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::args::Storm;
use crate::progress::Progress;
use crate::publisher::PubResult;
use crate::run::{self, Ctx};
use crate::subscriber::SubResult;

/// What the storm's subscribers share with the run.
pub(crate) struct StormSignals {
    /// Cancelled at the drop: every subscriber closes its socket.
    pub(crate) dropped: CancellationToken,
    /// Cancelled when the away events are published: reconnect.
    pub(crate) reconnect: CancellationToken,
    /// Bounds the subscribers reconnecting at once.
    pub(crate) gate: Semaphore,
    /// Subscribers reconnected so far.
    reconnected: AtomicU64,
    /// When the last of them got its response head, µs on the run's clock.
    last_reconnect_us: AtomicU64,
}

impl StormSignals {
    pub(crate) fn new(settings: &Storm) -> StormSignals {
        StormSignals {
            dropped: CancellationToken::new(),
            reconnect: CancellationToken::new(),
            gate: Semaphore::new(settings.reconnect_concurrency),
            reconnected: AtomicU64::new(0),
            last_reconnect_us: AtomicU64::new(0),
        }
    }

    /// A subscriber has its response head again, at `now_us`.
    pub(crate) fn reconnected(&self, now_us: u64) {
        self.reconnected.fetch_add(1, Ordering::Relaxed);
        self.last_reconnect_us.fetch_max(now_us, Ordering::AcqRel);
    }
}

/// The storm's figures.
#[derive(Debug, Clone, Default)]
pub(crate) struct StormFigures {
    /// Events published while the subscribers were away.
    pub(crate) away_events: u64,
    /// Of those, accepted by the server.
    pub(crate) away_published: u64,
    /// From the drop until the away events were all answered, s.
    pub(crate) away_publish_secs: f64,
    /// Subscribers that got a response head again.
    pub(crate) reconnected: u64,
    /// From the reconnect start until the last response head, s.
    pub(crate) reconnect_secs: f64,
    /// From the drop until every subscriber had every event, s.
    pub(crate) caught_up_after_drop_secs: f64,
    /// From the reconnect start until every subscriber had every event, s.
    pub(crate) caught_up_after_reconnect_secs: f64,
    /// Per subscriber, from the reconnect start until it had every event:
    /// median and 99th percentile, ms.
    pub(crate) catch_up_p50_ms: f64,
    pub(crate) catch_up_p99_ms: f64,
    /// Subscribers that never had every event (the run timed out).
    pub(crate) not_caught_up: u64,
    /// Drop and reconnect start, µs on the run's clock.
    drop_us: u64,
    reconnect_us: u64,
}

/// Runs the storm once the first events are delivered; returns its figures
/// (completed by [`add_up`]), the away publishers' results, and whether it
/// timed out (`--timeout`, counted from the drop).
pub(crate) async fn run(
    ctx: &Arc<Ctx>,
    settings: &Storm,
    pub_addr: SocketAddr,
    connected: u64,
    progress: &Progress,
) -> (StormFigures, Vec<PubResult>, bool) {
    let mut figures = StormFigures {
        away_events: settings.away_events,
        ..StormFigures::default()
    };
    let Some(signals) = ctx.storm.as_ref() else {
        return (figures, Vec::new(), false);
    };
    let plan = &ctx.plan;
    let deadline = Instant::now() + plan.timeout;
    ctx.finished.store(0, Ordering::Release);
    figures.drop_us = ctx.now_us();
    signals.dropped.cancel();
    progress.println(&format!(
        "herald bench: storm: {connected} subscribers dropped; publishing {} events while they are away",
        settings.away_events
    ));

    let first = plan.events;
    let away = first..first + settings.away_events;
    let published_before = ctx.published.load(Ordering::Relaxed);
    let bar = {
        let c = ctx.clone();
        progress.phase("away", settings.away_events, move || {
            c.published.load(Ordering::Relaxed) - published_before
        })
    };
    let (publishers, _) = run::start_publishing(ctx, pub_addr, away);
    let pubs = run::join_until(publishers, deadline).await;
    figures.away_published = pubs.iter().map(|p| p.accepted).sum();
    let away_done_us = ctx.now_us();
    figures.away_publish_secs = secs(away_done_us.saturating_sub(figures.drop_us));
    bar.done("");

    figures.reconnect_us = ctx.now_us();
    let reconnect_bar = {
        let c = ctx.clone();
        progress.phase("reconnect", connected, move || {
            c.storm
                .as_ref()
                .map_or(0, |s| s.reconnected.load(Ordering::Relaxed))
        })
    };
    let catch_up_bar = {
        let c = ctx.clone();
        progress.phase("catch up", connected, move || {
            c.finished.load(Ordering::Relaxed)
        })
    };
    signals.reconnect.cancel();
    let timed_out = run::wait_finished(ctx, connected, deadline).await;
    reconnect_bar.done("");
    catch_up_bar.done(if timed_out { "timed out" } else { "" });
    figures.reconnected = signals.reconnected.load(Ordering::Relaxed);
    let last = signals.last_reconnect_us.load(Ordering::Acquire);
    figures.reconnect_secs = secs(last.saturating_sub(figures.reconnect_us));
    (figures, pubs, timed_out)
}

/// Completes the figures from the subscribers' results.
pub(crate) fn add_up(figures: &mut StormFigures, results: &[SubResult]) {
    let mut times: Vec<u64> = Vec::with_capacity(results.len());
    for r in results.iter().filter(|r| r.connect_error.is_none()) {
        let caught_up = r.stream_error.is_none()
            && r.lost == 0
            && r.done_us >= figures.reconnect_us
            && r.done_us > 0;
        if caught_up {
            times.push(r.done_us - figures.reconnect_us);
        } else {
            figures.not_caught_up += 1;
        }
    }
    times.sort_unstable();
    if let Some(&max) = times.last() {
        figures.caught_up_after_reconnect_secs = secs(max);
        figures.caught_up_after_drop_secs = secs(max + figures.reconnect_us - figures.drop_us);
        let at = |q: f64| {
            let i = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
            times[i] as f64 / 1000.0
        };
        figures.catch_up_p50_ms = at(0.50);
        figures.catch_up_p99_ms = at(0.99);
    }
}

fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(done_us: u64) -> SubResult {
        SubResult {
            done_us,
            ..SubResult::default()
        }
    }

    #[test]
    fn catch_up_times_count_from_the_reconnect_and_the_drop() {
        let mut f = StormFigures {
            drop_us: 1_000_000,
            reconnect_us: 1_500_000,
            ..StormFigures::default()
        };
        let mut results: Vec<SubResult> = (1..=100).map(|i| sub(1_500_000 + i * 10_000)).collect();
        let mut lost = sub(1_600_000);
        lost.lost = 1;
        results.push(lost);
        let mut failed = sub(0);
        failed.connect_error = Some("refused".into());
        results.push(failed);
        add_up(&mut f, &results);
        assert_eq!(f.not_caught_up, 1, "the one with a lost event");
        assert!((f.caught_up_after_reconnect_secs - 1.0).abs() < 1e-9);
        assert!((f.caught_up_after_drop_secs - 1.5).abs() < 1e-9);
        assert!((f.catch_up_p50_ms - 500.0).abs() < 1e-9);
        assert!((f.catch_up_p99_ms - 990.0).abs() < 1e-9);
    }
}
