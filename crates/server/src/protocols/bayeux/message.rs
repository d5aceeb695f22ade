//! The Bayeux message model: what clients send ([`Message`], parsed with
//! serde) and the JSON text Herald answers with (replies, deliveries, error
//! strings and advice).
//!
//! Outgoing messages are JSON objects already encoded as text; a response is
//! their array (`[a,b,…]`), so an event's data is copied once into each
//! delivery and never parsed into a tree.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use herald_core::{Event, json as encode};

use crate::rejection::Rejection;

/// The connection types Herald serves, in the order it prefers them.
pub const CONNECTION_TYPES: [&str; 3] = ["websocket", "long-polling", "callback-polling"];

/// The protocol version Herald speaks.
pub const VERSION: &str = "1.0";

/// One message from a client. Fields Herald does not use are ignored.
#[derive(Debug, Deserialize)]
pub struct Message {
    /// The channel (required).
    pub channel: String,
    /// The client's message id, echoed in the reply (a string, sometimes a number).
    #[serde(default)]
    pub id: Option<Value>,
    /// The session, given at handshake.
    #[serde(rename = "clientId", default)]
    pub client_id: Option<String>,
    /// A publish's payload, kept as the JSON text the client sent.
    #[serde(default)]
    pub data: Option<Box<RawValue>>,
    /// A channel name or pattern, or an array of them (subscribe, unsubscribe).
    #[serde(default)]
    pub subscription: Option<Value>,
    /// The handshake's protocol version.
    #[serde(default)]
    pub version: Option<Value>,
    /// The handshake's connection types.
    #[serde(rename = "supportedConnectionTypes", default)]
    pub connection_types: Option<Vec<Value>>,
    /// The connect's connection type.
    #[serde(rename = "connectionType", default)]
    pub connection_type: Option<Value>,
    /// Client advice (a connect's `timeout`).
    #[serde(default)]
    pub advice: Option<ClientAdvice>,
    /// Extensions; Herald reads `ext.authToken` at handshake.
    #[serde(default)]
    pub ext: Option<Value>,
}

/// The advice a client may send.
#[derive(Debug, Default, Deserialize)]
pub struct ClientAdvice {
    /// How long the client wants its connect held, in ms (0: answer at once).
    #[serde(default)]
    pub timeout: Option<f64>,
}

impl Message {
    /// The token in `ext.authToken`, if any.
    pub fn token(&self) -> Option<&str> {
        self.ext.as_ref()?.get("authToken")?.as_str()
    }
}

/// Parses a body: a JSON array of messages, or one message object. Each
/// message must be an object (serde would read a struct from an array too).
pub fn parse(text: &str) -> Result<Vec<Message>, Rejection> {
    let bad = |what: String| {
        Rejection::bad_request(
            "invalid_bayeux_message",
            format!(
                "{what}; a Bayeux request is a JSON array of message objects, each with a \"channel\" string"
            ),
        )
    };
    let raws: Vec<&RawValue> = match text.trim_start().as_bytes().first() {
        Some(b'{') => vec![serde_json::from_str(text).map_err(|e| bad(e.to_string()))?],
        _ => serde_json::from_str(text).map_err(|e| bad(e.to_string()))?,
    };
    raws.iter()
        .enumerate()
        .map(|(i, raw)| {
            if !raw.get().starts_with('{') {
                return Err(bad(format!("message {} is not a JSON object", i + 1)));
            }
            serde_json::from_str(raw.get()).map_err(|e| bad(format!("message {}: {e}", i + 1)))
        })
        .collect()
}

/// An error string `code:args:message`.
pub fn error(code: u16, args: &str, message: &str) -> String {
    format!("{code}:{args}:{message}")
}

/// A reply to `m` with `successful` and extra fields (an object).
pub fn reply(m: &Message, successful: bool, mut extra: Value) -> String {
    let obj = extra.as_object_mut();
    let mut out = serde_json::Map::new();
    out.insert("channel".into(), Value::String(m.channel.clone()));
    out.insert("successful".into(), Value::Bool(successful));
    if let Some(id) = &m.id {
        out.insert("id".into(), id.clone());
    }
    if let Some(obj) = obj {
        out.append(obj);
    }
    Value::Object(out).to_string()
}

/// A failed reply to `m`, with advice when given.
pub fn failure(m: &Message, error: String, advice: Option<Value>) -> String {
    let mut extra = json!({ "error": error });
    if let Some(a) = advice {
        extra["advice"] = a;
    }
    if let Some(s) = &m.subscription {
        extra["subscription"] = s.clone();
    }
    reply(m, false, extra)
}

/// The reply to a message from a client the hub does not know (never
/// handshaken, expired, or lost in a restart): handshake again.
pub fn unknown_client(m: &Message) -> String {
    failure(
        m,
        error(402, "", "Unknown client"),
        Some(json!({"reconnect": "handshake", "interval": 0})),
    )
}

/// Advice to reconnect at once and have connects held up to `timeout_ms`.
pub fn retry_advice(timeout_ms: u64, max_interval_ms: u64) -> Value {
    json!({
        "reconnect": "retry",
        "interval": 0,
        "timeout": timeout_ms,
        "maxInterval": max_interval_ms,
    })
}

/// One event as a delivery on `channel`: `{"channel","data","id"}`. Data that
/// is JSON text goes in as that JSON; any other text goes in as a JSON string.
pub fn delivery(ev: &Event, channel: &str) -> String {
    let text = std::str::from_utf8(&ev.data).unwrap_or_default();
    let mut out = Vec::with_capacity(text.len() + channel.len() + 48);
    out.extend_from_slice(b"{\"channel\":");
    encode::string(&mut out, channel);
    out.extend_from_slice(b",\"data\":");
    match serde_json::from_str::<&RawValue>(text) {
        Ok(raw) => out.extend_from_slice(raw.get().as_bytes()),
        Err(_) => encode::string(&mut out, text),
    }
    out.extend_from_slice(b",\"id\":");
    encode::string(&mut out, &ev.id.to_string());
    out.push(b'}');
    // Built from JSON strings and JSON text: UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// Messages as one JSON array.
pub fn array<S: AsRef<str>>(messages: &[S]) -> String {
    let len: usize = messages.iter().map(|m| m.as_ref().len() + 1).sum();
    let mut out = String::with_capacity(len + 2);
    out.push('[');
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(m.as_ref());
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arrays_and_single_objects_and_explains_bad_json() {
        let v = parse(r#"[{"channel":"/a","data":{"x":[1, 2]},"id":"1"}]"#).unwrap();
        assert_eq!(v[0].data.as_ref().unwrap().get(), r#"{"x":[1, 2]}"#);
        let one = parse(r#" {"channel":"/meta/connect","clientId":"c"}"#).unwrap();
        assert_eq!(one[0].client_id.as_deref(), Some("c"));
        let e = parse("[{\"id\":1}]").unwrap_err();
        assert!(e.message.contains("channel"), "{}", e.message);
        assert!(parse("nope").is_err());
        // serde reads structs from arrays too: a message must be an object.
        let e = parse(r#"[["/meta/handshake"]]"#).unwrap_err();
        assert!(
            e.message.contains("message 1 is not a JSON object"),
            "{}",
            e.message
        );
        assert!(parse(r#"[{"channel":"/a"}, 5]"#).is_err());
    }

    #[test]
    fn replies_echo_the_id_and_carry_errors() {
        let m =
            &parse(r#"[{"channel":"/meta/subscribe","id":"7","subscription":"/x"}]"#).unwrap()[0];
        let r: Value = serde_json::from_str(&failure(m, error(403, "/x", "denied"), None)).unwrap();
        assert_eq!(
            r,
            json!({"channel":"/meta/subscribe","successful":false,"id":"7","error":"403:/x:denied","subscription":"/x"})
        );
        assert_eq!(array(&["{}", "[]"]), "[{},[]]");
    }
}
