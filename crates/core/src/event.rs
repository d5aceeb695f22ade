//! The event model: what publishers send ([`Draft`]) and what the log stores
//! and every subscriber shares ([`Event`]).

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::position::Position;
use crate::topic::Topic;

/// What a client sees as the event's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventId {
    /// Derived from the log: `{epoch:x}-{seq}`.
    Hub(Position),
    /// Supplied by the publisher; resolved to a `seq` through the log's index.
    Publisher(Arc<str>),
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventId::Hub(p) => p.fmt(f),
            EventId::Publisher(s) => f.write_str(s),
        }
    }
}

/// A committed event. Immutable; shared as `Arc<Event>` by the log's cache, the
/// per-topic rings and every subscriber, and encoded at most once per wire format.
pub struct Event {
    /// Place in the hub-wide ordered log (1-based, strictly increasing).
    pub seq: u64,
    /// What clients see as the id.
    pub id: EventId,
    /// The topics it was published to (at least one; the first is canonical).
    pub topics: Box<[Topic]>,
    /// The event type (`event:` in SSE), if any.
    pub kind: Option<Box<str>>,
    /// The payload, valid UTF-8.
    pub data: Bytes,
    /// Reconnection delay hint in milliseconds (`retry:` in SSE), if any.
    pub retry: Option<u32>,
    /// Whether only authorized subscribers may receive it.
    pub private: bool,
    /// When the log accepted it, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The media type the publisher gave the payload (`None`: not given).
    /// Only webhook deliveries use it: WebSub delivers a topic's content with
    /// its content type unchanged.
    pub content_type: Option<Box<str>>,
    /// The SSE frame, built on first use and then shared by every connection.
    sse: OnceLock<Bytes>,
    /// The JSON line (see [`crate::json`]), built on first use and shared.
    json: OnceLock<Bytes>,
}

impl Event {
    /// Builds an event (used by logs when they commit or read back).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        seq: u64,
        id: EventId,
        topics: Box<[Topic]>,
        kind: Option<Box<str>>,
        data: Bytes,
        retry: Option<u32>,
        private: bool,
        time_ms: u64,
    ) -> Event {
        Event {
            seq,
            id,
            topics,
            kind,
            data,
            retry,
            private,
            time_ms,
            content_type: None,
            sse: OnceLock::new(),
            json: OnceLock::new(),
        }
    }

    /// The same event carrying the payload's media type.
    pub fn with_content_type(mut self, content_type: Option<Box<str>>) -> Event {
        self.content_type = content_type;
        self
    }

    /// Builds the committed form of `draft` at `seq` in `epoch`.
    pub fn from_draft(draft: Draft, seq: u64, epoch: u64, time_ms: u64) -> Event {
        let id = match draft.id {
            Some(s) => EventId::Publisher(Arc::from(s)),
            None => EventId::Hub(Position { epoch, seq }),
        };
        let content_type = draft.content_type;
        Event::new(
            seq,
            id,
            draft.topics.into_boxed_slice(),
            draft.kind,
            draft.data,
            draft.retry,
            draft.private,
            time_ms,
        )
        .with_content_type(content_type)
    }

    /// The event's Server-Sent Events frame, encoded once.
    pub fn sse_frame(&self) -> &Bytes {
        self.sse.get_or_init(|| crate::sse::encode(self))
    }

    /// The event as one script-safe JSON object followed by `\n` (NDJSON), encoded once.
    pub fn json_line(&self) -> &Bytes {
        self.json
            .get_or_init(|| Bytes::from(crate::json::encode_line(self)))
    }

    /// The event as one script-safe JSON object (no newline), encoded once.
    pub fn json(&self) -> Bytes {
        let line = self.json_line();
        line.slice(..line.len() - 1)
    }

    /// Approximate bytes this event costs in storage (for byte-based retention).
    pub fn stored_size(&self) -> u64 {
        let topics: usize = self.topics.iter().map(|t| t.as_str().len() + 8).sum();
        let extra = self.kind.as_ref().map_or(0, |k| k.len())
            + self.content_type.as_ref().map_or(0, |c| c.len());
        (self.data.len() + topics + extra + 48) as u64
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("seq", &self.seq)
            .field("id", &self.id)
            .field("topics", &self.topics)
            .field("kind", &self.kind)
            .field("data", &self.data)
            .field("retry", &self.retry)
            .field("private", &self.private)
            .field("content_type", &self.content_type)
            .finish()
    }
}

/// Limits on what a draft may hold. Every one is configurable.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest topic name, in bytes.
    pub max_topic_len: usize,
    /// Most topics one event may be published to, or one subscription may name.
    pub max_topics: usize,
    /// Largest payload, in bytes.
    pub max_data_len: usize,
    /// Longest publisher-supplied id, in bytes.
    pub max_id_len: usize,
    /// Longest event type, in bytes.
    pub max_type_len: usize,
    /// Most events in one batch.
    pub max_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_topic_len: 1024,
            max_topics: 64,
            max_data_len: 1024 * 1024,
            max_id_len: 256,
            max_type_len: 128,
            max_batch: 1000,
        }
    }
}

/// Why a draft was refused. Each message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DraftError {
    /// No topic was given.
    #[error("an event needs at least one topic")]
    NoTopic,
    /// More topics than [`Limits::max_topics`].
    #[error("an event may name at most {max} topics; this one names {count}")]
    TooManyTopics {
        /// Topics named.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A topic is invalid.
    #[error("invalid topic: {0}")]
    Topic(#[from] crate::topic::TopicError),
    /// The payload is larger than [`Limits::max_data_len`].
    #[error("data is {len} bytes; the limit is {max}")]
    DataTooLarge {
        /// Payload size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is not UTF-8.
    #[error("data must be UTF-8 text (encode binary data, for example as base64)")]
    DataNotUtf8,
    /// The id or type is empty, too long or holds CR, LF or NUL, which would forge SSE fields.
    #[error("{field} {problem}")]
    BadField {
        /// `id` or `type`.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A publisher-supplied id has the shape of a hub-generated id.
    #[error("id must not have the form EPOCH-SEQ of hub-generated ids; omit it to get one")]
    IdLooksGenerated,
}

/// An event as a publisher submits it, before the log gives it a place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// Topics to publish to (deduplicated, order kept, first is canonical).
    pub topics: Vec<Topic>,
    /// Payload (UTF-8).
    pub data: Bytes,
    /// Event type.
    pub kind: Option<Box<str>>,
    /// Publisher-supplied id.
    pub id: Option<Box<str>>,
    /// Reconnection hint in milliseconds.
    pub retry: Option<u32>,
    /// Private event.
    pub private: bool,
    /// The payload's media type, if the publisher gave one (see [`Event::content_type`]).
    pub content_type: Option<Box<str>>,
}

impl Draft {
    /// Validates the parts of a draft against `limits`.
    pub fn new(
        topics: Vec<Topic>,
        data: Bytes,
        kind: Option<&str>,
        id: Option<&str>,
        retry: Option<u32>,
        limits: &Limits,
    ) -> Result<Draft, DraftError> {
        let mut uniq: Vec<Topic> = Vec::with_capacity(topics.len());
        for t in topics {
            if !uniq.contains(&t) {
                uniq.push(t);
            }
        }
        if uniq.is_empty() {
            return Err(DraftError::NoTopic);
        }
        if uniq.len() > limits.max_topics {
            return Err(DraftError::TooManyTopics {
                count: uniq.len(),
                max: limits.max_topics,
            });
        }
        if data.len() > limits.max_data_len {
            return Err(DraftError::DataTooLarge {
                len: data.len(),
                max: limits.max_data_len,
            });
        }
        if std::str::from_utf8(&data).is_err() {
            return Err(DraftError::DataNotUtf8);
        }
        let kind = kind
            .map(|k| check_field("type", k, limits.max_type_len))
            .transpose()?;
        let id = id
            .map(|i| check_field("id", i, limits.max_id_len))
            .transpose()?;
        if id.as_deref().is_some_and(|i| Position::parse(i).is_some()) {
            return Err(DraftError::IdLooksGenerated);
        }
        Ok(Draft {
            topics: uniq,
            data,
            kind,
            id,
            retry,
            private: false,
            content_type: None,
        })
    }
}

fn check_field(field: &'static str, v: &str, max: usize) -> Result<Box<str>, DraftError> {
    let problem = if v.is_empty() {
        "must not be empty".to_string()
    } else if v.len() > max {
        format!("is {} bytes long; the limit is {max}", v.len())
    } else if v.contains(['\r', '\n', '\0']) {
        "must not contain CR, LF or NUL".to_string()
    } else {
        return Ok(Box::from(v));
    };
    Err(DraftError::BadField { field, problem })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Topic {
        Topic::parse(s, 100).unwrap()
    }

    #[test]
    fn validates_fields() {
        let l = Limits::default();
        let ok = Draft::new(
            vec![t("a"), t("a")],
            Bytes::from("x"),
            Some("k"),
            None,
            None,
            &l,
        );
        assert_eq!(ok.unwrap().topics.len(), 1);
        assert_eq!(
            Draft::new(vec![], Bytes::new(), None, None, None, &l),
            Err(DraftError::NoTopic)
        );
        assert_eq!(
            Draft::new(vec![t("a")], Bytes::from(vec![0xff]), None, None, None, &l),
            Err(DraftError::DataNotUtf8)
        );
        for (k, i) in [
            (Some("a\nb"), None),
            (None, Some("x\r")),
            (None, Some("\0")),
            (Some(""), None),
        ] {
            assert!(matches!(
                Draft::new(vec![t("a")], Bytes::new(), k, i, None, &l),
                Err(DraftError::BadField { .. })
            ));
        }
        assert_eq!(
            Draft::new(vec![t("a")], Bytes::new(), None, Some("ab-12"), None, &l),
            Err(DraftError::IdLooksGenerated)
        );
    }
}
