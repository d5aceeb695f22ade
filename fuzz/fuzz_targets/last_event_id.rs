//! Resume cursors: `Position::parse` and its `Display`, the server's
//! `resume_cursor`, and `Query::resume` choosing between the
//! `Last-Event-ID` header and the query's aliases.
//!
//! Properties: `Position::parse` accepts exactly `{hex}-{decimal}` with values
//! that fit (checked against a model), `Display` then `parse` is the identity,
//! and parsing is exact; a cursor is refused exactly when it is over 1024
//! bytes or holds CR, LF or NUL, and is otherwise kept byte for byte; the
//! header wins over the query unless it is empty.
#![no_main]

use arbitrary::Arbitrary;
use herald_core::{Position, Resume};
use herald_fuzz::is_hub_id;
use herald_server::query::{Query, resume_cursor};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    cursor: String,
    epoch: u64,
    seq: u64,
    header: Option<String>,
    query: String,
    /// Adds `last_event_id`-style pairs to the query, by alias index.
    aliases: Vec<(u8, String)>,
}

const ALIASES: [&str; 3] = ["last_event_id", "lastEventID", "lastEventId"];

fn model_cursor(c: Option<&str>) -> Option<Resume> {
    match c {
        None | Some("") => Some(Resume::Now),
        Some(c) if c.len() > 1024 || c.contains(['\r', '\n', '\0']) => None,
        Some(c) => Some(Resume::After(c.to_string())),
    }
}

fuzz_target!(|input: Input| {
    // Position::parse against the model, and exactness.
    let s = input.cursor.as_str();
    match Position::parse(s) {
        Some(p) => {
            assert!(is_hub_id(s), "{s:?} parsed as {p:?}");
            let (e, q) = s.split_once('-').unwrap();
            assert_eq!(u64::from_str_radix(e, 16).ok(), Some(p.epoch));
            assert_eq!(q.parse::<u64>().ok(), Some(p.seq));
            assert_eq!(Position::parse(&p.to_string()), Some(p));
        }
        None => assert!(!is_hub_id(s), "{s:?} refused"),
    }
    // Display then parse is the identity, and Display is canonical.
    let p = Position {
        epoch: input.epoch,
        seq: input.seq,
    };
    let shown = p.to_string();
    assert_eq!(shown, format!("{:x}-{}", input.epoch, input.seq));
    assert_eq!(Position::parse(&shown), Some(p));

    // resume_cursor against the model.
    for c in [None, Some(s)] {
        match (resume_cursor(c), model_cursor(c)) {
            (Ok(got), Some(want)) => assert_eq!(got, want),
            (Err(rej), None) => {
                assert_eq!(rej.status.as_u16(), 400);
                assert_eq!(rej.code, "invalid_last_event_id");
            }
            (got, want) => panic!("cursor {c:?}: got {got:?}, model {want:?}"),
        }
    }

    // Query::resume: the header (unless empty) wins, then the aliases in
    // their fixed order, whatever their place in the query.
    let mut raw = input.query.clone();
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (i, v) in &input.aliases {
        ser.append_pair(ALIASES[usize::from(*i) % 3], v);
    }
    let extra = ser.finish();
    if !extra.is_empty() {
        raw.push('&');
        raw.push_str(&extra);
    }
    let q = Query::parse(Some(&raw));
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect();
    let from_query = ALIASES
        .iter()
        .find_map(|a| pairs.iter().find(|(k, _)| k == a).map(|(_, v)| v.as_str()));
    let chosen = input
        .header
        .as_deref()
        .filter(|h| !h.is_empty())
        .or(from_query);
    // A query with a parameter that is not UTF-8 once percent-decoded is
    // refused whole, whatever the header says.
    let not_utf8 = raw.split('&').any(|pair| {
        let bytes: Vec<u8> = percent_encoding::percent_decode(pair.as_bytes()).collect();
        std::str::from_utf8(&bytes).is_err()
    });
    if not_utf8 {
        let rej = q.resume(input.header.as_deref()).expect_err("not UTF-8");
        assert_eq!(rej.code, "invalid_query");
        return;
    }
    match (q.resume(input.header.as_deref()), model_cursor(chosen)) {
        (Ok(got), Some(want)) => assert_eq!(got, want),
        (Err(rej), None) => assert_eq!(rej.code, "invalid_last_event_id"),
        (got, want) => panic!(
            "query {raw:?}, header {:?}: got {got:?}, model {want:?}",
            input.header
        ),
    }
});
