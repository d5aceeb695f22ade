//! RFC 6570 URI templates (Mercure 0.x topic selectors) compiled to regular
//! expressions that match the URIs the template can expand to.
//!
//! Own code, bounded: a template is at most the configured topic length, the
//! compiled regex has a size limit, and the `regex` crate matches in linear
//! time, so no template can make a match expensive. Each expression becomes
//! the set of characters its operator may expand to:
//!
//! | expression | matches |
//! |---|---|
//! | `{var}` | unreserved characters, `%XX` and `,` (no `/`) |
//! | `{+var}` | also reserved characters (`/`, `?`, `#`, ...) |
//! | `{#var}` | nothing, or `#` then reserved characters |
//! | `{.var}` `{/var}` `{;var}` | any number of `.x` / `/x` / `;x[=y]` |
//! | `{?var}` `{&var}` | nothing, or `?x=y[&x=y...]` / any number of `&x=y` |
//!
//! Prefix (`:3`) and explode (`*`) modifiers are accepted; they only widen
//! what an expansion may hold, which the sets above already allow.

use regex::{Regex, RegexBuilder};

/// Compiled regexes may not exceed this many bytes of program.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// One unreserved character or a percent-escape.
const UNRESERVED: &str = r"(?:[A-Za-z0-9\-._~]|%[0-9A-Fa-f]{2})";
/// One unreserved or reserved character, or a percent-escape.
const RESERVED: &str = r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})";

/// Why a string is not a usable URI template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{` without its `}`, or a `}` without its `{`.
    #[error("unbalanced braces")]
    Unbalanced,
    /// An expression holds no variable or a malformed one.
    #[error("malformed expression {0:?}")]
    Expression(String),
    /// The compiled form is too large.
    #[error("template too complex")]
    TooComplex,
}

/// Whether `s` is a template at all (holds an expression).
pub fn is_template(s: &str) -> bool {
    s.contains('{')
}

/// Compiles `template` to an anchored regex.
pub fn compile(template: &str) -> Result<Regex, TemplateError> {
    let mut re = String::with_capacity(template.len() * 2 + 8);
    re.push('^');
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(TemplateError::Unbalanced);
        }
        re.push_str(&regex::escape(&rest[..open]));
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or(TemplateError::Unbalanced)?;
        let expr = &after[..close];
        if expr.contains('{') {
            return Err(TemplateError::Unbalanced);
        }
        re.push_str(&expression(expr)?);
        rest = &after[close + 1..];
    }
    re.push_str(&regex::escape(rest));
    re.push('$');
    RegexBuilder::new(&re)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|_| TemplateError::TooComplex)
}

/// The regex for one expression (the text between the braces).
fn expression(expr: &str) -> Result<String, TemplateError> {
    let bad = || TemplateError::Expression(expr.to_string());
    let (op, vars) = match expr.chars().next() {
        Some(c @ ('+' | '#' | '.' | '/' | ';' | '?' | '&')) => (Some(c), &expr[1..]),
        Some(_) => (None, expr),
        None => return Err(bad()),
    };
    for var in vars.split(',') {
        let name = var.trim_end_matches('*');
        let name = name.split_once(':').map_or(name, |(n, len)| {
            if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
                ""
            } else {
                n
            }
        });
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'%');
        if !ok {
            return Err(bad());
        }
    }
    let list = format!(r"(?:{UNRESERVED}|,)*");
    Ok(match op {
        None => list,
        Some('+') => format!("{RESERVED}*"),
        Some('#') => format!("(?:#{RESERVED}*)?"),
        Some('.') => format!(r"(?:\.{list})*"),
        Some('/') => format!("(?:/{list})*"),
        Some(';') => format!("(?:;{UNRESERVED}+(?:={list})?)*"),
        Some('?') => format!(r"(?:\?{UNRESERVED}+={list}(?:&{UNRESERVED}+={list})*)?"),
        _ => format!("(?:&{UNRESERVED}+={list})*"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(t: &str, topic: &str) -> bool {
        compile(t).unwrap().is_match(topic)
    }

    #[test]
    fn simple_expressions_match_one_segment() {
        assert!(m("/books/{id}", "/books/1"));
        assert!(m("/books/{id}", "/books/"));
        assert!(!m("/books/{id}", "/books/1/2"));
        assert!(!m("/books/{id}", "/books/1?x"));
        assert!(m(
            "https://example.com/books/{id}.jsonld",
            "https://example.com/books/42.jsonld"
        ));
        assert!(!m(
            "https://example.com/books/{id}.jsonld",
            "https://example.com/books/42xjsonld"
        ));
        assert!(m("/a/{x,y}", "/a/1,2"));
    }

    #[test]
    fn operators() {
        assert!(m("/files{+path}", "/files/a/b/c"));
        assert!(m("/doc{#frag}", "/doc"));
        assert!(m("/doc{#frag}", "/doc#s1"));
        assert!(m("/p{/seg*}", "/p/a/b"));
        assert!(m("/f{.ext}", "/f.tar.gz"));
        assert!(m("/s{?q,lang}", "/s?q=x&lang=fr"));
        assert!(m("/s{?q}", "/s"));
        assert!(m("/s?q=1{&r}", "/s?q=1&r=2"));
        assert!(m("/m{;x}", "/m;x=1"));
        assert!(m("/p/{id:3}", "/p/abc"));
    }

    #[test]
    fn literals_are_escaped_and_bad_templates_refused() {
        assert!(!m("/a.b/{x}", "/aXb/1"));
        assert!(m("/a(b)/{x}", "/a(b)/1"));
        for bad in ["/a/{", "/a/}", "/a/{}", "/a/{x{y}}", "/a/{x y}", "/a/{x:}"] {
            assert!(compile(bad).is_err(), "{bad}");
        }
    }
}
