//! Structured logs against the real binary: `--log-format json` writes one
//! JSON object per line, hyper requests carry a request id (the client's
//! `X-Request-Id` when sane, else a generated one, echoed in the response),
//! every transport logs one line when a connection opens and one when it
//! closes, and nothing is logged per event at info.
// Wall-clock deadlines on a separate process (see common/mod.rs).
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Lines logged so far and within `wait`, each parsed as JSON (a line that
/// is not JSON fails the test).
fn lines_until(
    rx: &Receiver<String>,
    wait: Duration,
    mut done: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    let start = Instant::now();
    let mut out = Vec::new();
    loop {
        let left = wait.saturating_sub(start.elapsed());
        match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
                out.push(v);
                if done(&out) {
                    return out;
                }
            }
            Err(_) if start.elapsed() >= wait => return out,
            Err(_) => {}
        }
    }
}

fn message(v: &Value) -> &str {
    v["fields"]["message"].as_str().unwrap_or_default()
}

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    &v["fields"][name]
}

/// The request id a line carries from its span, if any.
fn request_id(v: &Value) -> Option<&str> {
    v["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(&v["span"]))
        .find_map(|s| s["request_id"].as_str())
}

fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    raw.split("\r\n\r\n").next()?.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn json_lines_carry_request_ids_and_connection_lifecycles() {
    let (hub, rx) = Hub::start_logged(&["--log-format", "json"], "info,herald_server=debug");
    // A sane incoming id is kept and echoed; a hostile one is replaced.
    let raw = raw_request(
        hub.addr,
        "GET",
        "/poll?topic=l&timeout=0",
        &[("X-Request-Id", "client-req-7")],
        b"",
    );
    let raw = String::from_utf8(raw).unwrap();
    assert_eq!(header(&raw, "x-request-id"), Some("client-req-7"), "{raw}");
    let raw = String::from_utf8(raw_request(
        hub.addr,
        "GET",
        "/healthz",
        &[("X-Request-Id", "bad id\"with quotes")],
        b"",
    ))
    .unwrap();
    let generated = header(&raw, "x-request-id").unwrap().to_string();
    assert_eq!(generated.len(), 16, "{raw}");
    assert!(generated.bytes().all(|b| b.is_ascii_hexdigit()));

    let lines = lines_until(&rx, WAIT, |ls| {
        ls.iter()
            .any(|l| message(l) == "request served" && request_id(l) == Some(generated.as_str()))
    });
    let poll: Vec<&Value> = lines
        .iter()
        .filter(|l| request_id(l) == Some("client-req-7"))
        .collect();
    assert!(
        poll.iter().any(|l| message(l) == "poll held"),
        "the poll's lifecycle line carries the request id: {lines:#?}"
    );
    let served = poll
        .iter()
        .find(|l| message(l) == "request served")
        .unwrap();
    assert_eq!(field(served, "status"), 200);
    assert_eq!(field(served, "path"), "/poll");

    // The lean SSE path: an open line and a close line with reason,
    // duration and events sent.
    let mut sse = Sse::open(hub.addr, "/sse?topic=l&topic=m", &[]);
    sse.read_until("retry: ");
    for i in 0..3 {
        publish_id(hub.addr, "l", &format!("e{i}"));
    }
    sse.read_until("data: e2\n\n");
    drop(sse);
    let lines = lines_until(&rx, WAIT, |ls| {
        ls.iter()
            .any(|l| message(l) == "connection closed" && field(l, "transport") == "sse")
    });
    let opened = lines
        .iter()
        .find(|l| message(l) == "connection opened" && field(l, "transport") == "sse")
        .expect("an open line");
    assert_eq!(opened["level"], "INFO");
    assert_eq!(field(opened, "topics"), 2);
    assert!(
        field(opened, "peer")
            .as_str()
            .unwrap()
            .contains("127.0.0.1")
    );
    let closed = lines
        .iter()
        .find(|l| message(l) == "connection closed")
        .unwrap();
    assert_eq!(field(closed, "reason"), "client_closed");
    assert_eq!(field(closed, "events_sent"), 3);
    assert!(field(closed, "duration_secs").as_f64().unwrap() >= 0.0);
    assert_eq!(field(closed, "conn"), field(opened, "conn"));
}

#[test]
fn websocket_sessions_log_their_request_id_and_nothing_per_event_at_info() {
    let (hub, rx) = Hub::start_logged(&["--log-format", "json"], "info");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use futures_util::StreamExt;
        let uri = format!("ws://{}/ws?topic=w", hub.addr);
        let (mut ws, _) = tokio_websockets::ClientBuilder::new()
            .uri(&uri)
            .unwrap()
            .add_header(
                "x-request-id".try_into().unwrap(),
                "ws-req-1".try_into().unwrap(),
            )
            .unwrap()
            .connect()
            .await
            .unwrap();
        let opened = lines_until(&rx, WAIT, |ls| {
            ls.iter().any(|l| message(l) == "connection opened")
        });
        let open = opened
            .iter()
            .find(|l| message(l) == "connection opened")
            .unwrap();
        assert_eq!(field(open, "transport"), "ws");
        assert_eq!(request_id(open), Some("ws-req-1"), "{open}");
        for i in 0..50 {
            publish_id(hub.addr, "w", &format!("p{i}"));
        }
        let mut got = 0;
        while got < 50 {
            let msg = tokio::time::timeout(WAIT, ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if msg.is_text() {
                got += 1;
            }
        }
        drop(ws);
        let after = lines_until(&rx, WAIT, |ls| {
            ls.iter().any(|l| message(l) == "connection closed")
        });
        let closed = after
            .iter()
            .find(|l| message(l) == "connection closed")
            .expect("a close line");
        assert_eq!(field(closed, "events_sent"), 50);
        assert_eq!(request_id(closed), Some("ws-req-1"));
        // 50 publishes and 50 deliveries: no line about any of them.
        assert!(after.len() <= 2, "nothing per event at info: {after:#?}");
    });
}
