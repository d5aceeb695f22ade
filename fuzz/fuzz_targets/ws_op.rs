//! WebSocket and BOSH operations: `herald_server::transports::ops::parse`,
//! and the answers that echo a `ref`.
//!
//! Properties: any text is parsed or refused with `invalid_operation`, never
//! a panic; an accepted operation is a JSON object whose `op` names it and
//! whose fields are exactly what the parser returns; a refusal carries the
//! object's `ref` when there is one; every answer (`ok`, `error`, `pong`,
//! `reset`) is one JSON object that echoes the `ref`.
#![no_main]

use arbitrary::Arbitrary;
use herald_core::{Position, Reset, ResetReason};
use herald_fuzz::SmallLimits;
use herald_server::transports::ops::{self, Op};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(String),
    Built {
        op: u8,
        reference: Option<String>,
        topics: Vec<String>,
        one_topic: bool,
        last_event_id: Option<String>,
        data: String,
        extra: Option<(String, String)>,
        limits: SmallLimits,
    },
}

const NAMES: [&str; 5] = ["subscribe", "unsubscribe", "publish", "ping", "PING"];

fn topics_of(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|t| t.as_str().unwrap().to_owned()).collect(),
        other => panic!("accepted topics {other}"),
    }
}

/// The answers are JSON objects echoing `reference`.
fn check_answers(reference: &Value, rej: &herald_server::rejection::Rejection) {
    // The ref as a client reads it back after our own serialisation.
    let echoed: Value = serde_json::from_str(&reference.to_string()).unwrap();
    let reset = Reset {
        reason: ResetReason::Epoch,
        position: Position {
            epoch: 0xab,
            seq: 3,
        },
    };
    for (answer, op) in [
        (ops::ok(reference, Some(("n", json!(1)))), "ok"),
        (ops::error(reference, rej), "error"),
        (ops::pong(reference), "pong"),
        (ops::reset(reference, &reset, &["a", "</b>"]), "reset"),
    ] {
        let v: Value = serde_json::from_str(&answer).expect("answers are JSON");
        assert_eq!(v["op"], op);
        assert_eq!(v["ref"], echoed, "{answer}");
    }
}

fn check(text: &str) -> Option<ops::Request> {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    match ops::parse(text) {
        Ok(req) => {
            let v = parsed.expect("accepted operations are JSON");
            let obj = v.as_object().expect("accepted operations are objects");
            assert_eq!(
                req.reference,
                obj.get("ref").cloned().unwrap_or(Value::Null)
            );
            let name = obj["op"].as_str().unwrap();
            let known = ["ref", "op", "topics", "last_event_id"];
            match &req.op {
                Op::Subscribe {
                    topics,
                    last_event_id,
                } => {
                    assert_eq!(name, "subscribe");
                    assert_eq!(*topics, topics_of(&obj["topics"]));
                    assert_eq!(
                        last_event_id.as_deref(),
                        obj.get("last_event_id").and_then(Value::as_str)
                    );
                    assert!(obj.keys().all(|k| known.contains(&k.as_str())));
                }
                Op::Unsubscribe { topics } => {
                    assert_eq!(name, "unsubscribe");
                    assert_eq!(*topics, topics_of(&obj["topics"]));
                    assert!(obj.get("last_event_id").is_none_or(Value::is_null));
                    assert!(obj.keys().all(|k| known.contains(&k.as_str())));
                }
                Op::Publish(_) => assert_eq!(name, "publish"),
                Op::Ping => {
                    assert_eq!(name, "ping");
                    assert!(obj.keys().all(|k| k == "ref" || k == "op"));
                }
            }
            let rej = herald_server::rejection::Rejection::bad_request("x", "y");
            check_answers(&req.reference, &rej);
            Some(req)
        }
        Err((reference, rej)) => {
            assert_eq!(rej.code, "invalid_operation");
            assert_eq!(rej.status.as_u16(), 400);
            let want = parsed
                .as_ref()
                .and_then(Value::as_object)
                .and_then(|o| o.get("ref").cloned())
                .unwrap_or(Value::Null);
            assert_eq!(reference, want);
            check_answers(&reference, &rej);
            None
        }
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw(text) => {
            check(&text);
        }
        Input::Built {
            op,
            reference,
            topics,
            one_topic,
            last_event_id,
            data,
            extra,
            limits,
        } => {
            let name = NAMES[usize::from(op) % NAMES.len()];
            let mut v = json!({ "op": name });
            if let Some(r) = &reference {
                v["ref"] = json!(r);
            }
            let publish = name == "publish";
            let topic_key = if publish { "topic" } else { "topics" };
            if name != "ping" {
                v[topic_key] = match (one_topic, topics.first()) {
                    (true, Some(t)) => json!(t),
                    _ => json!(topics),
                };
            }
            if publish {
                v["data"] = json!(data);
            } else if let Some(l) = &last_event_id {
                v["last_event_id"] = json!(l);
            }
            if let Some((k, x)) = &extra {
                v[k.as_str()] = json!(x);
            }
            let text = v.to_string();
            if extra.as_ref().is_some_and(|(k, _)| k == "op") {
                // The operation's name itself was replaced: only no panic.
                check(&text);
                return;
            }
            let extra_ok = extra.as_ref().is_none_or(|(k, _)| {
                k == "ref"
                    || k == "op"
                    || (publish && ["topic", "data", "type", "id"].contains(&k.as_str()))
                    || (name == "subscribe" && ["topics", "last_event_id"].contains(&k.as_str()))
                    || (name == "unsubscribe" && k == "topics")
            });
            let has_lei = last_event_id.is_some()
                || extra.as_ref().is_some_and(|(k, _)| k == "last_event_id");
            let should = name != "PING"
                && extra_ok
                && !((name == "unsubscribe" || name == "ping") && has_lei);
            let got = check(&text);
            assert_eq!(got.is_some(), should, "{text}");
            if let Some(ops::Request {
                op: Op::Publish(ev),
                ..
            }) = got
            {
                let l = limits.limits();
                if let Ok(d) = ev.into_draft(&l) {
                    assert!(d.topics.len() <= l.max_topics && d.data.len() <= l.max_data_len);
                }
            }
        }
    }
});
