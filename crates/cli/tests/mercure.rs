//! The Mercure protocol, black-box against the real binary: every MUST of
//! the spec summary (`/work/shared/specs/mercure.md`) for both generations,
//! with publishers written as Mercure apps write them (a form POST with a
//! bearer JWT) and subscribers reading raw SSE bytes.
// These tests drive a separate process over real sockets: their deadlines are
// wall-clock on purpose.
#![allow(clippy::disallowed_types)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Hub, Sse, raw_request, request};
use serde_json::{Value, json};

const SECRET: &str = "mercure-test-secret-mercure-test-secret-0123";
const HUB_URL: &str = "https://hub.example/.well-known/mercure";
const ORIGIN: &str = "https://app.example";
const DETAIL: &str = "https://mercure.rocks/authorization-detail";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Signs `claims` with HS256 and header `typ`.
fn sign(typ: Option<&str>, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = typ.map(str::to_string);
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// One authorization detail: actions, and `(match_type, match)` topics.
type Detail<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);

/// A 1.0 access token with one authorization detail per `(actions, topics)`.
fn v1_token(details: &[Detail<'_>]) -> String {
    let details: Vec<Value> = details
        .iter()
        .map(|(actions, topics)| {
            let topics: Vec<Value> = topics
                .iter()
                .map(|(kind, m)| json!({"match": m, "match_type": kind}))
                .collect();
            json!({"type": DETAIL, "actions": actions, "topics": topics, "payload": {"user": "u1"}})
        })
        .collect();
    sign(
        Some("at+jwt"),
        &json!({"iss": "https://issuer.example", "aud": HUB_URL, "exp": now() + 600,
                "sub": "u1", "authorization_details": details}),
    )
}

fn publisher_v1() -> String {
    v1_token(&[(&["publish"], &[("exact", "*")])])
}

/// A 0.x token with the `mercure` claim.
fn legacy_token(publish: &[&str], subscribe: &[&str]) -> String {
    sign(
        Some("JWT"),
        &json!({"exp": now() + 600, "mercure": {"publish": publish, "subscribe": subscribe,
                "payload": {"user": "u0"}}}),
    )
}

fn v1_hub(extra: &[&str]) -> Hub {
    let mut args = vec![
        "--mercure-hub-url",
        HUB_URL,
        "--mercure-subscriptions",
        "--cors-origins",
        ORIGIN,
        "--heartbeat-secs",
        "1",
    ];
    args.extend_from_slice(extra);
    Hub::start_secure(SECRET, &args)
}

fn legacy_hub(extra: &[&str]) -> Hub {
    let mut args = vec![
        "--mercure-generation",
        "0.x",
        "--mercure-hub-url",
        HUB_URL,
        "--mercure-subscriptions",
    ];
    args.extend_from_slice(extra);
    Hub::start_secure(SECRET, &args)
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A form body from pairs.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// One response: status, lower-cased headers, body.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn call(hub: &Hub, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let raw = raw_request(hub.addr, method, target, headers, body);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Publishes a form with `token` (as a Mercure app does).
fn mpublish(hub: &Hub, token: &str, pairs: &[(&str, &str)]) -> Resp {
    let auth = format!("Bearer {token}");
    call(
        hub,
        "POST",
        "/.well-known/mercure",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        form(pairs).as_bytes(),
    )
}

fn mpublish_ok(hub: &Hub, token: &str, pairs: &[(&str, &str)]) -> String {
    let r = mpublish(hub, token, pairs);
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Opens a Mercure subscription with `query` and a bearer token (if any).
fn msub(hub: &Hub, query: &str, token: Option<&str>, extra: &[(&str, &str)]) -> Sse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = extra.to_vec();
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    let mut s = Sse::open(hub.addr, &format!("/.well-known/mercure?{query}"), &headers);
    s.read_until("\r\n\r\n");
    s
}

/// The response head of an open stream, lower-cased header names.
fn head_of(s: &Sse) -> String {
    let text = String::from_utf8_lossy(&s.buf).to_string();
    let head = text
        .split_once("\r\n\r\n")
        .map_or(text.as_str(), |(h, _)| h);
    head.lines()
        .map(|l| match l.split_once(':') {
            Some((k, v)) => format!("{}:{v}", k.to_ascii_lowercase()),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn subscriber_v1() -> String {
    v1_token(&[(&["subscribe"], &[("exact", "/books/1")])])
}

#[test]
fn v1_publish_answers_the_id_as_text_and_streams_it_as_the_sse_id() {
    let hub = v1_hub(&[]);
    let sub_token = subscriber_v1();
    let mut s = msub(&hub, "match=/books/1", Some(&sub_token), &[]);
    let head = head_of(&s);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(
        head.contains("cache-control: private, no-cache, no-store, must-revalidate, max-age=0"),
        "{head}"
    );
    assert!(head.contains("x-accel-buffering: no"), "{head}");
    assert!(
        head.contains(&format!("link: <{HUB_URL}>; rel=\"mercure\"")),
        "{head}"
    );
    assert!(
        !head.contains("mercure-last-event-id"),
        "no cursor sent: {head}"
    );

    let r = mpublish(
        &hub,
        &publisher_v1(),
        &[("topic", "/books/1"), ("data", "a\nb\r\nc")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(
        r.body.starts_with("urn:uuid:"),
        "generated ids are IRIs: {}",
        r.body
    );
    let text = s.read_until(&format!("id: {}\n", r.body));
    assert!(
        text.contains(&format!("id: {}\ndata: a\ndata: b\ndata: c\n\n", r.body)),
        "one data line per input line: {text}"
    );

    let id = mpublish_ok(
        &hub,
        &publisher_v1(),
        &[
            ("topic", "/books/1"),
            ("data", "x"),
            ("id", "https://example.com/events/1"),
            ("type", "update"),
            ("retry", "2500"),
            ("unknown", "ignored"),
        ],
    );
    assert_eq!(id, "https://example.com/events/1");
    s.read_until("event: update\nretry: 2500\nid: https://example.com/events/1\ndata: x\n\n");
    // Heartbeats on an idle stream (heartbeat_secs = 1): a bare comment.
    s.read_until(":\n\n");
}

#[test]
fn v1_publish_refusals_have_the_spec_statuses_and_challenges() {
    let hub = v1_hub(&[
        "--max-topics",
        "4",
        "--max-topic-len",
        "64",
        "--max-body-bytes",
        "4096",
        "--max-data-bytes",
        "2048",
    ]);
    let publisher = publisher_v1();
    // No token: a bare Bearer challenge pointing at the metadata.
    let r = call(
        &hub,
        "POST",
        "/.well-known/mercure",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"topic=/a&data=x",
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            "Bearer resource_metadata=\"https://hub.example/.well-known/oauth-protected-resource/.well-known/mercure\""
        )
    );
    // Bad tokens: 401 invalid_token.
    let wrong_typ = sign(
        Some("JWT"),
        &json!({"iss": "i", "aud": HUB_URL, "exp": now() + 60}),
    );
    let wrong_aud = sign(
        Some("at+jwt"),
        &json!({"iss": "i", "aud": "https://other/", "exp": now() + 60}),
    );
    let no_exp = sign(Some("at+jwt"), &json!({"iss": "i", "aud": HUB_URL}));
    let no_iss = sign(Some("at+jwt"), &json!({"aud": HUB_URL, "exp": now() + 60}));
    let expired = sign(
        Some("at+jwt"),
        &json!({"iss": "i", "aud": HUB_URL, "exp": now() - 60}),
    );
    let bad_detail = sign(
        Some("at+jwt"),
        &json!({"iss": "i", "aud": HUB_URL, "exp": now() + 60, "authorization_details": [
            {"type": DETAIL, "actions": ["publish"], "topics": [{"match": "*"}]},
            {"type": DETAIL, "actions": [], "topics": [{"match": "/a"}]}]}),
    );
    let bad_type = sign(
        Some("at+jwt"),
        &json!({"iss": "i", "aud": HUB_URL, "exp": now() + 60, "authorization_details": [
            {"type": DETAIL, "actions": ["publish"], "topics": [{"match": "/a", "match_type": "regex"}]}]}),
    );
    for (name, t) in [
        ("typ", wrong_typ),
        ("aud", wrong_aud),
        ("exp", no_exp),
        ("iss", no_iss),
        ("expired", expired),
        ("malformed detail", bad_detail),
        ("match_type", bad_type),
        ("garbage", "a.b.c".to_string()),
    ] {
        let r = mpublish(&hub, &t, &[("topic", "/a"), ("data", "x")]);
        assert_eq!(r.status, 401, "{name}: {}", r.body);
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .starts_with("Bearer error=\"invalid_token\""),
            "{name}"
        );
    }
    // Other types of authorization details are ignored, unknown actions grant nothing.
    let other = sign(
        Some("at+jwt"),
        &json!({"iss": "i", "aud": HUB_URL, "exp": now() + 60, "authorization_details": [
            {"type": "https://other.example", "whatever": 1},
            {"type": DETAIL, "actions": ["fly"], "topics": [{"match": "*"}]}]}),
    );
    assert_eq!(mpublish(&hub, &other, &[("topic", "/a")]).status, 403);
    // A grant on the canonical topic only: 403 insufficient_scope, nothing dispatched.
    let only_a = v1_token(&[(&["publish"], &[("exact", "/a")])]);
    let mut s = msub(&hub, "match=*", Some(&subscriber_v1()), &[]);
    let r = mpublish(
        &hub,
        &only_a,
        &[("topic", "/a"), ("topic", "/b"), ("data", "no")],
    );
    assert_eq!(r.status, 403);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope")
    );
    let ok = mpublish_ok(&hub, &only_a, &[("topic", "/a"), ("data", "yes")]);
    let text = s.read_until(&format!("id: {ok}"));
    assert!(
        !text.contains("data: no"),
        "a refused publish dispatches nothing"
    );
    // 400s.
    for (name, pairs) in [
        ("star topic", vec![("topic", "*")]),
        (
            "hub path",
            vec![("topic", "/.well-known/mercure/subscriptions/x")],
        ),
        (
            "hub path normalised",
            vec![("topic", "/x/../.well-known/%6Dercure")],
        ),
        ("format char", vec![("topic", "/a\u{200b}")]),
        ("no topic", vec![("data", "x")]),
        ("hash id", vec![("topic", "/a"), ("id", "#1")]),
        ("earliest id", vec![("topic", "/a"), ("id", "earliest")]),
        ("control id", vec![("topic", "/a"), ("id", "a\u{1}b")]),
        ("mercure type", vec![("topic", "/a"), ("type", "mercure")]),
        ("retry", vec![("topic", "/a"), ("retry", "1e3")]),
        ("retry sign", vec![("topic", "/a"), ("retry", "+5")]),
    ] {
        let r = mpublish(&hub, &publisher, &pairs);
        assert_eq!(r.status, 400, "{name}: {}", r.body);
    }
    let auth = format!("Bearer {publisher}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let r = call(
        &hub,
        "POST",
        "/.well-known/mercure",
        &headers,
        b"topic=/a&data=%FF",
    );
    assert_eq!(r.status, 400, "invalid UTF-8 data");
    // 413s: body, field length, number of topics.
    let big = "x".repeat(5000);
    assert_eq!(
        mpublish(&hub, &publisher, &[("topic", "/a"), ("data", &big)]).status,
        413
    );
    let long = format!("/{}", "t".repeat(80));
    assert_eq!(mpublish(&hub, &publisher, &[("topic", &long)]).status, 413);
    let five: Vec<(&str, &str)> = ["/1", "/2", "/3", "/4", "/5"]
        .iter()
        .map(|t| ("topic", *t))
        .collect();
    assert_eq!(mpublish(&hub, &publisher, &five).status, 413);
    // Tokens in the URL are refused in 1.0.
    let r = call(
        &hub,
        "POST",
        &format!("/.well-known/mercure?authorization={publisher}"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"topic=/a",
    );
    assert_eq!(r.status, 400);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("invalid_request")
    );
}

#[test]
fn v1_subscribe_matchers_and_their_refusals() {
    let hub = v1_hub(&["--max-topics", "3", "--max-topic-len", "64"]);
    let t = subscriber_v1();
    let mut exact = msub(&hub, "match=/books/1", Some(&t), &[]);
    let mut exact2 = msub(&hub, "match_exact=/books/1", Some(&t), &[]);
    let mut url = msub(
        &hub,
        &format!("match_urlpattern={}", enc("https://example.com/books/:id")),
        Some(&t),
        &[],
    );
    let mut rel = msub(
        &hub,
        &format!("match_urlpattern={}", enc("/users/:u/books/*")),
        Some(&t),
        &[],
    );
    let mut all = msub(&hub, "match=*", Some(&t), &[]);
    let p = publisher_v1();
    let a = mpublish_ok(&hub, &p, &[("topic", "/books/1"), ("data", "a")]);
    let b = mpublish_ok(
        &hub,
        &p,
        &[("topic", "https://example.com/books/7"), ("data", "b")],
    );
    let c = mpublish_ok(&hub, &p, &[("topic", "/users/9/books/2"), ("data", "c")]);
    let d = mpublish_ok(
        &hub,
        &p,
        &[
            ("topic", "https://example.com/books/7/x"),
            ("topic", "/books/1"),
            ("data", "d"),
        ],
    );
    exact.read_until(&format!("id: {d}"));
    assert_eq!(exact.ids(), vec![a.clone(), d.clone()]);
    exact2.read_until(&format!("id: {d}"));
    assert_eq!(exact2.ids(), vec![a.clone(), d.clone()]);
    url.read_until(&format!("id: {b}"));
    rel.read_until(&format!("id: {c}"));
    all.read_until(&format!("id: {d}"));
    assert_eq!(all.ids(), vec![a, b.clone(), c.clone(), d.clone()]);
    // An alternate topic matched: the event arrives once.
    std::thread::sleep(Duration::from_millis(200));
    let _ = url.read_until("");
    assert!(!url.ids().contains(&c));
    // Refusals: 400.
    let long = format!("/{}", "x".repeat(80));
    for q in [
        "match_regex=.*".to_string(),
        "MATCHfoo=1".to_string(),
        "matchx=1".to_string(),
        "topic=/books/1".to_string(), // a 0.x parameter: no 1.0 matcher
        "".to_string(),
        format!("match={}", enc("/a\u{200b}")),
        "match=%01".to_string(),
        format!("match={long}"),
        "match=/1&match=/2&match=/3&match=/4".to_string(),
        format!("match_urlpattern={}", enc("https://e.example/(")),
        "match=%FF".to_string(),
    ] {
        let r = call(
            &hub,
            "GET",
            &format!("/.well-known/mercure?{q}"),
            &[("Authorization", &format!("Bearer {t}"))],
            b"",
        );
        assert_eq!(r.status, 400, "{q}: {}", r.body);
    }
    // Anonymous subscribers are refused unless enabled (401, bare challenge).
    let r = call(&hub, "GET", "/.well-known/mercure?match=/a", &[], b"");
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .starts_with("Bearer resource_metadata=")
    );
}

#[test]
fn v1_resume_by_publisher_id_native_id_and_earliest_with_the_cursor_header() {
    let hub = v1_hub(&[]);
    let t = subscriber_v1();
    let p = publisher_v1();
    let ids: Vec<String> = (1..=3)
        .map(|i| {
            mpublish_ok(
                &hub,
                &p,
                &[
                    ("topic", "/books/1"),
                    ("data", &i.to_string()),
                    ("id", &format!("urn:x:{i}")),
                ],
            )
        })
        .collect();
    assert_eq!(ids, ["urn:x:1", "urn:x:2", "urn:x:3"]);
    // The header (what a reconnecting EventSource sends).
    let mut s = msub(
        &hub,
        "match=/books/1",
        Some(&t),
        &[("Last-Event-ID", "urn:x:1")],
    );
    s.read_until("id: urn:x:3\n");
    assert_eq!(s.ids(), ["urn:x:2", "urn:x:3"]);
    assert!(
        head_of(&s).contains("mercure-last-event-id: urn:x:1"),
        "{}",
        head_of(&s)
    );
    // The query parameter (first connection), and the header winning over it.
    let mut s = msub(&hub, "match=/books/1&last_event_id=urn:x:2", Some(&t), &[]);
    s.read_until("id: urn:x:3\n");
    assert_eq!(s.ids(), ["urn:x:3"]);
    let mut s = msub(
        &hub,
        "match=/books/1&last_event_id=urn:x:1",
        Some(&t),
        &[("Last-Event-ID", "urn:x:2")],
    );
    s.read_until("id: urn:x:3\n");
    assert_eq!(s.ids(), ["urn:x:3"]);
    // lastEventID (0.x name) and lastEventId (polyfills) are accepted too.
    let mut s = msub(&hub, "match=/books/1&lastEventId=urn:x:2", Some(&t), &[]);
    s.read_until("id: urn:x:3\n");
    // earliest: the whole retained history, header "earliest".
    let mut s = msub(&hub, "match=/books/1&last_event_id=earliest", Some(&t), &[]);
    s.read_until("id: urn:x:3\n");
    assert_eq!(s.ids(), ["urn:x:1", "urn:x:2", "urn:x:3"]);
    assert!(head_of(&s).contains("mercure-last-event-id: earliest"));
    // Unknown id: "earliest" tells the client it lost continuity.
    let s = msub(&hub, "match=/books/1&last_event_id=urn:nope", Some(&t), &[]);
    assert!(
        head_of(&s).contains("mercure-last-event-id: earliest"),
        "{}",
        head_of(&s)
    );
    // A native publish's hub id works as a Mercure cursor too.
    let native = sign(
        None,
        &json!({"exp": now() + 60, "herald": {"publish": ["*"]}}),
    );
    let auth = format!("Bearer {native}");
    let (st, body) = request(
        hub.addr,
        "POST",
        "/publish?topic=/books/1",
        &[("Authorization", &auth)],
        b"native",
    );
    assert_eq!(st, 200, "{body}");
    let native_id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let four = mpublish_ok(&hub, &p, &[("topic", "/books/1"), ("data", "4")]);
    let mut s = msub(
        &hub,
        "match=/books/1",
        Some(&t),
        &[("Last-Event-ID", &native_id)],
    );
    s.read_until(&format!("id: {four}\n"));
    assert_eq!(s.ids(), std::slice::from_ref(&four));
    assert!(head_of(&s).contains(&format!("mercure-last-event-id: {native_id}")));
    // A present but empty cursor still gets the header.
    let s = msub(&hub, "match=/books/1&last_event_id=", Some(&t), &[]);
    assert!(
        head_of(&s).contains("mercure-last-event-id: "),
        "{}",
        head_of(&s)
    );
    // Publisher ids must be unique: a reused one is refused, the first stays.
    assert_eq!(
        mpublish(&hub, &p, &[("topic", "/books/1"), ("id", "urn:x:1")]).status,
        409
    );
}

#[test]
fn v1_private_updates_reach_only_subscribers_granted_one_of_their_topics() {
    let hub = v1_hub(&["--mercure-anonymous"]);
    let user42 = v1_token(&[(&["subscribe"], &[("urlpattern", "/users/42/*")])]);
    let user43 = v1_token(&[(&["subscribe"], &[("urlpattern", "/users/43/*")])]);
    let mut a = msub(&hub, "match=/books/1", Some(&user42), &[]);
    let mut b = msub(&hub, "match=/books/1", Some(&user43), &[]);
    let mut anon = msub(&hub, "match=/books/1", None, &[]);
    let p = publisher_v1();
    let private = mpublish_ok(
        &hub,
        &p,
        &[
            ("topic", "/books/1"),
            ("topic", "/users/42/books/1"),
            ("data", "secret"),
            ("private", ""),
        ],
    );
    let public = mpublish_ok(&hub, &p, &[("topic", "/books/1"), ("data", "public")]);
    a.read_until(&format!("id: {public}"));
    assert_eq!(a.ids(), [private.clone(), public.clone()]);
    b.read_until(&format!("id: {public}"));
    assert_eq!(b.ids(), std::slice::from_ref(&public));
    anon.read_until(&format!("id: {public}"));
    assert_eq!(anon.ids(), std::slice::from_ref(&public));
    // Replay re-checks private updates against the current token.
    let mut a2 = msub(
        &hub,
        "match=/books/1&last_event_id=earliest",
        Some(&user42),
        &[],
    );
    a2.read_until(&format!("id: {public}"));
    assert_eq!(a2.ids(), [private, public.clone()]);
    let mut b2 = msub(
        &hub,
        "match=/books/1&last_event_id=earliest",
        Some(&user43),
        &[],
    );
    b2.read_until(&format!("id: {public}"));
    assert_eq!(b2.ids(), [public]);
}

#[test]
fn v1_tokens_from_the_cookie_and_the_header_wins() {
    let hub = v1_hub(&[]);
    let good = subscriber_v1();
    let cookie = format!("__Secure-mercure_access_token={good}");
    let s = msub(&hub, "match=/books/1", None, &[("Cookie", &cookie)]);
    assert!(head_of(&s).starts_with("HTTP/1.1 200"), "{}", head_of(&s));
    let r = call(
        &hub,
        "GET",
        "/.well-known/mercure?match=/books/1",
        &[("Cookie", &cookie), ("Authorization", "Bearer a.b.c")],
        b"",
    );
    assert_eq!(
        r.status, 401,
        "the Authorization header wins over the cookie"
    );
    // A cookie-authenticated publish from a page on another site is refused (CSRF).
    let pc = format!("__Secure-mercure_access_token={}", publisher_v1());
    let r = call(
        &hub,
        "POST",
        "/.well-known/mercure",
        &[
            ("Cookie", &pc),
            ("Origin", "https://evil.example"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"topic=/a",
    );
    assert_eq!(r.status, 403);
    let r = call(
        &hub,
        "POST",
        "/.well-known/mercure",
        &[
            ("Cookie", &pc),
            ("Origin", ORIGIN),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"topic=/a",
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn v1_stream_ends_at_token_expiry() {
    let hub = v1_hub(&[]);
    let short = sign(
        Some("at+jwt"),
        &json!({"iss": "i", "aud": HUB_URL, "exp": now() + 2, "authorization_details": []}),
    );
    let mut s = msub(&hub, "match=/a", Some(&short), &[]);
    let start = std::time::Instant::now();
    s.read_to_close();
    assert!(start.elapsed() < Duration::from_secs(8));
}

#[test]
fn v1_subscription_events_and_api() {
    let hub = v1_hub(&[]);
    let watcher = v1_token(&[(
        &["subscribe"],
        &[("urlpattern", "/.well-known/mercure/subscriptions{/*}?")],
    )]);
    let mut w = msub(
        &hub,
        &format!(
            "match_urlpattern={}",
            enc("/.well-known/mercure/subscriptions{/*}?")
        ),
        Some(&watcher),
        &[],
    );
    let x = msub(&hub, "match=/books/1", Some(&subscriber_v1()), &[]);
    let text = w.read_until("\"match\":\"/books/1\"");
    assert!(text.contains("event: mercure\n"), "{text}");
    let data = text
        .lines()
        .rev()
        .find(|l| l.contains("\"match\":\"/books/1\""))
        .unwrap();
    let doc: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(doc["type"], "subscription");
    assert_eq!(doc["match_type"], "exact");
    assert_eq!(doc["active"], true);
    assert_eq!(doc["payload"], json!({"user": "u1"}));
    let subscriber = doc["subscriber"].as_str().unwrap().to_string();
    assert!(subscriber.starts_with("urn:uuid:"));
    let topic = doc["id"].as_str().unwrap().to_string();
    assert_eq!(
        topic,
        format!(
            "/.well-known/mercure/subscriptions/exact/%2Fbooks%2F1/{}",
            enc(&subscriber).replace(':', "%3A")
        )
    );
    // The API: collection, filtered collection, one subscription, 404.
    let auth = format!("Bearer {watcher}");
    let r = call(
        &hub,
        "GET",
        "/.well-known/mercure/subscriptions",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let link = r.header("link").unwrap();
    assert!(
        link.starts_with(&format!("<{HUB_URL}>; rel=\"mercure\"; last-event-id=\"")),
        "{link}"
    );
    let all: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(all["type"], "subscriptions");
    let subs = all["subscriptions"].as_array().unwrap();
    assert!(subs.iter().any(|s| s["subscriber"] == subscriber.as_str()));
    let r = call(&hub, "GET", &topic, &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap()["match"],
        "/books/1"
    );
    let r = call(
        &hub,
        "GET",
        "/.well-known/mercure/subscriptions/exact/%2Fbooks%2F1",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap()["subscriptions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = call(
        &hub,
        "GET",
        "/.well-known/mercure/subscriptions/exact/%2Fnope/urn%3Auuid%3A0",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 404);
    // Access needs a subscribe grant on the path; no token: 401.
    let r = call(
        &hub,
        "GET",
        "/.well-known/mercure/subscriptions",
        &[("Authorization", &format!("Bearer {}", subscriber_v1()))],
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        call(&hub, "GET", "/.well-known/mercure/subscriptions", &[], b"").status,
        401
    );
    // The end of the connection: an inactive event.
    drop(x.stream.shutdown(std::net::Shutdown::Both));
    let text = w.read_until("\"active\":false");
    assert!(text.contains(&subscriber));
    // Not listed any more.
    let r = call(&hub, "GET", &topic, &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 404);
}

#[test]
fn v1_discovery_metadata_and_cors() {
    let hub = v1_hub(&[]);
    let r = call(
        &hub,
        "GET",
        "/.well-known/oauth-protected-resource/.well-known/mercure",
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    let doc: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(doc["resource"], HUB_URL);
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    assert_eq!(
        doc["authorization_details_types_supported"],
        json!([DETAIL])
    );
    assert_eq!(doc["mercure_cookie"], "__Secure-mercure_access_token");
    assert_eq!(
        doc["mercure_matcher_types_supported"],
        json!(["exact", "urlpattern"])
    );
    assert_eq!(doc["mercure_subscriptions"], true);
    // Preflight.
    let r = call(
        &hub,
        "OPTIONS",
        "/.well-known/mercure",
        &[
            ("Origin", ORIGIN),
            ("Access-Control-Request-Method", "GET"),
            (
                "Access-Control-Request-Headers",
                "last-event-id, cache-control",
            ),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    let methods = r.header("access-control-allow-methods").unwrap();
    for m in ["GET", "HEAD", "POST", "QUERY"] {
        assert!(methods.contains(m), "{methods}");
    }
    let allowed = r.header("access-control-allow-headers").unwrap();
    for h in ["Authorization", "Cache-Control", "Last-Event-ID"] {
        assert!(allowed.contains(h), "{allowed}");
    }
    // A credentialed cross-origin subscription can read the cursor header.
    let s = msub(
        &hub,
        "match=/a&last_event_id=earliest",
        Some(&subscriber_v1()),
        &[("Origin", ORIGIN)],
    );
    let head = head_of(&s);
    assert!(
        head.contains(&format!("access-control-allow-origin: {ORIGIN}")),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-credentials: true"),
        "{head}"
    );
    let expose = head
        .lines()
        .find(|l| l.starts_with("access-control-expose-headers"))
        .unwrap();
    assert!(
        expose.contains("Mercure-Last-Event-ID") && expose.contains("Link"),
        "{expose}"
    );
    // HEAD subscribes without a body.
    let r = call(
        &hub,
        "HEAD",
        "/.well-known/mercure?match=/a&last_event_id=earliest",
        &[("Authorization", &format!("Bearer {}", subscriber_v1()))],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("mercure-last-event-id"), Some("earliest"));
    assert_eq!(r.body, "");
    // Other methods: 405.
    let r = call(&hub, "PUT", "/.well-known/mercure", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST, QUERY, OPTIONS"));
}

#[test]
fn mercure_and_native_clients_share_one_hub() {
    let hub = Hub::start(&["--mercure-hub-url", HUB_URL]);
    // A native SSE subscriber gets a Mercure publish; a Mercure subscriber a native one.
    let mut native = Sse::open(hub.addr, "/sse?topic=/books/1", &[]);
    native.read_until(": herald");
    let mut m = msub(&hub, "match=/books/1", None, &[]);
    let id = mpublish_ok(
        &hub,
        "dev",
        &[
            ("topic", "/books/1"),
            ("data", "from mercure"),
            ("id", "urn:m:1"),
        ],
    );
    native.read_until("id: urn:m:1\ndata: from mercure\n\n");
    let (st, body) = request(
        hub.addr,
        "POST",
        "/publish?topic=/books/1",
        &[],
        b"from native",
    );
    assert_eq!(st, 200);
    let nid = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    m.read_until(&format!("id: {nid}\ndata: from native\n\n"));
    assert_eq!(m.ids(), [id, nid]);
    // A long-poller too.
    let (st, body) = request(
        hub.addr,
        "GET",
        "/poll?topic=/books/1&since=urn:m:1&timeout=0",
        &[],
        b"",
    );
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("from native"), "{body}");
}

#[test]
fn mercure_can_be_turned_off() {
    let hub = Hub::start(&["--mercure", "false"]);
    assert_eq!(
        call(&hub, "GET", "/.well-known/mercure?match=/a", &[], b"").status,
        404
    );
}

// ---- 0.x (draft-07) ----

#[test]
fn legacy_publish_and_subscribe_with_templates_and_star() {
    let hub = legacy_hub(&[]);
    let sub = legacy_token(&[], &["*"]);
    let mut tpl = msub(
        &hub,
        &format!("topic={}", enc("https://example.com/books/{id}")),
        Some(&sub),
        &[],
    );
    // Without subscribe grants: public updates only (not the subscription events).
    let mut star = msub(&hub, "topic=*", Some(&legacy_token(&[], &[])), &[]);
    let mut exact = msub(
        &hub,
        &format!("topic={}", enc("/a/{literal}")),
        Some(&sub),
        &[],
    );
    let p = legacy_token(&["*"], &[]);
    let a = mpublish_ok(
        &hub,
        &p,
        &[("topic", "https://example.com/books/1"), ("data", "a")],
    );
    let b = mpublish_ok(&hub, &p, &[("topic", "/a/{literal}"), ("data", "b")]);
    let c = mpublish_ok(
        &hub,
        &p,
        &[("topic", "https://example.com/books/1/x"), ("data", "c")],
    );
    tpl.read_until(&format!("id: {a}"));
    star.read_until(&format!("id: {c}"));
    assert_eq!(star.ids(), [a.clone(), b.clone(), c]);
    exact.read_until(&format!("id: {b}"));
    std::thread::sleep(Duration::from_millis(200));
    let _ = tpl.read_until("");
    assert_eq!(tpl.ids(), [a]);
    // match= is not a 0.x parameter; unknown parameters are ignored.
    let r = call(
        &hub,
        "GET",
        "/.well-known/mercure?match=/a&matchx=1",
        &[("Authorization", &format!("Bearer {sub}"))],
        b"",
    );
    assert_eq!(r.status, 400, "no topic");
    // The 0.x hub also refuses topics under its own path (forged subscription
    // events) and ids starting with #.
    let forged = [("topic", "/.well-known/mercure/subscriptions/%2Fx/y")];
    assert_eq!(mpublish(&hub, &p, &forged).status, 400);
    assert_eq!(
        mpublish(&hub, &p, &[("topic", "/x"), ("id", "#1")]).status,
        400
    );
    // Publish grants are 0.x selectors (templates).
    let books = legacy_token(&["https://example.com/books/{id}"], &[]);
    assert_eq!(
        mpublish(&hub, &books, &[("topic", "https://example.com/books/2")]).status,
        200
    );
    let r = mpublish(
        &hub,
        &books,
        &[
            ("topic", "https://example.com/books/2"),
            ("topic", "/other"),
        ],
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let r = call(
        &hub,
        "POST",
        "/.well-known/mercure",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"topic=/a",
    );
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_none());
    // No RFC 9728 metadata on a 0.x hub.
    assert_eq!(
        call(
            &hub,
            "GET",
            "/.well-known/oauth-protected-resource/.well-known/mercure",
            &[],
            b""
        )
        .status,
        404
    );
}

#[test]
fn legacy_tokens_in_header_query_and_cookie_and_the_cursor_header() {
    let hub = legacy_hub(&[]);
    let p = legacy_token(&["*"], &[]);
    let sub = legacy_token(&[], &["/books/{id}"]);
    let one = mpublish_ok(
        &hub,
        &p,
        &[("topic", "/books/1"), ("data", "1"), ("private", "on")],
    );
    let two = mpublish_ok(&hub, &p, &[("topic", "/books/1"), ("data", "2")]);
    // authorization query parameter, lastEventID, Last-Event-ID response header.
    let mut s = msub(
        &hub,
        &format!("topic=/books/1&authorization={sub}&lastEventID=earliest"),
        None,
        &[],
    );
    s.read_until(&format!("id: {two}"));
    assert_eq!(
        s.ids(),
        [one.clone(), two.clone()],
        "private update granted by a template"
    );
    let head = head_of(&s);
    assert!(head.contains("last-event-id: earliest"), "{head}");
    assert!(!head.contains("mercure-last-event-id"), "{head}");
    // mercureAuthorization cookie; Last-Event-ID request header.
    let cookie = format!("mercureAuthorization={sub}");
    let mut s = msub(
        &hub,
        "topic=/books/1",
        None,
        &[("Cookie", &cookie), ("Last-Event-ID", &one)],
    );
    s.read_until(&format!("id: {two}"));
    assert_eq!(s.ids(), std::slice::from_ref(&two));
    assert!(head_of(&s).contains(&format!("last-event-id: {one}")));
    // A token without the subscribe grant does not see the private update.
    let other = legacy_token(&[], &["/users/{id}"]);
    let mut s = msub(
        &hub,
        "topic=/books/1&lastEventID=earliest",
        Some(&other),
        &[],
    );
    s.read_until(&format!("id: {two}"));
    assert_eq!(s.ids(), [two]);
    // The namespaced claim works too; a malformed mercure claim is a 401.
    let ns = sign(
        None,
        &json!({"exp": now() + 60, "https://mercure.rocks/": {"publish": ["*"]}}),
    );
    assert_eq!(mpublish(&hub, &ns, &[("topic", "/n")]).status, 200);
    let bad = sign(
        None,
        &json!({"exp": now() + 60, "mercure": {"publish": "*"}}),
    );
    assert_eq!(mpublish(&hub, &bad, &[("topic", "/n")]).status, 401);
}

#[test]
fn legacy_subscription_events_and_api_are_json_ld() {
    let hub = legacy_hub(&[]);
    let watcher = legacy_token(
        &[],
        &["/.well-known/mercure/subscriptions{/topic}{/subscriber}"],
    );
    let mut w = msub(
        &hub,
        &format!(
            "topic={}",
            enc("/.well-known/mercure/subscriptions{/topic}{/subscriber}")
        ),
        Some(&watcher),
        &[],
    );
    let _x = msub(&hub, "topic=/books/1", Some(&legacy_token(&[], &[])), &[]);
    let text = w.read_until("\"topic\":\"/books/1\"");
    let data = text
        .lines()
        .rev()
        .find(|l| l.contains("\"topic\":\"/books/1\""))
        .unwrap();
    let doc: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(doc["@context"], "https://mercure.rocks/");
    assert_eq!(doc["type"], "Subscription");
    assert_eq!(doc["active"], true);
    assert!(
        !text.contains("event: mercure"),
        "0.x events use the default type"
    );
    let id = doc["id"].as_str().unwrap();
    assert!(
        id.starts_with("/.well-known/mercure/subscriptions/%2Fbooks%2F1/urn%3Auuid%3A"),
        "{id}"
    );
    let r = call(
        &hub,
        "GET",
        "/.well-known/mercure/subscriptions",
        &[("Authorization", &format!("Bearer {watcher}"))],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/ld+json"));
    let all: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(all["type"], "Subscriptions");
    assert!(all["lastEventID"].is_string());
    assert!(
        all["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["topic"] == "/books/1")
    );
}

#[test]
fn earliest_replays_the_retained_history_after_retention_trimmed_it() {
    let hub = v1_hub(&["--retention-events-per-topic", "2"]);
    let p = publisher_v1();
    let ids: Vec<String> = (0..4)
        .map(|i| mpublish_ok(&hub, &p, &[("topic", "/books/1"), ("data", &i.to_string())]))
        .collect();
    let mut s = msub(
        &hub,
        "match=/books/1&last_event_id=earliest",
        Some(&subscriber_v1()),
        &[],
    );
    s.read_until(&format!("id: {}\n", ids[3]));
    assert_eq!(s.ids(), ids[2..]);
    assert!(head_of(&s).contains("mercure-last-event-id: earliest"));
    // A discarded id: "earliest", and nothing replayed (the client knows it lost some).
    let s = msub(
        &hub,
        "match=/books/1",
        Some(&subscriber_v1()),
        &[("Last-Event-ID", &ids[0])],
    );
    assert!(
        head_of(&s).contains("mercure-last-event-id: earliest"),
        "{}",
        head_of(&s)
    );
}

/// A subscription on a keep-alive connection's later request is served by
/// hyper (not the lean path): same headers, same frames.
#[tokio::test(flavor = "current_thread")]
async fn subscriptions_through_hyper_match_the_lean_path() {
    let hub = v1_hub(&[]);
    let client = reqwest::Client::builder().http1_only().build().unwrap();
    let base = format!("http://{}", hub.addr);
    let p = publisher_v1();
    let publish = |data: &'static str, id: &'static str| {
        client
            .post(format!("{base}/.well-known/mercure"))
            .bearer_auth(&p)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form(&[("topic", "/books/1"), ("data", data), ("id", id)]))
            .send()
    };
    assert_eq!(
        publish("one", "urn:h:1")
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "urn:h:1"
    );
    let mut resp = client
        .get(format!("{base}/.well-known/mercure?match=/books/1"))
        .bearer_auth(subscriber_v1())
        .header("Last-Event-ID", "earliest")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["mercure-last-event-id"], "earliest");
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text.contains("id: urn:h:1\ndata: one\n\n") {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    // The safe QUERY method: parameters in a form body, the query string's cursor wins.
    let query = reqwest::Method::from_bytes(b"QUERY").unwrap();
    let mut resp = client
        .request(
            query,
            format!("{base}/.well-known/mercure?last_event_id=earliest"),
        )
        .bearer_auth(subscriber_v1())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("match=%2Fbooks%2F1&last_event_id=urn%3Ah%3A1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["mercure-last-event-id"], "earliest");
    let mut text = String::new();
    while !text.contains("id: urn:h:1\ndata: one\n\n") {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}
