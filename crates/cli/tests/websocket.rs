//! `GET /ws` against the real binary with a real WebSocket client
//! (tokio-websockets): events, every operation and its answer, resumption,
//! resets, bad input, limits, and the 1001 close at shutdown.
#![allow(clippy::disallowed_types)]

mod common;

use std::time::Duration;

use common::{Hub, publish_id, raw_request};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, CloseCode, MaybeTlsStream, Message, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(20);

async fn connect(hub: &Hub, query: &str) -> Ws {
    let uri = format!("ws://{}/ws{query}", hub.addr);
    let (ws, _) = tokio::time::timeout(WAIT, ClientBuilder::new().uri(&uri).unwrap().connect())
        .await
        .expect("connect in time")
        .expect("websocket handshake");
    ws
}

/// The next text message as JSON (pings and pongs skipped).
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .expect("a valid frame");
        if let Some(text) = msg.as_text() {
            return serde_json::from_str(text).unwrap();
        }
        assert!(!msg.is_close(), "unexpected close: {:?}", msg.as_close());
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The close frame the hub sends next (text messages before it are skipped).
async fn closed_with(ws: &mut Ws) -> (CloseCode, String) {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a close in time")
            .expect("a close frame before the end")
            .expect("a valid frame");
        if let Some((code, reason)) = msg.as_close() {
            return (code, reason.to_string());
        }
    }
}

/// Publishes from a blocking thread (the harness's HTTP client is blocking).
async fn publish(hub: &Hub, topic: &str, data: &str) -> String {
    let (addr, topic, data) = (hub.addr, topic.to_string(), data.to_string());
    tokio::task::spawn_blocking(move || publish_id(addr, &topic, &data))
        .await
        .unwrap()
}

#[tokio::test]
async fn events_arrive_and_every_operation_is_answered() {
    let hub = Hub::start(&[]);
    let mut ws = connect(&hub, "?topic=a").await;
    let id = publish(&hub, "a", "first <b>").await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"op": "event", "topic": "a", "id": id, "data": "first \u{3c}b>"})
    );

    send(
        &mut ws,
        json!({"op": "subscribe", "topics": ["b"], "ref": 1}),
    )
    .await;
    assert_eq!(recv(&mut ws).await, json!({"op": "ok", "ref": 1}));
    send(
        &mut ws,
        json!({"op": "publish", "topic": "b", "data": "from ws", "type": "note", "ref": "p"}),
    )
    .await;
    let ok = recv(&mut ws).await;
    assert_eq!(
        (ok["op"].as_str(), ok["ref"].as_str()),
        (Some("ok"), Some("p"))
    );
    let published = ok["id"].as_str().unwrap().to_string();
    assert_eq!(
        recv(&mut ws).await,
        json!({"op": "event", "topic": "b", "id": published, "type": "note", "data": "from ws"})
    );

    send(
        &mut ws,
        json!({"op": "unsubscribe", "topics": ["a"], "ref": 2}),
    )
    .await;
    assert_eq!(recv(&mut ws).await, json!({"op": "ok", "ref": 2}));
    publish(&hub, "a", "not for me").await;
    let on_b = publish(&hub, "b", "for me").await;
    let ev = recv(&mut ws).await;
    assert_eq!(
        (ev["id"].as_str(), ev["topic"].as_str()),
        (Some(on_b.as_str()), Some("b"))
    );

    send(&mut ws, json!({"op": "ping", "ref": [3]})).await;
    assert_eq!(recv(&mut ws).await, json!({"op": "pong", "ref": [3]}));

    // Subscribing again to a watched topic keeps it, with no duplicate.
    send(
        &mut ws,
        json!({"op": "subscribe", "topics": ["b", "c"], "ref": 4}),
    )
    .await;
    assert_eq!(recv(&mut ws).await, json!({"op": "ok", "ref": 4}));
    let multi = {
        let addr = hub.addr;
        tokio::task::spawn_blocking(move || {
            common::request(addr, "POST", "/publish?topic=c&topic=b", &[], b"both").1
        })
        .await
        .unwrap()
    };
    let multi: Value = serde_json::from_str(&multi).unwrap();
    let ev = recv(&mut ws).await;
    assert_eq!(ev["id"], multi["id"]);
    send(&mut ws, json!({"op": "ping"})).await;
    assert_eq!(recv(&mut ws).await["op"], "pong", "the event came once");
}

#[tokio::test]
async fn a_connection_resumes_after_its_last_id_and_hears_of_resets() {
    let hub = Hub::start(&[]);
    let ids: Vec<String> = {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(publish(&hub, "t", &format!("e{i}")).await);
        }
        v
    };
    let mut ws = connect(&hub, &format!("?topic=t&last_event_id={}", ids[0])).await;
    assert_eq!(recv(&mut ws).await["id"], ids[1].as_str());
    assert_eq!(recv(&mut ws).await["id"], ids[2].as_str());

    // A subscribe op with a resume position moves the topic to it.
    send(
        &mut ws,
        json!({"op": "subscribe", "topics": ["t"], "last_event_id": ids[1], "ref": "again"}),
    )
    .await;
    assert_eq!(recv(&mut ws).await, json!({"op": "ok", "ref": "again"}));
    assert_eq!(recv(&mut ws).await["id"], ids[2].as_str());

    send(
        &mut ws,
        json!({"op": "subscribe", "topics": ["u"], "last_event_id": "no-such-id", "ref": 9}),
    )
    .await;
    assert_eq!(recv(&mut ws).await, json!({"op": "ok", "ref": 9}));
    let reset = recv(&mut ws).await;
    assert_eq!(reset["op"], "reset");
    assert_eq!(reset["reason"], "unknown");
    assert_eq!(reset["topics"], json!(["u"]));
    assert_eq!(reset["ref"], 9);
    let live = publish(&hub, "u", "live").await;
    assert_eq!(recv(&mut ws).await["id"], live.as_str());

    // On connect, a reset comes first.
    let mut fresh = connect(&hub, "?topic=t&last_event_id=ffff-1").await;
    let reset = recv(&mut fresh).await;
    assert_eq!(
        (reset["op"].as_str(), reset["reason"].as_str()),
        (Some("reset"), Some("epoch"))
    );
}

#[tokio::test]
async fn events_survive_a_hub_restart() {
    let mut hub = Hub::start(&[]);
    let mut ws = connect(&hub, "?topic=r").await;
    let first = publish(&hub, "r", "before").await;
    assert_eq!(recv(&mut ws).await["id"], first.as_str());
    hub.kill_and_restart(&["--dev"]);
    let missed = publish(&hub, "r", "while away").await;
    let mut ws = connect(&hub, &format!("?topic=r&last_event_id={first}")).await;
    assert_eq!(recv(&mut ws).await["id"], missed.as_str());
}

#[tokio::test]
async fn bad_operations_get_errors_and_the_socket_stays_open() {
    let hub = Hub::start(&[]);
    let mut ws = connect(&hub, "").await;
    ws.send(Message::text("{not json")).await.unwrap();
    let err = recv(&mut ws).await;
    assert_eq!(
        (err["op"].as_str(), err["error"].as_str()),
        (Some("error"), Some("invalid_operation"))
    );
    send(
        &mut ws,
        json!({"op": "subscribe", "topics": ["bad\nname"], "ref": 1}),
    )
    .await;
    let err = recv(&mut ws).await;
    assert_eq!(
        (err["error"].as_str(), err["ref"].as_i64()),
        (Some("invalid_topic"), Some(1))
    );
    send(
        &mut ws,
        json!({"op": "publish", "topic": "x", "data": "d", "id": "a\rb", "ref": 2}),
    )
    .await;
    let err = recv(&mut ws).await;
    assert_eq!(err["op"], "error");
    assert_eq!(err["ref"], 2);
    send(&mut ws, json!({"op": "ping", "ref": "still here"})).await;
    assert_eq!(recv(&mut ws).await["op"], "pong");

    ws.send(Message::binary(&b"\x00\x01"[..])).await.unwrap();
    assert_eq!(closed_with(&mut ws).await.0, CloseCode::UNSUPPORTED_DATA);
}

#[tokio::test]
async fn a_message_over_the_limit_closes_with_1009() {
    let hub = Hub::start(&["--ws-max-message-bytes", "1024"]);
    let mut ws = connect(&hub, "?topic=a").await;
    let big = json!({"op": "publish", "topic": "a", "data": "x".repeat(2000)});
    ws.send(Message::text(big.to_string())).await.unwrap();
    assert_eq!(closed_with(&mut ws).await.0, CloseCode::MESSAGE_TOO_BIG);
}

#[tokio::test]
async fn publishing_needs_authorization_outside_dev_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = Hub::start_in(tmp.path(), "127.0.0.1:0", &["--anonymous-subscribe"]);
    let mut ws = connect(&hub, "?topic=a").await;
    send(
        &mut ws,
        json!({"op": "publish", "topic": "a", "data": "d", "ref": 1}),
    )
    .await;
    let err = recv(&mut ws).await;
    assert_eq!(
        (err["error"].as_str(), err["ref"].as_i64()),
        (Some("unauthorized"), Some(1))
    );
}

#[test]
fn bad_handshakes_get_clear_http_errors() {
    let hub = Hub::start(&[]);
    let text = |raw: Vec<u8>| String::from_utf8_lossy(&raw).to_string();
    let plain = text(raw_request(hub.addr, "GET", "/ws", &[], b""));
    assert!(plain.starts_with("HTTP/1.1 400"), "{plain}");
    assert!(plain.contains("bad_websocket_handshake"), "{plain}");
    let upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let mut v8 = upgrade.to_vec();
    v8.push(("Sec-WebSocket-Version", "8"));
    let old = text(raw_request(hub.addr, "GET", "/ws", &v8, b""));
    assert!(old.starts_with("HTTP/1.1 426"), "{old}");
    assert!(
        old.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{old}"
    );
    let mut v13 = upgrade.to_vec();
    v13.push(("Sec-WebSocket-Version", "13"));
    let bad_topic = text(raw_request(hub.addr, "GET", "/ws?topic=", &v13, b""));
    assert!(bad_topic.starts_with("HTTP/1.1 400"), "{bad_topic}");
    assert!(bad_topic.contains("invalid_topic"), "{bad_topic}");
    let post = text(raw_request(hub.addr, "POST", "/ws", &[], b""));
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
}

#[tokio::test]
async fn shutdown_closes_with_1001_and_the_hub_exits_cleanly() {
    let mut hub = Hub::start(&[]);
    let mut ws = connect(&hub, "?topic=a").await;
    send(&mut ws, json!({"op": "ping"})).await;
    recv(&mut ws).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = hub.terminate();
        (hub, status)
    });
    let (code, reason) = closed_with(&mut ws).await;
    assert_eq!(code, CloseCode::GOING_AWAY);
    assert!(reason.contains("resume"), "{reason}");
    let (_hub, status) = status.await.unwrap();
    assert!(status.success(), "{status:?}");
}

/// A masked client text frame.
fn client_frame(text: &str) -> Vec<u8> {
    let mask = [7u8, 1, 8, 2];
    let mut f = vec![0x81, 0x80 | u8::try_from(text.len()).unwrap()];
    f.extend_from_slice(&mask);
    f.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// The lean path (a plain connection whose first request is the upgrade):
/// frames sent in the same write as the handshake are read, the 101 and the
/// refusals carry the request id, and an idle socket answers operations and
/// pings after it let its read buffer go.
#[tokio::test]
async fn the_lean_path_keeps_early_frames_and_request_ids() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hub = Hub::start(&[]);
    let mut s = TcpStream::connect(hub.addr).await.unwrap();
    let mut out = String::from(
        "GET /ws?topic=early HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Request-Id: lean-1\r\n\r\n"
    )
    .into_bytes();
    out.extend(client_frame(r#"{"op":"ping","ref":"early"}"#));
    s.write_all(&out).await.unwrap();
    let mut got = Vec::new();
    let want = br#"{"op":"pong","ref":"early"}"#;
    let read = async {
        while !got.windows(want.len()).any(|w| w == want) {
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("the early ping answered");
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 101"), "{text}");
    assert!(
        text.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{text}"
    );
    assert!(text.contains("x-request-id: lean-1"), "{text}");
    // Idle now (the read buffer released): operations are still answered.
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(&client_frame(r#"{"op":"ping","ref":2}"#))
        .await
        .unwrap();
    let want = br#"{"op":"pong","ref":2}"#;
    let mut answer = [0u8; 2 + 21];
    tokio::time::timeout(WAIT, s.read_exact(&mut answer))
        .await
        .expect("answered in time")
        .unwrap();
    assert_eq!(answer[..2], [0x81, 21]);
    assert_eq!(&answer[2..], want);

    let refused = raw_request(
        hub.addr,
        "GET",
        "/ws",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "8"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("X-Request-Id", "lean-2"),
        ],
        b"",
    );
    let refused = String::from_utf8_lossy(&refused).to_ascii_lowercase();
    assert!(refused.starts_with("http/1.1 426"), "{refused}");
    assert!(refused.contains("x-request-id: lean-2"), "{refused}");
    assert!(
        refused.contains("unsupported_websocket_version"),
        "{refused}"
    );
}
