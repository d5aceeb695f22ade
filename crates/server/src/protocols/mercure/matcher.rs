//! Mercure topic selectors, in subscriptions and in token grants:
//!
//! - `*`: every topic (both generations);
//! - exact (1.0 `match`/`match_exact`, `match_type: exact`): byte-for-byte;
//! - urlpattern (1.0 `match_urlpattern`): WHATWG URL Pattern, relative
//!   patterns and topics resolved against the hub URL, a topic that is not a
//!   URL never matches;
//! - 0.x `topic=`: `*`, else the exact string, else an RFC 6570 template.
//!
//! Bounds: selector values are at most `max_topic_len` bytes (checked by the
//! caller); templates and URL Patterns compile to `regex` programs (linear
//! time, size-limited); compiled matchers are shared through a [`Cache`]
//! (bounded, cleared when full) so 10,000 subscribers with one pattern hold
//! one program; and each pattern remembers its last [`RESULTS_PER_PATTERN`]
//! answers, so a topic published often is matched once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use regex::Regex;
use url::Url;
use urlpattern::{UrlPattern, UrlPatternInit, UrlPatternMatchInput, UrlPatternOptions};

use super::template;

/// Compiled matchers kept by a [`Cache`] at most (then it starts over).
pub const CACHED_MATCHERS: usize = 4096;
/// Answers a pattern remembers (then it starts over).
pub const RESULTS_PER_PATTERN: usize = 1024;

/// How a selector compares topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Byte-for-byte (`*`: everything).
    Exact,
    /// WHATWG URL Pattern (1.0).
    UrlPattern,
    /// 0.x: `*`, exact, or an RFC 6570 URI template.
    Legacy,
}

impl Kind {
    /// The `match_type` name (1.0) used in subscription documents.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Exact | Kind::Legacy => "exact",
            Kind::UrlPattern => "urlpattern",
        }
    }
}

/// One compiled selector.
pub struct Matcher {
    kind: Kind,
    source: Box<str>,
    how: How,
}

enum How {
    Any,
    Exact,
    Template(Regex, Memo),
    Url(Box<UrlPattern>, Url, Memo),
}

/// Remembered answers of one pattern.
#[derive(Default)]
struct Memo(Mutex<HashMap<Box<str>, bool>>);

impl Memo {
    fn get_or(&self, topic: &str, f: impl FnOnce() -> bool) -> bool {
        if let Some(&hit) = self
            .0
            .lock()
            .ok()
            .and_then(|m| m.get(topic).copied())
            .as_ref()
        {
            return hit;
        }
        let v = f();
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= RESULTS_PER_PATTERN {
                m.clear();
            }
            m.insert(Box::from(topic), v);
        }
        v
    }
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind.name(), self.source)
    }
}

/// Why a selector cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    /// A control or Unicode format (Cf) character.
    #[error("selectors must not contain control or format characters (found U+{0:04X})")]
    Character(u32),
    /// Empty.
    #[error("selectors must not be empty")]
    Empty,
    /// Not a valid URI template.
    #[error("{0:?} is not a valid URI template: {1}")]
    Template(String, template::TemplateError),
    /// Not a valid URL Pattern.
    #[error("{0:?} is not a valid URL Pattern: {1}")]
    UrlPattern(String, String),
}

impl Matcher {
    /// Compiles `source` as a `kind` selector; `base` resolves relative URL
    /// Patterns and topics (the hub URL).
    pub fn compile(kind: Kind, source: &str, base: &Url) -> Result<Matcher, MatcherError> {
        check_chars(source)?;
        if source.is_empty() {
            return Err(MatcherError::Empty);
        }
        let how = if source == "*" {
            How::Any
        } else {
            match kind {
                Kind::Exact => How::Exact,
                Kind::Legacy if !template::is_template(source) => How::Exact,
                Kind::Legacy => How::Template(
                    template::compile(source)
                        .map_err(|e| MatcherError::Template(source.into(), e))?,
                    Memo::default(),
                ),
                Kind::UrlPattern => {
                    let bad = |e: urlpattern::Error| {
                        MatcherError::UrlPattern(source.into(), e.to_string())
                    };
                    let init = UrlPatternInit::parse_constructor_string::<Regex>(
                        source,
                        Some(base.clone()),
                    )
                    .map_err(bad)?;
                    let p = UrlPattern::<Regex>::parse(init, UrlPatternOptions::default())
                        .map_err(bad)?;
                    How::Url(Box::new(p), base.clone(), Memo::default())
                }
            }
        };
        Ok(Matcher {
            kind,
            source: Box::from(source),
            how,
        })
    }

    /// Whether `topic` matches.
    pub fn matches(&self, topic: &str) -> bool {
        match &self.how {
            How::Any => true,
            How::Exact => *self.source == *topic,
            How::Template(re, memo) => {
                *self.source == *topic || memo.get_or(topic, || re.is_match(topic))
            }
            How::Url(p, base, memo) => memo.get_or(topic, || {
                base.join(topic)
                    .ok()
                    .and_then(|u| p.test(UrlPatternMatchInput::Url(u)).ok())
                    .unwrap_or(false)
            }),
        }
    }

    /// Whether it matches every topic (`*`).
    pub fn is_any(&self) -> bool {
        matches!(self.how, How::Any)
    }

    /// Whether it compares byte for byte (not `*`): exact topics subscribe
    /// through the hub's hash map.
    pub fn exact(&self) -> Option<&str> {
        matches!(self.how, How::Exact).then_some(&*self.source)
    }

    /// How it compares.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The selector as given.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// A compiled matcher's identity: its kind, its source and the base URL.
type Key = (Kind, Box<str>, Box<str>);

/// Compiled matchers shared by every subscription and token that names them.
#[derive(Default)]
pub struct Cache(Mutex<HashMap<Key, Arc<Matcher>>>);

impl Cache {
    /// The compiled matcher for `(kind, source)` against `base`.
    pub fn get(&self, kind: Kind, source: &str, base: &Url) -> Result<Arc<Matcher>, MatcherError> {
        let key = (kind, Box::from(source), Box::from(base.as_str()));
        if let Some(m) = self.0.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(m);
        }
        let m = Arc::new(Matcher::compile(kind, source, base)?);
        if let Ok(mut c) = self.0.lock() {
            if c.len() >= CACHED_MATCHERS {
                c.clear();
            }
            c.insert(key, m.clone());
        }
        Ok(m)
    }
}

/// Refuses control characters and Unicode format (Cf) characters, which
/// could hide one topic behind another that looks the same.
pub fn check_chars(s: &str) -> Result<(), MatcherError> {
    match s.chars().find(|&c| c.is_control() || is_format(c)) {
        Some(c) => Err(MatcherError::Character(c as u32)),
        None => Ok(()),
    }
}

/// Whether `c` is in Unicode general category Cf (format), Unicode 16.
pub fn is_format(c: char) -> bool {
    const CF: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
    ];
    let c = c as u32;
    CF.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://hub.example/.well-known/mercure").unwrap()
    }

    fn m(kind: Kind, sel: &str, topic: &str) -> bool {
        Matcher::compile(kind, sel, &base()).unwrap().matches(topic)
    }

    #[test]
    fn kinds() {
        assert!(m(Kind::Exact, "*", "anything"));
        assert!(m(Kind::Exact, "/books/1", "/books/1"));
        assert!(!m(Kind::Exact, "/books/1", "/books/1/"));
        assert!(m(Kind::Legacy, "/books/{id}", "/books/1"));
        assert!(m(Kind::Legacy, "/books/{id}", "/books/{id}"));
        assert!(!m(Kind::Legacy, "/books/{id}", "/users/1"));
        assert!(m(
            Kind::UrlPattern,
            "https://example.com/books/:id",
            "https://example.com/books/7"
        ));
        assert!(!m(
            Kind::UrlPattern,
            "https://example.com/books/:id",
            "https://example.com/books/7/x"
        ));
        // Relative patterns and topics are resolved against the hub URL.
        assert!(m(Kind::UrlPattern, "/users/42/*", "/users/42/books/1"));
        assert!(m(
            Kind::UrlPattern,
            "/users/42/*",
            "https://hub.example/users/42/b"
        ));
        assert!(!m(Kind::UrlPattern, "/users/42/*", "/users/43/b"));
    }

    #[test]
    fn refuses_control_and_format_characters() {
        for bad in [
            "/a\u{0}",
            "/a\u{7f}",
            "/a\u{200b}",
            "/a\u{feff}",
            "/a\u{e0041}",
        ] {
            assert!(
                Matcher::compile(Kind::Exact, bad, &base()).is_err(),
                "{bad:?}"
            );
        }
        assert!(Matcher::compile(Kind::Exact, "/é/日本", &base()).is_ok());
        assert!(Matcher::compile(Kind::UrlPattern, "(", &base()).is_err());
    }

    #[test]
    fn cache_shares_compiled_matchers() {
        let c = Cache::default();
        let a = c.get(Kind::UrlPattern, "/a/:x", &base()).unwrap();
        let b = c.get(Kind::UrlPattern, "/a/:x", &base()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(a.matches("/a/1") && a.matches("/a/1"));
    }
}
