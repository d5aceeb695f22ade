//! The end of a run: a table for people and one JSON line for scripts.

use serde_json::{Value, json};

use crate::storm::StormFigures;

/// The server's cost over the run's phases (with `--server-pid`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerCost {
    /// RSS before any subscriber connected, KiB.
    pub(crate) rss_baseline_kib: u64,
    /// RSS with every subscriber connected and idle, KiB.
    pub(crate) rss_idle_kib: u64,
    /// (idle − baseline) / connected subscribers, KiB.
    pub(crate) rss_kib_per_conn: Option<f64>,
    /// Server CPU over the delivery phase, µs.
    pub(crate) cpu_us: u64,
    /// Write system calls over the delivery phase (None: /proc/PID/io unreadable).
    pub(crate) writes: Option<u64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Report {
    pub(crate) label: String,
    pub(crate) subscribers: u64,
    pub(crate) connected: u64,
    pub(crate) connect_failures: u64,
    pub(crate) connect_per_sec: f64,
    pub(crate) topics: u64,
    pub(crate) events: u64,
    pub(crate) rate: f64,
    pub(crate) size: usize,
    pub(crate) published: u64,
    pub(crate) publish_failed: u64,
    pub(crate) publish_per_sec: f64,
    pub(crate) first_publish_error: Option<String>,
    pub(crate) expected: u64,
    pub(crate) deliveries: u64,
    /// From the first publish to the last delivery, seconds.
    pub(crate) delivery_secs: f64,
    pub(crate) deliveries_per_sec: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) lost: u64,
    pub(crate) duplicated: u64,
    pub(crate) out_of_order: u64,
    pub(crate) unexpected: u64,
    /// Subscribers whose stream ended before their last expected event.
    pub(crate) closed_early: u64,
    /// How the first of those streams ended (e.g. "closed by the server").
    pub(crate) first_stream_error: Option<String>,
    pub(crate) timed_out: bool,
    pub(crate) server: Option<ServerCost>,
    /// `--storm`'s figures.
    pub(crate) storm: Option<StormFigures>,
}

impl Report {
    /// Server CPU µs per delivery over the delivery phase.
    pub(crate) fn cpu_us_per_delivery(&self) -> Option<f64> {
        let s = self.server.as_ref()?;
        (self.deliveries > 0).then(|| s.cpu_us as f64 / self.deliveries as f64)
    }

    /// Server write syscalls per delivery over the delivery phase.
    pub(crate) fn writes_per_delivery(&self) -> Option<f64> {
        let w = self.server.as_ref()?.writes?;
        (self.deliveries > 0).then(|| w as f64 / self.deliveries as f64)
    }

    /// The one-line JSON summary, keys in a fixed, readable order.
    pub(crate) fn json(&self) -> String {
        let fields = self.fields();
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}:{v}", Value::from(*k)))
            .collect();
        format!("{{{}}}", body.join(","))
    }

    fn fields(&self) -> Vec<(&'static str, Value)> {
        let round = |v: f64, places: i32| {
            let f = 10f64.powi(places);
            (v * f).round() / f
        };
        let opt = |v: Option<f64>, places| v.map(|v| round(v, places));
        let mut fields = vec![
            ("scenario", json!(self.label)),
            ("subscribers", json!(self.subscribers)),
            ("connected", json!(self.connected)),
            ("connect_failures", json!(self.connect_failures)),
            ("topics", json!(self.topics)),
            ("events", json!(self.events)),
            ("rate", json!(self.rate)),
            ("size", json!(self.size)),
            ("published", json!(self.published)),
            ("publish_failed", json!(self.publish_failed)),
            ("publish_per_sec", json!(round(self.publish_per_sec, 1))),
            ("expected", json!(self.expected)),
            ("deliveries", json!(self.deliveries)),
            ("delivery_secs", json!(round(self.delivery_secs, 4))),
            (
                "deliveries_per_sec",
                json!(round(self.deliveries_per_sec, 0)),
            ),
            ("p50_ms", json!(round(self.p50_ms, 3))),
            ("p90_ms", json!(round(self.p90_ms, 3))),
            ("p99_ms", json!(round(self.p99_ms, 3))),
            ("max_ms", json!(round(self.max_ms, 3))),
            ("lost", json!(self.lost)),
            ("duplicated", json!(self.duplicated)),
            ("out_of_order", json!(self.out_of_order)),
            ("unexpected", json!(self.unexpected)),
            ("closed_early", json!(self.closed_early)),
            ("timed_out", json!(self.timed_out)),
            ("connect_per_sec", json!(round(self.connect_per_sec, 0))),
            (
                "server_rss_kib_per_conn",
                json!(opt(
                    self.server.as_ref().and_then(|s| s.rss_kib_per_conn),
                    3
                )),
            ),
            (
                "server_cpu_us_per_delivery",
                json!(opt(self.cpu_us_per_delivery(), 3)),
            ),
            (
                "server_writes_per_delivery",
                json!(opt(self.writes_per_delivery(), 4)),
            ),
            ("first_stream_error", json!(self.first_stream_error)),
        ];
        if let Some(s) = &self.storm {
            fields.extend([
                ("storm_away_events", json!(s.away_events)),
                ("storm_away_published", json!(s.away_published)),
                (
                    "storm_away_publish_secs",
                    json!(round(s.away_publish_secs, 4)),
                ),
                ("storm_reconnected", json!(s.reconnected)),
                ("storm_reconnect_secs", json!(round(s.reconnect_secs, 4))),
                (
                    "storm_caught_up_after_drop_secs",
                    json!(round(s.caught_up_after_drop_secs, 4)),
                ),
                (
                    "storm_caught_up_after_reconnect_secs",
                    json!(round(s.caught_up_after_reconnect_secs, 4)),
                ),
                ("storm_catch_up_p50_ms", json!(round(s.catch_up_p50_ms, 3))),
                ("storm_catch_up_p99_ms", json!(round(s.catch_up_p99_ms, 3))),
                ("storm_not_caught_up", json!(s.not_caught_up)),
            ]);
        }
        fields
    }

    /// The table printed before the JSON line.
    pub(crate) fn table(&self) -> String {
        let mut rows: Vec<(&str, String)> = vec![
            ("scenario", self.label.clone()),
            (
                "subscribers",
                format!(
                    "{} connected of {} ({} failed), {:.0}/s",
                    self.connected, self.subscribers, self.connect_failures, self.connect_per_sec
                ),
            ),
            (
                "events",
                format!(
                    "{} over {} topics, {} B, {}; {} accepted, {} failed, {:.0}/s",
                    self.events,
                    self.topics,
                    self.size,
                    if self.rate > 0.0 {
                        format!("{}/s offered", self.rate)
                    } else {
                        "as fast as possible".into()
                    },
                    self.published,
                    self.publish_failed,
                    self.publish_per_sec
                ),
            ),
            (
                "deliveries",
                format!(
                    "{} of {} in {:.3} s: {:.0}/s",
                    self.deliveries, self.expected, self.delivery_secs, self.deliveries_per_sec
                ),
            ),
            (
                "latency ms",
                format!(
                    "p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
                    self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms
                ),
            ),
            (
                "lost/dup/reorder",
                format!(
                    "{} / {} / {} (unexpected {}, closed early {}{})",
                    self.lost,
                    self.duplicated,
                    self.out_of_order,
                    self.unexpected,
                    self.closed_early,
                    if self.timed_out { ", TIMED OUT" } else { "" }
                ),
            ),
        ];
        if let Some(s) = &self.storm {
            rows.push((
                "storm",
                format!(
                    "{} events while away ({} accepted in {:.3} s); {} reconnected in {:.3} s",
                    s.away_events,
                    s.away_published,
                    s.away_publish_secs,
                    s.reconnected,
                    s.reconnect_secs
                ),
            ));
            rows.push((
                "caught up",
                format!(
                    "{:.3} s after the drop, {:.3} s after the reconnect start; per subscriber p50 {:.1} ms, p99 {:.1} ms; {} never",
                    s.caught_up_after_drop_secs,
                    s.caught_up_after_reconnect_secs,
                    s.catch_up_p50_ms,
                    s.catch_up_p99_ms,
                    s.not_caught_up
                ),
            ));
        }
        if let Some(e) = &self.first_publish_error {
            rows.push(("first publish error", e.clone()));
        }
        if let Some(e) = &self.first_stream_error {
            rows.push(("first early close", e.clone()));
        }
        if let Some(s) = &self.server {
            rows.push((
                "server RSS",
                format!(
                    "{} KiB before, {} KiB idle: {} KiB per connection",
                    s.rss_baseline_kib,
                    s.rss_idle_kib,
                    s.rss_kib_per_conn.map_or("-".into(), |v| format!("{v:.2}"))
                ),
            ));
            rows.push((
                "server cost",
                format!(
                    "{:.3} s CPU: {} µs/delivery; {} writes: {} per delivery",
                    s.cpu_us as f64 / 1e6,
                    self.cpu_us_per_delivery()
                        .map_or("-".into(), |v| format!("{v:.3}")),
                    s.writes.map_or("-".into(), |w| w.to_string()),
                    self.writes_per_delivery()
                        .map_or("-".into(), |v| format!("{v:.4}")),
                ),
            ));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:>width$}  {v}\n"))
            .collect()
    }
}
