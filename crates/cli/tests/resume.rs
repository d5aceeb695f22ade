//! Resumption: Last-Event-ID header and query aliases, header precedence, and
//! explicit resets for positions the hub cannot honour.

mod common;

use common::*;

fn seed(hub: &Hub, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| publish_id(hub.addr, "r", &format!("e{i}")))
        .collect()
}

#[test]
fn resumes_after_the_given_position_by_header_and_by_query() {
    let hub = Hub::start(&[]);
    let mut ids = seed(&hub, 6);
    let cases = [
        (format!("/sse?topic=r&last_event_id={}", ids[2]), None),
        (format!("/sse?topic=r&lastEventID={}", ids[2]), None),
        (format!("/sse?topic=r&lastEventId={}", ids[2]), None),
        // The header wins over the URL's (stale) cursor.
        (
            format!("/sse?topic=r&last_event_id={}", ids[0]),
            Some(ids[2].clone()),
        ),
    ];
    for (n, (target, header)) in cases.into_iter().enumerate() {
        let headers: Vec<(&str, &str)> = header
            .iter()
            .map(|h| ("Last-Event-ID", h.as_str()))
            .collect();
        let mut sse = Sse::open(hub.addr, &target, &headers);
        sse.read_until("data: e5\n\n");
        // Then live: the new event follows the replay with no gap.
        ids.push(publish_id(hub.addr, "r", &format!("live{n}")));
        sse.read_until(&format!("data: live{n}\n\n"));
        assert_eq!(sse.ids(), ids[3..].to_vec(), "{target}");
    }
}

#[test]
fn resumes_after_a_publisher_supplied_id() {
    let hub = Hub::start(&[]);
    publish(hub.addr, "/publish?topic=r&id=first", "a");
    publish(hub.addr, "/publish?topic=r&id=second", "b");
    let mut sse = Sse::open(hub.addr, "/sse?topic=r", &[("Last-Event-ID", "first")]);
    sse.read_until("data: b\n\n");
    assert_eq!(sse.ids(), vec!["second".to_string()]);
}

#[test]
fn unusable_positions_are_reset_explicitly() {
    let hub = Hub::start(&["--retention-events-per-topic", "2"]);
    let ids = seed(&hub, 5);
    let epoch = ids[0].split('-').next().unwrap().to_string();
    let mut head = ids[4].clone();
    for (cursor, reason) in [
        ("ffff0000-1".to_string(), "epoch"),
        ("no-such-id-anywhere".to_string(), "unknown"),
        (format!("{epoch}-999"), "unknown"),
        (ids[0].clone(), "expired"),
    ] {
        let mut sse = Sse::open(
            hub.addr,
            "/sse?topic=r&topic=live",
            &[("Last-Event-ID", &cursor)],
        );
        let text = sse.read_until("\"}\n\n");
        assert!(
            text.contains("Herald-Resume: reset\r\n"),
            "{cursor}: {text}"
        );
        let expected = format!(
            "event: herald-reset\nid: {head}\ndata: {{\"last_event_id\":\"{head}\",\"reason\":\"{reason}\"}}\n\n"
        );
        assert!(text.contains(&expected), "{cursor}: {text:?}");
        // Then live, with nothing replayed.
        head = publish_id(hub.addr, "live", "after-reset");
        sse.read_until("data: after-reset\n\n");
        assert_eq!(sse.ids().len(), 2, "{cursor}: reset + the live event only");
    }
    // A position still inside the retained window resumes normally.
    let mut sse = Sse::open(hub.addr, "/sse?topic=r", &[("Last-Event-ID", &ids[3])]);
    sse.read_until("data: e4\n\n");
    assert!(!String::from_utf8_lossy(&sse.buf).contains("herald-reset"));
}
