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
