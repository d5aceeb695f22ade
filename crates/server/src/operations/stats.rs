//! The stats snapshot: one JSON object with the live numbers a dashboard
//! draws (connections per transport, topics, events in and out, history
//! size, webhook queue, slow subscribers, refused tokens, whether the
//! history store or broker takes writes), served by `GET /admin/stats` and
//! published every `stats_interval` on the reserved topic `$herald/stats`
//! (see `feed.rs`).
//!
//! Counters are totals since start; the feed adds per-second rates computed
//! from the previous snapshot, so a chart needs no state of its own.

use std::sync::atomic::Ordering;

use serde_json::{Map, Value, json};

use crate::listener::{Shared, Transport};

/// The snapshot as JSON.
pub fn snapshot(shared: &Shared) -> Value {
    let s = &shared.stats;
    let t = &shared.ops.telemetry;
    let mut subscribers = Map::new();
    let mut delivered = Map::new();
    for tr in Transport::ALL {
        subscribers.insert(
            tr.name().into(),
            s.open_streams[tr as usize].load(Ordering::Relaxed).into(),
        );
        delivered.insert(tr.name().into(), t.delivered_total(tr).into());
    }
    let log = shared.hub.log();
    let store_error = log.health().and_then(|()| log.ready()).err();
    let log = log.stats();
    let fanout = shared.hub.fanout();
    let auth_failures: u64 = t.auth_failures().iter().map(|(_, n)| n).sum();
    let webhooks = &shared.webhooks;
    json!({
        "time_ms": crate::now_ms(),
        "connections_open": shared.connections.open(),
        "subscribers": subscribers,
        "topics_watched": fanout.watched_topics(),
        "events_published": s.published.load(Ordering::Relaxed),
        "events_delivered": delivered,
        "history": {"events": log.events, "bytes": log.bytes, "topics": log.topics},
        "slow_subscriber_disconnects": s.stalled_streams.load(Ordering::Relaxed),
        "slow_subscriber_catchups": fanout.lagged(),
        "webhook_queue": webhooks.stats.pending.load(Ordering::Relaxed).max(0),
        "webhook_subscriptions": webhooks.len(),
        "auth_failures": auth_failures,
        "store": {"ready": store_error.is_none(), "error": store_error},
        "draining": shared.ops.draining(),
    })
}

/// Per-second rates of the totals between two snapshots `secs` apart.
pub fn rates(prev: &Value, now: &Value, secs: f64) -> Value {
    let per_sec = |a: &Value, b: &Value| {
        let (a, b) = (a.as_u64().unwrap_or(0), b.as_u64().unwrap_or(0));
        json!((b.saturating_sub(a) as f64 / secs.max(1e-3) * 10.0).round() / 10.0)
    };
    let delivered_in = |v: &Value| {
        v["events_delivered"]
            .as_object()
            .map_or(0, |m| m.values().filter_map(Value::as_u64).sum::<u64>())
    };
    json!({
        "events_in_per_sec": per_sec(&prev["events_published"], &now["events_published"]),
        "events_out_per_sec": per_sec(&json!(delivered_in(prev)), &json!(delivered_in(now))),
    })
}
