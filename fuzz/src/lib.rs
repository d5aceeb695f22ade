//! Helpers shared by Herald's fuzz targets (`fuzz_targets/*.rs`): small
//! models written independently of the code under test, and generators for
//! structured inputs.

use std::convert::Infallible;

use arbitrary::{Arbitrary, Unstructured};
use eventsource_stream::{Event as Parsed, EventStream};
use futures_util::{FutureExt, StreamExt};
use herald_core::Limits;

/// Limits small enough that fuzz inputs cross every boundary.
#[derive(Debug, Clone, Copy)]
pub struct SmallLimits {
    /// Longest topic.
    pub max_topic_len: u8,
    /// Most topics.
    pub max_topics: u8,
    /// Largest payload.
    pub max_data_len: u8,
    /// Longest id.
    pub max_id_len: u8,
    /// Longest type.
    pub max_type_len: u8,
    /// Most events in a batch.
    pub max_batch: u8,
}

impl<'a> Arbitrary<'a> for SmallLimits {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(SmallLimits {
            max_topic_len: u.int_in_range(1..=40)?,
            max_topics: u.int_in_range(1..=6)?,
            max_data_len: u.int_in_range(0..=64)?,
            max_id_len: u.int_in_range(1..=24)?,
            max_type_len: u.int_in_range(1..=24)?,
            max_batch: u.int_in_range(1..=6)?,
        })
    }
}

impl SmallLimits {
    /// As the core's [`Limits`].
    pub fn limits(self) -> Limits {
        Limits {
            max_topic_len: self.max_topic_len.into(),
            max_topics: self.max_topics.into(),
            max_data_len: self.max_data_len.into(),
            max_id_len: self.max_id_len.into(),
            max_type_len: self.max_type_len.into(),
            max_batch: self.max_batch.into(),
        }
    }
}

/// CR LF and lone CR become LF, character by character.
pub fn normalise_newlines(s: &str) -> String {
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

/// Feeds `bytes` to a WHATWG event-stream parser (`eventsource-stream`) in
/// pieces cut at `cuts` (any order, possibly inside a UTF-8 sequence) and
/// returns every event it dispatches, or the parser's error.
pub fn parse_sse(bytes: &[u8], cuts: &[u16]) -> Result<Vec<Parsed>, String> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) % (bytes.len() + 1))
        .collect();
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
            Some(Err(e)) => return Err(format!("{e:?}")),
            None => return Ok(out),
        }
    }
}

/// Whether `topic` is a valid topic under `max_len`: the rules of
/// `Topic::parse`, restated.
pub fn topic_is_valid(topic: &str, max_len: usize) -> bool {
    !topic.is_empty() && topic.len() <= max_len && !topic.chars().any(char::is_control)
}

/// Whether an id or type is acceptable: not empty, at most `max` bytes, no
/// CR, LF or NUL.
pub fn field_is_valid(v: &str, max: usize) -> bool {
    !v.is_empty() && v.len() <= max && !v.contains(['\r', '\n', '\0'])
}

/// Whether `s` has the shape of a hub id, `{epoch:x}-{seq}`, with values
/// that fit in `u64`: the model of `Position::parse`.
pub fn is_hub_id(s: &str) -> bool {
    let Some((e, q)) = s.split_once('-') else {
        return false;
    };
    let hex = !e.is_empty() && e.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let dec = !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit());
    if !hex || !dec || e.len() > 16 || q.len() > 20 {
        return false;
    }
    let q = q.trim_start_matches('0');
    // u64::MAX is 18446744073709551615 (20 digits).
    q.len() < 20 || (q.len() == 20 && q <= "18446744073709551615")
}
