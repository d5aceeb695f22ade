//! Cross-origin access: preflights, CORS headers on every kind of answer (the
//! lean SSE path, hyper routes, errors), and refusal of cookie-authenticated
//! requests from origins that are not listed (CSRF, WebSocket hijacking).
#![allow(clippy::disallowed_types)]

mod common;

use std::time::{Duration, SystemTime};

use common::{Hub, raw_request};

const SECRET: &str = "cors-test-secret-cors-test-secret-0123456789";
const APP: &str = "http://app.example:3000";
const EVIL: &str = "http://evil.example";

fn hub() -> Hub {
    Hub::start_secure(SECRET, &["--anonymous-subscribe", "--cors-origins", APP])
}

fn cookie() -> String {
    let t = common::mint_token(
        SECRET,
        &["*"],
        &["*"],
        Duration::from_secs(600),
        SystemTime::now(),
    );
    format!("herald_token={t}")
}

/// The response head, lowercased.
fn head(raw: Vec<u8>) -> String {
    let text = String::from_utf8_lossy(&raw).to_string();
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

#[test]
fn listed_origins_get_cors_headers_with_credentials() {
    let hub = hub();
    let pre = head(raw_request(
        hub.addr,
        "OPTIONS",
        "/publish",
        &[("Origin", APP), ("Access-Control-Request-Method", "POST")],
        b"",
    ));
    assert!(pre.starts_with("http/1.1 204"), "{pre}");
    assert!(
        pre.contains(&format!("access-control-allow-origin: {APP}")),
        "{pre}"
    );
    assert!(
        pre.contains("access-control-allow-credentials: true"),
        "{pre}"
    );
    assert!(
        pre.contains("access-control-allow-headers: authorization, content-type, last-event-id"),
        "{pre}"
    );
    let refused = head(raw_request(
        hub.addr,
        "OPTIONS",
        "/publish",
        &[("Origin", EVIL)],
        b"",
    ));
    assert!(refused.starts_with("http/1.1 403"), "{refused}");

    // The lean SSE path (first request on a connection): read only the head.
    let mut sse = common::Sse::open(hub.addr, "/sse?topic=t", &[("Origin", APP)]);
    let sse_head = sse.read_until(": herald").to_ascii_lowercase();
    assert!(
        sse_head.contains(&format!("access-control-allow-origin: {APP}")),
        "{sse_head}"
    );
    assert!(
        sse_head.contains("access-control-expose-headers: herald-resume"),
        "{sse_head}"
    );
    let poll = head(raw_request(
        hub.addr,
        "GET",
        "/poll?topic=t&timeout=0",
        &[("Origin", APP)],
        b"",
    ));
    assert!(
        poll.contains("access-control-allow-credentials: true"),
        "{poll}"
    );
    // Errors carry them too, so the page can read the reason.
    let bad = head(raw_request(
        hub.addr,
        "GET",
        "/poll?timeout=0",
        &[("Origin", APP)],
        b"",
    ));
    assert!(
        bad.starts_with("http/1.1 400") && bad.contains("access-control-allow-origin"),
        "{bad}"
    );
    // Unlisted origins get none.
    let other = head(raw_request(
        hub.addr,
        "GET",
        "/poll?topic=t&timeout=0",
        &[("Origin", EVIL)],
        b"",
    ));
    assert!(!other.contains("access-control-allow-origin"), "{other}");
}

#[test]
fn cookie_authenticated_requests_from_unlisted_origins_are_refused() {
    let hub = hub();
    let c = cookie();
    let from = |origin: &str| {
        head(raw_request(
            hub.addr,
            "POST",
            "/publish?topic=t",
            &[("Cookie", &c), ("Origin", origin)],
            b"x",
        ))
    };
    assert!(from(APP).starts_with("http/1.1 200"), "{}", from(APP));
    let evil = from(EVIL);
    assert!(evil.starts_with("http/1.1 403"), "{evil}");
    // A WebSocket upgrade from another site, carrying the cookie.
    let ws = head(raw_request(
        hub.addr,
        "GET",
        "/ws?topic=t",
        &[
            ("Cookie", &c),
            ("Origin", EVIL),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        b"",
    ));
    assert!(ws.starts_with("http/1.1 403"), "{ws}");
    // Without an Origin (not a browser) the cookie is accepted.
    let cli = head(raw_request(
        hub.addr,
        "POST",
        "/publish?topic=t",
        &[("Cookie", &c)],
        b"x",
    ));
    assert!(cli.starts_with("http/1.1 200"), "{cli}");
}
