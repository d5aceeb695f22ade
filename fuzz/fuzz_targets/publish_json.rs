//! JSON publish bodies: `herald_server::publish::parse_json_body`.
//!
//! Properties: any body is parsed or refused with a 4xx, never a panic; an
//! accepted body gives drafts that respect every limit and hold exactly the
//! body's fields (checked against the body read as a plain JSON value); a
//! batch is exactly an array. Structured inputs (events serialised to JSON)
//! are accepted exactly when a model of the rules accepts them.
#![no_main]

use arbitrary::Arbitrary;
use herald_core::{Draft, Limits};
use herald_fuzz::{SmallLimits, field_is_valid, is_hub_id, topic_is_valid};
use herald_server::publish::parse_json_body;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

#[derive(Arbitrary, Debug)]
enum Body {
    Raw(Vec<u8>),
    Events { batch: bool, events: Vec<Ev> },
}

#[derive(Arbitrary, Debug)]
struct Ev {
    topics: Vec<String>,
    one_topic: bool,
    data: String,
    kind: Option<String>,
    id: Option<String>,
    retry: Option<u32>,
    private: Option<bool>,
    extra_field: bool,
}

impl Ev {
    fn json(&self) -> Value {
        let mut v = json!({ "data": self.data });
        v["topic"] = match (self.one_topic, self.topics.first()) {
            (true, Some(t)) => json!(t),
            _ => json!(self.topics),
        };
        if let Some(k) = &self.kind {
            v["type"] = json!(k);
        }
        if let Some(i) = &self.id {
            v["id"] = json!(i);
        }
        if let Some(r) = self.retry {
            v["retry"] = json!(r);
        }
        if let Some(p) = self.private {
            v["private"] = json!(p);
        }
        if self.extra_field {
            v["evil"] = json!(true);
        }
        v
    }

    /// Whether the rules accept this event (the model).
    fn valid(&self, l: &Limits) -> bool {
        let topics: &[String] = if self.one_topic && !self.topics.is_empty() {
            &self.topics[..1]
        } else {
            &self.topics
        };
        let mut uniq: Vec<&String> = Vec::new();
        for t in topics {
            if !uniq.contains(&t) {
                uniq.push(t);
            }
        }
        !self.extra_field
            && !uniq.is_empty()
            && uniq.len() <= l.max_topics
            && uniq.iter().all(|t| topic_is_valid(t, l.max_topic_len))
            && self.data.len() <= l.max_data_len
            && self
                .kind
                .as_deref()
                .is_none_or(|k| field_is_valid(k, l.max_type_len))
            && self
                .id
                .as_deref()
                .is_none_or(|i| field_is_valid(i, l.max_id_len) && !is_hub_id(i))
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    limits: SmallLimits,
    body: Body,
}

/// The draft holds exactly the fields of `v` and respects `l`.
fn check_draft(d: &Draft, v: &Value, l: &Limits) {
    let obj = v.as_object().expect("an accepted event is an object");
    let topics: Vec<&str> = match &obj["topic"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().map(|t| t.as_str().unwrap()).collect(),
        other => panic!("accepted topic {other}"),
    };
    let mut uniq: Vec<&str> = Vec::new();
    for t in topics {
        if !uniq.contains(&t) {
            uniq.push(t);
        }
    }
    let got: Vec<&str> = d.topics.iter().map(|t| t.as_str()).collect();
    assert_eq!(got, uniq);
    assert!(!got.is_empty() && got.len() <= l.max_topics);
    assert!(got.iter().all(|t| topic_is_valid(t, l.max_topic_len)));
    assert_eq!(obj["data"].as_str(), std::str::from_utf8(&d.data).ok());
    assert!(d.data.len() <= l.max_data_len);
    let opt = |k: &str| obj.get(k).and_then(Value::as_str);
    assert_eq!(d.kind.as_deref(), opt("type"));
    assert_eq!(d.id.as_deref(), opt("id"));
    assert!(
        d.kind
            .as_deref()
            .is_none_or(|k| field_is_valid(k, l.max_type_len))
    );
    assert!(
        d.id.as_deref()
            .is_none_or(|i| field_is_valid(i, l.max_id_len) && !is_hub_id(i))
    );
    assert_eq!(
        d.retry.map(u64::from),
        // A whole number, written as an integer or as a float (`3000.0`).
        obj.get("retry").and_then(|r| r
            .as_u64()
            .or_else(|| r.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as u64)))
    );
    assert_eq!(
        d.private,
        obj.get("private").and_then(Value::as_bool).unwrap_or(false)
    );
    for k in obj.keys() {
        assert!(
            ["topic", "data", "type", "id", "retry", "private"].contains(&k.as_str()),
            "{k}"
        );
    }
}

fn check(body: &[u8], l: &Limits) -> bool {
    match parse_json_body(body, l) {
        Ok((drafts, batch)) => {
            let v: Value = serde_json::from_slice(body).expect("accepted bodies are JSON");
            assert_eq!(batch, v.is_array());
            let items: Vec<&Value> = match &v {
                Value::Array(a) => a.iter().collect(),
                one => vec![one],
            };
            assert_eq!(items.len(), drafts.len());
            assert!(drafts.len() <= l.max_batch);
            for (d, item) in drafts.iter().zip(items) {
                check_draft(d, item, l);
            }
            true
        }
        Err(rej) => {
            let s = rej.status.as_u16();
            assert!(s == 400 || s == 413, "{rej:?}");
            false
        }
    }
}

fuzz_target!(|input: Input| {
    let l = input.limits.limits();
    match &input.body {
        Body::Raw(bytes) => {
            check(bytes, &l);
        }
        Body::Events { batch, events } => {
            let (v, expect) = if !*batch && !events.is_empty() {
                (events[0].json(), events[0].valid(&l))
            } else {
                let ok = events.len() <= l.max_batch && events.iter().all(|e| e.valid(&l));
                (Value::Array(events.iter().map(Ev::json).collect()), ok)
            };
            let body = serde_json::to_vec(&v).unwrap();
            assert_eq!(
                check(&body, &l),
                expect,
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }
});
