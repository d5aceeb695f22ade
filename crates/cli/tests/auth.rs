//! Without `--dev`, tokens decide: who may publish, who may subscribe to
//! what, which private events reach whom, and when a stream must end. Checked
//! on every front door (publish, SSE, NDJSON, polling, WebSocket, BOSH)
//! against the real binary, with tokens minted by herald-auth.
#![allow(clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use common::{Hub, Sse, request};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_websockets::{ClientBuilder, CloseCode, Message};

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

fn start(extra: &[&str]) -> Hub {
    Hub::start_secure(SECRET, extra)
}

/// A token signed with the hub's secret, valid for `ttl` from `now`.
fn token_at(publish: &[&str], subscribe: &[&str], ttl: Duration, now: SystemTime) -> String {
    common::mint_token(SECRET, publish, subscribe, ttl, now)
}

fn token(publish: &[&str], subscribe: &[&str]) -> String {
    token_at(
        publish,
        subscribe,
        Duration::from_secs(3600),
        SystemTime::now(),
    )
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// POST /publish?{query} with an optional bearer token; returns (status, code).
fn publish(addr: SocketAddr, query: &str, token: Option<&str>) -> (u16, Value) {
    let auth = token.map(bearer);
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let (status, body) = request(
        addr,
        "POST",
        &format!("/publish?{query}"),
        &headers,
        b"data",
    );
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[test]
fn publishing_needs_a_token_that_covers_every_topic() {
    let hub = start(&[]);
    let a = hub.addr;
    let writer = token(&["news/*"], &[]);
    let (s, b) = publish(a, "topic=news/1", None);
    assert_eq!((s, b["error"].as_str()), (401, Some("unauthorized")));
    let (s, b) = publish(a, "topic=news/1", Some(&writer));
    assert_eq!(s, 200, "{b}");
    let (s, b) = publish(a, "topic=news/1&topic=sports", Some(&writer));
    assert_eq!(
        (s, b["error"].as_str()),
        (403, Some("forbidden")),
        "every topic must be granted"
    );
    let (s, b) = publish(a, "topic=news/1", Some(&token(&[], &["news/*"])));
    assert_eq!(
        (s, b["error"].as_str()),
        (403, Some("forbidden")),
        "subscribe grants do not publish"
    );

    let past = SystemTime::now() - Duration::from_secs(7200);
    let expired = token_at(&["news/*"], &[], Duration::from_secs(60), past);
    assert_eq!(
        publish(a, "topic=news/1", Some(&expired)).1["error"],
        "token_expired"
    );
    let other_key = common::mint_token(
        "another-secret-another-secret-another",
        &["*"],
        &[],
        Duration::from_secs(60),
        SystemTime::now(),
    );
    assert_eq!(
        publish(a, "topic=news/1", Some(&other_key)).1["error"],
        "token_bad_signature"
    );
    // alg "none": a header and claims with no signature.
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(format!(
            r#"{{"exp":{},"herald":{{"publish":["*"]}}}}"#,
            unix(SystemTime::now()) + 600
        )
        .as_bytes())
    );
    assert_eq!(
        publish(a, "topic=news/1", Some(&unsigned)).1["error"],
        "token_unsigned"
    );
    let (s, b) = publish(a, &format!("topic=news/1&access_token={writer}"), None);
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("token_in_url_disabled"))
    );
    let (s, _) = request(
        a,
        "POST",
        "/publish?topic=x",
        &[("Authorization", "Basic abc")],
        b"d",
    );
    assert_eq!(s, 401);
}

#[test]
fn subscribing_needs_a_token_unless_anonymous_subscribing_is_on() {
    let hub = start(&[]);
    let a = hub.addr;
    let (s, b) = request(a, "GET", "/poll?topic=news&timeout=0", &[], b"");
    assert_eq!(s, 401, "{b}");
    let reader = bearer(&token(&[], &["news"]));
    let (s, _) = request(
        a,
        "GET",
        "/poll?topic=news&timeout=0",
        &[("Authorization", &reader)],
        b"",
    );
    assert_eq!(s, 200);
    let (s, b) = request(
        a,
        "GET",
        "/poll?topic=sports&timeout=0",
        &[("Authorization", &reader)],
        b"",
    );
    assert_eq!(s, 403, "{b}");
    // The lean SSE path reads the token too: header, then cookie.
    let sse = String::from_utf8_lossy(&common::raw_request(a, "GET", "/sse?topic=news", &[], b""))
        .to_string();
    assert!(sse.starts_with("HTTP/1.1 401"), "{sse}");
    let cookie = format!("herald_token={}", token(&[], &["news"]));
    let mut ok = Sse::open(a, "/sse?topic=news", &[("Cookie", &cookie)]);
    assert!(ok.read_until(": herald").starts_with("HTTP/1.1 200"));
}

#[test]
fn private_events_reach_only_subscribers_whose_token_covers_them() {
    let hub = start(&["--anonymous-subscribe"]);
    let a = hub.addr;
    let writer = token(&["*"], &[]);
    let mut anonymous = Sse::open(a, "/sse?topic=room", &[]);
    anonymous.read_until(": herald");
    let member = format!("Bearer {}", token(&[], &["room", "team/**"]));
    let mut member_sse = Sse::open(a, "/sse?topic=room", &[("Authorization", &member)]);
    member_sse.read_until(": herald");
    let mut ndjson = Sse::open(a, "/stream?topic=room", &[("Authorization", &member)]);
    ndjson.read_until("heartbeat");

    let secret = publish(a, "topic=room&private=1", Some(&writer)).1["id"]
        .as_str()
        .unwrap()
        .to_string();
    let public = publish(a, "topic=room", Some(&writer)).1["id"]
        .as_str()
        .unwrap()
        .to_string();

    member_sse.read_until(&public);
    assert_eq!(member_sse.ids(), vec![secret.clone(), public.clone()]);
    ndjson.read_until(&public);
    assert!(ndjson.read_until(&public).contains(&secret));
    anonymous.read_until(&public);
    assert_eq!(
        anonymous.ids(),
        vec![public.clone()],
        "anonymous sees public events only"
    );

    // History too: a poll from the start hides the private event from anonymous pollers.
    let from = format!("{}-0", secret.split('-').next().unwrap());
    let (_, body) = request(
        a,
        "GET",
        &format!("/poll?topic=room&since={from}&timeout=0"),
        &[],
        b"",
    );
    let answer: Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![public.as_str()]);
}

#[test]
fn a_stream_ends_when_its_token_expires() {
    let hub = start(&[]);
    let short = bearer(&token_at(
        &[],
        &["t"],
        Duration::from_secs(2),
        SystemTime::now(),
    ));
    let opened = Instant::now();
    let mut sse = Sse::open(hub.addr, "/sse?topic=t", &[("Authorization", &short)]);
    sse.read_until(": herald");
    sse.read_to_close();
    let lived = opened.elapsed();
    assert!(
        lived >= Duration::from_millis(900) && lived < Duration::from_secs(4),
        "{lived:?}"
    );
}

#[tokio::test]
async fn websocket_and_bosh_sessions_obey_the_token() {
    let hub = start(&[]);
    let a = hub.addr;
    // No token: the upgrade itself is refused.
    let refused = ClientBuilder::new()
        .uri(&format!("ws://{a}/ws?topic=t"))
        .unwrap()
        .connect()
        .await;
    assert!(refused.is_err());

    let t = token_at(
        &["mine"],
        &["t", "mine"],
        Duration::from_secs(3),
        SystemTime::now(),
    );
    let (mut ws, _) = ClientBuilder::new()
        .uri(&format!("ws://{a}/ws?topic=t"))
        .unwrap()
        .add_header(hyper_header("authorization"), bearer(&t).parse().unwrap())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut ask = async |op: Value| {
        ws.send(Message::text(op.to_string())).await.unwrap();
        loop {
            let m = ws.next().await.unwrap().unwrap();
            if let Some(text) = m.as_text() {
                return serde_json::from_str::<Value>(text).unwrap();
            }
        }
    };
    assert_eq!(
        ask(json!({"op": "subscribe", "topics": ["other"], "ref": 1})).await["error"],
        "forbidden"
    );
    assert_eq!(
        ask(json!({"op": "publish", "topic": "t", "data": "x", "ref": 2})).await["error"],
        "forbidden"
    );
    let ok = ask(json!({"op": "publish", "topic": "mine", "data": "x", "ref": 3})).await;
    assert_eq!(ok["op"], "ok", "{ok}");
    // The token expires: the socket is closed with 1008.
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let m = ws.next().await.unwrap().unwrap();
            if let Some((code, _)) = m.as_close() {
                return code;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(close, CloseCode::POLICY_VIOLATION);

    // BOSH: the creation request's token governs the session.
    let body = "<body xmlns='http://jabber.org/protocol/httpbind' rid='1' wait='5' hold='1' ver='1.6'>\
        <op xmlns='urn:herald:1'>{\"op\":\"subscribe\",\"topics\":[\"other\"]}</op></body>";
    let (status, _) =
        tokio::task::spawn_blocking(move || request(a, "POST", "/bosh", &[], body.as_bytes()))
            .await
            .unwrap();
    assert_eq!(status, 401, "no token, no session");
    let t = bearer(&token(&[], &["t"]));
    let (status, text) = tokio::task::spawn_blocking(move || {
        request(
            a,
            "POST",
            "/bosh",
            &[("Authorization", &t)],
            body.as_bytes(),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("forbidden"), "{text}");
}

fn hyper_header(name: &'static str) -> http::HeaderName {
    http::HeaderName::from_static(name)
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn the_cli_sends_its_token_on_every_transport() {
    let hub = start(&[]);
    let url = format!("http://{}", hub.addr);
    let bin = env!("CARGO_BIN_EXE_herald");
    let both = token(&["cli"], &["cli"]);
    let refused = std::process::Command::new(bin)
        .args(["pub", "--hub", &url, "cli", "x"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"));
    let first = std::process::Command::new(bin)
        .args(["pub", "--hub", &url, "--token", &both, "cli", "first"])
        .output()
        .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first_id = String::from_utf8(first.stdout).unwrap().trim().to_string();
    let from = format!("{}-0", first_id.split('-').next().unwrap());
    for transport in ["sse", "poll", "ws"] {
        let out = common::spawn_bounded(
            std::process::Command::new(bin)
                .args([
                    "sub",
                    "--hub",
                    &url,
                    "--transport",
                    transport,
                    "--count",
                    "1",
                ])
                .args(["--last-event-id", &from, "--json", "cli"])
                .env("HERALD_TOKEN", &both),
        )
        .wait_with_output()
        .unwrap();
        let line: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        assert_eq!(
            line["id"],
            first_id.as_str(),
            "{transport}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
