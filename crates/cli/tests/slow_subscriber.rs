//! A subscriber that stops reading falls behind its ring; it is switched to
//! catch-up from the log and, once it reads again, gets every event in order.

mod common;

use common::*;

#[test]
fn slow_subscriber_catches_up_from_the_log_without_loss() {
    let hub = Hub::start(&["--ring-capacity", "4"]);
    let mut slow = Sse::open(hub.addr, "/sse?topic=flood", &[]);
    slow.read_until("retry: ");
    // Far more than the socket buffers hold, so the stream's writer blocks while
    // the ring (4 slots) overflows many times.
    let payload = "z".repeat(16 * 1024);
    let body: Vec<serde_json::Value> = (0..50)
        .map(|i| serde_json::json!({"topic": "flood", "data": format!("{i:04}{payload}")}))
        .collect();
    let body = serde_json::to_vec(&body).unwrap();
    let mut ids = Vec::new();
    for _ in 0..20 {
        let (s, text) = request(
            hub.addr,
            "POST",
            "/publish",
            &[("Content-Type", "application/json")],
            &body,
        );
        assert_eq!(s, 200, "{text}");
        let v: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        ids.extend(v.iter().map(|x| x["id"].as_str().unwrap().to_string()));
    }
    ids.push(publish_id(hub.addr, "flood", "END"));
    slow.read_until("data: END\n\n");
    assert_eq!(slow.ids(), ids, "every event, once, in order");
    // And it really went back to the store: the catch-up is counted.
    let (_, metrics) = request(hub.addr, "GET", "/metrics", &[], b"");
    let catchups = metrics
        .lines()
        .find_map(|l| l.strip_prefix("herald_slow_subscriber_catchups_total "))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert_ne!(catchups, "0", "{metrics}");
}
