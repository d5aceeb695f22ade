//! The JSON operations of bidirectional sessions: one per WebSocket text
//! frame (`GET /ws`), one per `<op>` element of a BOSH body (`POST /bosh`).
//!
//! Client to hub: `subscribe`, `unsubscribe`, `publish`, `ping`, each with an
//! optional `ref` (any JSON value) echoed in the answer. Hub to client:
//! `event` (the shared JSON encoding of [`herald_core::json`]), `ok`,
//! `error`, `reset` and `pong`.

use serde::Deserialize;
use serde_json::{Value, json};

use herald_core::Reset;

use crate::publish::{JsonEvent, OneOrMany};
use crate::rejection::Rejection;

/// One operation from the client.
#[derive(Debug)]
pub struct Request {
    /// Echoed in the answer (`null` when absent).
    pub reference: Value,
    /// What to do.
    pub op: Op,
}

/// What the client asks for.
pub enum Op {
    /// Watch `topics`, from after `last_event_id` or from now.
    Subscribe {
        /// Topic names, not yet validated.
        topics: Vec<String>,
        /// Where to resume.
        last_event_id: Option<String>,
    },
    /// Stop watching `topics`.
    Unsubscribe {
        /// Topic names, not yet validated.
        topics: Vec<String>,
    },
    /// Publish one event (validated like `POST /publish`).
    Publish(JsonEvent),
    /// Answer with `pong`.
    Ping,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Subscribe {
                topics,
                last_event_id,
            } => f
                .debug_struct("Subscribe")
                .field("topics", topics)
                .field("last_event_id", last_event_id)
                .finish(),
            Op::Unsubscribe { topics } => f
                .debug_struct("Unsubscribe")
                .field("topics", topics)
                .finish(),
            Op::Publish(_) => f.write_str("Publish"),
            Op::Ping => f.write_str("Ping"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicsOp {
    topics: OneOrMany<String>,
    last_event_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

/// Parses one text frame. The error still carries the `ref`, when it could
/// be read, so the client can match the error to its request.
pub fn parse(text: &str) -> Result<Request, (Value, Rejection)> {
    let invalid = |reference: Value, message: String| {
        (
            reference,
            Rejection::bad_request("invalid_operation", message),
        )
    };
    let mut value: Value = serde_json::from_str(text).map_err(|e| {
        invalid(
            Value::Null,
            format!("not JSON ({e}); send one JSON object per text frame, such as {{\"op\":\"subscribe\",\"topics\":[\"T\"]}}"),
        )
    })?;
    let Some(obj) = value.as_object_mut() else {
        return Err(invalid(
            Value::Null,
            "an operation is a JSON object with an \"op\" field".into(),
        ));
    };
    let reference = obj.remove("ref").unwrap_or(Value::Null);
    let name = match obj.remove("op") {
        Some(Value::String(s)) => s,
        _ => {
            return Err(invalid(
                reference,
                "missing \"op\": one of subscribe, unsubscribe, publish, ping".into(),
            ));
        }
    };
    let fields = Value::Object(std::mem::take(obj));
    let bad_fields = |e: serde_json::Error| format!("{name}: {e}");
    let op = match name.as_str() {
        "subscribe" => serde_json::from_value::<TopicsOp>(fields)
            .map(|t| Op::Subscribe {
                topics: t.topics.into_vec(),
                last_event_id: t.last_event_id,
            })
            .map_err(bad_fields),
        "unsubscribe" => serde_json::from_value::<TopicsOp>(fields)
            .map_err(bad_fields)
            .and_then(|t| match t.last_event_id {
                Some(_) => Err("unsubscribe takes no last_event_id".to_string()),
                None => Ok(Op::Unsubscribe {
                    topics: t.topics.into_vec(),
                }),
            }),
        "publish" => serde_json::from_value::<JsonEvent>(fields)
            .map(Op::Publish)
            .map_err(bad_fields),
        "ping" => serde_json::from_value::<Empty>(fields)
            .map(|_| Op::Ping)
            .map_err(bad_fields),
        other => Err(format!(
            "unknown op {other:?}: use subscribe, unsubscribe, publish or ping"
        )),
    };
    match op {
        Ok(op) => Ok(Request { reference, op }),
        Err(message) => Err(invalid(reference, message)),
    }
}

/// `{"op":"ok","ref":…}` plus `extra` fields.
pub fn ok(reference: &Value, extra: Option<(&str, Value)>) -> String {
    let mut v = json!({"op": "ok", "ref": reference});
    if let Some((k, x)) = extra {
        v[k] = x;
    }
    v.to_string()
}

/// `{"op":"error","error":code,"message":…,"ref":…}`.
pub fn error(reference: &Value, rej: &Rejection) -> String {
    json!({"op": "error", "error": rej.code, "message": rej.message, "ref": reference}).to_string()
}

/// `{"op":"reset","reason":…,"last_event_id":…,"topics":[…],"ref":…}`: the
/// subscription for `topics` could not continue from where the client asked
/// and continues live after `last_event_id`.
pub fn reset(reference: &Value, reset: &Reset, topics: &[&str]) -> String {
    json!({
        "op": "reset",
        "reason": reset.reason.as_str(),
        "last_event_id": reset.position.to_string(),
        "topics": topics,
        "ref": reference,
    })
    .to_string()
}

/// `{"op":"pong","ref":…}`.
pub fn pong(reference: &Value) -> String {
    json!({"op": "pong", "ref": reference}).to_string()
}
