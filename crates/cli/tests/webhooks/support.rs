//! Helpers shared by the webhook tests: hubs with webhook flags, `/websub`
//! forms, the subscription list, metrics, signature checks.
#![allow(dead_code, unreachable_pub)]
// Wall-clock waits: the hub is another process.
#![allow(clippy::disallowed_types)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::common::{Hub, WAIT, request};
use super::receiver::Delivery;

/// The hub URL a subscriber sees: the harness sends `Host: test`.
pub const HUB_URL: &str = "http://test/websub";

/// Flags every webhook test hub gets: callbacks on 127.0.0.1, quick retries.
pub const FAST: &[&str] = &[
    "--webhook-allow-private",
    "--webhook-backoff-base-ms",
    "50",
    "--webhook-backoff-max-ms",
    "200",
];

pub fn hub(extra: &[&str]) -> Hub {
    let mut args = FAST.to_vec();
    args.extend_from_slice(extra);
    Hub::start(&args)
}

/// POSTs form parameters to `/websub`.
pub fn websub(
    addr: SocketAddr,
    params: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (u16, String) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
    h.extend_from_slice(headers);
    request(addr, "POST", "/websub", &h, body.as_bytes())
}

/// The webhook subscriptions the hub lists (dev mode sees all).
pub fn list(addr: SocketAddr, headers: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let (status, body) = request(addr, "GET", "/webhooks", headers, b"");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Vec<serde_json::Value>>(&body).unwrap()
}

/// Waits (bounded) until `cond` holds for the hub's subscription list.
pub fn wait_list(addr: SocketAddr, what: &str, cond: impl Fn(&[serde_json::Value]) -> bool) {
    let start = Instant::now();
    while !cond(&list(addr, &[])) {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn has_callback(l: &[serde_json::Value], cb: &str) -> bool {
    l.iter().any(|r| r["callback"] == cb)
}

/// Subscribes `callback` to `topic` through `/websub` and waits until the
/// verified subscription is active.
pub fn subscribe(h: &Hub, topic: &str, callback: &str, extra: &[(&str, &str)]) {
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
pub fn metric(addr: SocketAddr, sample: &str) -> f64 {
    let (_, text) = request(addr, "GET", "/metrics", &[], b"");
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {sample} in\n{text}"))
}

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Checks `X-Hub-Signature: ALG=HEX` against the body with an HMAC computed here.
pub fn assert_signed(d: &Delivery, secret: &str, alg: &str) {
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
