//! The documented HTTP API as a whole: the OpenAPI document the hub serves
//! names every route of the index, `POST /topics/{topic}` publishes, and a
//! known route asked with the wrong method says which methods it answers.
//! (scripts/api-conformance runs schemathesis against the same document.)

mod common;

use common::*;

#[test]
fn the_openapi_document_covers_every_route_of_the_index() {
    let hub = Hub::start(&[]);
    let (status, doc) = request(hub.addr, "GET", "/openapi.json", &[], b"");
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let (status, index) = request(hub.addr, "GET", "/", &[], b"");
    assert_eq!(status, 200);
    let mut routes = 0;
    for line in index.lines() {
        let mut words = line.split_whitespace();
        let (Some(method), Some(target)) = (words.next(), words.next()) else {
            continue;
        };
        if !["GET", "POST"].contains(&method) {
            continue;
        }
        let path = target.split(['?', '[']).next().unwrap();
        let path = if path == "/topics/T" {
            "/topics/{topic}"
        } else {
            path
        };
        let op = &doc["paths"][path][method.to_lowercase()];
        assert!(op.is_object(), "{method} {path} is not in /openapi.json");
        routes += 1;
    }
    assert!(routes >= 12, "the index names the routes:\n{index}");
}

#[test]
fn publishing_to_a_topic_path_reaches_subscribers() {
    let hub = Hub::start(&[]);
    let mut sse = Sse::open(hub.addr, "/sse?topic=/chat/room1", &[]);
    sse.read_until("retry:");
    // The path is percent-decoded: %2F is a / of the topic.
    let (status, body) = request(
        hub.addr,
        "POST",
        "/topics/%2Fchat%2Froom1?type=note&id=n1",
        &[("Content-Type", "application/json")],
        b"{\"raw\": true}",
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["id"], "n1");
    let text = sse.read_until("data: {\"raw\": true}");
    assert!(text.contains("event: note\nid: n1\n"), "{text}");
    // Unencoded slashes after /topics/ are part of the topic too.
    let (status, _) = request(hub.addr, "POST", "/topics//chat/room1", &[], b"second");
    assert_eq!(status, 200);
    sse.read_until("data: second");
}

#[test]
fn a_json_retry_may_be_written_as_a_whole_float() {
    let hub = Hub::start(&[]);
    let mut sse = Sse::open(hub.addr, "/sse?topic=t", &[]);
    sse.read_until("retry:");
    let (status, body) = request(
        hub.addr,
        "POST",
        "/publish",
        &[("Content-Type", "application/json")],
        br#"{"topic":"t","data":"x","retry":2500.0,"id":null,"type":null}"#,
    );
    assert_eq!(status, 200, "{body}");
    let text = sse.read_until("data: x");
    assert!(text.contains("retry: 2500\n"), "{text}");
}

#[test]
fn a_wrong_method_gets_405_with_allow() {
    let hub = Hub::start(&[]);
    for (method, path, allow) in [
        ("GET", "/publish", "POST, OPTIONS"),
        ("PUT", "/topics/t", "POST, OPTIONS"),
        ("DELETE", "/sse", "GET, OPTIONS"),
        ("TRACE", "/metrics", "GET, OPTIONS"),
        ("POST", "/openapi.json", "GET, HEAD, OPTIONS"),
    ] {
        let raw = raw_request(hub.addr, method, path, &[], b"");
        let text = String::from_utf8_lossy(&raw).to_lowercase();
        assert!(text.starts_with("http/1.1 405"), "{method} {path}: {text}");
        assert!(
            text.contains(&format!("allow: {}\r\n", allow.to_lowercase())),
            "{method} {path}: {text}"
        );
    }
}
