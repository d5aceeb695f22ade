//! Topic selectors, in grants and in subscriptions: an exact topic, `*`
//! (every topic), or a segment pattern.
//!
//! # Syntax
//!
//! A topic is split on `/` into segments (`/books/1` is `""`, `"books"`,
//! `"1"`; `https://example.com/books/1` splits the same way, so URL topics
//! work too). In a selector:
//!
//! - `*` alone matches every topic (Mercure's "all topics").
//! - A segment that is exactly `*` matches exactly one non-empty segment:
//!   `/books/*` matches `/books/1` but not `/books/`, `/books` or `/books/1/x`.
//! - A last segment that is exactly `**` matches the non-empty rest of the
//!   topic, across any number of segments: `/books/**` matches `/books/1` and
//!   `/books/1/reviews/2` but not `/books/` or `/books`. `**` anywhere else is
//!   refused (it would need backtracking to match).
//! - Any other segment is compared byte for byte. A `*` inside a segment
//!   (`/books/*.json`) is an ordinary character, so a selector never matches
//!   more than it reads as.
//! - A selector without `*` or `**` segments is an exact topic.
//!
//! These are Bayeux's channel wildcards (`/foo/*`, `/foo/**`). Matching walks
//! the topic once: linear in the topic's length, whatever the pattern.

use std::fmt;

/// Longest selector accepted, in bytes (a token is bounded by the request
/// head anyway; this keeps a grant from being a megabyte string).
pub const MAX_PATTERN_LEN: usize = 4096;

/// One selector of a grant. Parse with [`TopicPattern::parse`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum TopicPattern {
    /// `*`: every topic.
    Any,
    /// Exactly this topic.
    Exact(String),
    /// A segment pattern with `*` and/or a trailing `**`.
    Glob(Glob),
}

/// A segment pattern: `*` segments and an optional trailing `**`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Glob {
    /// The segments before any trailing `**`.
    segments: Vec<Segment>,
    /// Whether the pattern ends in `**` (the non-empty rest of the topic).
    rest: bool,
    /// The selector as written, for display and serialisation.
    source: String,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Segment {
    /// Exactly this segment.
    Literal(String),
    /// `*`: any one non-empty segment.
    One,
}

/// Why a string is not a valid selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The selector is the empty string.
    #[error("a topic selector must not be empty")]
    Empty,
    /// The selector is longer than [`MAX_PATTERN_LEN`].
    #[error("a topic selector is {0} bytes long; the limit is {MAX_PATTERN_LEN}")]
    TooLong(usize),
    /// The selector holds a control character.
    #[error("a topic selector must not contain control characters (found U+{0:04X})")]
    ControlCharacter(u32),
    /// A `**` segment is not the last one.
    #[error("`**` may only be the last segment of a selector (as in /foo/**)")]
    InnerDoubleStar,
}

impl TopicPattern {
    /// Parses a selector (see the module documentation for the syntax).
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        if s.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong(s.len()));
        }
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            return Err(PatternError::ControlCharacter(c as u32));
        }
        if s == "*" {
            return Ok(TopicPattern::Any);
        }
        let parts: Vec<&str> = s.split('/').collect();
        if !parts.iter().any(|p| *p == "*" || *p == "**") {
            return Ok(TopicPattern::Exact(s.to_owned()));
        }
        let last = parts.len() - 1;
        let mut segments = Vec::with_capacity(parts.len());
        let mut rest = false;
        for (i, part) in parts.iter().enumerate() {
            match *part {
                "**" if i == last => rest = true,
                "**" => return Err(PatternError::InnerDoubleStar),
                "*" => segments.push(Segment::One),
                lit => segments.push(Segment::Literal(lit.to_owned())),
            }
        }
        Ok(TopicPattern::Glob(Glob {
            segments,
            rest,
            source: s.to_owned(),
        }))
    }

    /// Whether `topic` is covered by this selector. Linear in `topic.len()`.
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            TopicPattern::Any => true,
            TopicPattern::Exact(t) => t == topic,
            TopicPattern::Glob(g) => g.matches(topic),
        }
    }

    /// The selector as written.
    pub fn as_str(&self) -> &str {
        match self {
            TopicPattern::Any => "*",
            TopicPattern::Exact(t) => t,
            TopicPattern::Glob(g) => &g.source,
        }
    }

    /// Whether this selector names exactly one topic.
    pub fn is_exact(&self) -> bool {
        matches!(self, TopicPattern::Exact(_))
    }
}

impl Glob {
    fn matches(&self, topic: &str) -> bool {
        let mut remaining = topic;
        let n = self.segments.len();
        for (i, seg) in self.segments.iter().enumerate() {
            let is_last = i + 1 == n;
            // The last pattern segment takes the whole remainder unless a
            // `**` follows it; every other one stops at the next `/`.
            let (head, tail) = if is_last && !self.rest {
                if remaining.contains('/') {
                    return false;
                }
                (remaining, None)
            } else {
                match remaining.split_once('/') {
                    Some((h, t)) => (h, Some(t)),
                    None => return false,
                }
            };
            let ok = match seg {
                Segment::Literal(l) => l == head,
                Segment::One => !head.is_empty(),
            };
            if !ok {
                return false;
            }
            match tail {
                Some(t) => remaining = t,
                None => return true,
            }
        }
        // Only reached with a trailing `**` (or no segments at all, which
        // `parse` cannot produce without `rest`).
        self.rest && !remaining.is_empty()
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicPattern({:?})", self.as_str())
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.source, f)
    }
}

impl std::str::FromStr for TopicPattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopicPattern::parse(s)
    }
}

impl serde::Serialize for TopicPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for TopicPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        TopicPattern::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
