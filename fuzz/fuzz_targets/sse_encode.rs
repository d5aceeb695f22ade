//! The SSE encoder (`Event::sse_frame`) and the JSON line (`Event::json_line`)
//! of any event a publisher can submit.
//!
//! Properties: a draft is refused exactly when its type or id breaks the
//! rules (empty, too long, CR/LF/NUL, hub-shaped id); an accepted event's
//! frame, fed to a WHATWG parser in arbitrary pieces, dispatches exactly one
//! event with exactly its type, id, retry and data (CR and CRLF read as LF),
//! and a following event is not disturbed (no forged field, no split). Its
//! JSON line is one line of script-safe JSON holding the same fields.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::Bytes;
use eventsource_stream::Event as Parsed;
use herald_core::{Draft, DraftError, Event, Limits, Position, Topic};
use herald_fuzz::{field_is_valid, is_hub_id, normalise_newlines, parse_sse};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    data: String,
    kind: Option<String>,
    id: Option<String>,
    epoch: u64,
    seq: u64,
    retry: Option<u32>,
    cuts: Vec<u16>,
}

fuzz_target!(|input: Input| {
    let limits = Limits::default();
    let topic = Topic::parse("/t", 16).unwrap();
    let draft = Draft::new(
        vec![topic],
        Bytes::from(input.data.clone()),
        input.kind.as_deref(),
        input.id.as_deref(),
        input.retry,
        &limits,
    );
    let kind_ok = input
        .kind
        .as_deref()
        .is_none_or(|k| field_is_valid(k, limits.max_type_len));
    let id_ok = input
        .id
        .as_deref()
        .is_none_or(|i| field_is_valid(i, limits.max_id_len) && !is_hub_id(i));
    let draft = match draft {
        Ok(d) => {
            assert!(kind_ok && id_ok, "accepted a bad draft: {input:?}");
            d
        }
        Err(e) => {
            assert!(!kind_ok || !id_ok, "refused a good draft ({e}): {input:?}");
            assert!(matches!(
                e,
                DraftError::BadField { .. } | DraftError::IdLooksGenerated
            ));
            return;
        }
    };
    let ev = Event::from_draft(draft, input.seq, input.epoch, 0);
    let id = match &input.id {
        Some(id) => id.clone(),
        None => Position {
            epoch: input.epoch,
            seq: input.seq,
        }
        .to_string(),
    };
    let expected = Parsed {
        event: input.kind.clone().unwrap_or_else(|| "message".into()),
        data: normalise_newlines(&input.data),
        id: id.clone(),
        retry: input.retry.map(|ms| Duration::from_millis(ms.into())),
    };

    let frame = ev.sse_frame();
    assert!(frame.ends_with(b"\n\n"), "{frame:?}");
    assert!(!frame.contains(&b'\r'), "the encoder writes LF only");
    assert_eq!(
        frame.windows(2).filter(|w| w == b"\n\n").count(),
        1,
        "one blank line, at the end: {frame:?}"
    );
    // The frame, then a plain event: both arrive, unchanged.
    let mut stream = frame.to_vec();
    stream.extend_from_slice(b"id: next\ndata: after\n\n");
    let after = Parsed {
        event: "message".into(),
        data: "after".into(),
        id: "next".into(),
        retry: None,
    };
    let parsed = parse_sse(&stream, &input.cuts).expect("the parser accepts every frame");
    assert_eq!(parsed, vec![expected, after], "frame {frame:?}");

    // The JSON line: one line, script-safe, the same fields.
    let line = ev.json_line();
    assert!(line.ends_with(b"\n"));
    let body = &line[..line.len() - 1];
    assert!(!body.contains(&b'\n') && !body.contains(&b'\r') && !body.contains(&b'<'));
    let text = std::str::from_utf8(body).expect("UTF-8");
    assert!(!text.contains(['\u{2028}', '\u{2029}']));
    let v: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
    assert_eq!(v["op"], "event");
    assert_eq!(v["topic"], "/t");
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["data"], input.data.as_str());
    match &input.kind {
        Some(k) => assert_eq!(v["type"], k.as_str()),
        None => assert!(v.get("type").is_none()),
    }
    match input.retry {
        Some(r) => assert_eq!(v["retry"], r),
        None => assert!(v.get("retry").is_none()),
    }
    assert_eq!(&ev.json()[..], body);
});
