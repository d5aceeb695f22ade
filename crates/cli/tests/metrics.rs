//! `/metrics`, `/healthz` and `/readyz` against the real binary: the numbers
//! move with real traffic.
// Wall-clock deadline on a separate process (see common/mod.rs).
#![allow(clippy::disallowed_types)]

mod common;

use common::*;

fn metrics(hub: &Hub) -> String {
    let raw = String::from_utf8(raw_request(hub.addr, "GET", "/metrics", &[], b"")).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("200 OK"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    body.to_string()
}

fn value(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {series} in\n{body}"))
        .parse()
        .unwrap()
}

#[test]
fn metrics_follow_subscribers_publishes_and_history() {
    let hub = Hub::start(&[]);
    let m = metrics(&hub);
    assert_eq!(value(&m, "herald_subscribers{transport=\"sse\"}"), 0.0);
    assert_eq!(value(&m, "herald_events_published_total"), 0.0);

    let mut a = Sse::open(hub.addr, "/sse?topic=m", &[]);
    let mut b = Sse::open(hub.addr, "/sse?topic=m", &[]);
    let mut c = Sse::open(hub.addr, "/stream?topic=m", &[]);
    for s in [&mut a, &mut b] {
        s.read_until("retry: ");
    }
    c.read_until("heartbeat");
    for i in 0..3 {
        publish_id(hub.addr, "m", &format!("x{i}"));
    }
    a.read_until("data: x2\n\n");
    let m = metrics(&hub);
    assert_eq!(value(&m, "herald_subscribers{transport=\"sse\"}"), 2.0);
    assert_eq!(value(&m, "herald_subscribers{transport=\"ndjson\"}"), 1.0);
    assert_eq!(value(&m, "herald_events_published_total"), 3.0);
    assert_eq!(value(&m, "herald_events_fanned_out_total"), 3.0);
    assert_eq!(value(&m, "herald_history_events"), 3.0);
    assert_eq!(value(&m, "herald_topics_watched"), 1.0);
    assert!(value(&m, "herald_store_commits_total") >= 1.0);
    assert!(!m.contains("topic=\""), "never a label per topic");

    drop((a, b, c));
    let start = std::time::Instant::now();
    while value(&metrics(&hub), "herald_subscribers{transport=\"sse\"}") != 0.0 {
        assert!(start.elapsed() < WAIT, "closed streams must be uncounted");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (status, body) = request(hub.addr, "GET", "/readyz", &[], b"");
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    let (status, body) = request(hub.addr, "GET", "/healthz", &[], b"");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
}

fn histogram_count(body: &str, name: &str) -> f64 {
    value(body, &format!("{name}_count"))
}

#[test]
fn deliveries_latencies_and_store_timings_move_with_traffic() {
    let hub = Hub::start(&[]);
    let m = metrics(&hub);
    assert_eq!(
        value(&m, "herald_events_delivered_total{transport=\"sse\"}"),
        0.0
    );
    assert_eq!(histogram_count(&m, "herald_publish_latency_seconds"), 0.0);
    assert_eq!(value(&m, "herald_ready"), 1.0);
    assert_eq!(value(&m, "herald_draining"), 0.0);
    assert_eq!(value(&m, "herald_log_healthy"), 1.0);

    let mut sse = Sse::open(hub.addr, "/sse?topic=d", &[]);
    let mut nd = Sse::open(hub.addr, "/stream?topic=d", &[]);
    sse.read_until("retry: ");
    nd.read_until("heartbeat");
    for i in 0..4 {
        publish_id(hub.addr, "d", &format!("e{i}"));
    }
    sse.read_until("data: e3\n\n");
    nd.read_until("\"e3\"");
    let (status, _) = request(hub.addr, "GET", "/poll?topic=d&timeout=0&since=", &[], b"");
    assert_eq!(status, 200);
    let m = metrics(&hub);
    assert_eq!(
        value(&m, "herald_events_delivered_total{transport=\"sse\"}"),
        4.0
    );
    assert_eq!(
        value(&m, "herald_events_delivered_total{transport=\"ndjson\"}"),
        4.0
    );
    assert_eq!(histogram_count(&m, "herald_publish_latency_seconds"), 4.0);
    assert_eq!(
        value(&m, "herald_publish_latency_seconds_bucket{le=\"+Inf\"}"),
        4.0
    );
    assert!(histogram_count(&m, "herald_store_commit_latency_seconds") >= 1.0);
    assert!(histogram_count(&m, "herald_store_append_latency_seconds") >= 1.0);
    assert!(value(&m, "herald_store_commit_latency_seconds_sum") > 0.0);
    assert!(!m.contains("topic=\""), "never a label per topic");
}

#[test]
fn auth_failures_are_counted_by_reason() {
    const SECRET: &str = "metrics-test-secret-of-at-least-32-bytes";
    let hub = Hub::start_secure(SECRET, &[]);
    // No token: 401 unauthorized (publish), on hyper's path.
    let (status, _) = publish(hub.addr, "/publish?topic=a", "x");
    assert_eq!(status, 401);
    // A token that does not cover the topic: 403 on the lean SSE path.
    let token = mint_token(
        SECRET,
        &[],
        &["other"],
        std::time::Duration::from_secs(60),
        std::time::SystemTime::now(),
    );
    let auth = format!("Bearer {token}");
    let (status, _) = request(
        hub.addr,
        "GET",
        "/sse?topic=a",
        &[("Authorization", auth.as_str())],
        b"",
    );
    assert_eq!(status, 403);
    // A malformed token.
    let (status, _) = request(
        hub.addr,
        "GET",
        "/poll?topic=a&timeout=0",
        &[("Authorization", "Bearer not.a.jwt")],
        b"",
    );
    assert_eq!(status, 401);
    let m = metrics(&hub);
    assert_eq!(
        value(&m, "herald_auth_failures_total{reason=\"unauthorized\"}"),
        1.0
    );
    assert_eq!(
        value(&m, "herald_auth_failures_total{reason=\"forbidden\"}"),
        1.0
    );
    let all: f64 = m
        .lines()
        .filter(|l| l.starts_with("herald_auth_failures_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(all, 3.0, "{m}");
}
