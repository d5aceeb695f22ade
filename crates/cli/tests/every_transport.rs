//! One event, published once, reaches a subscriber on every push technique at
//! the same time: SSE, NDJSON stream, forever iframe, a held long-poll,
//! WebSocket and a held BOSH request; short polling and JSONP then find it too.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{Hub, Sse, publish_id, request};
use futures_util::{SinkExt, StreamExt};
use tokio_websockets::{ClientBuilder, Message};

const TOPIC: &str = "everywhere";
const BOSH_NS: &str = "xmlns='http://jabber.org/protocol/httpbind'";

#[test]
fn one_event_reaches_every_transport() {
    let hub = Hub::start(&[]);
    let addr = hub.addr;
    // A position before the event, for the polls.
    let since = publish_id(addr, "elsewhere", "before");

    let mut sse = Sse::open(addr, &format!("/sse?topic={TOPIC}"), &[]);
    sse.read_until(": herald");
    let mut ndjson = Sse::open(addr, &format!("/stream?topic={TOPIC}"), &[]);
    ndjson.read_until("heartbeat");
    let mut iframe = Sse::open(addr, &format!("/stream?topic={TOPIC}&format=iframe"), &[]);
    iframe.read_until("<body");

    let poll_target = format!("/poll?topic={TOPIC}&since={since}&timeout=20");
    let held_poll = thread::spawn(move || request(addr, "GET", &poll_target, &[], b""));

    let subscribe =
        format!("<op xmlns='urn:herald:1'>{{\"op\":\"subscribe\",\"topics\":[\"{TOPIC}\"]}}</op>");
    let (status, created) = request(
        addr,
        "POST",
        "/bosh",
        &[],
        format!("<body {BOSH_NS} rid='10' wait='20' hold='1' ver='1.6'>{subscribe}</body>")
            .as_bytes(),
    );
    assert_eq!(status, 200, "{created}");
    let sid = created
        .split("sid='")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .unwrap()
        .to_string();
    let held_bosh = thread::spawn(move || {
        let body = format!("<body {BOSH_NS} sid='{sid}' rid='11'/>");
        request(addr, "POST", "/bosh", &[], body.as_bytes())
    });

    let (ready_tx, ready_rx) = mpsc::channel();
    let ws = thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let uri = format!("ws://{addr}/ws?topic={TOPIC}");
            let (mut ws, _) = ClientBuilder::new()
                .uri(&uri)
                .unwrap()
                .connect()
                .await
                .unwrap();
            ws.send(Message::text(r#"{"op":"ping"}"#)).await.unwrap();
            let mut texts = Vec::new();
            loop {
                let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
                    .await
                    .expect("a message in time")
                    .unwrap()
                    .unwrap();
                if let Some(t) = msg.as_text() {
                    if t.contains("\"pong\"") {
                        ready_tx.send(()).unwrap();
                        continue;
                    }
                    texts.push(t.to_string());
                    return texts;
                }
            }
        })
    });
    ready_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the websocket is subscribed");
    // Let the poll and the BOSH request reach the hub and be held.
    thread::sleep(Duration::from_millis(300));

    let id = publish_id(addr, TOPIC, "one event, everywhere");

    assert!(sse.read_until(&id).contains("data: one event, everywhere"));
    assert!(
        ndjson
            .read_until(&id)
            .contains("\"data\":\"one event, everywhere\"")
    );
    assert!(iframe.read_until(&id).contains("<script>parent.herald("));
    let (status, polled) = held_poll.join().unwrap();
    assert_eq!(status, 200);
    assert!(polled.contains(&id), "{polled}");
    let (status, bosh) = held_bosh.join().unwrap();
    assert_eq!(status, 200);
    assert!(bosh.contains(&id), "{bosh}");
    let ws = ws.join().unwrap();
    assert!(ws[0].contains(&id), "{ws:?}");

    let (_, short) = request(
        addr,
        "GET",
        &format!("/poll?topic={TOPIC}&since={since}&timeout=0"),
        &[],
        b"",
    );
    assert!(short.contains(&id), "{short}");
    let (_, jsonp) = request(
        addr,
        "GET",
        &format!("/poll?topic={TOPIC}&since={since}&timeout=0&callback=got"),
        &[],
        b"",
    );
    assert!(
        jsonp.starts_with("/**/got(") && jsonp.contains(&id),
        "{jsonp}"
    );
}
