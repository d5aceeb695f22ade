//! `GET /metrics` (OpenMetrics text, prometheus-client) and `GET /readyz`.
//!
//! The registry is built at scrape time from counters that already exist (the
//! server's [`Stats`](crate::listener::Stats), the fan-out's, the log's), so
//! publishing and delivery only ever bump atomics. Labels are bounded: the
//! transport, never a topic or a client.

use std::sync::atomic::Ordering;

use herald_core::LatencySnapshot;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use prometheus_client::registry::Unit;

use crate::listener::{Shared, Transport};

/// The OpenMetrics content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn counter(r: &mut Registry, name: &str, help: &str, v: u64) {
    let c: Counter = Counter::default();
    c.inc_by(v);
    r.register(name, help, c);
}

fn gauge(r: &mut Registry, name: &str, help: &str, v: i64) {
    let g: Gauge = Gauge::default();
    g.set(v);
    r.register(name, help, g);
}

/// Renders every metric.
pub fn render(shared: &Shared) -> String {
    let mut r = Registry::with_prefix("herald");
    let s = &shared.stats;
    let open = Family::<Vec<(String, String)>, Gauge>::default();
    for t in Transport::ALL {
        open.get_or_create(&vec![("transport".into(), t.name().into())])
            .set(s.open_streams[t as usize].load(Ordering::Relaxed));
    }
    r.register(
        "subscribers",
        "Open streams and held polls, by transport",
        open,
    );
    counter(
        &mut r,
        "connections_accepted",
        "TCP connections accepted",
        s.accepted.load(Ordering::Relaxed),
    );
    gauge(
        &mut r,
        "connections_open",
        "Connections counted against max_connections",
        shared.connections.open() as i64,
    );
    counter(
        &mut r,
        "events_published",
        "Events accepted by publishing (durable)",
        s.published.load(Ordering::Relaxed),
    );
    let fanout = shared.hub.fanout();
    counter(
        &mut r,
        "events_fanned_out",
        "Committed events that reached at least one subscriber ring",
        fanout.delivered(),
    );
    counter(
        &mut r,
        "slow_subscriber_catchups",
        "Subscribers that fell a whole ring behind and caught up from the store",
        fanout.lagged(),
    );
    counter(
        &mut r,
        "slow_subscriber_disconnects",
        "Streams closed because the client did not read within the write timeout",
        s.stalled_streams.load(Ordering::Relaxed),
    );
    gauge(
        &mut r,
        "topics_watched",
        "Topics with at least one subscriber",
        fanout.watched_topics() as i64,
    );
    gauge(
        &mut r,
        "bayeux_sessions",
        "Open Bayeux (CometD, Faye) sessions",
        shared.bayeux.len() as i64,
    );
    let log = shared.hub.log().stats();
    gauge(
        &mut r,
        "history_events",
        "Events retained in the history",
        log.events as i64,
    );
    gauge(
        &mut r,
        "history_bytes",
        "Approximate bytes of retained history",
        log.bytes as i64,
    );
    gauge(
        &mut r,
        "history_topics",
        "Topics with retained history",
        log.topics as i64,
    );
    gauge(
        &mut r,
        "history_last_seq",
        "Position of the newest event",
        shared.hub.head().seq as i64,
    );
    counter(
        &mut r,
        "store_commits",
        "Store write transactions (one fsync each)",
        log.commits,
    );
    webhook_metrics(&mut r, &shared.webhooks);
    operations(&mut r, shared);
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}

/// Webhook deliveries, evictions and queue depth (no per-topic or per-callback label).
fn webhook_metrics(r: &mut Registry, w: &crate::webhooks::Webhooks) {
    let s = &w.stats;
    let deliveries = Family::<Vec<(String, String)>, Counter>::default();
    for (result, v) in [("ok", &s.delivered), ("failed", &s.failed)] {
        deliveries
            .get_or_create(&vec![("result".into(), result.into())])
            .inc_by(v.load(Ordering::Relaxed));
    }
    r.register(
        "webhook_deliveries",
        "Webhook delivery attempts, by result (failed attempts are retried)",
        deliveries,
    );
    let removed = Family::<Vec<(String, String)>, Counter>::default();
    for (reason, v) in [
        ("evicted", &s.evicted),
        ("gone", &s.gone),
        ("expired", &s.expired),
    ] {
        removed
            .get_or_create(&vec![("reason".into(), reason.into())])
            .inc_by(v.load(Ordering::Relaxed));
    }
    r.register(
        "webhook_removals",
        "Webhook subscriptions removed by the hub: evicted after failing, 410 Gone, lease ended",
        removed,
    );
    counter(
        r,
        "webhook_evictions",
        "Webhook subscriptions dropped because their deliveries kept failing",
        s.evicted.load(Ordering::Relaxed),
    );
    counter(
        r,
        "webhook_verification_failures",
        "Verifications of intent that failed",
        s.verification_failures.load(Ordering::Relaxed),
    );
    counter(
        r,
        "webhook_continuity_breaks",
        "Times retention removed events a webhook subscription had not received",
        s.continuity_breaks.load(Ordering::Relaxed),
    );
    gauge(
        r,
        "webhook_subscriptions",
        "Webhook subscriptions (WebSub and API)",
        w.len() as i64,
    );
    gauge(
        r,
        "webhook_queue_depth",
        "Webhook subscriptions holding an event not yet delivered",
        s.pending.load(Ordering::Relaxed),
    );
}

/// Whether the node should receive traffic: not while draining or shutting
/// down, nor while the store cannot write; `Err` says why.
pub fn ready(shared: &Shared) -> Result<(), String> {
    if shared.ops.draining() {
        return Err("draining: this node is handing its clients to others".into());
    }
    if shared.shutdown.is_cancelled() {
        return Err("shutting down".into());
    }
    shared.hub.log().health()?;
    shared
        .hub
        .log()
        .ready()
        .map_err(|e| format!("history store not ready: {e}"))
}

/// A latency histogram in seconds, encoded from a [`LatencySnapshot`].
#[derive(Debug)]
struct Seconds(LatencySnapshot);

impl EncodeMetric for Seconds {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(
            self.0.sum_us as f64 / 1e6,
            self.0.count(),
            &self.0.seconds_buckets(),
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn histogram(r: &mut Registry, name: &str, help: &str, snapshot: LatencySnapshot) {
    r.register_with_unit(name, help, Unit::Seconds, Seconds(snapshot));
}

/// Series kept by the operations layer (`operations/telemetry.rs`) and the
/// log's write timings. Webhooks and brokers add theirs beside these.
fn operations(r: &mut Registry, shared: &Shared) {
    let t = &shared.ops.telemetry;
    let delivered = Family::<Vec<(String, String)>, Counter>::default();
    for tr in Transport::ALL {
        delivered
            .get_or_create(&vec![("transport".into(), tr.name().into())])
            .inc_by(t.delivered_total(tr));
    }
    r.register(
        "events_delivered",
        "Events written to clients, by transport",
        delivered,
    );
    histogram(
        r,
        "publish_latency",
        "From handing a publish to the hub to its durable acknowledgement",
        t.publish_latency.snapshot(),
    );
    if let Some(timings) = shared.hub.log().timings() {
        histogram(
            r,
            "store_append_latency",
            "Applying a group of appends to the store, before its commit",
            timings.append,
        );
        histogram(
            r,
            "store_commit_latency",
            "Committing a group durably (fsync)",
            timings.commit,
        );
    }
    let failures = Family::<Vec<(String, String)>, Counter>::default();
    for (reason, n) in t.auth_failures() {
        failures
            .get_or_create(&vec![("reason".into(), reason.into())])
            .inc_by(n);
    }
    r.register(
        "auth_failures",
        "Requests refused with 401 or 403, by reason (a fixed set of codes)",
        failures,
    );
    gauge(
        r,
        "ready",
        "1 when /readyz answers 200 (store writable, not draining)",
        i64::from(ready(shared).is_ok()),
    );
    gauge(
        r,
        "log_healthy",
        "1 while the history log takes appends: the embedded store, or in cluster mode the broker (0: out of reach)",
        i64::from(shared.hub.log().health().is_ok()),
    );
    gauge(
        r,
        "draining",
        "1 while the node drains (POST /admin/drain)",
        i64::from(shared.ops.draining()),
    );
}
