//! BOSH bodies: `herald_server::transports::bosh::body::parse` and `render`.
//!
//! Properties: any text is parsed or refused, never a panic, and an
//! accepted body has a `rid` in 1..=2^53-1; a rendered body (the hub's
//! answers: attributes and Herald JSON payloads, including the shared JSON
//! of any event) is well-formed XML 1.0 text — every character an XML
//! `Char` — and parses back to the same attributes and payloads.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use herald_core::{Draft, Event, Limits, Topic};
use herald_server::transports::bosh::body::{self, MAX_RID};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(String),
    RoundTrip {
        rid: u64,
        sid: Option<String>,
        wait: Option<u64>,
        hold: Option<u64>,
        ack: Option<u64>,
        ver: Option<(u32, u32)>,
        terminate: bool,
        content: Option<String>,
        payloads: Vec<Payload>,
    },
}

#[derive(Arbitrary, Debug)]
enum Payload {
    /// The shared JSON of an event with this data and type.
    Event { data: String, kind: Option<String> },
    /// An answer echoing an arbitrary string `ref`.
    Pong(String),
}

impl Payload {
    fn json(&self) -> Vec<u8> {
        match self {
            Payload::Event { data, kind } => {
                let topic = Topic::parse("/t", 8).unwrap();
                let kind = kind
                    .as_deref()
                    .filter(|k| herald_fuzz::field_is_valid(k, 128));
                let draft = Draft::new(
                    vec![topic],
                    Bytes::from(data.clone()),
                    kind,
                    None,
                    None,
                    &Limits::default(),
                )
                .expect("valid");
                Event::from_draft(draft, 1, 0xab, 0).json().to_vec()
            }
            Payload::Pong(r) => herald_server::transports::ops::pong(&json!(r)).into_bytes(),
        }
    }
}

/// XML 1.0's `Char` production.
fn is_xml_char(c: char) -> bool {
    matches!(c as u32, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// An attribute value the hub could write: XML characters other than
/// controls (the renderer's callers write numbers, hex ids and condition
/// names, never client text; XML has no escape for U+FFFF in an attribute).
fn clean(s: &Option<String>) -> Option<String> {
    s.clone()
        .filter(|v| v.chars().all(|c| is_xml_char(c) && !c.is_control()))
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw(text) => {
            if let Ok(req) = body::parse(&text) {
                assert!((1..=MAX_RID).contains(&req.rid), "{req:?}");
            }
        }
        Input::RoundTrip {
            rid,
            sid,
            wait,
            hold,
            ack,
            ver,
            terminate,
            content,
            payloads,
        } => {
            let rid = rid % MAX_RID + 1;
            let (sid, content) = (clean(&sid), clean(&content));
            let mut attrs: Vec<(&str, String)> = vec![("rid", rid.to_string())];
            if let Some(s) = &sid {
                attrs.push(("sid", s.clone()));
            }
            for (k, v) in [("wait", wait), ("hold", hold), ("ack", ack)] {
                if let Some(v) = v {
                    attrs.push((k, v.to_string()));
                }
            }
            if let Some((a, b)) = ver {
                attrs.push(("ver", format!("{a}.{b}")));
            }
            if terminate {
                attrs.push(("type", "terminate".into()));
            }
            if let Some(c) = &content {
                attrs.push(("content", c.clone()));
            }
            let texts: Vec<Vec<u8>> = payloads.iter().map(Payload::json).collect();
            let out = body::render(&attrs, texts.iter().map(Vec::as_slice));
            let text = String::from_utf8(out).expect("rendered bodies are UTF-8");
            if let Some(c) = text.chars().find(|&c| !is_xml_char(c)) {
                panic!("U+{:04X} is not an XML 1.0 character: {text:?}", c as u32);
            }
            let req = body::parse(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
            // The payloads come back as the same JSON (U+FFFE and U+FFFF,
            // which XML forbids, travel as JSON escapes).
            let json = |t: &[u8]| serde_json::from_slice::<serde_json::Value>(t).unwrap();
            assert_eq!(req.ops.len(), texts.len(), "{text:?}");
            for (got, sent) in req.ops.iter().zip(&texts) {
                assert_eq!(json(got.as_bytes()), json(sent), "{text:?}");
            }
            let want = body::Request {
                rid,
                sid,
                wait,
                hold,
                ver,
                ack,
                terminate,
                content,
                ops: req.ops.clone(),
            };
            assert_eq!(req, want, "{text:?}");
        }
    }
});
