use hyper::header::HeaderValue;
use serde_json::json;

use super::*;
use crate::transports::ops::{self, Op};

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

const GOOD: [(&str, &str); 4] = [
    ("upgrade", "WebSocket"),
    ("connection", "keep-alive, Upgrade"),
    ("sec-websocket-version", "13"),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

#[test]
fn accept_key_is_the_rfc_example() {
    // RFC 6455 section 1.3.
    assert_eq!(
        accept_key(&headers(&GOOD)).unwrap(),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn handshakes_missing_a_part_are_refused() {
    for (drop, dropped) in GOOD.iter().enumerate() {
        let partial: Vec<_> = GOOD
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != drop)
            .map(|(_, p)| *p)
            .collect();
        match accept_key(&headers(&partial)) {
            Err(Refusal::Bad(rej)) => {
                assert_eq!(rej.status, StatusCode::BAD_REQUEST);
                assert_eq!(rej.code, "bad_websocket_handshake");
            }
            other => panic!("dropping {dropped:?}: {other:?}"),
        }
    }
    let mut short_key = GOOD;
    short_key[3] = ("sec-websocket-key", "c2hvcnQ=");
    assert!(matches!(
        accept_key(&headers(&short_key)),
        Err(Refusal::Bad(_))
    ));
    let mut v8 = GOOD;
    v8[2] = ("sec-websocket-version", "8");
    assert!(matches!(accept_key(&headers(&v8)), Err(Refusal::Version)));
}

#[test]
fn operations_parse_with_their_ref() {
    let r =
        ops::parse(r#"{"op":"subscribe","topics":["a","b"],"last_event_id":"x","ref":7}"#).unwrap();
    assert_eq!(r.reference, json!(7));
    match r.op {
        Op::Subscribe {
            topics,
            last_event_id,
        } => {
            assert_eq!(topics, ["a", "b"]);
            assert_eq!(last_event_id.as_deref(), Some("x"));
        }
        other => panic!("{other:?}"),
    }
    let r = ops::parse(r#"{"op":"unsubscribe","topics":"a"}"#).unwrap();
    assert!(matches!(r.op, Op::Unsubscribe { topics } if topics == ["a"]));
    assert!(matches!(
        ops::parse(r#"{"op":"ping","ref":"p"}"#).unwrap().op,
        Op::Ping
    ));
    assert!(matches!(
        ops::parse(r#"{"op":"publish","topic":"a","data":"d","type":"t"}"#)
            .unwrap()
            .op,
        Op::Publish(_)
    ));
}

#[test]
fn bad_operations_say_what_to_fix_and_keep_the_ref() {
    for (text, reference, needle) in [
        ("nope", json!(null), "not JSON"),
        ("[1]", json!(null), "JSON object"),
        (r#"{"ref":1}"#, json!(1), "missing \"op\""),
        (r#"{"op":"dance","ref":"r"}"#, json!("r"), "unknown op"),
        (
            r#"{"op":"subscribe","ref":2}"#,
            json!(2),
            "missing field `topics`",
        ),
        (
            r#"{"op":"subscribe","topics":["a"],"x":1}"#,
            json!(null),
            "unknown field `x`",
        ),
        (
            r#"{"op":"unsubscribe","topics":["a"],"last_event_id":"1"}"#,
            json!(null),
            "no last_event_id",
        ),
        (
            r#"{"op":"publish","topic":"a"}"#,
            json!(null),
            "missing field `data`",
        ),
        (
            r#"{"op":"ping","extra":true}"#,
            json!(null),
            "unknown field",
        ),
    ] {
        let (r, rej) = ops::parse(text).unwrap_err();
        assert_eq!(r, reference, "{text}");
        assert_eq!(rej.code, "invalid_operation");
        assert!(rej.message.contains(needle), "{text}: {}", rej.message);
    }
}

#[test]
fn answers_are_json_with_the_ref() {
    let v: serde_json::Value = serde_json::from_str(&ops::ok(&json!("a"), None)).unwrap();
    assert_eq!(v, json!({"op": "ok", "ref": "a"}));
    let rej = Rejection::bad_request("invalid_topic", "no");
    let v: serde_json::Value = serde_json::from_str(&ops::error(&json!(3), &rej)).unwrap();
    assert_eq!(
        v,
        json!({"op": "error", "error": "invalid_topic", "message": "no", "ref": 3})
    );
    let v: serde_json::Value = serde_json::from_str(&ops::pong(&json!(null))).unwrap();
    assert_eq!(v, json!({"op": "pong", "ref": null}));
}
