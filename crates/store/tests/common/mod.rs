//! Helpers shared by the store's integration tests.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_core::{Draft, Event, Retention, Topic};
use herald_store::StoreOptions;

/// A topic from a literal.
pub fn topic(s: &str) -> Topic {
    Topic::parse(s, 100).expect("valid topic")
}

/// A draft on `topics` with `data` and an optional publisher id.
pub fn draft(topics: &[&str], data: &str, id: Option<&str>) -> Draft {
    Draft {
        topics: topics.iter().map(|t| topic(t)).collect(),
        data: Bytes::copy_from_slice(data.as_bytes()),
        kind: None,
        id: id.map(Box::from),
        retry: None,
        private: false,
        content_type: None,
    }
}

/// Options whose timer never fires during a test: trims happen only when the
/// test asks, so the store and the model see the same clock.
pub fn opts(retention: Retention) -> StoreOptions {
    StoreOptions {
        retention,
        trim_interval: Duration::from_secs(3600),
        ..StoreOptions::default()
    }
}

/// Every field of an event that a reader can observe, comparable.
pub type Key = (
    u64,
    String,
    Vec<String>,
    Option<String>,
    Vec<u8>,
    Option<u32>,
    bool,
    u64,
);

/// The observable fields of `e`.
pub fn key(e: &Event) -> Key {
    (
        e.seq,
        format!("{:?}", e.id),
        e.topics.iter().map(|t| t.as_str().to_string()).collect(),
        e.kind.as_deref().map(str::to_string),
        e.data.to_vec(),
        e.retry,
        e.private,
        e.time_ms,
    )
}

/// The observable fields of a list of events, or its error.
pub fn keys<E: Clone>(r: &Result<Vec<Arc<Event>>, E>) -> Result<Vec<Key>, E> {
    r.as_ref()
        .map(|v| v.iter().map(|e| key(e)).collect())
        .map_err(E::clone)
}

/// Milliseconds since the Unix epoch, for tests that need the real clock.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
