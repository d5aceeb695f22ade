//! The stats feed: every `stats_interval`, while anyone subscribes to
//! `$herald/stats` (admin tokens only), the [`snapshot`](super::stats::snapshot)
//! plus per-second rates is published there as one event (type `stats`).
//!
//! It goes through the log like any event (so it has a position and every
//! transport carries it), but the topic keeps only its newest
//! [`KEEP`] snapshots: the feed trims it every [`KEEP`] publishes. With no
//! subscriber nothing is published, so an idle hub's history and positions
//! do not move.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use herald_core::{Draft, Topic, Trim};

use crate::listener::Shared;
use crate::operations::presence::STATS_TOPIC;
use crate::operations::stats;

/// Snapshots `$herald/stats` keeps.
pub const KEEP: u64 = 60;

/// Publishes snapshots until shutdown (returns at once when the interval is zero).
pub async fn run(shared: Arc<Shared>) {
    let period = shared.opts.stats_interval;
    if period.is_zero() {
        return;
    }
    let limits = shared.hub.limits();
    let Ok(topic) = Topic::parse(STATS_TOPIC, limits.max_topic_len.max(STATS_TOPIC.len())) else {
        return;
    };
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prev: Option<(Value, tokio::time::Instant)> = None;
    let mut published = 0u64;
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        if shared.hub.fanout().subscribers(&topic) == 0 {
            prev = None;
            continue;
        }
        let now = tokio::time::Instant::now();
        let mut snap = stats::snapshot(&shared);
        if let Some((p, at)) = &prev {
            snap["rates"] = stats::rates(p, &snap, (now - *at).as_secs_f64());
        }
        let body = Bytes::from(snap.to_string());
        prev = Some((snap, now));
        let Ok(draft) = Draft::new(vec![topic.clone()], body, Some("stats"), None, None, limits)
        else {
            continue;
        };
        if let Err(e) = shared.hub.publish(vec![draft], crate::now_ms()).await {
            tracing::warn!(error = %e, "stats snapshot could not be published");
            continue;
        }
        published += 1;
        if published.is_multiple_of(KEEP)
            && let Err(e) = shared
                .hub
                .log()
                .trim(topic.clone(), Trim::KeepLast(KEEP))
                .await
        {
            tracing::debug!(error = %e, "stats topic not trimmed");
        }
    }
}
