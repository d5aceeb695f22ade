//! Bad requests get a 4xx with `{"error": code, "message": …}` and never a panic
//! (a table of cases; the hub must still serve afterwards).

mod common;

use common::*;

/// Method, target, headers, body, expected status, expected error code.
type Case<'a> = (
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    Vec<u8>,
    u16,
    &'a str,
);

#[test]
fn bad_requests_get_clear_errors() {
    let hub = Hub::start(&[
        "--max-body-bytes",
        "2048",
        "--max-data-bytes",
        "1024",
        "--max-batch",
        "3",
        "--max-topic-len",
        "16",
    ]);
    publish(hub.addr, "/publish?topic=t&id=taken", "x");
    let json = [("Content-Type", "application/json")];
    let none: [(&str, &str); 0] = [];
    let big = "x".repeat(1500);
    let huge = "y".repeat(4000);
    let cases: Vec<Case> = vec![
        ("POST", "/publish", &none, b"x".to_vec(), 400, "missing_topic"),
        ("POST", "/publish?topic=", &none, b"x".to_vec(), 400, "invalid_topic"),
        ("POST", "/publish?topic=a%0Ab", &none, b"x".to_vec(), 400, "invalid_topic"),
        ("POST", "/publish?topic=abcdefghijklmnopq", &none, b"x".to_vec(), 400, "invalid_topic"),
        ("POST", "/publish?topic=t", &none, vec![0xff, 0xfe], 400, "invalid_data"),
        ("POST", "/publish?topic=t&id=a%0Ab", &none, b"x".to_vec(), 400, "invalid_id"),
        ("POST", "/publish?topic=t&id=", &none, b"x".to_vec(), 400, "invalid_id"),
        ("POST", "/publish?topic=t&id=ab-12", &none, b"x".to_vec(), 400, "invalid_id"),
        ("POST", "/publish?topic=t&type=a%0Db", &none, b"x".to_vec(), 400, "invalid_type"),
        ("POST", "/publish?topic=t&type=a%00", &none, b"x".to_vec(), 400, "invalid_type"),
        ("POST", "/publish?topic=t&retry=soon", &none, b"x".to_vec(), 400, "invalid_retry"),
        ("POST", "/publish?topic=t&retry=-1", &none, b"x".to_vec(), 400, "invalid_retry"),
        ("POST", "/publish?topic=t&id=taken", &none, b"x".to_vec(), 409, "duplicate_id"),
        ("POST", "/publish?topic=t", &none, big.as_bytes().to_vec(), 413, "data_too_large"),
        ("POST", "/publish?topic=t", &none, huge.as_bytes().to_vec(), 413, "body_too_large"),
        ("POST", "/publish", &json, b"{".to_vec(), 400, "invalid_json"),
        ("POST", "/publish", &json, br#"{"topic":"t"}"#.to_vec(), 400, "invalid_json"),
        ("POST", "/publish", &json, br#"{"topic":"t","data":"x","extra":1}"#.to_vec(), 400, "invalid_json"),
        ("POST", "/publish", &json, br#"{"topic":"t","data":5}"#.to_vec(), 400, "invalid_json"),
        ("POST", "/publish", &json, br#"{"topic":[],"data":"x"}"#.to_vec(), 400, "invalid_topic"),
        ("POST", "/publish", &json, br#"[]"#.to_vec(), 400, "empty_batch"),
        ("POST", "/publish", &json, br#"[{"topic":"t","data":"1"},{"topic":"t","data":"2"},{"topic":"t","data":"3"},{"topic":"t","data":"4"}]"#.to_vec(), 413, "batch_too_large"),
        ("POST", "/publish", &json, br#"[{"topic":"t","data":"1","id":"d"},{"topic":"t","data":"2","id":"d"}]"#.to_vec(), 409, "duplicate_id"),
        ("POST", "/publish", &json, "[".repeat(1500).into_bytes(), 400, "invalid_json"),
        ("POST", "/publish?topic=t", &json, br#"{"topic":"t","data":"x"}"#.to_vec(), 400, "invalid_query"),
        ("POST", "/publish?id=x", &json, br#"{"topic":"t","data":"x"}"#.to_vec(), 400, "invalid_query"),
        ("POST", "/publish", &json, br#"{"topic":"t","data":"x","retry":1.5}"#.to_vec(), 400, "invalid_json"),
        ("POST", "/publish", &json, br#"{"topic":"t","data":"x","retry":-1}"#.to_vec(), 400, "invalid_json"),
        ("POST", "/topics/", &none, b"x".to_vec(), 400, "missing_topic"),
        ("POST", "/topics/a%0Ab", &none, b"x".to_vec(), 400, "invalid_topic"),
        ("POST", "/topics/%FF", &none, b"x".to_vec(), 400, "invalid_topic"),
        ("POST", "/topics/t?id=a%0Ab", &none, b"x".to_vec(), 400, "invalid_id"),
        ("POST", "/bosh", &none, vec![], 400, "missing_body"),
        ("TRACE", "/healthz", &none, vec![], 405, "method_not_allowed"),
        ("GET", "/topics/t", &none, vec![], 405, "method_not_allowed"),
        ("GET", "/publish", &none, vec![], 405, "method_not_allowed"),
        ("POST", "/sse?topic=t", &none, vec![], 405, "method_not_allowed"),
        ("GET", "/nowhere", &none, vec![], 404, "not_found"),
        ("GET", "/sse", &none, vec![], 400, "missing_topic"),
        ("GET", "/sse?topic=%7F", &none, vec![], 400, "invalid_topic"),
    ];
    for (method, target, headers, body, status, code) in cases {
        let (got, text) = request(hub.addr, method, target, headers, &body);
        assert_eq!(got, status, "{method} {target}: {text}");
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{target}: {e}: {text}"));
        assert_eq!(v["error"], code, "{method} {target}: {text}");
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{text}"
        );
    }
    // A head that is not HTTP, and one that is too large.
    let junk = raw_bytes(hub.addr, b"GET /sse?topic=t HTTP/1.1\r\nBad Header\r\n\r\n");
    assert!(
        String::from_utf8_lossy(&junk).starts_with("HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&junk)
    );
    let long = format!("/sse?topic={}", "a".repeat(20_000));
    let (got, _) = request(hub.addr, "GET", &long, &[], b"");
    assert_eq!(got, 431);
    // Nothing of the refused requests was stored: only the first event exists.
    let mut sse = Sse::open(hub.addr, "/sse?topic=t&last_event_id=taken", &[]);
    let ok = publish_id(hub.addr, "t", "still-serving");
    sse.read_until("data: still-serving\n\n");
    assert_eq!(sse.ids(), vec![ok]);
}

#[test]
fn publishing_without_dev_mode_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = Hub::start_in(tmp.path(), "127.0.0.1:0", &[]);
    let (status, body) = publish(hub.addr, "/publish?topic=t", "x");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"error\":\"unauthorized\""), "{body}");
}

#[test]
fn bad_configuration_exits_64_with_a_message() {
    for args in [
        vec!["--listen", "not-an-address"],
        vec!["--max-topics", "0"],
        vec!["--log-format", "xml"],
        vec!["--no-such-flag"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("serve")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--max-topics", "0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_topics must be greater than 0"));
}
