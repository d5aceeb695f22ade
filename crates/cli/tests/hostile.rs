//! A table of malformed and malicious requests against a hub that enforces
//! tokens: each gets exactly the expected status (and a stable error code or
//! condition), none crashes the hub, and the stored history is exactly what
//! it was before the table ran.
#![allow(clippy::disallowed_types)]

mod common;

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Hub, raw_bytes, request};
use serde_json::Value;

const SECRET: &str = "hostile-test-secret-hostile-test-secret-01";

fn sign(publish: &[&str], subscribe: &[&str], ttl: Duration, now: SystemTime) -> String {
    common::mint_token(SECRET, publish, subscribe, ttl, now)
}

/// A token over arbitrary claims JSON, signed HS256 with the hub's secret,
/// then given `header` (so a header that claims another algorithm keeps an
/// HMAC signature).
fn with_claims(claims: &str, header: Option<&str>) -> String {
    let value: Value = serde_json::from_str(claims).unwrap();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &value,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap();
    match header {
        None => token,
        Some(h) => {
            let rest = token.split_once('.').unwrap().1;
            format!("{}.{rest}", URL_SAFE_NO_PAD.encode(h))
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One raw request: method, target, extra header lines, body.
fn raw(method: &str, target: &str, headers: &[String], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    if !body.is_empty() {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

struct Case {
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    /// Text the answer must contain (an error code or condition).
    needle: &'static str,
}

fn case(name: &'static str, request: Vec<u8>, status: u16, needle: &'static str) -> Case {
    Case {
        name,
        request,
        status,
        needle,
    }
}

#[test]
fn malicious_requests_get_exact_errors_and_leave_history_unchanged() {
    let hub = Hub::start_secure(
        SECRET,
        &[
            "--max-topics",
            "8",
            "--max-body-bytes",
            "65536",
            "--max-data-bytes",
            "32768",
        ],
    );
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let writer = format!(
        "Authorization: Bearer {}",
        sign(&["t", "u"], &["t"], hour, now)
    );
    let reader = format!("Authorization: Bearer {}", sign(&[], &["t"], hour, now));
    let auth = |t: &str| format!("Authorization: Bearer {t}");

    // The history before: three events on t.
    let mut before = Vec::new();
    for data in ["one", "two\nlines", "three"] {
        let (s, b) = request(
            hub.addr,
            "POST",
            "/publish?topic=t",
            &[("Authorization", &writer[15..])],
            data.as_bytes(),
        );
        assert_eq!(s, 200, "{b}");
        before.push(
            serde_json::from_str::<Value>(&b).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }

    let json = |body: &str| {
        raw(
            "POST",
            "/publish",
            &[writer.clone(), "Content-Type: application/json".into()],
            body.as_bytes(),
        )
    };
    let publish = |q: &str, body: &[u8]| {
        raw(
            "POST",
            &format!("/publish?{q}"),
            std::slice::from_ref(&writer),
            body,
        )
    };
    let get = |target: &str| raw("GET", target, std::slice::from_ref(&reader), b"");
    let ws = |extra: &[&str]| {
        let mut h = vec![
            reader.clone(),
            "Upgrade: websocket".into(),
            "Connection: Upgrade".into(),
        ];
        h.extend(extra.iter().map(|s| s.to_string()));
        raw("GET", "/ws", &h, b"")
    };
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let big_batch: Vec<String> = (0..1001)
        .map(|_| r#"{"topic":"t","data":"x"}"#.to_string())
        .collect();
    let bosh = |body: &str| {
        raw(
            "POST",
            "/bosh",
            std::slice::from_ref(&reader),
            body.as_bytes(),
        )
    };

    let cases = vec![
        // Forging SSE fields through type, id and retry.
        case("type with LF", publish("topic=t&type=a%0Adata:%20forged", b"x"), 400, "invalid_type"),
        case("type with CR", publish("topic=t&type=a%0Dx", b"x"), 400, "invalid_type"),
        case("id with CRLF", publish("topic=t&id=a%0D%0Aevent:%20x", b"x"), 400, "invalid_id"),
        case("id with NUL", publish("topic=t&id=a%00b", b"x"), 400, "invalid_id"),
        case("id shaped like a hub id", publish("topic=t&id=abc-12", b"x"), 400, "invalid_id"),
        case("empty type", publish("topic=t&type=", b"x"), 400, "invalid_type"),
        case("negative retry", publish("topic=t&retry=-1", b"x"), 400, "invalid_retry"),
        case("huge retry", publish("topic=t&retry=99999999999", b"x"), 400, "invalid_retry"),
        case("bad private flag", publish("topic=t&private=maybe", b"x"), 400, "invalid_private"),
        case("JSON id with LF", json(r#"{"topic":"t","data":"x","id":"a\nid: b"}"#), 400, "invalid_id"),
        case("JSON type with CR", json(r#"{"topic":"t","data":"x","type":"a\rb"}"#), 400, "invalid_type"),
        // Invalid UTF-8.
        case("raw body not UTF-8", publish("topic=t", b"\xff\xfe\xfd"), 400, "invalid_data"),
        case("JSON body not UTF-8", raw("POST", "/publish", &[writer.clone(), "Content-Type: application/json".into()], b"{\"topic\":\"t\",\"data\":\"\xff\"}"), 400, "invalid_json"),
        case("topic not UTF-8", publish("topic=%FF%FE", b"x"), 400, "invalid_query"),
        case("subscribe topic not UTF-8", get("/poll?topic=%C3%28&timeout=0"), 400, "invalid_query"),
        // Huge, deep or malformed JSON.
        case("deeply nested JSON", json(&deep), 400, "invalid_json"),
        case("JSON not an object", json("123"), 400, "invalid_json"),
        case("JSON unknown field", json(r#"{"topic":"t","data":"x","evil":1}"#), 400, "invalid_json"),
        case("JSON data not a string", json(r#"{"topic":"t","data":{"a":1}}"#), 400, "invalid_json"),
        case("JSON empty batch", json("[]"), 400, "empty_batch"),
        case("JSON no topic", json(r#"{"topic":[],"data":"x"}"#), 400, "invalid_topic"),
        case("JSON too many topics", json(r#"{"topic":["a","b","c","d","e","f","g","h","i"],"data":"x"}"#), 400, "invalid_topic"),
        case("JSON batch too large", json(&format!("[{}]", big_batch.join(","))), 413, "batch_too_large"),
        case("JSON truncated", json(r#"{"topic":"t","data":"x"#), 400, "invalid_json"),
        case("data over max_data_bytes", publish("topic=t", &vec![b'a'; 40_000]), 413, "data_too_large"),
        case("body over max_body_bytes", publish("topic=t", &vec![b'a'; 70_000]), 413, "body_too_large"),
        case("declared length over the limit", raw("POST", "/publish?topic=t", &[writer.clone(), "Content-Length: 999999999".into()], b""), 413, "body_too_large"),
        // Tokens.
        case("no token", raw("POST", "/publish?topic=t", &[], b"x"), 401, "unauthorized"),
        case("expired token", raw("POST", "/publish?topic=t", &[auth(&sign(&["t"], &[], Duration::from_secs(60), now - hour))], b"x"), 401, "token_expired"),
        case("token from another key", raw("POST", "/publish?topic=t", &[auth(&common::mint_token("some-other-secret-some-other-secret-0000", &["*"], &[], hour, now))], b"x"), 401, "token_bad_signature"),
        case("alg none", raw("POST", "/publish?topic=t", &[auth(&format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{},"herald":{{"publish":["*"]}}}}"#, unix_now() + 600))))], b"x"), 401, "token_unsigned"),
        case("RS256 header over an HMAC signature", raw("POST", "/publish?topic=t", &[auth(&with_claims(&format!(r#"{{"exp":{},"herald":{{"publish":["*"]}}}}"#, unix_now() + 600), Some(r#"{"alg":"RS256","typ":"JWT"}"#)))], b"x"), 401, "token_alg"),
        case("grants of the wrong type", raw("POST", "/publish?topic=t", &[auth(&with_claims(&format!(r#"{{"exp":{},"herald":{{"publish":5}}}}"#, unix_now() + 600), None))], b"x"), 401, "token_bad_claims"),
        case("exp of the wrong type", raw("POST", "/publish?topic=t", &[auth(&with_claims(r#"{"exp":"tomorrow","herald":{"publish":["*"]}}"#, None))], b"x"), 401, "token_"),
        case("bad selector in grants", raw("POST", "/publish?topic=t", &[auth(&with_claims(&format!(r#"{{"exp":{},"herald":{{"publish":["/a/**/b"]}}}}"#, unix_now() + 600), None))], b"x"), 401, "token_bad_claims"),
        case("empty bearer", raw("POST", "/publish?topic=t", &["Authorization: Bearer ".into()], b"x"), 401, "token_"),
        case("not bearer", raw("POST", "/publish?topic=t", &["Authorization: Basic dXNlcjpwYXNz".into()], b"x"), 401, "token_not_bearer"),
        case("two tokens", raw("POST", "/publish?topic=t", &[writer.clone(), writer.clone()], b"x"), 400, "token_ambiguous"),
        case("token in the URL", raw("POST", &format!("/publish?topic=t&access_token={}", &writer[22..]), &[], b"x"), 400, "token_in_url_disabled"),
        case("malformed token", raw("POST", "/publish?topic=t", &["Authorization: Bearer a.b".into()], b"x"), 401, "token_malformed"),
        case("token for another topic", publish("topic=secret", b"x"), 403, "forbidden"),
        case("subscribe outside the grants", get("/sse?topic=u"), 403, "forbidden"),
        // Topics and paths.
        case("topic with NUL", publish("topic=a%00b", b"x"), 400, "invalid_topic"),
        case("topic with CRLF", get("/poll?topic=a%0D%0AX:%20y&timeout=0"), 400, "invalid_topic"),
        case("empty topic", get("/sse?topic="), 400, "invalid_topic"),
        case("topic too long", get(&format!("/sse?topic={}", "a".repeat(2000))), 400, "invalid_topic"),
        case("too many topics", get(&format!("/poll?{}&timeout=0", (0..9).map(|i| format!("topic=t{i}")).collect::<Vec<_>>().join("&"))), 400, "invalid_topic"),
        case("dot segments in the path", get("/sse/../publish?topic=t"), 404, "not_found"),
        case("encoded dot segments", get("/%2e%2e/publish?topic=t"), 404, "not_found"),
        case("double slash", raw("POST", "//publish?topic=t", std::slice::from_ref(&writer), b"x"), 404, "not_found"),
        case("wrong method", raw("DELETE", "/publish?topic=t", std::slice::from_ref(&writer), b""), 405, "method_not_allowed"),
        // JSONP callbacks that try to inject script.
        case("callback with a call", get("/poll?topic=t&timeout=0&callback=alert(1)"), 400, "invalid_callback"),
        case("callback closing the script", get("/poll?topic=t&timeout=0&callback=%3C/script%3E"), 400, "invalid_callback"),
        case("callback with a statement", get("/poll?topic=t&timeout=0&callback=a;b"), 400, "invalid_callback"),
        case("callback with a newline", get("/poll?topic=t&timeout=0&callback=a%0Ab"), 400, "invalid_callback"),
        case("callback too long", get(&format!("/poll?topic=t&timeout=0&callback={}", "a".repeat(65))), 400, "invalid_callback"),
        case("empty callback", get("/poll?topic=t&timeout=0&callback="), 400, "invalid_callback"),
        case("iframe callback injection", get("/stream?topic=t&format=iframe&callback=x%22);alert(1)//"), 400, "invalid_callback"),
        // Request heads: CRLF tricks, smuggling, oversize.
        case("bare CR in a header value", b"GET /sse?topic=t HTTP/1.1\r\nHost: h\r\nX-A: b\rc\r\n\r\n".to_vec(), 400, "malformed_request"),
        case("CRLF in the request target", b"GET /sse?topic=a\r\nX: y HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(), 400, ""),
        case("space in a header name", b"GET /sse?topic=t HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n".to_vec(), 400, ""),
        // Read by Transfer-Encoding alone (RFC 9112 6.3) and the connection
        // closed after it, so nothing is smuggled; no token, so refused.
        case("Content-Length and chunked", b"POST /publish?topic=t HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), 401, "unauthorized"),
        case("two different Content-Lengths", b"POST /publish?topic=t HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx".to_vec(), 400, ""),
        case("header over max_header_bytes", raw("GET", "/sse?topic=t", &[format!("X-Big: {}", "a".repeat(20_000))], b""), 431, "header_too_large"),
        case("Last-Event-ID too long", raw("GET", "/sse?topic=t", &[reader.clone(), format!("Last-Event-ID: {}", "9".repeat(2000))], b""), 400, "invalid_last_event_id"),
        case("last_event_id with CR", get("/sse?topic=t&last_event_id=a%0Db"), 400, "invalid_last_event_id"),
        case("negative poll timeout", get("/poll?topic=t&timeout=-1"), 400, "invalid_timeout"),
        case("zero max", get("/poll?topic=t&timeout=0&max=0"), 400, "invalid_max"),
        case("unknown stream format", get("/stream?topic=t&format=flash"), 400, "invalid_format"),
        // WebSocket handshakes and BOSH bodies.
        case("WebSocket version 8", ws(&["Sec-WebSocket-Version: 8", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]), 426, "unsupported_websocket_version"),
        case("WebSocket short key", ws(&["Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: c2hvcnQ="]), 400, "bad_websocket_handshake"),
        case("WebSocket without a token", raw("GET", "/ws", &["Upgrade: websocket".into(), "Connection: Upgrade".into(), "Sec-WebSocket-Version: 13".into(), "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==".into()], b""), 401, "unauthorized"),
        case("BOSH body not XML", bosh("<body"), 200, "bad-request"),
        case("BOSH entity expansion", bosh("<!DOCTYPE b [<!ENTITY x 'xxxxxxxxxx'><!ENTITY y '&x;&x;&x;'>]><body xmlns='http://jabber.org/protocol/httpbind' rid='1'/>"), 200, "bad-request"),
        case("BOSH unknown sid", bosh("<body xmlns='http://jabber.org/protocol/httpbind' sid='0' rid='5'/>"), 200, "item-not-found"),
        case("BOSH rid too large", bosh("<body xmlns='http://jabber.org/protocol/httpbind' rid='9007199254740993'/>"), 200, "bad-request"),
    ];
    assert!(cases.len() >= 50, "{} cases", cases.len());

    let mut failures = Vec::new();
    for c in &cases {
        let answer = raw_bytes(hub.addr, &c.request);
        let text = String::from_utf8_lossy(&answer);
        let status: u16 = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        if status != c.status || !text.contains(c.needle) {
            failures.push(format!(
                "{}: expected {} with {:?}, got {:?}",
                c.name,
                c.status,
                c.needle,
                text.chars().take(400).collect::<String>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // The hub is alive and the history is exactly what it was.
    let epoch = before[0].split('-').next().unwrap();
    let (s, body) = request(
        hub.addr,
        "GET",
        &format!("/poll?topic=t&topic=u&since={epoch}-0&timeout=0"),
        &[(
            "Authorization",
            &format!("Bearer {}", sign(&[], &["t", "u"], hour, now)),
        )],
        b"",
    );
    assert_eq!(s, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, before.iter().map(String::as_str).collect::<Vec<_>>());
    let data: Vec<&str> = answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    assert_eq!(data, vec!["one", "two\nlines", "three"]);
}
