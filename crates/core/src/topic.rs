//! Topic names and selectors.
//!
//! A topic is an opaque UTF-8 string (URLs and paths are common). A [`Selector`]
//! is what a subscriber asks for: exact topics, looked up in the fan-out's hash
//! map, and [`Pattern`]s (globs such as `/chat/*`, or a protocol's own
//! matcher), tested against every published event by the few subscriptions
//! that hold them.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use crate::pattern::{PatternError, TopicPattern};

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

/// Topics under this prefix belong to the hub (`$herald/stats`, presence
/// events). No [`Pattern`] ever matches one, whichever adapter built it (a
/// glob, Mercure's `*`, a Bayeux `/**`): they are subscribed to by exact
/// name only, under the server's own rules (`Access::may_subscribe`).
pub const RESERVED_PREFIX: &str = "$herald/";

/// Whether `topic` is reserved for the hub ([`RESERVED_PREFIX`]).
pub fn is_reserved(topic: &str) -> bool {
    topic.starts_with(RESERVED_PREFIX)
}

/// A topic pattern in a subscription, matched against every topic of every
/// published event (never a reserved one, see [`RESERVED_PREFIX`]): a
/// segment glob ([`TopicPattern`]: `*`, `/a/*`, `/a/**`) or a matcher
/// supplied by a protocol adapter (Mercure's URI templates and
/// URL patterns). Patterns are for the few subscribers that need them: a
/// pattern subscription examines every event (see [`crate::fanout`]).
#[derive(Clone)]
pub struct Pattern {
    /// Identifies the pattern (two patterns with one label are the same
    /// pattern): the glob as written, or a protocol-prefixed source.
    label: Arc<str>,
    test: Test,
}

#[derive(Clone)]
enum Test {
    Glob(Arc<TopicPattern>),
    Custom(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

impl Pattern {
    /// A segment glob (syntax in [`crate::pattern`]); a string without
    /// wildcard segments is a pattern matching exactly that topic.
    pub fn glob(s: &str) -> Result<Pattern, PatternError> {
        let p = TopicPattern::parse(s)?;
        Ok(Pattern {
            label: Arc::from(p.as_str()),
            test: Test::Glob(Arc::new(p)),
        })
    }

    /// A pattern tested by `test`. `label` must identify the matcher (say
    /// `"template:/books/{id}"`): patterns are compared by label.
    pub fn custom(
        label: impl Into<Arc<str>>,
        test: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Pattern {
        Pattern {
            label: label.into(),
            test: Test::Custom(Arc::new(test)),
        }
    }

    /// Whether `topic` matches.
    pub fn matches(&self, topic: &str) -> bool {
        // The one place every adapter's patterns pass through.
        !is_reserved(topic)
            && match &self.test {
                Test::Glob(g) => g.matches(topic),
                Test::Custom(f) => f(topic),
            }
    }

    /// The label (for a glob, the glob as written).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether any of `topics` matches.
    pub fn matches_any<'a>(&self, mut topics: impl Iterator<Item = &'a Topic>) -> bool {
        topics.any(|t| self.matches(t.as_str()))
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.label == other.label
    }
}

impl Eq for Pattern {}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", &*self.label)
    }
}

/// One clause of a [`Selector`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Exactly this topic.
    Exact(Topic),
    /// Every topic the pattern matches.
    Pattern(Pattern),
}

/// What a subscriber asks for: the union of its clauses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    clauses: Vec<Match>,
}

impl Selector {
    /// A selector for exactly these topics (duplicates are dropped, order kept).
    pub fn exact(topics: impl IntoIterator<Item = Topic>) -> Self {
        Selector::new(topics, [])
    }

    /// A selector for these exact topics and patterns (duplicates dropped,
    /// order kept).
    pub fn new(
        topics: impl IntoIterator<Item = Topic>,
        patterns: impl IntoIterator<Item = Pattern>,
    ) -> Self {
        let mut clauses: Vec<Match> = Vec::new();
        let all = topics
            .into_iter()
            .map(Match::Exact)
            .chain(patterns.into_iter().map(Match::Pattern));
        for m in all {
            if !clauses.contains(&m) {
                clauses.push(m);
            }
        }
        Selector { clauses }
    }

    /// The exact topics this selector names.
    pub fn exact_topics(&self) -> impl Iterator<Item = &Topic> {
        self.clauses.iter().filter_map(|m| match m {
            Match::Exact(t) => Some(t),
            Match::Pattern(_) => None,
        })
    }

    /// The patterns of this selector.
    pub fn patterns(&self) -> impl Iterator<Item = &Pattern> {
        self.clauses.iter().filter_map(|m| match m {
            Match::Pattern(p) => Some(p),
            Match::Exact(_) => None,
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
                Match::Pattern(p) => p.matches(t.as_str()),
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

    #[test]
    fn patterns_match_and_dedup_by_label() {
        let deep = Topic::parse("/chat/room1/x", 99).unwrap();
        let one = Topic::parse("/chat/room1", 99).unwrap();
        let s = Selector::new(
            [],
            [
                Pattern::glob("/chat/*").unwrap(),
                Pattern::glob("/chat/*").unwrap(),
                Pattern::custom("ends-x", |t: &str| t.ends_with("/x")),
            ],
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s.exact_topics().count(), 0);
        assert!(s.matches([&one].into_iter()));
        assert!(s.matches([&deep].into_iter()));
        assert!(
            !Selector::new([], [Pattern::glob("/chat/*").unwrap()]).matches([&deep].into_iter())
        );
        assert!(Pattern::glob("/chat/**").unwrap().matches(deep.as_str()));
        assert!(Pattern::glob("a/**/b").is_err());
    }

    /// Catch-all patterns of every adapter never receive the hub's own
    /// topics; only an exact subscription names one.
    #[test]
    fn no_pattern_matches_a_reserved_topic() {
        let t = |s: &str| Topic::parse(s, 99).unwrap();
        let stats = t("$herald/stats");
        let presence = t("$herald/presence/room");
        let ordinary = t("/room");
        let catch_alls = [
            Pattern::glob("*").unwrap(),
            Pattern::glob("/**").unwrap(),
            Pattern::glob("$herald/*").unwrap(),
            // Mercure's `*` and a Bayeux `/**` are custom tests that accept
            // anything (or anything their glob does).
            Pattern::custom("mercure-any", |_: &str| true),
            Pattern::custom("bayeux:/**", |_: &str| true),
        ];
        for p in &catch_alls {
            assert!(!p.matches(stats.as_str()), "{}", p.label());
            assert!(!p.matches(presence.as_str()), "{}", p.label());
        }
        assert!(catch_alls[0].matches(ordinary.as_str()));
        assert!(catch_alls[3].matches(ordinary.as_str()));
        let s = Selector::new([], catch_alls.iter().cloned());
        assert!(!s.matches([&stats, &presence].into_iter()));
        assert!(s.matches([&ordinary].into_iter()));
        assert!(Selector::exact([stats.clone()]).matches([&stats].into_iter()));
    }
}
