//! websub.rocks' hub checks 100-106 reproduced against Herald's `/websub`,
//! with a real receiving HTTP server in the test process playing subscriber
//! and publisher; failed verifications; plain-text refusals.
// The hub is another process: waits are wall-clock on purpose.
#![allow(clippy::disallowed_types)]

mod common;
#[path = "webhooks/receiver.rs"]
mod receiver;
#[path = "webhooks/support.rs"]
mod support;

use std::time::{Duration, Instant};

use common::{WAIT, request};
use receiver::{Delivery, Receiver, Verify};
use support::*;

/// websub.rocks' checks on one delivery, in its order.
fn assert_rocks_delivery(
    d: &Delivery,
    body: &str,
    content_type: &str,
    topic: &str,
    secret: Option<&str>,
) {
    assert!(!d.body.is_empty());
    assert_eq!(String::from_utf8_lossy(&d.body).trim(), body.trim());
    assert_eq!(
        d.header("content-type"),
        Some(content_type),
        "content type unchanged"
    );
    let link = d.header("link").expect("a Link header");
    assert!(
        link.contains(&format!("<{HUB_URL}>; rel=\"hub\"")),
        "{link}"
    );
    assert!(link.contains(&format!("<{topic}>; rel=\"self\"")), "{link}");
    match secret {
        None => assert_eq!(d.header("x-hub-signature"), None),
        Some(s) => assert_signed(d, s, "sha256"),
    }
    assert!(d.header("herald-event-id").is_some());
    assert_eq!(d.header("herald-topic"), Some(topic));
}

/// One websub.rocks hub check: the receiver serves the topic, subscribes,
/// the publisher pings, and the delivery is checked.
fn rocks(case: u32, content_type: &str, body: &str, extra: &[(&str, &str)], secret: Option<&str>) {
    let h = hub(&[]);
    let rx = Receiver::start();
    rx.state.lock().unwrap().hub_url = HUB_URL.into();
    let topic_path = format!("/topic/{case}");
    let topic = rx.url(&topic_path);
    rx.set_topic(&topic_path, content_type, body);
    let cb_path = format!("/callback/{case}?token=abc");
    let callback = rx.url(&cb_path);
    let mut params = extra.to_vec();
    if let Some(s) = secret {
        params.push(("hub.secret", s));
    }
    subscribe(&h, &topic, &callback, &params);
    let v = rx.wait_verifications(1);
    assert_eq!(v[0]["hub.mode"], "subscribe");
    assert_eq!(v[0]["hub.topic"], topic);
    assert!(v[0]["hub.lease_seconds"].parse::<u64>().is_ok());
    assert_eq!(v[0]["token"], "abc", "the callback's own query is kept");
    let (status, text) = websub(
        h.addr,
        &[("hub.mode", "publish"), ("hub.topic", &topic)],
        &[],
    );
    assert_eq!(status, 202, "{text}");
    let d = rx.wait_deliveries(&cb_path, 1);
    assert_rocks_delivery(&d[0], body, content_type, &topic, secret);
    assert!(rx.state.lock().unwrap().bad_verifications.is_empty());
}

#[test]
fn websub_rocks_100_subscription_without_secret_is_delivered_unsigned() {
    rocks(100, "text/html", "<p>hello 100</p>", &[], None);
}

#[test]
fn websub_rocks_101_subscription_with_secret_is_delivered_signed() {
    rocks(
        101,
        "text/html",
        "<p>hello 101</p>",
        &[],
        Some("0123456789abcdefghij"),
    );
}

#[test]
fn websub_rocks_102_unknown_parameters_are_ignored() {
    rocks(
        102,
        "text/html",
        "<p>hello 102</p>",
        &[("foo", "bar"), ("hub.foo", "hub.bar")],
        None,
    );
}

#[test]
fn websub_rocks_105_text_plain_keeps_body_and_content_type() {
    rocks(105, "text/plain", "plain text 105\n", &[], None);
}

#[test]
fn websub_rocks_106_json_keeps_body_and_content_type() {
    rocks(
        106,
        "application/json",
        "{\"n\": 106, \"ok\": true}",
        &[],
        None,
    );
}

#[test]
fn websub_rocks_103_resubscribing_updates_the_subscription() {
    let h = hub(&[]);
    let rx = Receiver::start();
    let topic = "https://example.test/topic/103";
    let cb = rx.url("/cb103");
    subscribe(&h, topic, &cb, &[("hub.lease_seconds", "600")]);
    // The same callback with an unreserved character percent-encoded is the
    // same URL ("%62" is "b").
    let same_cb = rx.url("/c%62103");
    let (status, _) = websub(
        h.addr,
        &[
            ("hub.mode", "subscribe"),
            ("hub.topic", topic),
            ("hub.callback", &same_cb),
            ("hub.lease_seconds", "900"),
            ("hub.secret", "new secret"),
        ],
        &[],
    );
    assert_eq!(status, 202);
    rx.wait_verifications(2);
    // The renewal takes effect after its verification: the lease grows.
    let start = Instant::now();
    loop {
        let l = list(h.addr, &[]);
        assert_eq!(l.len(), 1, "one subscription per (topic, callback): {l:?}");
        if l[0]["signed"] == true {
            break;
        }
        assert!(start.elapsed() < WAIT, "renewal never applied");
        std::thread::sleep(Duration::from_millis(20));
    }
    common::publish_id(h.addr, topic, "one update");
    let d = rx.wait_deliveries("/cb103", 1);
    assert_signed(&d[0], "new secret", "sha256");
    // A second delivery would come within a few ms; give it ample time.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        rx.deliveries_to("/cb103").len(),
        1,
        "one delivery per update, not two"
    );
}

#[test]
fn websub_rocks_104_unsubscribed_callbacks_get_nothing() {
    let h = hub(&[]);
    let rx = Receiver::start();
    let topic = "https://example.test/topic/104";
    let (gone, control) = (rx.url("/gone104"), rx.url("/control104"));
    subscribe(&h, topic, &gone, &[]);
    subscribe(&h, topic, &control, &[]);
    let (status, _) = websub(
        h.addr,
        &[
            ("hub.mode", "unsubscribe"),
            ("hub.topic", topic),
            ("hub.callback", &gone),
        ],
        &[],
    );
    assert_eq!(status, 202);
    wait_list(h.addr, "the unsubscription", |l| !has_callback(l, &gone));
    let v = rx.wait_verifications(3);
    assert_eq!(v[2]["hub.mode"], "unsubscribe");
    assert!(!v[2].contains_key("hub.lease_seconds"));
    common::publish_id(h.addr, topic, "after unsubscribe");
    // The control subscription gets the event: by then the other would have too.
    rx.wait_deliveries("/control104", 1);
    std::thread::sleep(Duration::from_millis(200));
    assert!(rx.deliveries_to("/gone104").is_empty());
}

#[test]
fn failed_verification_creates_nothing_and_is_counted() {
    let h = hub(&[]);
    let rx = Receiver::start();
    for (i, mode) in [Verify::NotFound, Verify::WrongBody]
        .into_iter()
        .enumerate()
    {
        rx.set_verify(mode);
        let (status, _) = websub(
            h.addr,
            &[
                ("hub.mode", "subscribe"),
                ("hub.topic", "t"),
                ("hub.callback", &rx.url(&format!("/cb{i}"))),
            ],
            &[],
        );
        assert_eq!(status, 202, "202 does not depend on the verification");
        rx.wait_verifications(i + 1);
    }
    let start = Instant::now();
    while metric(h.addr, "herald_webhook_verification_failures_total") < 2.0 {
        assert!(start.elapsed() < WAIT);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(list(h.addr, &[]).is_empty());
}

#[test]
fn bad_websub_requests_get_plain_text_4xx() {
    let h = hub(&[]);
    type Case<'a> = (&'a [(&'a str, &'a str)], u16, &'a str);
    let cases: &[Case] = &[
        (
            &[("hub.topic", "t"), ("hub.callback", "http://127.0.0.1:1/")],
            400,
            "hub.mode",
        ),
        (
            &[
                ("hub.mode", "subscribe"),
                ("hub.callback", "http://127.0.0.1:1/"),
            ],
            400,
            "hub.topic",
        ),
        (
            &[("hub.mode", "subscribe"), ("hub.topic", "t")],
            400,
            "hub.callback",
        ),
        (
            &[
                ("hub.mode", "subscribe"),
                ("hub.topic", "t"),
                ("hub.callback", "ftp://x/"),
            ],
            400,
            "http",
        ),
        (
            &[
                ("hub.mode", "dance"),
                ("hub.topic", "t"),
                ("hub.callback", "http://127.0.0.1:1/"),
            ],
            400,
            "dance",
        ),
        (
            &[
                ("hub.mode", "subscribe"),
                ("hub.topic", "t"),
                ("hub.callback", "http://127.0.0.1:1/"),
                ("hub.lease_seconds", "soon"),
            ],
            400,
            "lease",
        ),
    ];
    for (params, status, needle) in cases {
        let raw = {
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(*params)
                .finish();
            common::raw_request(
                h.addr,
                "POST",
                "/websub",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                body.as_bytes(),
            )
        };
        let text = String::from_utf8_lossy(&raw);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}")),
            "{params:?}: {text}"
        );
        assert!(
            text.to_ascii_lowercase()
                .contains("content-type: text/plain"),
            "{text}"
        );
        assert!(text.contains(needle), "{params:?}: {text}");
    }
    let long = "s".repeat(200);
    let (status, body) = websub(
        h.addr,
        &[
            ("hub.mode", "subscribe"),
            ("hub.topic", "t"),
            ("hub.callback", "http://127.0.0.1:1/"),
            ("hub.secret", &long),
        ],
        &[],
    );
    assert_eq!((status, body.contains("200 bytes")), (400, true), "{body}");
    let (status, _) = request(
        h.addr,
        "POST",
        "/websub",
        &[("Content-Type", "application/json")],
        b"{}",
    );
    assert_eq!(status, 415);
}
