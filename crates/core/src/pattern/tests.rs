use proptest::prelude::*;

use super::*;

fn p(s: &str) -> TopicPattern {
    TopicPattern::parse(s).unwrap()
}

macro_rules! t {
    ($($pattern:literal : [$($yes:literal),*] ! [$($no:literal),*];)*) => {$(
        let pat = p($pattern);
        $( assert!(pat.matches($yes), "{} should match {:?}", $pattern, $yes); )*
        $( assert!(!pat.matches($no), "{} should not match {:?}", $pattern, $no); )*
    )*};
}

#[test]
fn table() {
    t! {
        "*": ["a", "/a/b", "https://x/y", "*"] ! [];
        "/books/1": ["/books/1"] ! ["/books/10", "/books/1/", "/books", "books/1"];
        "/books/*": ["/books/1", "/books/*", "/books/abc def"] ! ["/books/", "/books", "/books/1/2", "/book/1"];
        "/books/**": ["/books/1", "/books/1/2/3", "/books/1/"] ! ["/books/", "/books", "/booksx/1"];
        "/*/reviews/*": ["/1/reviews/2"] ! ["//reviews/2", "/1/reviews/", "/1/x/2"];
        "**": ["a", "/", "/a/b"] ! [];
        "/a/*/**": ["/a/b/c", "/a/b/c/d"] ! ["/a/b", "/a/b/", "/a//c"];
        "https://example.com/books/*": ["https://example.com/books/1"] ! ["https://example.com/books/1/x", "http://example.com/books/1"];
        "/books/*.json": ["/books/*.json"] ! ["/books/1.json"];
    }
}

#[test]
fn kinds_and_errors() {
    assert_eq!(p("*"), TopicPattern::Any);
    assert!(p("/a/b").is_exact());
    assert!(p("/a/b*").is_exact());
    assert!(matches!(p("/a/*"), TopicPattern::Glob(_)));
    assert_eq!(TopicPattern::parse(""), Err(PatternError::Empty));
    assert_eq!(
        TopicPattern::parse("/a/**/b"),
        Err(PatternError::InnerDoubleStar)
    );
    assert_eq!(
        TopicPattern::parse("/a\n"),
        Err(PatternError::ControlCharacter(10))
    );
    let long = "a".repeat(MAX_PATTERN_LEN + 1);
    assert!(matches!(
        TopicPattern::parse(&long),
        Err(PatternError::TooLong(_))
    ));
    assert_eq!(p("/a/*/**").to_string(), "/a/*/**");
}

#[test]
fn serde_round_trip_and_refusal() {
    let v: Vec<TopicPattern> = serde_json::from_str(r#"["*", "/a/*", "/b"]"#).unwrap();
    assert_eq!(serde_json::to_string(&v).unwrap(), r#"["*","/a/*","/b"]"#);
    assert!(serde_json::from_str::<TopicPattern>(r#""/a/**/b""#).is_err());
}

/// A long adversarial topic against many `*` segments stays fast (linear).
#[test]
fn matching_is_linear() {
    let pattern = p(&"/*".repeat(1000));
    let topic = "/a".repeat(100_000);
    assert!(!pattern.matches(&topic));
    let pattern = p(&format!("{}/**", "/*".repeat(1000)));
    assert!(pattern.matches(&topic));
}

/// The specification, written the slow way: split both, compare segment lists.
fn model(pattern: &str, topic: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let mut ps: Vec<&str> = pattern.split('/').collect();
    let rest = ps.last() == Some(&"**");
    if rest {
        ps.pop();
    }
    let ts: Vec<&str> = topic.split('/').collect();
    let seg_ok = |p: &str, t: &str| if p == "*" { !t.is_empty() } else { p == t };
    if rest {
        ts.len() > ps.len()
            && ps.iter().zip(&ts).all(|(p, t)| seg_ok(p, t))
            && !ts[ps.len()..].join("/").is_empty()
    } else {
        ts.len() == ps.len() && ps.iter().zip(&ts).all(|(p, t)| seg_ok(p, t))
    }
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("a".to_string()),
        Just("b".to_string()),
        Just("ab".to_string()),
    ]
}

fn topic() -> impl Strategy<Value = String> {
    proptest::collection::vec(segment(), 1..6).prop_map(|s| s.join("/"))
}

fn pattern() -> impl Strategy<Value = String> {
    let seg = prop_oneof![segment(), Just("*".to_string())];
    (proptest::collection::vec(seg, 1..6), any::<bool>()).prop_map(|(mut s, rest)| {
        if rest {
            s.push("**".into());
        }
        s.join("/")
    })
}

proptest! {
    #[test]
    fn agrees_with_the_model(pat in pattern(), topic in topic()) {
        let parsed = TopicPattern::parse(&pat);
        prop_assume!(parsed.is_ok());
        prop_assert_eq!(parsed.unwrap().matches(&topic), model(&pat, &topic), "{} vs {}", pat, topic);
    }

    #[test]
    fn a_pattern_matches_its_own_instances(pat in pattern()) {
        prop_assume!(!pat.is_empty());
        let parsed = TopicPattern::parse(&pat).unwrap();
        // Replace each `*` with "x" and `**` with "x/y": always a match.
        let instance: Vec<String> = pat.split('/').map(|s| match s {
            "*" => "x".to_string(),
            "**" => "x/y".to_string(),
            other => other.to_string(),
        }).collect();
        let instance = instance.join("/");
        prop_assert!(parsed.matches(&instance), "{} should match {}", pat, instance);
    }
}
