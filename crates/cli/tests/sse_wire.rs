//! The SSE stream's exact bytes: headers, greeting, framing of every field.

mod common;

use common::*;

#[test]
fn stream_head_greeting_and_event_framing_are_exact() {
    let hub = Hub::start(&[]);
    let epoch = hub.epoch();
    let mut sse = Sse::open(hub.addr, "/sse?topic=%2Fprices%2Facme", &[]);
    let head = sse.read_until("\n\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    for h in [
        "Content-Type: text/event-stream\r\n",
        "Cache-Control: no-store, no-cache, no-transform\r\n",
        "X-Accel-Buffering: no\r\n",
    ] {
        assert!(head.contains(h), "missing {h:?} in {head}");
    }
    assert!(
        !head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    let body = sse.read_until("retry: ");
    let body = &body[body.find("\r\n\r\n").unwrap() + 4..];
    assert!(body.starts_with(": herald\n\nretry: "), "{body:?}");

    let (status, _) = publish(
        hub.addr,
        "/publish?topic=%2Fprices%2Facme&type=price&retry=2500",
        "{\"px\":1}\r\n  indented\rid: 9\n\ndata: x",
    );
    assert_eq!(status, 200);
    let seq = 2; // the epoch probe was event 1
    let expected = format!(
        "event: price\nretry: 2500\nid: {epoch}-{seq}\ndata: {{\"px\":1}}\ndata:   indented\ndata: id: 9\ndata: \ndata: data: x\n\n"
    );
    let all = sse.read_until(&expected);
    assert!(all.ends_with(&expected), "{all:?}");
}

#[test]
fn an_event_on_several_topics_arrives_once_with_a_publisher_id() {
    let hub = Hub::start(&[]);
    let mut sse = Sse::open(hub.addr, "/sse?topic=a&topic=b", &[]);
    sse.read_until("retry: ");
    let (status, body) = publish(hub.addr, "/publish?topic=a&topic=b&id=order-7", "both");
    assert_eq!((status, body.as_str()), (200, "{\"id\":\"order-7\"}"));
    publish_id(hub.addr, "b", "only-b");
    sse.read_until("data: only-b\n\n");
    let text = String::from_utf8_lossy(&sse.buf).to_string();
    assert_eq!(text.matches("data: both").count(), 1, "{text}");
    assert!(text.contains("id: order-7\ndata: both\n\n"), "{text}");
}

#[test]
fn json_publish_single_and_batch() {
    let hub = Hub::start(&[]);
    let mut sse = Sse::open(hub.addr, "/sse?topic=j&topic=k", &[]);
    sse.read_until("retry: ");
    let ct = [("Content-Type", "application/json")];
    let (s, one) = request(
        hub.addr,
        "POST",
        "/publish",
        &ct,
        br#"{"topic":"j","data":"one","type":"t1"}"#,
    );
    assert_eq!(s, 200, "{one}");
    assert!(one.starts_with("{\"id\":\""), "{one}");
    let batch =
        br#"[{"topic":["j","k"],"data":"two"},{"topic":"k","data":"three","id":"x3","retry":100}]"#;
    let (s, many) = request(hub.addr, "POST", "/publish", &ct, batch);
    assert_eq!(s, 200, "{many}");
    let ids: Vec<serde_json::Value> = serde_json::from_str(&many).unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[1]["id"], "x3");
    let text = sse.read_until("data: three\n\n");
    let one_at = text.find("data: one").unwrap();
    let two_at = text.find("data: two").unwrap();
    assert!(one_at < two_at && text.contains("event: t1\n"), "{text}");
    assert!(
        text.contains("retry: 100\nid: x3\ndata: three\n\n"),
        "{text}"
    );
}

#[test]
fn idle_streams_get_heartbeat_comments() {
    let hub = Hub::start(&["--heartbeat-secs", "1"]);
    let mut sse = Sse::open(hub.addr, "/sse?topic=quiet", &[]);
    sse.read_until("retry: ");
    let text = sse.read_until("\n:\n\n");
    assert!(text.contains(":\n\n"));
}

#[test]
fn a_stream_on_a_keep_alive_connection_is_served_chunked_with_the_same_frames() {
    use std::io::Write;
    let hub = Hub::start(&[]);
    let first = publish_id(hub.addr, "ka", "replayed");
    let epoch = first.split('-').next().unwrap().to_string();
    let mut sse = Sse::open(hub.addr, "/healthz", &[]);
    sse.read_until("ok\n");
    let req = format!("GET /sse?topic=ka&last_event_id={epoch}-0 HTTP/1.1\r\nHost: t\r\n\r\n");
    sse.stream.write_all(req.as_bytes()).unwrap();
    let text = sse.read_until("data: replayed\n\n");
    let second = &text[text.find("ok\n").unwrap()..];
    assert!(second.contains("HTTP/1.1 200 OK\r\n"), "{second}");
    assert!(
        second
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{second}"
    );
    assert!(
        second.contains("content-type: text/event-stream"),
        "{second}"
    );
    assert!(
        second.contains(&format!("id: {first}\ndata: replayed\n\n")),
        "{second}"
    );
    publish_id(hub.addr, "ka", "live");
    sse.read_until("data: live\n\n");
}
