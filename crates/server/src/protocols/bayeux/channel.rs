//! Bayeux channel names: the grammar, wildcard patterns, and the reserved
//! `/meta/**` and `/service/**` trees.
//!
//! A channel is `/` then segments separated by `/`; a segment is one or more
//! letters, digits or `- _ ! ~ ( ) $ @`. A subscription may end in `*` (exactly
//! one more segment) or `**` (one or more). Ordinary channels are Herald
//! topics with the same names.

/// What a channel name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel<'a> {
    /// `/meta/...`: the protocol's own messages; never forwarded.
    Meta,
    /// `/service/...`: request/response with the server; never recorded.
    Service(&'a str),
    /// An ordinary channel: the Herald topic of the same name.
    Name(&'a str),
    /// A subscription pattern ending in `/*` or `/**`.
    Wild(&'a str),
}

/// Parses `name`, or `None` if it breaks the grammar.
pub fn parse(name: &str) -> Option<Channel<'_>> {
    let rest = name.strip_prefix('/')?;
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    let mut wild = false;
    for (i, seg) in segments.iter().enumerate() {
        if i == last && (*seg == "*" || *seg == "**") {
            wild = true;
        } else if seg.is_empty() || !seg.bytes().all(segment_byte) {
            return None;
        }
    }
    Some(match segments[0] {
        "meta" => Channel::Meta,
        "service" if !wild => Channel::Service(name),
        "service" => Channel::Meta,
        _ if wild => Channel::Wild(name),
        _ => Channel::Name(name),
    })
}

fn segment_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'!' | b'~' | b'(' | b')' | b'$' | b'@')
}

/// Whether `topic` is delivered to a subscriber of `channel` (a name or a
/// pattern): `/a/*` matches one segment below `/a`, `/a/**` any depth below.
pub fn matches(channel: &str, topic: &str) -> bool {
    if let Some(base) = channel.strip_suffix("/**") {
        topic
            .strip_prefix(base)
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|r| !r.is_empty() && r.split('/').all(|s| !s.is_empty()))
    } else if let Some(base) = channel.strip_suffix("/*") {
        topic
            .strip_prefix(base)
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|r| !r.is_empty() && !r.contains('/'))
    } else {
        channel == topic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_names() {
        assert_eq!(parse("/chat/room1"), Some(Channel::Name("/chat/room1")));
        assert_eq!(
            parse("/a-b_c!~()$@/x"),
            Some(Channel::Name("/a-b_c!~()$@/x"))
        );
        assert_eq!(parse("/chat/*"), Some(Channel::Wild("/chat/*")));
        assert_eq!(parse("/chat/**"), Some(Channel::Wild("/chat/**")));
        assert_eq!(parse("/**"), Some(Channel::Wild("/**")));
        assert_eq!(parse("/meta/connect"), Some(Channel::Meta));
        assert_eq!(parse("/meta/*"), Some(Channel::Meta));
        assert_eq!(
            parse("/service/echo"),
            Some(Channel::Service("/service/echo"))
        );
        assert_eq!(parse("/service/**"), Some(Channel::Meta));
        for bad in [
            "", "/", "chat", "/chat/", "//x", "/a/*/b", "/a/**/b", "/a b", "/a.b", "/a/***", "/é",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn wildcards_match_as_bayeux_says() {
        assert!(matches("/foo/*", "/foo/bar"));
        assert!(!matches("/foo/*", "/foo"));
        assert!(!matches("/foo/*", "/foo/bar/baz"));
        assert!(!matches("/foo/*", "/foobar"));
        assert!(matches("/foo/**", "/foo/bar"));
        assert!(matches("/foo/**", "/foo/bar/baz"));
        assert!(!matches("/foo/**", "/foo"));
        assert!(!matches("/foo/**", "/foobar/x"));
        assert!(!matches("/foo/**", "/foo//x"));
        assert!(matches("/**", "/a/b"));
        assert!(matches("/foo/bar", "/foo/bar"));
        assert!(!matches("/foo/bar", "/foo/baz"));
    }
}
