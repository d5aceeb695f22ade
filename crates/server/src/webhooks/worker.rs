//! One task per webhook subscription: it subscribes to the hub from the
//! record's cursor and delivers each event in order, retrying the event at
//! the head until it is received (2xx), the subscriber removes the
//! subscription (410), the lease ends, or the subscription is evicted.
//!
//! While waiting for an event the task costs what any idle subscriber costs
//! (ring cursors); a publish wakes it through the fan-out. Back-off waits are
//! tokio timers (the hub's retry queue, ordered by time) and are also kept in
//! the record, so a restart keeps them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use herald_core::{
    Event, Position, ReadError, Resume, Selector, Subscription, SubscriptionEnd, Topic,
};

use super::delivery::{self, Outcome};
use super::{Entry, Removal, Webhooks, cluster};
use crate::now_ms;

/// Pause before re-opening after the store could not be read.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// Runs until the subscription is removed or the hub shuts down. In a
/// cluster it delivers only while this node holds the subscription's lease
/// (`cluster.rs`), and waits to take it over otherwise.
pub(crate) async fn run(w: Arc<Webhooks>, entry: Arc<Entry>) {
    let Some(node) = w.node else {
        tokio::select! {
            _ = w.shutdown.cancelled() => {}
            _ = entry.stop.cancelled() => {}
            _ = serve(&w, &entry) => {}
        }
        return;
    };
    loop {
        let held = tokio::select! {
            _ = w.shutdown.cancelled() => return,
            _ = entry.stop.cancelled() => return,
            held = cluster::acquire(&w, &entry, node) => held,
        };
        if !held {
            return;
        }
        let id = entry.snapshot().public_id();
        tracing::info!(id, "this node delivers the webhook subscription");
        tokio::select! {
            _ = w.shutdown.cancelled() => {
                cluster::release(&w, &entry, node).await;
                return;
            }
            _ = entry.stop.cancelled() => return,
            _ = serve(&w, &entry) => return,
            _ = cluster::keep(&w, &entry) => {}
        }
        entry.holding.store(false, Ordering::Release);
        if entry.removed.load(Ordering::Acquire) {
            return;
        }
        tracing::warn!(
            id,
            "this node no longer delivers the webhook subscription (lease lost)"
        );
    }
}

/// Sleeps until the wall-clock time `at_ms`.
async fn sleep_until_ms(at_ms: u64) {
    tokio::time::sleep(Duration::from_millis(at_ms.saturating_sub(now_ms()))).await;
}

async fn serve(w: &Arc<Webhooks>, entry: &Arc<Entry>) {
    loop {
        if now_ms() >= entry.snapshot().expires_ms {
            return w.remove(entry, Removal::Expired).await;
        }
        let mut sub = match open(w, entry).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(id = entry.snapshot().public_id(), error = %e, "webhook worker cannot read the history; retrying");
                tokio::time::sleep(STORE_RETRY).await;
                continue;
            }
        };
        loop {
            let expires = entry.snapshot().expires_ms;
            let next = tokio::select! {
                _ = sleep_until_ms(expires) => break, // the lease check above decides
                r = sub.next() => r,
            };
            match next {
                Ok(ev) => {
                    if !deliver(w, entry, &ev).await {
                        return;
                    }
                }
                // Fell behind retention while failing: re-open, which counts the gap.
                Err(SubscriptionEnd::Expired) => break,
                Err(SubscriptionEnd::Closed) => return,
                Err(SubscriptionEnd::Store(m)) => {
                    tracing::warn!(error = %m, "webhook worker cannot read the history; retrying");
                    tokio::time::sleep(STORE_RETRY).await;
                    break;
                }
            }
        }
    }
}

/// Subscribes from the record's cursor. If retention removed events after
/// the cursor, the cursor moves to the oldest complete position and the next
/// delivery says continuity broke (counted and logged, never silent).
async fn open(w: &Webhooks, entry: &Entry) -> Result<Subscription, String> {
    let rec = entry.snapshot();
    let topics: Vec<Topic> = rec
        .topics
        .iter()
        .map(|t| Topic::parse(t, usize::MAX).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let log = w.hub.log();
    match log.read(topics.clone(), rec.cursor, 1).await {
        Err(ReadError::Expired { oldest_kept }) => {
            broken(
                w,
                entry,
                oldest_kept,
                "retention removed events it had not received",
            )
            .await
        }
        Err(ReadError::Unavailable(m)) => return Err(m),
        Ok(_) => {}
    }
    let cursor = entry.snapshot().cursor;
    let from = Position {
        epoch: log.epoch(),
        seq: cursor,
    };
    let mut sub = w
        .hub
        .subscribe(&Selector::exact(topics), Resume::After(from.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    if let Some(reset) = sub.reset() {
        // A race with retention, or a log that lost the position: the
        // subscription continues live from `reset.position`.
        broken(w, entry, reset.position.seq, reset.reason.as_str()).await;
    }
    if let Some(grants) = rec.grants {
        sub.set_private_filter(Arc::new(move |ev: &Event| {
            grants.can_subscribe_any(ev.topics.iter().map(|t| t.as_str()))
        }));
    }
    Ok(sub)
}

/// Records a continuity break: moves the cursor to `to`, flags the next delivery.
async fn broken(w: &Webhooks, entry: &Entry, to: u64, why: &str) {
    w.stats.continuity_breaks.fetch_add(1, Ordering::Relaxed);
    let rec = entry.snapshot();
    tracing::warn!(
        id = rec.public_id(),
        callback = %super::guard::for_log(&rec.callback),
        from = rec.cursor,
        to,
        reason = why,
        "webhook continuity broken: events were lost to this subscriber; its next delivery carries Herald-Continuity: broken"
    );
    let result = w
        .update(entry, |r| {
            r.cursor = r.cursor.max(to);
            r.continuity_broken = true;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot store the webhook cursor");
    }
}

/// Counts a subscription as holding an undelivered event while alive.
struct Pending<'a>(&'a Webhooks);

impl<'a> Pending<'a> {
    fn new(w: &'a Webhooks) -> Pending<'a> {
        w.stats.pending.fetch_add(1, Ordering::Relaxed);
        Pending(w)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.stats.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The wait after `failures` failures in a row: `min(max, base·2^(failures-1))`,
/// half of it fixed and half random ("equal jitter": spread out, yet a
/// demoted subscriber's waits still grow).
pub(crate) fn backoff(base: Duration, max: Duration, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(32);
    let full = base.saturating_mul(1u32 << exp.min(31)).min(max);
    let half = full / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// Delivers `ev` until it is received. Returns `false` once the subscription
/// is gone (410, lease end, eviction).
async fn deliver(w: &Arc<Webhooks>, entry: &Arc<Entry>, ev: &Event) -> bool {
    let _pending = Pending::new(w);
    loop {
        let rec = entry.snapshot();
        let now = now_ms();
        if rec.next_attempt_ms > now {
            sleep_until_ms(rec.next_attempt_ms.min(rec.expires_ms)).await;
        }
        if now_ms() >= entry.snapshot().expires_ms {
            w.remove(entry, Removal::Expired).await;
            return false;
        }
        let rec = entry.snapshot();
        let pool = if rec.failures == 0 {
            &w.healthy
        } else {
            &w.failing
        };
        let Ok(_permit) = pool.clone().acquire_owned().await else {
            return false;
        };
        match delivery::attempt(w, &rec, ev).await {
            Outcome::Delivered => {
                w.stats.delivered.fetch_add(1, Ordering::Relaxed);
                if rec.failures > 0 {
                    tracing::info!(
                        id = rec.public_id(),
                        failures = rec.failures,
                        "webhook deliveries recovered"
                    );
                }
                // Stored in the background: the next delivery does not wait
                // for this fsync (a crash may deliver this event again).
                w.update_soon(entry, |r| {
                    r.cursor = r.cursor.max(ev.seq);
                    r.failures = 0;
                    r.failing_since_ms = None;
                    r.next_attempt_ms = 0;
                    r.continuity_broken = false;
                });
                return true;
            }
            Outcome::Gone => {
                w.remove(entry, Removal::Gone).await;
                return false;
            }
            Outcome::Failed(why) => {
                w.stats.failed.fetch_add(1, Ordering::Relaxed);
                if failed(w, entry, ev, &why).await {
                    w.remove(entry, Removal::Evicted).await;
                    return false;
                }
            }
        }
    }
}

/// Counts a failure and schedules the next attempt; `true` when the
/// subscription must be evicted.
async fn failed(w: &Webhooks, entry: &Entry, ev: &Event, why: &str) -> bool {
    let o = &w.opts;
    let now = now_ms();
    let result = w
        .update(entry, |r| {
            r.failures = r.failures.saturating_add(1);
            r.failing_since_ms.get_or_insert(now);
            let wait = backoff(o.backoff_base, o.backoff_max, r.failures);
            r.next_attempt_ms = now + wait.as_millis() as u64;
        })
        .await;
    let rec = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot store the webhook retry state");
            entry.snapshot()
        }
    };
    let failing_for =
        Duration::from_millis(now.saturating_sub(rec.failing_since_ms.unwrap_or(now)));
    let too_many = o.max_failures > 0 && rec.failures >= o.max_failures;
    let too_long = !o.max_failing.is_zero() && failing_for >= o.max_failing;
    let log = if rec.failures == 1 {
        tracing::Level::INFO
    } else {
        tracing::Level::DEBUG
    };
    if log == tracing::Level::INFO {
        tracing::info!(
            id = rec.public_id(),
            seq = ev.seq,
            error = why,
            "webhook delivery failed; retrying with back-off"
        );
    } else {
        tracing::debug!(
            id = rec.public_id(),
            seq = ev.seq,
            failures = rec.failures,
            error = why,
            "webhook delivery failed again"
        );
    }
    too_many || too_long
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_bounds() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(1));
        for _ in 0..50 {
            let b1 = backoff(base, max, 1);
            assert!(b1 >= Duration::from_millis(50) && b1 <= base);
            let b3 = backoff(base, max, 3);
            assert!(b3 >= Duration::from_millis(200) && b3 <= Duration::from_millis(400));
            let b40 = backoff(base, max, 40);
            assert!(b40 >= max / 2 && b40 <= max);
        }
    }
}
