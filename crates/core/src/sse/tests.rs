//! The SSE encoder against a WHATWG parser (`eventsource-stream`): whatever a
//! valid draft holds, a client reads back the same type, id, retry and data
//! (with CR and CRLF turned into LF), and nothing a payload holds forges a field
//! or splits an event.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{Event as Parsed, EventStream};
use futures_util::{FutureExt, StreamExt};
use proptest::prelude::*;

use super::{comment, control, retry};
use crate::event::{Draft, Event, EventId, Limits};
use crate::position::Position;
use crate::topic::Topic;

/// What one generated event holds.
#[derive(Debug, Clone)]
struct Spec {
    data: String,
    kind: Option<String>,
    /// Publisher-supplied id; `None` gives a hub id.
    id: Option<String>,
    epoch: u64,
    seq: u64,
    retry: Option<u32>,
}

impl Spec {
    fn event(&self) -> Event {
        let topic = Topic::parse("/t", 16).unwrap();
        let draft = Draft::new(
            vec![topic],
            Bytes::from(self.data.clone()),
            self.kind.as_deref(),
            self.id.as_deref(),
            self.retry,
            &Limits::default(),
        )
        .expect("generated drafts are valid");
        Event::from_draft(draft, self.seq, self.epoch, 0)
    }

    fn id_string(&self) -> String {
        match &self.id {
            Some(id) => id.clone(),
            None => Position {
                epoch: self.epoch,
                seq: self.seq,
            }
            .to_string(),
        }
    }

    /// What a WHATWG client reports for this event.
    fn expected(&self) -> Parsed {
        Parsed {
            event: self.kind.clone().unwrap_or_else(|| "message".into()),
            data: normalise_newlines(&self.data),
            id: self.id_string(),
            retry: self.retry.map(|ms| Duration::from_millis(ms.into())),
        }
    }
}

/// CR LF and lone CR become LF, character by character (the model, not the encoder's code).
fn normalise_newlines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' {
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    out
}

/// Feeds `bytes` to the parser in pieces cut at `cuts` (byte offsets, any order,
/// possibly inside a UTF-8 sequence) and collects every event it dispatches.
fn parse(bytes: &[u8], cuts: &[usize]) -> Vec<Parsed> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.dedup();
    let chunks: Vec<Result<Vec<u8>, Infallible>> = at
        .windows(2)
        .map(|w| Ok(bytes[w[0]..w[1]].to_vec()))
        .collect();
    let mut stream = EventStream::new(futures_util::stream::iter(chunks));
    let mut out = Vec::new();
    loop {
        match stream
            .next()
            .now_or_never()
            .expect("an in-memory stream never waits")
        {
            Some(Ok(ev)) => out.push(ev),
            Some(Err(e)) => panic!("parser error {e:?} on {:?}", String::from_utf8_lossy(bytes)),
            None => return out,
        }
    }
}

/// Payloads built from pieces that stress the framing.
fn data() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => Just("\n".to_string()),
        4 => Just("\r".to_string()),
        4 => Just("\r\n".to_string()),
        2 => Just("\n\n".to_string()),
        2 => Just("\r\r\n\n".to_string()),
        2 => Just(" ".to_string()),
        2 => Just(":".to_string()),
        1 => Just(": comment".to_string()),
        1 => Just("id: 9".to_string()),
        1 => Just("id".to_string()),
        1 => Just("data: x".to_string()),
        1 => Just("data".to_string()),
        1 => Just("event: evil".to_string()),
        1 => Just("retry: 1".to_string()),
        1 => Just("\0".to_string()),
        1 => Just("\u{feff}".to_string()),
        1 => Just("\u{2028}\u{85}\u{b}\u{c}".to_string()),
        2 => Just("héllo wörld 日本語 🦀".to_string()),
        6 => "[a-z ]{0,6}",
        4 => any::<String>().prop_map(|s| s.chars().take(8).collect()),
    ];
    (prop::collection::vec(piece, 0..10), any::<bool>()).prop_map(|(pieces, cr_last)| {
        let mut s = pieces.concat();
        if cr_last {
            s.push('\r');
        }
        s
    })
}

/// Text allowed in an id or type: no CR, LF or NUL, not empty; sometimes a
/// field-looking or space-led value.
fn field_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[^\r\n\u{0}]{1,12}",
        1 => "[ :]{1,3}[a-z]{0,4}",
        1 => Just("data: forged".to_string()),
        1 => Just("id: 1".to_string()),
        1 => Just("é🦀".to_string()),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        data(),
        prop::option::of(field_text()),
        prop::option::of(field_text().prop_filter("a hub-shaped id is refused", |s| {
            Position::parse(s).is_none()
        })),
        any::<u64>(),
        1..=u64::MAX,
        prop::option::of(any::<u32>()),
    )
        .prop_map(|(data, kind, id, epoch, seq, retry)| Spec {
            data,
            kind,
            id,
            epoch,
            seq,
            retry,
        })
}

/// A block in a stream: an event, or one of the blocks that must not dispatch.
#[derive(Debug, Clone)]
enum Block {
    Event(Spec),
    Comment(String),
    Retry(u32),
}

fn block() -> impl Strategy<Value = Block> {
    prop_oneof![
        4 => spec().prop_map(Block::Event),
        1 => "[^\r\n]{0,12}".prop_map(Block::Comment),
        1 => any::<u32>().prop_map(Block::Retry),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn one_frame_round_trips_through_a_whatwg_parser(
        spec in spec(),
        cuts in prop::collection::vec(any::<usize>(), 0..4),
    ) {
        let ev = spec.event();
        let frame = ev.sse_frame();
        prop_assert!(frame.ends_with(b"\n\n"));
        prop_assert!(!frame.contains(&b'\r'), "the encoder writes LF only");
        prop_assert_eq!(parse(frame, &cuts), vec![spec.expected()]);
        // Encoded once: the cached frame is the same bytes.
        prop_assert_eq!(ev.sse_frame().as_ptr(), frame.as_ptr());
    }

    #[test]
    fn back_to_back_blocks_yield_exactly_the_events_in_order(
        blocks in prop::collection::vec(block(), 0..8),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for b in &blocks {
            match b {
                Block::Event(spec) => {
                    stream.extend_from_slice(spec.event().sse_frame());
                    expected.push(spec.expected());
                }
                Block::Comment(text) => stream.extend_from_slice(&comment(text)),
                Block::Retry(ms) => stream.extend_from_slice(&retry(*ms)),
            }
        }
        prop_assert_eq!(parse(&stream, &cuts), expected);
    }
}

/// Exact wire bytes (table-driven): `(data, kind, publisher id, retry, frame)`,
/// all with hub id `abc-7` unless a publisher id is given.
#[test]
fn frames_are_exactly_these_bytes() {
    type Case = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<u32>,
        &'static str,
    );
    let cases: &[Case] = &[
        ("hello", None, None, None, "id: abc-7\ndata: hello\n\n"),
        ("", None, None, None, "id: abc-7\ndata: \n\n"),
        (
            "a\r\nb\rc\n",
            None,
            None,
            None,
            "id: abc-7\ndata: a\ndata: b\ndata: c\ndata: \n\n",
        ),
        ("x\r", None, None, None, "id: abc-7\ndata: x\ndata: \n\n"),
        ("\n", None, None, None, "id: abc-7\ndata: \ndata: \n\n"),
        (
            "\r\r\n",
            None,
            None,
            None,
            "id: abc-7\ndata: \ndata: \ndata: \n\n",
        ),
        ("  lead", None, None, None, "id: abc-7\ndata:   lead\n\n"),
        (
            "id: 9\nevent: x\n\ndata: y",
            None,
            None,
            None,
            "id: abc-7\ndata: id: 9\ndata: event: x\ndata: \ndata: data: y\n\n",
        ),
        (
            "p",
            Some("price"),
            Some("evt:1"),
            Some(3000),
            "event: price\nretry: 3000\nid: evt:1\ndata: p\n\n",
        ),
        (
            "p",
            Some(" sp"),
            Some(" id"),
            Some(0),
            "event:  sp\nretry: 0\nid:  id\ndata: p\n\n",
        ),
    ];
    for &(data, kind, id, retry, frame) in cases {
        let draft = Draft::new(
            vec![Topic::parse("/t", 16).unwrap()],
            Bytes::from(data),
            kind,
            id,
            retry,
            &Limits::default(),
        )
        .unwrap();
        let ev = Event::from_draft(draft, 7, 0xabc, 0);
        assert_eq!(
            String::from_utf8_lossy(ev.sse_frame()),
            frame,
            "data {data:?}, type {kind:?}, id {id:?}, retry {retry:?}"
        );
    }
}

#[test]
fn an_event_built_directly_is_framed_the_same_way() {
    let ev = Event::new(
        3,
        EventId::Publisher("urn:x".into()),
        Box::new([Topic::parse("/t", 16).unwrap()]),
        Some("k".into()),
        Bytes::from_static(b"1\r\n2"),
        None,
        false,
        0,
    );
    assert_eq!(
        &ev.sse_frame()[..],
        b"event: k\nid: urn:x\ndata: 1\ndata: 2\n\n"
    );
}

#[test]
fn control_comment_and_retry_blocks_are_exactly_these_bytes() {
    assert_eq!(&comment("ok")[..], b": ok\n\n");
    assert_eq!(&comment("")[..], b": \n\n");
    assert_eq!(&retry(3000)[..], b"retry: 3000\n\n");
    assert_eq!(
        &control("herald-reset", "abc-7", r#"{"reason":"epoch"}"#)[..],
        b"event: herald-reset\nid: abc-7\ndata: {\"reason\":\"epoch\"}\n\n"
    );
    // Multi-line JSON is still split into data lines.
    assert_eq!(
        &control("k", "1-1", "{\r\n}")[..],
        b"event: k\nid: 1-1\ndata: {\ndata: }\n\n"
    );
    let parsed = parse(&control("herald-reset", "abc-7", r#"{"a":1}"#), &[]);
    assert_eq!(
        parsed,
        vec![Parsed {
            event: "herald-reset".into(),
            data: r#"{"a":1}"#.into(),
            id: "abc-7".into(),
            retry: None,
        }]
    );
    // Comment and retry blocks dispatch nothing.
    assert_eq!(parse(&[comment("x"), retry(5)].concat(), &[]), vec![]);
}

#[test]
fn the_model_normalises_newlines() {
    for (input, out) in [
        ("a\r\nb\rc\n", "a\nb\nc\n"),
        ("\r\r\n\n", "\n\n\n"),
        ("x\r", "x\n"),
        ("", ""),
    ] {
        assert_eq!(normalise_newlines(input), out, "{input:?}");
    }
}
