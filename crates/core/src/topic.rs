//! Topic names and selectors.
//!
//! A topic is an opaque UTF-8 string (URLs and paths are common). A [`Selector`]
//! is what a subscriber asks for: today a list of exact topics. Wildcards and URI
//! templates will be added as further [`Match`] variants, matched on publish
//! against a separate list, so exact topics keep their hash-map lookup.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// A validated topic name. Cheap to clone (an `Arc<str>`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(Arc<str>);

/// Why a string is not a valid topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic is the empty string.
    #[error("topic must not be empty")]
    Empty,
    /// The topic is longer than the configured maximum, in bytes.
    #[error("topic is {len} bytes long; the limit is {max}")]
    TooLong {
        /// The topic's length in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The topic holds a control character (U+0000–U+001F or U+007F).
    #[error("topic must not contain control characters (found U+{0:04X})")]
    ControlCharacter(u32),
}

impl Topic {
    /// Validates `name` against `max_len` (bytes).
    pub fn parse(name: &str, max_len: usize) -> Result<Self, TopicError> {
        if name.is_empty() {
            return Err(TopicError::Empty);
        }
        if name.len() > max_len {
            return Err(TopicError::TooLong {
                len: name.len(),
                max: max_len,
            });
        }
        if let Some(c) = name.chars().find(|c| c.is_control()) {
            return Err(TopicError::ControlCharacter(c as u32));
        }
        Ok(Topic(Arc::from(name)))
    }

    /// The topic as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// One clause of a [`Selector`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Exactly this topic.
    Exact(Topic),
}

/// What a subscriber asks for: the union of its clauses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    clauses: Vec<Match>,
}

impl Selector {
    /// A selector for exactly these topics (duplicates are dropped, order kept).
    pub fn exact(topics: impl IntoIterator<Item = Topic>) -> Self {
        let mut clauses: Vec<Match> = Vec::new();
        for t in topics {
            let m = Match::Exact(t);
            if !clauses.contains(&m) {
                clauses.push(m);
            }
        }
        Selector { clauses }
    }

    /// The exact topics this selector names.
    pub fn exact_topics(&self) -> impl Iterator<Item = &Topic> {
        self.clauses.iter().map(|m| match m {
            Match::Exact(t) => t,
        })
    }

    /// Number of clauses.
    pub fn len(&self) -> usize {
        self.clauses.len()
    }

    /// Whether the selector names nothing.
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// Whether an event published to `topics` matches this selector.
    pub fn matches<'a>(&self, mut topics: impl Iterator<Item = &'a Topic>) -> bool {
        topics.any(|t| {
            self.clauses.iter().any(|m| match m {
                Match::Exact(x) => x == t,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_long_and_control() {
        assert_eq!(Topic::parse("", 10), Err(TopicError::Empty));
        assert!(matches!(
            Topic::parse("abcdefghijk", 10),
            Err(TopicError::TooLong { len: 11, max: 10 })
        ));
        assert_eq!(
            Topic::parse("a\nb", 10),
            Err(TopicError::ControlCharacter(10))
        );
        assert_eq!(Topic::parse("/a/b c", 10).unwrap().as_str(), "/a/b c");
    }

    #[test]
    fn selector_dedups_and_matches() {
        let a = Topic::parse("a", 9).unwrap();
        let b = Topic::parse("b", 9).unwrap();
        let s = Selector::exact([a.clone(), a.clone()]);
        assert_eq!(s.len(), 1);
        assert!(s.matches([&b, &a].into_iter()));
        assert!(!s.matches([&b].into_iter()));
    }
}
