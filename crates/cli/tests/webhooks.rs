//! Webhooks and the WebSub hub against a real receiving HTTP server in the
//! test process: verification of intent, signed deliveries, a receiver that is
//! down and comes back (every event, in order), 410 removal, lease expiry, a
//! restart with deliveries pending, a hanging receiver next to a healthy one,
//! the SSRF guard, the JSON API and authorization, and websub.rocks' hub
//! checks 100-106.
// The hub is another process: waits are wall-clock on purpose.
#![allow(clippy::disallowed_types)]

mod common;
#[path = "webhooks/receiver.rs"]
mod receiver;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Hub, WAIT, mint_token, publish, request};
use receiver::{Answer, Delivery, Receiver, Verify};

/// The hub URL a subscriber sees: the harness sends `Host: test`.
const HUB_URL: &str = "http://test/websub";

/// Flags every webhook test hub gets: callbacks on 127.0.0.1, quick retries.
const FAST: &[&str] = &[
    "--webhook-allow-private",
    "--webhook-backoff-base-ms",
    "50",
    "--webhook-backoff-max-ms",
    "200",
];

fn hub(extra: &[&str]) -> Hub {
    let mut args = FAST.to_vec();
    args.extend_from_slice(extra);
    Hub::start(&args)
}

/// POSTs form parameters to `/websub`.
fn websub(addr: SocketAddr, params: &[(&str, &str)], headers: &[(&str, &str)]) -> (u16, String) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
    h.extend_from_slice(headers);
    request(addr, "POST", "/websub", &h, body.as_bytes())
}

/// The webhook subscriptions the hub lists (dev mode sees all).
fn list(addr: SocketAddr, headers: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let (status, body) = request(addr, "GET", "/webhooks", headers, b"");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Vec<serde_json::Value>>(&body).unwrap()
}

/// Waits (bounded) until `cond` holds for the hub's subscription list.
fn wait_list(addr: SocketAddr, what: &str, cond: impl Fn(&[serde_json::Value]) -> bool) {
    let start = Instant::now();
    while !cond(&list(addr, &[])) {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn has_callback(l: &[serde_json::Value], cb: &str) -> bool {
    l.iter().any(|r| r["callback"] == cb)
}

/// Subscribes `callback` to `topic` through `/websub` and waits until the
/// verified subscription is active.
fn subscribe(h: &Hub, topic: &str, callback: &str, extra: &[(&str, &str)]) {
    let mut p = vec![
        ("hub.mode", "subscribe"),
        ("hub.topic", topic),
        ("hub.callback", callback),
    ];
    p.extend_from_slice(extra);
    let (status, body) = websub(h.addr, &p, &[]);
    assert_eq!(status, 202, "{body}");
    wait_list(h.addr, "the subscription to be verified", |l| {
        has_callback(l, callback)
    });
}

/// A metric's value from `/metrics` (the whole sample name, labels included).
fn metric(addr: SocketAddr, sample: &str) -> f64 {
    let (_, text) = request(addr, "GET", "/metrics", &[], b"");
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {sample} in\n{text}"))
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Checks `X-Hub-Signature: ALG=HEX` against the body with an HMAC computed here.
fn assert_signed(d: &Delivery, secret: &str, alg: &str) {
    use aws_lc_rs::hmac;
    let sig = d.header("x-hub-signature").expect("a signature header");
    let (name, tag) = sig.split_once('=').unwrap();
    assert_eq!(name, alg);
    let algorithm = match alg {
        "sha1" => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        "sha256" => hmac::HMAC_SHA256,
        "sha384" => hmac::HMAC_SHA384,
        _ => hmac::HMAC_SHA512,
    };
    let key = hmac::Key::new(algorithm, secret.as_bytes());
    hmac::verify(&key, &d.body, &hex(tag)).expect("the signature verifies with the secret");
    let wrong = hmac::Key::new(algorithm, b"another secret");
    assert!(hmac::verify(&wrong, &d.body, &hex(tag)).is_err());
}

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
    let (status, _) = websub(
        h.addr,
        &[
            ("hub.mode", "subscribe"),
            ("hub.topic", topic),
            ("hub.callback", &cb),
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

#[test]
fn receiver_down_then_back_gets_every_event_in_order() {
    let h = hub(&[]);
    let rx = Receiver::start();
    let topic = "orders";
    subscribe(&h, topic, &rx.url("/down"), &[]);
    rx.set_answer(Answer::Status(503));
    let ids: Vec<String> = (0..6)
        .map(|i| common::publish_id(h.addr, topic, &format!("event {i}")))
        .collect();
    // Several attempts fail (with back-off) while it is down.
    rx.wait_for("failed attempts", WAIT, |s| (s.attempts >= 3).then_some(()));
    assert!(metric(h.addr, "herald_webhook_deliveries_total{result=\"failed\"}") >= 3.0);
    assert_eq!(metric(h.addr, "herald_webhook_queue_depth"), 1.0);
    rx.set_answer(Answer::Ok);
    let got = rx.wait_deliveries("/down", 6);
    let bodies: Vec<String> = got
        .iter()
        .map(|d| String::from_utf8_lossy(&d.body).into())
        .collect();
    let want: Vec<String> = (0..6).map(|i| format!("event {i}")).collect();
    assert_eq!(bodies, want, "every event, in order, once");
    let got_ids: Vec<&str> = got
        .iter()
        .map(|d| d.header("herald-event-id").unwrap())
        .collect();
    assert_eq!(got_ids, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        got[0].header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        metric(h.addr, "herald_webhook_deliveries_total{result=\"ok\"}"),
        6.0
    );
    let start = Instant::now();
    while metric(h.addr, "herald_webhook_queue_depth") != 0.0 {
        assert!(start.elapsed() < WAIT);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn connection_refused_is_retried_until_the_receiver_listens() {
    let h = hub(&[]);
    // The API verifies intent first: register with a live receiver, then
    // stop it, so every delivery meets a refused connection.
    let rx = Receiver::start();
    let body = serde_json::json!({"topic": "late", "callback": rx.url("/late")}).to_string();
    let (status, text) = request(
        h.addr,
        "POST",
        "/webhooks",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(status, 201, "{text}");
    drop(rx); // the receiver is gone: connections are refused
    common::publish_id(h.addr, "late", "while down");
    let start = Instant::now();
    while metric(h.addr, "herald_webhook_deliveries_total{result=\"failed\"}") < 2.0 {
        assert!(
            start.elapsed() < WAIT,
            "refused connections are failures, retried"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        list(h.addr, &[]).len(),
        1,
        "still subscribed while retrying"
    );
}

#[test]
fn gone_410_removes_the_subscription() {
    let h = hub(&[]);
    let rx = Receiver::start();
    subscribe(&h, "t410", &rx.url("/gone"), &[]);
    rx.set_answer(Answer::Status(410));
    common::publish_id(h.addr, "t410", "first");
    wait_list(h.addr, "the 410 removal", |l| l.is_empty());
    assert_eq!(rx.state.lock().unwrap().attempts, 1);
    assert_eq!(
        metric(h.addr, "herald_webhook_removals_total{reason=\"gone\"}"),
        1.0
    );
    common::publish_id(h.addr, "t410", "second");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        rx.state.lock().unwrap().attempts,
        1,
        "no delivery after removal"
    );
}

#[test]
fn lease_expiry_removes_the_subscription() {
    let h = hub(&["--webhook-lease-min-secs", "1"]);
    let rx = Receiver::start();
    subscribe(
        &h,
        "lease",
        &rx.url("/lease"),
        &[("hub.lease_seconds", "1")],
    );
    let v = rx.wait_verifications(1);
    assert_eq!(
        v[0]["hub.lease_seconds"], "1",
        "the granted lease is announced"
    );
    // Before expiry it delivers.
    common::publish_id(h.addr, "lease", "in time");
    rx.wait_deliveries("/lease", 1);
    wait_list(h.addr, "the lease to end", |l| l.is_empty());
    assert_eq!(
        metric(h.addr, "herald_webhook_removals_total{reason=\"expired\"}"),
        1.0
    );
    common::publish_id(h.addr, "lease", "too late");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rx.deliveries_to("/lease").len(), 1);
}

#[test]
fn lease_requests_are_clamped_to_the_bounds() {
    let h = hub(&[
        "--webhook-lease-max-secs",
        "3600",
        "--webhook-lease-default-secs",
        "1800",
    ]);
    let rx = Receiver::start();
    subscribe(
        &h,
        "clamp",
        &rx.url("/a"),
        &[("hub.lease_seconds", "999999999")],
    );
    subscribe(&h, "clamp", &rx.url("/b"), &[]);
    let v = rx.wait_verifications(2);
    assert_eq!(v[0]["hub.lease_seconds"], "3600");
    assert_eq!(v[1]["hub.lease_seconds"], "1800");
}

#[test]
fn restart_with_deliveries_pending_loses_nothing() {
    let mut h = hub(&[]);
    let rx = Receiver::start();
    subscribe(&h, "durable", &rx.url("/durable"), &[("hub.secret", "k")]);
    common::publish_id(h.addr, "durable", "a");
    rx.wait_deliveries("/durable", 1);
    rx.set_answer(Answer::Status(500));
    for d in ["b", "c", "d"] {
        common::publish_id(h.addr, "durable", d);
    }
    rx.wait_for("a failed attempt", WAIT, |s| {
        (s.attempts >= 3).then_some(())
    });
    let mut again = vec!["--dev"];
    again.extend_from_slice(FAST);
    h.kill_and_restart(&again);
    rx.set_answer(Answer::Ok);
    common::publish_id(h.addr, "durable", "e");
    let got = rx.wait_deliveries("/durable", 5);
    let bodies: Vec<String> = got
        .iter()
        .map(|d| String::from_utf8_lossy(&d.body).into())
        .collect();
    assert_eq!(bodies, ["a", "b", "c", "d", "e"]);
    for d in &got {
        assert_signed(d, "k", "sha256");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        rx.deliveries_to("/durable").len(),
        5,
        "nothing delivered twice"
    );
}

#[test]
fn a_hanging_receiver_does_not_delay_a_healthy_one() {
    // One healthy permit: the hanging receiver holds it until its first
    // timeout, is then demoted to the failing pool, and the healthy receiver's
    // later deliveries never wait for it.
    let h = hub(&[
        "--webhook-concurrency",
        "1",
        "--webhook-failing-concurrency",
        "1",
        "--webhook-timeout-ms",
        "3000",
    ]);
    let (hang, ok) = (Receiver::start(), Receiver::start());
    hang.set_answer(Answer::Hang);
    subscribe(&h, "shared", &hang.url("/hang"), &[]);
    subscribe(&h, "shared", &ok.url("/ok"), &[]);
    common::publish_id(h.addr, "shared", "0");
    ok.wait_deliveries("/ok", 1);
    // Until its first attempt times out the hanging receiver may hold the one
    // healthy permit; from then on it is demoted.
    let start = Instant::now();
    while metric(h.addr, "herald_webhook_deliveries_total{result=\"failed\"}") < 1.0 {
        assert!(
            start.elapsed() < WAIT,
            "the hanging delivery never timed out"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 1..=5 {
        let start = Instant::now();
        common::publish_id(h.addr, "shared", &i.to_string());
        ok.wait_deliveries("/ok", i + 1);
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(1000),
            "delivery {i} took {took:?} behind a hanging receiver"
        );
    }
    assert_eq!(hang.state.lock().unwrap().deliveries.len(), 0);
    assert!(hang.state.lock().unwrap().attempts >= 1);
}

#[test]
fn failing_too_often_evicts_the_subscription() {
    let h = hub(&["--webhook-max-failures", "3"]);
    let rx = Receiver::start();
    subscribe(&h, "evict", &rx.url("/evict"), &[]);
    rx.set_answer(Answer::Status(500));
    common::publish_id(h.addr, "evict", "x");
    wait_list(h.addr, "the eviction", |l| l.is_empty());
    assert_eq!(rx.state.lock().unwrap().attempts, 3);
    assert_eq!(metric(h.addr, "herald_webhook_evictions_total"), 1.0);
}

#[test]
fn redirects_are_failures_not_followed() {
    let h = hub(&["--webhook-max-failures", "2"]);
    let rx = Receiver::start();
    subscribe(&h, "redir", &rx.url("/redir"), &[]);
    rx.set_answer(Answer::Status(307));
    common::publish_id(h.addr, "redir", "x");
    wait_list(h.addr, "the eviction", |l| l.is_empty());
    assert_eq!(rx.state.lock().unwrap().attempts, 2);
}

/// A name that resolves to a loopback address without being `localhost`
/// (`/etc/hosts` usually maps the machine's name so).
fn loopback_name() -> String {
    use std::net::ToSocketAddrs;
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let from_hosts = hosts.lines().find_map(|l| {
        let mut parts = l.split_whitespace();
        let ip: std::net::IpAddr = parts.next()?.parse().ok()?;
        if !ip.is_loopback() {
            return None;
        }
        parts
            .find(|n| !n.starts_with('#') && !n.contains("localhost"))
            .map(String::from)
    });
    let name = from_hosts.expect("/etc/hosts names a loopback address other than localhost");
    let resolved: Vec<_> = (name.as_str(), 80).to_socket_addrs().unwrap().collect();
    assert!(
        resolved.iter().all(|a| a.ip().is_loopback()),
        "{name} -> {resolved:?}"
    );
    name
}

#[test]
fn ssrf_guard_refuses_private_callbacks_also_at_connect_time() {
    let h = Hub::start(&[]); // no --webhook-allow-private
    let rx = Receiver::start();
    for cb in [
        rx.url("/x"),
        "http://[::1]/x".into(),
        "http://localhost/x".into(),
        "http://169.254.169.254/latest".into(),
    ] {
        let (status, body) = websub(
            h.addr,
            &[
                ("hub.mode", "subscribe"),
                ("hub.topic", "t"),
                ("hub.callback", &cb),
            ],
            &[],
        );
        assert_eq!(status, 400, "{cb}: {body}");
        assert!(body.contains("webhook_allow_private"), "{body}");
    }
    // A name that passes the literal check but resolves to loopback (as a
    // rebinding name would at connect time) is refused when connecting.
    let cb = format!("http://{}:{}/rebind", loopback_name(), rx.addr.port());
    let (status, body) = websub(
        h.addr,
        &[
            ("hub.mode", "subscribe"),
            ("hub.topic", "t"),
            ("hub.callback", &cb),
        ],
        &[],
    );
    assert_eq!(status, 202, "{body}");
    let start = Instant::now();
    while metric(h.addr, "herald_webhook_verification_failures_total") < 1.0 {
        assert!(start.elapsed() < WAIT);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        rx.state.lock().unwrap().verifications.is_empty(),
        "the hub never connected"
    );
    // Publish pings may not fetch private addresses either.
    let (status, body) = websub(
        h.addr,
        &[("hub.mode", "publish"), ("hub.url", &rx.url("/topic"))],
        &[],
    );
    assert_eq!(status, 400, "{body}");
    let body = serde_json::json!({"topic": "t", "callback": cb}).to_string();
    let (status, text) = request(
        h.addr,
        "POST",
        "/webhooks",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("loopback"), "{text}");
}

#[test]
fn json_api_creates_lists_and_deletes_webhooks() {
    let h = hub(&[]);
    let rx = Receiver::start();
    let body = serde_json::json!({
        "topic": ["api/a", "api/b"],
        "callback": rx.url("/api"),
        "secret": "shh",
        "format": "json",
        "lease_seconds": 120,
    })
    .to_string();
    let json = [("Content-Type", "application/json")];
    let (status, text) = request(h.addr, "POST", "/webhooks", &json, body.as_bytes());
    assert_eq!(status, 201, "{text}");
    let created: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(created.get("secret").is_none());
    assert_eq!(created["signed"], true);
    let id = created["id"].as_str().unwrap().to_string();
    let (status, one) = request(h.addr, "GET", &format!("/webhooks/{id}"), &[], b"");
    assert_eq!(status, 200, "{one}");
    let (status, _) = publish(h.addr, "/publish?topic=api/b&type=greeting", "hi");
    assert_eq!(status, 200);
    let d = rx.wait_deliveries("/api", 1);
    assert_eq!(d[0].header("content-type"), Some("application/json"));
    assert_eq!(d[0].header("herald-topic"), Some("api/b"));
    assert_eq!(d[0].header("herald-event-type"), Some("greeting"));
    let ev: serde_json::Value = serde_json::from_slice(&d[0].body).unwrap();
    assert_eq!(ev["data"], "hi");
    assert_signed(&d[0], "shh", "sha256");
    let (status, _) = request(h.addr, "DELETE", &format!("/webhooks/{id}"), &[], b"");
    assert_eq!(status, 204);
    let (status, _) = request(h.addr, "DELETE", &format!("/webhooks/{id}"), &[], b"");
    assert_eq!(status, 404);
    assert!(list(h.addr, &[]).is_empty());
    // Bad input: clear JSON errors.
    for (body, status, code) in [
        ("{\"topic\": \"t\"}", 400, "invalid_json"),
        (
            "{\"topic\": \"t\", \"callback\": \"nope\"}",
            400,
            "invalid_callback",
        ),
        (
            "{\"topic\": [], \"callback\": \"http://127.0.0.1:1/\"}",
            400,
            "invalid_topic",
        ),
    ] {
        let (s, text) = request(h.addr, "POST", "/webhooks", &json, body.as_bytes());
        assert_eq!(s, status, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"], code);
    }
    rx.set_verify(Verify::NotFound);
    let body = serde_json::json!({"topic": "t", "callback": rx.url("/refuses")}).to_string();
    let (status, text) = request(h.addr, "POST", "/webhooks", &json, body.as_bytes());
    assert_eq!(status, 422, "{text}");
}

#[test]
fn signature_algorithm_is_configurable() {
    let h = hub(&["--webhook-signature", "sha512"]);
    let rx = Receiver::start();
    subscribe(&h, "sig", &rx.url("/sig"), &[("hub.secret", "key")]);
    common::publish_id(h.addr, "sig", "signed");
    let d = rx.wait_deliveries("/sig", 1);
    assert_signed(&d[0], "key", "sha512");
}

#[test]
fn authorization_follows_the_subscribe_rules() {
    const SECRET: &str = "webhook-test-secret-of-at-least-32-bytes";
    let now = std::time::SystemTime::now();
    let h = Hub::start_secure(
        SECRET,
        &["--webhook-allow-private", "--anonymous-subscribe"],
    );
    let rx = Receiver::start();
    let publisher = mint_token(SECRET, &["*"], &[], Duration::from_secs(600), now);
    let reader = mint_token(SECRET, &[], &["news/*"], Duration::from_secs(600), now);
    let bearer = |t: &str| format!("Bearer {t}");
    // Anonymous WebSub subscribers get public events only.
    let (status, body) = websub(
        h.addr,
        &[
            ("hub.mode", "subscribe"),
            ("hub.topic", "news/1"),
            ("hub.callback", &rx.url("/anon")),
        ],
        &[],
    );
    assert_eq!(status, 202, "{body}");
    // A token that may read news/* gets private events too.
    let auth = bearer(&reader);
    let (status, body) = websub(
        h.addr,
        &[
            ("hub.mode", "subscribe"),
            ("hub.topic", "news/1"),
            ("hub.callback", &rx.url("/reader")),
        ],
        &[("Authorization", &auth)],
    );
    assert_eq!(status, 202, "{body}");
    rx.wait_verifications(2);
    let start = Instant::now();
    loop {
        let l = list(h.addr, &[("Authorization", &auth)]);
        if l.len() == 1 {
            assert_eq!(
                l[0]["callback"],
                rx.url("/reader"),
                "a token sees its own webhooks only"
            );
            break;
        }
        assert!(start.elapsed() < WAIT);
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100)); // the anonymous one too
    let pauth = bearer(&publisher);
    for (q, data) in [("private=1", "secret news"), ("private=0", "public news")] {
        let (status, body) = request(
            h.addr,
            "POST",
            &format!("/publish?topic=news/1&{q}"),
            &[("Authorization", &pauth)],
            data.as_bytes(),
        );
        assert_eq!(status, 200, "{body}");
    }
    let reader_got = rx.wait_deliveries("/reader", 2);
    assert_eq!(reader_got[0].body.as_ref(), b"secret news");
    let anon_got = rx.wait_deliveries("/anon", 1);
    assert_eq!(anon_got[0].body.as_ref(), b"public news");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        rx.deliveries_to("/anon").len(),
        1,
        "private events never reach a reader who may not see them"
    );
    // The JSON API needs a token; a token needs the topic.
    let body = serde_json::json!({"topic": "sports/1", "callback": rx.url("/x")}).to_string();
    let json = ("Content-Type", "application/json");
    let (status, _) = request(h.addr, "POST", "/webhooks", &[json], body.as_bytes());
    assert_eq!(status, 401);
    let start = Instant::now();
    let (status, text) = request(
        h.addr,
        "POST",
        "/webhooks",
        &[json, ("Authorization", &auth)],
        body.as_bytes(),
    );
    assert!(start.elapsed() < WAIT);
    assert_eq!(
        status, 201,
        "{text}: anonymous_subscribe lets a token subscribe to any topic (public events only)"
    );
    // Publish pings need publish rights.
    let (status, _) = websub(
        h.addr,
        &[("hub.mode", "publish"), ("hub.topic", "news/1")],
        &[],
    );
    assert_eq!(status, 401);
}

#[test]
fn without_anonymous_subscribe_websub_needs_a_token() {
    const SECRET: &str = "webhook-test-secret-of-at-least-32-bytes";
    let h = Hub::start_secure(SECRET, &["--webhook-allow-private"]);
    let rx = Receiver::start();
    let (status, body) = websub(
        h.addr,
        &[
            ("hub.mode", "subscribe"),
            ("hub.topic", "news/1"),
            ("hub.callback", &rx.url("/a")),
        ],
        &[],
    );
    assert_eq!(status, 401, "{body}");
    let token = mint_token(
        SECRET,
        &[],
        &["other/*"],
        Duration::from_secs(600),
        std::time::SystemTime::now(),
    );
    let (status, body) = websub(
        h.addr,
        &[
            ("hub.mode", "subscribe"),
            ("hub.topic", "news/1"),
            ("hub.callback", &rx.url("/a")),
        ],
        &[("Authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(status, 403, "{body}");
    assert!(rx.state.lock().unwrap().verifications.is_empty());
}

#[test]
fn events_lost_to_retention_are_announced_not_skipped_silently() {
    let retention = ["--retention-events-per-topic", "2"];
    let mut h = hub(&retention);
    let rx = Receiver::start();
    subscribe(&h, "kept", &rx.url("/kept"), &[]);
    rx.set_answer(Answer::Status(503));
    for i in 1..=5 {
        common::publish_id(h.addr, "kept", &format!("e{i}"));
    }
    rx.wait_for("a failed attempt", WAIT, |s| {
        (s.attempts >= 1).then_some(())
    });
    // After a restart the worker reads from its cursor: e1-e3 are gone.
    let mut again = vec!["--dev"];
    again.extend_from_slice(FAST);
    again.extend_from_slice(&retention);
    h.kill_and_restart(&again);
    rx.set_answer(Answer::Ok);
    let got = rx.wait_deliveries("/kept", 2);
    let bodies: Vec<String> = got
        .iter()
        .map(|d| String::from_utf8_lossy(&d.body).into())
        .collect();
    assert_eq!(bodies, ["e4", "e5"]);
    assert_eq!(got[0].header("herald-continuity"), Some("broken"));
    assert_eq!(got[1].header("herald-continuity"), None);
    assert_eq!(
        metric(h.addr, "herald_webhook_continuity_breaks_total"),
        1.0
    );
}

/// Delivery throughput (a measurement, not a check of speed): run with
/// `cargo test -p herald-cli --test webhooks -- --ignored --nocapture throughput`.
#[test]
#[ignore = "a measurement; prints figures"]
fn throughput() {
    for (subscribers, events) in [(1usize, 2000usize), (50, 200)] {
        let h = hub(&[]);
        let rx = Receiver::start();
        for s in 0..subscribers {
            let body = serde_json::json!({"topic": "load", "callback": rx.url(&format!("/s{s}"))})
                .to_string();
            let (status, text) = request(
                h.addr,
                "POST",
                "/webhooks",
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            );
            assert_eq!(status, 201, "{text}");
        }
        let batch: Vec<serde_json::Value> = (0..events)
            .map(|i| serde_json::json!({"topic": "load", "data": format!("event {i}")}))
            .collect();
        let start = Instant::now();
        for chunk in batch.chunks(500) {
            let body = serde_json::to_vec(chunk).unwrap();
            let (status, text) = request(
                h.addr,
                "POST",
                "/publish",
                &[("Content-Type", "application/json")],
                &body,
            );
            assert_eq!(status, 200, "{text}");
        }
        let total = subscribers * events;
        rx.wait_for("every delivery", Duration::from_secs(300), |s| {
            (s.deliveries.len() >= total).then_some(())
        });
        let took = start.elapsed();
        for s in 0..subscribers {
            let got = rx.deliveries_to(&format!("/s{s}"));
            let bodies: Vec<String> = got
                .iter()
                .map(|d| String::from_utf8_lossy(&d.body).into())
                .collect();
            let want: Vec<String> = (0..events).map(|i| format!("event {i}")).collect();
            assert_eq!(bodies, want);
        }
        let commits = metric(h.addr, "herald_store_commits_total");
        println!(
            "{subscribers} subscriber(s) x {events} events: {total} deliveries in {took:?} = {:.0}/s; {commits} store commits",
            total as f64 / took.as_secs_f64()
        );
    }
}

#[test]
fn shutdown_does_not_wait_for_a_hanging_receiver() {
    let mut h = hub(&["--webhook-timeout-ms", "60000"]);
    let rx = Receiver::start();
    subscribe(&h, "stop", &rx.url("/stop"), &[]);
    rx.set_answer(Answer::Hang);
    common::publish_id(h.addr, "stop", "x");
    rx.wait_for("the delivery to start", WAIT, |s| {
        (s.attempts >= 1).then_some(())
    });
    let start = Instant::now();
    assert!(h.terminate().success());
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
}
