//! Bayeux messages and channels: `herald_server::protocols::bayeux`'s
//! `message::parse`, `http::parse_body` (JSON and form `message=` bodies),
//! `channel::parse` and `channel::matches`, and the replies built from what
//! was parsed.
//!
//! Properties: any body is parsed or refused with a 400 whose code starts
//! with `invalid_` or is `missing_message`, never a panic; an accepted JSON
//! body is a JSON array of objects (or one object) and each message keeps its
//! `channel`, `clientId` and `data` text exactly; replies and error replies
//! are JSON objects echoing the channel and id; a name the grammar accepts
//! matches itself (when it is no pattern), and `/a/*` / `/a/**` match as a
//! split-and-compare model says.
#![no_main]

use arbitrary::Arbitrary;
use herald_server::protocols::bayeux::{channel, http, message};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

#[derive(Arbitrary, Debug)]
struct Input {
    body: String,
    form: bool,
    pattern: String,
    topic: String,
}

/// The model: `/a/*` is one more non-empty segment, `/a/**` one or more.
fn model(pattern: &str, topic: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    match p.last() {
        Some(&"**") => {
            let base = &p[..p.len() - 1];
            t.len() > base.len() && t[..base.len()] == *base && t[base.len()..].iter().all(|s| !s.is_empty())
        }
        Some(&"*") => {
            let base = &p[..p.len() - 1];
            t.len() == p.len() && t[..base.len()] == *base && !t[base.len()].is_empty()
        }
        _ => pattern == topic,
    }
}

fn check_messages(text: &str, form: bool) {
    match http::parse_body(text.as_bytes(), form) {
        Ok(messages) => {
            if !form {
                let v: Value = serde_json::from_str(text).expect("accepted bodies are JSON");
                let objects: Vec<&Value> = match &v {
                    Value::Array(a) => a.iter().collect(),
                    one => vec![one],
                };
                assert_eq!(objects.len(), messages.len());
                for (m, o) in messages.iter().zip(objects) {
                    assert_eq!(o["channel"].as_str(), Some(m.channel.as_str()));
                    assert_eq!(o.get("clientId").and_then(Value::as_str), m.client_id.as_deref());
                    if let Some(d) = &m.data {
                        let reparsed: Value = serde_json::from_str(d.get()).unwrap();
                        assert_eq!(reparsed, o["data"]);
                    }
                }
            }
            for m in &messages {
                for text in [
                    message::reply(m, true, json!({"x": 1})),
                    message::failure(m, message::error(400, "a,b", "why: because"), Some(json!({"reconnect": "none"}))),
                    message::unknown_client(m),
                ] {
                    let v: Value = serde_json::from_str(&text).expect("replies are JSON");
                    assert_eq!(v["channel"].as_str(), Some(m.channel.as_str()));
                    match &m.id {
                        Some(id) => assert_eq!(
                            v["id"],
                            serde_json::from_str::<Value>(&id.to_string()).unwrap()
                        ),
                        None => assert!(v.get("id").is_none()),
                    }
                }
            }
            let array = message::array(&messages.iter().map(|m| message::reply(m, true, json!({}))).collect::<Vec<_>>());
            let v: Value = serde_json::from_str(&array).expect("arrays are JSON");
            assert_eq!(v.as_array().unwrap().len(), messages.len());
        }
        Err(rej) => {
            assert_eq!(rej.status.as_u16(), 400);
            assert!(rej.code.starts_with("invalid_") || rej.code == "missing_message", "{}", rej.code);
        }
    }
}

fuzz_target!(|input: Input| {
    check_messages(&input.body, input.form);
    if let Some(c) = channel::parse(&input.pattern) {
        assert!(input.pattern.starts_with('/'));
        if let channel::Channel::Name(n) = c {
            assert!(channel::matches(n, n));
        }
        if matches!(c, channel::Channel::Name(_) | channel::Channel::Wild(_)) {
            assert_eq!(
                channel::matches(&input.pattern, &input.topic),
                model(&input.pattern, &input.topic),
                "{:?} {:?}",
                input.pattern,
                input.topic
            );
        }
    }
});
