//! The stored form of an event: postcard bytes of [`StoredEvent`], keyed by
//! `seq` (so `seq` itself is not repeated in the value). Hub-generated ids are
//! not stored either; they are rebuilt from the epoch and `seq`.
//!
//! An event's content type, when it has one, follows the record as a second
//! postcard value; records written before content types existed end after the
//! first value and decode with none. Files stay readable both ways.

use std::sync::Arc;

use bytes::Bytes;
use herald_core::{Event, EventId, Position, Topic};
use serde::{Deserialize, Serialize};

use crate::error::Fault;

/// One event as written to the `events` table. Borrowed on both sides, so
/// encoding copies each field once and decoding reads straight from the page.
#[derive(Serialize, Deserialize)]
struct StoredEvent<'a> {
    /// The publisher-supplied id; `None` for a hub-generated one.
    #[serde(borrow)]
    id: Option<&'a str>,
    /// Topics in publish order (the first is canonical).
    #[serde(borrow)]
    topics: Vec<&'a str>,
    /// The event type.
    #[serde(borrow)]
    kind: Option<&'a str>,
    /// The payload.
    data: &'a [u8],
    /// The reconnection hint.
    retry: Option<u32>,
    /// Whether the event is private.
    private: bool,
    /// When the log accepted it.
    time_ms: u64,
}

/// The bytes stored for `ev`.
pub(crate) fn encode(ev: &Event) -> Result<Vec<u8>, Fault> {
    let stored = StoredEvent {
        id: match &ev.id {
            EventId::Publisher(id) => Some(id),
            EventId::Hub(_) => None,
        },
        topics: ev.topics.iter().map(Topic::as_str).collect(),
        kind: ev.kind.as_deref(),
        data: &ev.data,
        retry: ev.retry,
        private: ev.private,
        time_ms: ev.time_ms,
    };
    let fail = |e: postcard::Error| Fault::Corrupt(format!("cannot encode event {}: {e}", ev.seq));
    let mut out = postcard::to_allocvec(&stored).map_err(fail)?;
    if let Some(ct) = ev.content_type.as_deref() {
        out.extend(postcard::to_allocvec(ct).map_err(fail)?);
    }
    Ok(out)
}

/// Rebuilds the event stored at `seq` in a log of `epoch`.
pub(crate) fn decode(seq: u64, epoch: u64, bytes: &[u8]) -> Result<Event, Fault> {
    let bad = |what: String| Fault::Corrupt(format!("event {seq}: {what}"));
    let (s, rest): (StoredEvent<'_>, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|e| bad(e.to_string()))?;
    let content_type = if rest.is_empty() {
        None
    } else {
        let ct: &str = postcard::from_bytes(rest).map_err(|e| bad(e.to_string()))?;
        Some(Box::from(ct))
    };
    let topics = s
        .topics
        .iter()
        .map(|t| Topic::parse(t, usize::MAX).map_err(|e| bad(e.to_string())))
        .collect::<Result<Box<[Topic]>, Fault>>()?;
    let id = match s.id {
        Some(id) => EventId::Publisher(Arc::from(id)),
        None => EventId::Hub(Position { epoch, seq }),
    };
    Ok(Event::new(
        seq,
        id,
        topics,
        s.kind.map(Box::from),
        Bytes::copy_from_slice(s.data),
        s.retry,
        s.private,
        s.time_ms,
    )
    .with_content_type(content_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_field() {
        let t = |s: &str| Topic::parse(s, 100).unwrap();
        let ev = Event::new(
            7,
            EventId::Publisher(Arc::from("pub-id")),
            vec![t("a"), t("b/c")].into_boxed_slice(),
            Some(Box::from("kind")),
            Bytes::from("line1\nline2"),
            Some(1500),
            true,
            123,
        )
        .with_content_type(Some(Box::from("application/json")));
        let back = decode(7, 9, &encode(&ev).unwrap()).unwrap();
        assert_eq!(format!("{back:?}"), format!("{ev:?}"));
        assert_eq!(back.time_ms, 123);

        let hub = Event::new(
            3,
            EventId::Hub(Position { epoch: 9, seq: 3 }),
            vec![t("a")].into(),
            None,
            Bytes::new(),
            None,
            false,
            0,
        );
        let back = decode(3, 9, &encode(&hub).unwrap()).unwrap();
        assert_eq!(back.id, hub.id);
        assert_eq!(back.content_type, None);
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        assert!(matches!(
            decode(1, 1, &[0xff, 0xff, 0xff]),
            Err(Fault::Corrupt(_))
        ));
        assert!(matches!(decode(1, 1, &[]), Err(Fault::Corrupt(_))));
    }
}
