//! Who may create webhooks and where they may point: the SSRF guard (literal
//! addresses, and a loopback name refused at connect time), the JSON API,
//! signature algorithms, authorization and private events.
// The hub is another process: waits are wall-clock on purpose.
#![allow(clippy::disallowed_types)]

mod common;
#[path = "webhooks/receiver.rs"]
mod receiver;
#[path = "webhooks/support.rs"]
mod support;

use std::time::{Duration, Instant};

use common::{Hub, WAIT, mint_token, publish, request};
use receiver::{Receiver, Verify};
use support::*;

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
