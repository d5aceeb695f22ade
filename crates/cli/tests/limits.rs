//! Limits against the real binary: connections per address and in total,
//! publish rates per token and per address (429 with Retry-After), and idle
//! keep-alive connections closed after the header timeout.
#![allow(clippy::disallowed_types)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

use common::{Hub, Sse, raw_request};

const SECRET: &str = "limits-test-secret-limits-test-secret-0123";

fn head(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn connections_over_the_per_address_limit_get_429_and_the_total_limit_503() {
    let hub = Hub::start(&["--max-connections-per-address", "3"]);
    let open: Vec<Sse> = (0..3)
        .map(|_| {
            let mut s = Sse::open(hub.addr, "/sse?topic=t", &[]);
            s.read_until(": herald");
            s
        })
        .collect();
    let refused = raw_request(hub.addr, "GET", "/healthz", &[], b"");
    let text = String::from_utf8_lossy(&refused);
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    assert!(
        text.contains("Retry-After: 5") && text.contains("too_many_connections_from_address"),
        "{text}"
    );
    drop(open);
    // The slots are given back when the streams end.
    let start = Instant::now();
    loop {
        let again = raw_request(hub.addr, "GET", "/healthz", &[], b"");
        if again.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            head(&again)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let hub = Hub::start(&["--max-connections", "2"]);
    let mut a = Sse::open(hub.addr, "/sse?topic=t", &[]);
    a.read_until(": herald");
    let mut b = Sse::open(hub.addr, "/sse?topic=t", &[]);
    b.read_until(": herald");
    let full = raw_request(hub.addr, "GET", "/healthz", &[], b"");
    assert!(full.starts_with(b"HTTP/1.1 503"), "{}", head(&full));
}

#[test]
fn publishing_faster_than_the_token_may_gets_429() {
    let hub = Hub::start_secure(
        SECRET,
        &[
            "--publish-rate-per-token",
            "5",
            "--publish-rate-per-address",
            "0",
        ],
    );
    let token = format!(
        "Bearer {}",
        common::mint_token(
            SECRET,
            &["*"],
            &[],
            Duration::from_secs(600),
            SystemTime::now()
        )
    );
    let statuses: Vec<u16> = (0..8)
        .map(|_| {
            common::request(
                hub.addr,
                "POST",
                "/publish?topic=t",
                &[("Authorization", &token)],
                b"x",
            )
            .0
        })
        .collect();
    assert_eq!(&statuses[..5], &[200; 5], "{statuses:?}");
    assert!(statuses[5..].contains(&429), "{statuses:?}");
    let raw = raw_request(
        hub.addr,
        "POST",
        "/publish?topic=t",
        &[("Authorization", &token)],
        b"x",
    );
    let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    assert!(
        text.starts_with("http/1.1 429")
            && text.contains("retry-after: ")
            && text.contains("rate_limited"),
        "{text}"
    );
    // A batch larger than a second's budget is refused whole, with a reason.
    let batch: Vec<serde_json::Value> = (0..10)
        .map(|_| serde_json::json!({"topic": "t", "data": "d"}))
        .collect();
    let (status, body) = common::request(
        hub.addr,
        "POST",
        "/publish",
        &[
            ("Authorization", &token),
            ("Content-Type", "application/json"),
        ],
        serde_json::to_string(&batch).unwrap().as_bytes(),
    );
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("split it"), "{body}");
}

#[test]
fn publishing_faster_than_an_address_may_gets_429() {
    let hub = Hub::start_secure(SECRET, &["--publish-rate-per-address", "3"]);
    let statuses: Vec<u16> = (0..6)
        .map(|i| {
            // A different subject each time: only the address budget applies.
            let extra = format!("t{i}");
            let t = format!(
                "Bearer {}",
                common::mint_token(
                    SECRET,
                    &["*", &extra],
                    &[],
                    Duration::from_secs(600),
                    SystemTime::now()
                )
            );
            common::request(
                hub.addr,
                "POST",
                "/publish?topic=t",
                &[("Authorization", &t)],
                b"x",
            )
            .0
        })
        .collect();
    assert_eq!(&statuses[..3], &[200; 3], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "{statuses:?}");
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let hub = Hub::start(&["--header-timeout-secs", "1"]);
    let mut s = TcpStream::connect(hub.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let idle = Instant::now();
    // Send nothing more: the hub closes the connection.
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let waited = idle.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}
