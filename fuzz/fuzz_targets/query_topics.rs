//! Query strings, topics and selectors: `Query::parse`, `Query::topics`,
//! `Query::selector`, `Topic::parse` and `Selector`.
//!
//! Properties: `Topic::parse` accepts exactly non-empty names within the
//! length limit without control characters, and keeps them byte for byte;
//! `Query::topics` gives every `topic` value in order or refuses with a 400
//! that names the problem (no topic, too many, an invalid one); valid topics
//! encoded into a query come back unchanged; the selector holds each topic
//! once, in order, and matches exactly events on one of them.
#![no_main]

use arbitrary::Arbitrary;
use herald_core::{Selector, Topic, TopicError};
use herald_fuzz::{SmallLimits, topic_is_valid};
use herald_server::query::Query;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    limits: SmallLimits,
    /// A raw query string.
    raw: String,
    /// Topics to encode into a query (with other parameters between them).
    topics: Vec<String>,
    other: Vec<(String, String)>,
    probe: String,
}

fn check_topic(name: &str, max: usize) {
    match Topic::parse(name, max) {
        Ok(t) => {
            assert!(topic_is_valid(name, max), "accepted {name:?}");
            assert_eq!(t.as_str(), name);
            assert_eq!(t.to_string(), name);
        }
        Err(e) => {
            assert!(!topic_is_valid(name, max), "refused {name:?}: {e}");
            match e {
                TopicError::Empty => assert!(name.is_empty()),
                TopicError::TooLong { len, max: m } => {
                    assert!(len == name.len() && m == max && len > max)
                }
                TopicError::ControlCharacter(c) => {
                    assert!(name.chars().any(|x| x as u32 == c && x.is_control()))
                }
            }
        }
    }
}

/// Checks `Query::topics` and `Query::selector` on a query whose decoded
/// `topic` values are `values`; `not_utf8`: some parameter of the raw query
/// is not UTF-8 once percent-decoded (the query is then refused whole).
fn check_query(q: &Query, values: &[String], limits: &herald_core::Limits, not_utf8: bool) {
    let got = q.topics(limits);
    if not_utf8 {
        let rej = got
            .as_ref()
            .expect_err("a query that is not UTF-8 is refused");
        assert_eq!((rej.status.as_u16(), rej.code), (400, "invalid_query"));
        assert_eq!(q.selector(limits).err(), got.err());
        return;
    }
    let all_valid = values
        .iter()
        .all(|t| topic_is_valid(t, limits.max_topic_len));
    match &got {
        Ok(topics) => {
            assert!(all_valid && !values.is_empty() && values.len() <= limits.max_topics);
            let names: Vec<&str> = topics.iter().map(Topic::as_str).collect();
            assert_eq!(names, values);
        }
        Err(rej) => {
            assert_eq!(rej.status.as_u16(), 400);
            assert!(!all_valid || values.is_empty() || values.len() > limits.max_topics);
            let code = if values.is_empty() {
                "missing_topic"
            } else {
                "invalid_topic"
            };
            assert_eq!(rej.code, code);
        }
    }
    match (q.selector(limits), got) {
        (Ok(sel), Ok(topics)) => check_selector(&sel, &topics),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("selector {a:?} but topics {b:?}"),
    }
}

fn check_selector(sel: &Selector, topics: &[Topic]) {
    let mut uniq: Vec<&Topic> = Vec::new();
    for t in topics {
        if !uniq.contains(&t) {
            uniq.push(t);
        }
    }
    assert_eq!(sel.exact_topics().collect::<Vec<_>>(), uniq);
    assert_eq!(sel.len(), uniq.len());
    assert!(!sel.is_empty());
    for t in topics {
        assert!(sel.matches([t].into_iter()));
    }
    let other = Topic::parse("\u{fffd}not-in-the-query", 64).unwrap();
    assert_eq!(sel.matches([&other].into_iter()), topics.contains(&other));
    assert!(!sel.matches(std::iter::empty()));
}

fuzz_target!(|input: Input| {
    let limits = input.limits.limits();
    check_topic(&input.raw, limits.max_topic_len);
    check_topic(&input.probe, 1024);

    // A raw query: whatever it holds, topics are its decoded `topic` values.
    let q = Query::parse(Some(&input.raw));
    let values: Vec<String> = form_urlencoded::parse(input.raw.as_bytes())
        .into_owned()
        .filter(|(k, _)| k == "topic")
        .map(|(_, v)| v)
        .collect();
    let not_utf8 = input.raw.split('&').any(|pair| {
        let bytes: Vec<u8> = percent_encoding::percent_decode(pair.as_bytes()).collect();
        std::str::from_utf8(&bytes).is_err()
    });
    check_query(&q, &values, &limits, not_utf8);
    assert_eq!(q.all("topic").collect::<Vec<_>>(), values);
    assert_eq!(q.first("topic"), values.first().map(String::as_str));

    // Topics encoded into a query come back unchanged.
    let mut ser = form_urlencoded::Serializer::new(String::new());
    let mut other = input.other.iter().filter(|(k, _)| k != "topic");
    for t in &input.topics {
        ser.append_pair("topic", t);
        if let Some((k, v)) = other.next() {
            ser.append_pair(k, v);
        }
    }
    let encoded = ser.finish();
    let q = Query::parse(Some(&encoded));
    check_query(&q, &input.topics, &limits, false);
    assert!(Query::parse(None).topics(&limits).is_err());
});
