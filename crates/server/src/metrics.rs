//! `GET /metrics` (OpenMetrics text, prometheus-client) and `GET /readyz`.
//!
//! The registry is built at scrape time from counters that already exist (the
//! server's [`Stats`](crate::listener::Stats), the fan-out's, the log's), so
//! publishing and delivery only ever bump atomics. Labels are bounded: the
//! transport, never a topic or a client.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

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
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}

/// Whether the node should receive traffic: not once it is draining, nor
/// while its log cannot take appends (a broker out of reach). `Err` says why.
pub fn ready(shared: &Shared) -> Result<(), String> {
    if shared.shutdown.is_cancelled() {
        return Err("draining".into());
    }
    shared.hub.log().health()
}
