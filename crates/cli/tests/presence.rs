//! Presence against the real binary: subscriber counts follow real SSE and
//! WebSocket subscribers up and down; "who" lists the payload claims of
//! subscribers only to tokens with presence rights; join and leave events
//! arrive on `$herald/presence/<topic>`; `$herald/` topics are reserved
//! (no publishing; stats for admin tokens only).
// Wall-clock deadlines on a separate process (see common/mod.rs).
#![allow(clippy::disallowed_types)]

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::*;
use herald_auth::{Algorithm, Grants, MintOptions, SigningKey, TopicPattern, mint_with};
use serde_json::{Value, json};
use tokio_websockets::ClientBuilder;

const SECRET: &str = "presence-test-secret-of-at-least-32-bytes";

fn token(subscribe: &[&str], presence: bool, admin: bool, payload: Option<Value>) -> String {
    let key = SigningKey::from_secret(SECRET.as_bytes(), Algorithm::HS256).unwrap();
    let grants = Grants {
        subscribe: subscribe
            .iter()
            .map(|p| TopicPattern::parse(p).unwrap())
            .collect(),
        publish: vec![TopicPattern::parse("*").unwrap()],
        presence,
        admin,
    };
    let opts = MintOptions {
        payload,
        ..MintOptions::default()
    };
    mint_with(
        &key,
        &grants,
        Duration::from_secs(300),
        SystemTime::now(),
        &opts,
    )
    .unwrap()
}

fn presence(hub: &Hub, token: &str) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let (status, body) = request(
        hub.addr,
        "GET",
        "/presence?topic=room",
        &[("Authorization", &auth)],
        b"",
    );
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Waits until `want` subscribe and, for a token that sees who, until the
/// registry lists as many (a subscription's cursor exists a moment before
/// its connection is registered).
fn wait_count(hub: &Hub, token: &str, want: u64) -> Value {
    let start = Instant::now();
    loop {
        let (status, v) = presence(hub, token);
        assert_eq!(status, 200, "{v}");
        let who_ok = v["who"].as_array().is_none_or(|w| w.len() as u64 == want);
        if v["subscribers"] == want && who_ok {
            return v;
        }
        assert!(
            start.elapsed() < WAIT,
            "subscribers never became {want}: {v}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The next SSE `data:` payload after what was already consumed.
fn next_data(sse: &mut Sse, consumed: &mut usize) -> Value {
    let start = Instant::now();
    loop {
        let text = String::from_utf8_lossy(&sse.buf[*consumed..]).to_string();
        if let Some(i) = text.find("data: ")
            && let Some(end) = text[i..].find("\n\n")
        {
            *consumed += i + end + 2;
            return serde_json::from_str(&text[i + 6..i + end]).unwrap();
        }
        assert!(start.elapsed() < WAIT, "no event; got {text:?}");
        assert!(sse.read_some(), "the presence stream closed");
    }
}

#[test]
fn counts_who_and_join_leave_events() {
    let hub = Hub::start_secure(SECRET, &["--presence-events"]);
    let plain = token(&["room"], false, false, None);
    let seer = token(&["room"], true, false, None);
    let (status, v) = presence(&hub, &token(&["elsewhere"], true, false, None));
    assert_eq!(status, 403, "who may not subscribe may not ask: {v}");
    assert_eq!(wait_count(&hub, &plain, 0)["who"], Value::Null);

    // A watcher of the room's presence events (needs presence rights).
    let watch = format!("Bearer {seer}");
    let (status, _) = request(
        hub.addr,
        "GET",
        "/sse?topic=$herald/presence/room",
        &[("Authorization", &format!("Bearer {plain}"))],
        b"",
    );
    assert_eq!(status, 403);
    let mut events = Sse::open(
        hub.addr,
        "/sse?topic=$herald/presence/room",
        &[("Authorization", &watch)],
    );
    events.read_until("retry: ");
    let mut consumed = events.buf.len();

    let ann = format!(
        "Bearer {}",
        token(&["room"], false, false, Some(json!({"name": "ann"})))
    );
    let mut sse = Sse::open(hub.addr, "/sse?topic=room", &[("Authorization", &ann)]);
    sse.read_until("retry: ");
    let v = wait_count(&hub, &seer, 1);
    assert_eq!(v["who"], json!([{"name": "ann"}]));
    assert_eq!(
        wait_count(&hub, &plain, 1).get("who"),
        None,
        "no presence right: count only"
    );
    let joined = next_data(&mut events, &mut consumed);
    assert_eq!(joined["topic"], "room");
    assert_eq!(
        (joined["joined"].as_u64(), joined["left"].as_u64()),
        (Some(1), Some(0)),
        "{joined}"
    );
    assert_eq!(joined["joined_who"], json!([{"name": "ann"}]));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bob = token(&["room"], false, false, Some(json!({"name": "bob"})));
    let uri = format!("ws://{}/ws?topic=room", hub.addr);
    let ws = rt.block_on(async {
        ClientBuilder::new()
            .uri(&uri)
            .unwrap()
            .add_header(
                "authorization".try_into().unwrap(),
                format!("Bearer {bob}").try_into().unwrap(),
            )
            .unwrap()
            .connect()
            .await
            .unwrap()
            .0
    });
    let v = wait_count(&hub, &seer, 2);
    let mut names: Vec<&str> = v["who"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["ann", "bob"]);
    let joined = next_data(&mut events, &mut consumed);
    assert_eq!(joined["joined_who"], json!([{"name": "bob"}]), "{joined}");
    assert_eq!(joined["subscribers"], 2);

    drop(sse);
    rt.block_on(async { drop(ws) });
    let v = wait_count(&hub, &seer, 0);
    assert_eq!(v["who"], json!([]));
    // Both leaves within a second or two: one or two coalesced events.
    let mut left = 0;
    let mut who = Vec::new();
    while left < 2 {
        let ev = next_data(&mut events, &mut consumed);
        left += ev["left"].as_u64().unwrap();
        who.extend(
            ev["left_who"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["name"].as_str().unwrap().to_string()),
        );
    }
    who.sort();
    assert_eq!(who, vec!["ann", "bob"]);
}

#[test]
fn herald_topics_are_reserved() {
    let hub = Hub::start(&[]);
    let (status, body) = publish(hub.addr, "/publish?topic=$herald/stats", "forged");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("reserved_topic"), "{body}");
    let (status, body) = publish(hub.addr, "/publish?topic=$herald/presence/x", "forged");
    assert_eq!(status, 403, "{body}");
    let (status, body) = request(
        hub.addr,
        "GET",
        "/poll?topic=$herald/nothing&timeout=0",
        &[],
        b"",
    );
    assert_eq!(status, 403, "{body}");

    let secure = Hub::start_secure(SECRET, &[]);
    let not_admin = format!("Bearer {}", token(&["*"], true, false, None));
    let (status, body) = request(
        secure.addr,
        "GET",
        "/poll?topic=$herald/stats&timeout=0",
        &[("Authorization", &not_admin)],
        b"",
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("admin"), "{body}");
}

#[test]
fn websocket_subscribe_operations_update_who() {
    let hub = Hub::start_secure(SECRET, &[]);
    let seer = token(&["room"], true, false, None);
    let cat = token(&["room"], false, false, Some(json!({"name": "cat"})));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use futures_util::{SinkExt, StreamExt};
        let uri = format!("ws://{}/ws", hub.addr);
        let mut ws = ClientBuilder::new()
            .uri(&uri)
            .unwrap()
            .add_header(
                "authorization".try_into().unwrap(),
                format!("Bearer {cat}").try_into().unwrap(),
            )
            .unwrap()
            .connect()
            .await
            .unwrap()
            .0;
        let subscribe = json!({"op": "subscribe", "topics": ["room"], "ref": 1});
        ws.send(tokio_websockets::Message::text(subscribe.to_string()))
            .await
            .unwrap();
        let seen = {
            let seer = seer.clone();
            let hub_addr = hub.addr;
            tokio::task::spawn_blocking(move || {
                let start = Instant::now();
                loop {
                    let auth = format!("Bearer {seer}");
                    let (_, body) = request(
                        hub_addr,
                        "GET",
                        "/presence?topic=room",
                        &[("Authorization", &auth)],
                        b"",
                    );
                    let v: Value = serde_json::from_str(&body).unwrap();
                    if v["who"] == json!([{"name": "cat"}]) && v["subscribers"] == 1 {
                        return v;
                    }
                    assert!(
                        start.elapsed() < WAIT,
                        "the subscribe op never showed in who: {v}"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
            .await
            .unwrap()
        };
        assert_eq!(seen["subscribers"], 1);
        ws.send(tokio_websockets::Message::text(
            json!({"op": "unsubscribe", "topics": ["room"], "ref": 2}).to_string(),
        ))
        .await
        .unwrap();
        let hub_addr = hub.addr;
        tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            loop {
                let auth = format!("Bearer {seer}");
                let (_, body) = request(
                    hub_addr,
                    "GET",
                    "/presence?topic=room",
                    &[("Authorization", &auth)],
                    b"",
                );
                let v: Value = serde_json::from_str(&body).unwrap();
                if v["who"] == json!([]) && v["subscribers"] == 0 {
                    return;
                }
                assert!(
                    start.elapsed() < WAIT,
                    "the unsubscribe op never left who: {v}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .await
        .unwrap();
        drop(ws.next());
    });
}
