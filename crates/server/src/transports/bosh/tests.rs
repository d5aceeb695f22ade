use super::body::{self, BadBody, Request};

const NS: &str = "xmlns='http://jabber.org/protocol/httpbind'";

#[test]
fn creation_attributes_are_read() {
    let r = body::parse(&format!(
        "<?xml version='1.0'?><body {NS} rid='1573741820' wait='60' hold='1' ver='1.6' ack='1' content='text/xml; charset=utf-8' to='x' xml:lang='en'/>"
    ))
    .unwrap();
    assert_eq!(
        r,
        Request {
            rid: 1573741820,
            wait: Some(60),
            hold: Some(1),
            ver: Some((1, 6)),
            ack: Some(1),
            content: Some("text/xml; charset=utf-8".into()),
            ..Request::default()
        }
    );
}

#[test]
fn herald_ops_are_collected_and_other_payloads_ignored() {
    let r = body::parse(&format!(
        "<body {NS} rid='7' sid='abc' type='terminate'>\
           <presence xmlns='jabber:client' type='unavailable'/>\
           <op xmlns='urn:herald:1'>{{\"op\":\"ping\",\"ref\":\"a&amp;b &#x3c; &lt;\"}}</op>\
           <h:op xmlns:h='urn:herald:1'><![CDATA[{{\"op\":\"ping\"}}]]></h:op>\
           <op>not ours</op>\
         </body>"
    ))
    .unwrap();
    assert_eq!(r.rid, 7);
    assert_eq!(r.sid.as_deref(), Some("abc"));
    assert!(r.terminate);
    assert_eq!(
        r.ops,
        vec![
            "{\"op\":\"ping\",\"ref\":\"a&b < <\"}".to_string(),
            "{\"op\":\"ping\"}".to_string()
        ]
    );
}

#[test]
fn bad_bodies_say_what_is_wrong() {
    for (text, needle) in [
        ("", "empty request"),
        ("<body rid='1'/>", "must be one <body"),
        (&format!("<other {NS} rid='1'/>"), "must be one <body"),
        (&format!("<body {NS}/>"), "needs rid"),
        (&format!("<body {NS} rid='0'/>"), "between 1 and 2^53"),
        (
            &format!("<body {NS} rid='9007199254740992'/>"),
            "between 1 and 2^53",
        ),
        (&format!("<body {NS} rid='x'/>"), "whole number"),
        (&format!("<body {NS} rid='1' ver='one'/>"), "major.minor"),
        (&format!("<body {NS} rid='1'>text</body>"), "character data"),
        (&format!("<body {NS} rid='1'><a></body>"), "not well-formed"),
        (
            &format!("<!DOCTYPE x [<!ENTITY e 'boom'>]><body {NS} rid='1'/>"),
            "DTD",
        ),
        (
            &format!("<body {NS} rid='1'><op xmlns='urn:herald:1'>&e;</op></body>"),
            "unknown entity",
        ),
        (
            &format!("<body {NS} rid='1'/><body {NS} rid='2'/>"),
            "must be one <body",
        ),
    ] {
        let BadBody(message) = body::parse(text).unwrap_err();
        assert!(message.contains(needle), "{text}: {message}");
    }
}

#[test]
fn responses_escape_json_and_keep_attributes() {
    let out = body::render(
        &[("sid", "s'1".into()), ("ack", "5".into())],
        [&b"{\"data\":\"a&b\\u003c>\"}"[..]],
    );
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "<body xmlns='http://jabber.org/protocol/httpbind' sid='s&apos;1' ack='5'>\
         <op xmlns='urn:herald:1'>{\"data\":\"a&amp;b\\u003c&gt;\"}</op></body>"
    );
    // And it parses back to the same JSON.
    let again = body::parse(&text.replace("<body ", "<body rid='1' ")).unwrap();
    assert_eq!(again.ops, vec!["{\"data\":\"a&b\\u003c>\"}".to_string()]);
    assert_eq!(
        String::from_utf8(body::render(&[], [])).unwrap(),
        "<body xmlns='http://jabber.org/protocol/httpbind'/>"
    );
}

/// U+FFFE and U+FFFF are valid in JSON strings but not XML 1.0 characters:
/// an event holding them must not make the answer unparseable for browsers
/// (found by the `bosh_body` fuzz target's XML `Char` check).
#[test]
fn noncharacters_in_payloads_are_written_as_json_escapes() {
    let json = "{\"data\":\"a\u{fffe}b\u{ffff}c\u{fffd}\"}";
    let out = String::from_utf8(body::render(&[("rid", "1".into())], [json.as_bytes()])).unwrap();
    assert!(!out.contains(['\u{fffe}', '\u{ffff}']), "{out:?}");
    assert!(out.contains(r#"a\ufffeb\uffffc"#), "{out:?}");
    let ops = body::parse(&out).unwrap().ops;
    let v: serde_json::Value = serde_json::from_str(&ops[0]).unwrap();
    assert_eq!(v["data"], "a\u{fffe}b\u{ffff}c\u{fffd}");
}
