//! Mercure's parsers: the strict form parser (`form_pairs`, publish bodies
//! and subscribe queries), RFC 6570 templates compiled to regexes, and
//! selectors of every kind (`Matcher::compile`), on arbitrary input.
//!
//! Properties: nothing panics; `form_pairs` refuses exactly the inputs whose
//! percent-decoded names or values are not UTF-8, and pairs encoded by an
//! independent serializer come back unchanged; a selector is refused iff it is
//! empty or holds a control or Unicode format character (or, for templates and
//! URL Patterns, does not parse); an exact selector matches exactly itself;
//! `*` matches everything; a template matches its own text and a string
//! without braces compiles to a regex matching only itself; answers repeat
//! (the memo never changes them).
#![no_main]

use arbitrary::Arbitrary;
use herald_server::protocols::mercure::matcher::{Kind, Matcher, check_chars};
use herald_server::protocols::mercure::publish::form_pairs;
use herald_server::protocols::mercure::template;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    raw: Vec<u8>,
    pairs: Vec<(String, String)>,
    selector: String,
    topics: Vec<String>,
}

/// Whether percent-decoding `raw` (with `+` as space) yields UTF-8: a model
/// written without the code under test.
fn decodes_to_utf8(raw: &[u8]) -> bool {
    raw.split(|&b| b == b'&').all(|part| {
        part.split(|&b| b == b'=').all(|piece| {
            let plus: Vec<u8> = piece.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
            let bytes: Vec<u8> = percent_encoding::percent_decode(&plus).collect();
            std::str::from_utf8(&bytes).is_ok()
        })
    })
}

fuzz_target!(|input: Input| {
    // Form bodies.
    let parsed = form_pairs(&input.raw);
    assert_eq!(parsed.is_ok(), decodes_to_utf8(&input.raw), "{:?}", input.raw);
    let mut ser = form_urlencoded::Serializer::new(String::new());
    let wanted: Vec<(String, String)> =
        input.pairs.iter().filter(|(k, _)| !k.is_empty()).cloned().collect();
    for (k, v) in &wanted {
        ser.append_pair(k, v);
    }
    let encoded = ser.finish();
    assert_eq!(form_pairs(encoded.as_bytes()).unwrap(), wanted);

    // Selectors.
    let base = url::Url::parse("https://hub.example/.well-known/mercure").unwrap();
    let sel = input.selector.as_str();
    let chars_ok = check_chars(sel).is_ok() && !sel.is_empty();
    for kind in [Kind::Exact, Kind::Legacy, Kind::UrlPattern] {
        match Matcher::compile(kind, sel, &base) {
            Ok(m) => {
                assert!(chars_ok, "accepted {sel:?}");
                for t in &input.topics {
                    let first = m.matches(t);
                    assert_eq!(first, m.matches(t), "memo changed an answer");
                    if sel == "*" {
                        assert!(first);
                    } else if kind == Kind::Exact {
                        assert_eq!(first, t == sel);
                    }
                }
                if kind == Kind::Legacy {
                    assert!(m.matches(sel), "a 0.x selector matches its own text");
                }
            }
            Err(_) => assert!(
                !chars_ok || kind != Kind::Exact,
                "refused exact selector {sel:?}"
            ),
        }
    }
    if !template::is_template(sel) && !sel.contains('}') {
        let re = template::compile(sel).expect("no expression: always compiles");
        assert!(re.is_match(sel));
        for t in &input.topics {
            assert_eq!(re.is_match(t), t == sel);
        }
    } else {
        let _ = template::compile(sel);
    }
});
