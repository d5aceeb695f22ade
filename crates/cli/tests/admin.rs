//! The admin API against the real binary: refused without an admin token,
//! topic listing, recent events, trim and delete (a resume from before gets
//! an explicit reset), connection listing and disconnects that really close
//! the stream, and a drain that tells every stream to reconnect elsewhere and
//! exits 0.
// Wall-clock deadlines on a separate process (see common/mod.rs).
#![allow(clippy::disallowed_types)]

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::*;
use futures_util::StreamExt;
use serde_json::Value;
use tokio_websockets::{ClientBuilder, CloseCode};

const SECRET: &str = "admin-test-secret-of-at-least-32-bytes!";

fn get_json(hub: &Hub, method: &str, target: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let (status, body) = request(hub.addr, method, target, headers, b"");
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{status} {body:?}: {e}"));
    (status, v)
}

fn admin_token(admin: bool) -> String {
    use herald_auth::{Algorithm, Grants, SigningKey, TopicPattern};
    let key = SigningKey::from_secret(SECRET.as_bytes(), Algorithm::HS256).unwrap();
    let grants = Grants {
        subscribe: vec![TopicPattern::parse("*").unwrap()],
        admin,
        ..Grants::default()
    };
    herald_auth::mint(&key, &grants, Duration::from_secs(300), SystemTime::now()).unwrap()
}

#[test]
fn admin_routes_need_an_admin_token() {
    let hub = Hub::start_secure(SECRET, &[]);
    let (status, v) = get_json(&hub, "GET", "/admin/topics", &[]);
    assert_eq!(status, 401, "{v}");
    assert!(v["message"].as_str().unwrap().contains("admin"), "{v}");
    let plain = format!("Bearer {}", admin_token(false));
    for (method, target) in [
        ("GET", "/admin/topics"),
        ("GET", "/admin/connections"),
        ("POST", "/admin/drain"),
        ("DELETE", "/admin/topics/history?topic=a"),
        ("GET", "/admin/stats"),
    ] {
        let (status, v) = get_json(&hub, method, target, &[("Authorization", &plain)]);
        assert_eq!(
            (status, v["error"].as_str()),
            (403, Some("not_admin")),
            "{target}: {v}"
        );
    }
    let admin = format!("Bearer {}", admin_token(true));
    let (status, v) = get_json(&hub, "GET", "/admin/topics", &[("Authorization", &admin)]);
    assert_eq!(status, 200, "{v}");
    // The stats snapshot counts the six refusals above.
    let (status, v) = get_json(&hub, "GET", "/admin/stats", &[("Authorization", &admin)]);
    assert_eq!((status, v["auth_failures"].as_u64()), (200, Some(6)), "{v}");
    let (status, v) = get_json(&hub, "GET", "/admin/nope", &[("Authorization", &admin)]);
    assert_eq!((status, v["error"].as_str()), (404, Some("not_found")));
    // A known admin path with another method: 405 naming the one it answers.
    let raw = raw_request(
        hub.addr,
        "PUT",
        "/admin/topics",
        &[("Authorization", &admin)],
        b"",
    );
    let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 405"), "{head}");
    assert!(head.contains("allow: get, options"), "{head}");
    // Any limit up to u64::MAX is capped by admin_page_max, not refused.
    let (status, v) = get_json(
        &hub,
        "GET",
        "/admin/topics?limit=18446744073709551615",
        &[("Authorization", &admin)],
    );
    assert_eq!(status, 200, "{v}");
    // Still serving: the refused drain did nothing.
    assert_eq!(request(hub.addr, "GET", "/readyz", &[], b"").0, 200);
}

#[test]
fn topics_events_trim_and_delete_with_honest_resumption() {
    let hub = Hub::start(&[]);
    let ids: Vec<String> = (1..=5)
        .map(|i| publish_id(hub.addr, "t", &format!("e{i}")))
        .collect();
    publish_id(hub.addr, "u", "other");
    let mut live = Sse::open(hub.addr, "/sse?topic=t&topic=w", &[]);
    live.read_until("retry: ");

    let (status, v) = get_json(&hub, "GET", "/admin/topics", &[]);
    assert_eq!(status, 200, "{v}");
    let row = |v: &Value, t: &str| {
        v["topics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["topic"] == t)
            .cloned()
    };
    assert_eq!(row(&v, "t").unwrap()["events"], 5);
    assert_eq!(row(&v, "t").unwrap()["subscribers"], 1);
    assert_eq!(
        row(&v, "w").unwrap()["events"],
        0,
        "watched without history: {v}"
    );
    assert_eq!(row(&v, "u").unwrap()["subscribers"], 0);
    assert_eq!(v["history"]["events"], 6);
    // Pagination by name.
    let (_, p1) = get_json(&hub, "GET", "/admin/topics?limit=2", &[]);
    assert_eq!(p1["topics"].as_array().unwrap().len(), 2);
    let after = p1["next_after"].as_str().unwrap().to_string();
    let (_, p2) = get_json(
        &hub,
        "GET",
        &format!("/admin/topics?limit=2&after={after}"),
        &[],
    );
    let names: Vec<&str> = p1["topics"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["topics"].as_array().unwrap())
        .map(|r| r["topic"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["t", "u", "w"]);

    let (_, v) = get_json(&hub, "GET", "/admin/topics/events?topic=t&limit=2", &[]);
    let data: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    assert_eq!(data, vec!["e4", "e5"], "{v}");

    let (status, v) = get_json(&hub, "POST", "/admin/topics/trim?topic=t&keep=2", &[]);
    assert_eq!((status, v["removed"].as_u64()), (200, Some(3)), "{v}");
    // Resuming from before the trim: an explicit reset, not a gap.
    let mut resumed = Sse::open(hub.addr, "/sse?topic=t", &[("Last-Event-ID", &ids[0])]);
    let text = resumed.read_until("retry: ");
    assert!(text.contains("Herald-Resume: reset"), "{text}");
    resumed.read_until("event: herald-reset");
    // From after it: the rest, exactly.
    let mut ok = Sse::open(hub.addr, "/sse?topic=t", &[("Last-Event-ID", &ids[3])]);
    ok.read_until("data: e5\n\n");
    assert!(!ok.buf.windows(5).any(|w| w == b"reset"));

    let (status, v) = get_json(
        &hub,
        "POST",
        &format!("/admin/topics/trim?topic=t&before={}", ids[4]),
        &[],
    );
    assert_eq!((status, v["removed"].as_u64()), (200, Some(1)), "{v}");
    let (status, v) = get_json(&hub, "DELETE", "/admin/topics/history?topic=t", &[]);
    assert_eq!((status, v["removed"].as_u64()), (200, Some(1)), "{v}");
    let mut after_delete = Sse::open(hub.addr, "/sse?topic=t", &[("Last-Event-ID", &ids[3])]);
    let text = after_delete.read_until("retry: ");
    assert!(text.contains("Herald-Resume: reset"), "{text}");
    let (_, v) = get_json(&hub, "GET", "/admin/topics", &[]);
    assert_eq!(row(&v, "t").unwrap()["events"], 0);
    assert_eq!(v["history"]["events"], 1);
    // The live subscriber was not disturbed.
    publish_id(hub.addr, "t", "after");
    live.read_until("data: after\n\n");

    for (target, code) in [
        ("/admin/topics/trim?topic=t", "trim_needs_one_bound"),
        ("/admin/topics/trim?topic=t&keep=x", "invalid_keep"),
        ("/admin/topics/trim?keep=1", "no_topic"),
        ("/admin/topics/trim?topic=t&before=nope", "unknown_id"),
        ("/admin/topics/trim?topic=t&kep=1", "unknown_parameter"),
        (
            "/admin/topics/trim?topic=t&keep=1&keep=2",
            "repeated_parameter",
        ),
    ] {
        let (status, v) = get_json(&hub, "POST", target, &[]);
        assert!(status == 400 || status == 404, "{target}: {status} {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
        if code != "no_topic" {
            assert_eq!(v["error"], code, "{target}");
        }
    }
}

fn conn_id(hub: &Hub, transport: &str) -> String {
    let start = Instant::now();
    loop {
        let (_, v) = get_json(hub, "GET", "/admin/connections", &[]);
        if let Some(c) = v["connections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["transport"] == transport)
        {
            return c["id"].as_str().unwrap().to_string();
        }
        assert!(
            start.elapsed() < WAIT,
            "no {transport} connection listed: {v}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn disconnect_closes_that_stream_only() {
    let hub = Hub::start(&[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut kept = Sse::open(hub.addr, "/sse?topic=k", &[]);
    kept.read_until("retry: ");
    let kept_id = conn_id(&hub, "sse");
    let mut gone = Sse::open(hub.addr, "/stream?topic=k", &[]);
    gone.read_until("heartbeat");
    let gone_id = conn_id(&hub, "ndjson");
    let (_, v) = get_json(&hub, "GET", "/admin/connections", &[]);
    assert_eq!(v["open"], 2, "{v}");
    let c = v["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == gone_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(c["topics"], serde_json::json!(["k"]));
    assert!(c["peer"].as_str().unwrap().starts_with("127.0.0.1:"));

    let (status, _) = get_json(
        &hub,
        "POST",
        &format!("/admin/connections/{gone_id}/disconnect"),
        &[],
    );
    assert_eq!(status, 202);
    gone.read_to_close();
    publish_id(hub.addr, "k", "still");
    kept.read_until("data: still\n\n");
    let (status, v) = get_json(
        &hub,
        "POST",
        &format!("/admin/connections/{gone_id}/disconnect"),
        &[],
    );
    assert_eq!(
        (status, v["error"].as_str()),
        (404, Some("no_such_connection"))
    );
    let (status, _) = get_json(&hub, "POST", "/admin/connections/abc/disconnect", &[]);
    assert_eq!(status, 400);
    let (status, _) = get_json(
        &hub,
        "POST",
        &format!("/admin/connections/{kept_id}/disconnect"),
        &[],
    );
    assert_eq!(status, 202);
    let text = kept.read_to_close();
    assert!(
        text.contains(": disconnected by an administrator"),
        "{text}"
    );

    rt.block_on(async {
        let uri = format!("ws://{}/ws?topic=k", hub.addr);
        let (mut ws, _) = ClientBuilder::new()
            .uri(&uri)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let id = tokio::task::spawn_blocking({
            let addr = hub.addr;
            move || {
                let start = Instant::now();
                loop {
                    let (_, body) = request(addr, "GET", "/admin/connections", &[], b"");
                    let v: Value = serde_json::from_str(&body).unwrap();
                    if let Some(c) = v["connections"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|c| c["transport"] == "ws")
                    {
                        return c["id"].as_str().unwrap().to_string();
                    }
                    assert!(start.elapsed() < WAIT);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        })
        .await
        .unwrap();
        let addr = hub.addr;
        let (status, _) = tokio::task::spawn_blocking(move || {
            request(
                addr,
                "POST",
                &format!("/admin/connections/{id}/disconnect"),
                &[],
                b"",
            )
        })
        .await
        .unwrap();
        assert_eq!(status, 202);
        let code = loop {
            let msg = tokio::time::timeout(WAIT, ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let Some((code, reason)) = msg.as_close() {
                assert!(reason.contains("administrator"), "{reason}");
                break code;
            }
        };
        assert_eq!(code, CloseCode::POLICY_VIOLATION);
    });
}

#[test]
fn drain_hints_every_stream_then_exits_zero() {
    let mut hub = Hub::start(&["--drain-retry-ms", "2500"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut sse = Sse::open(hub.addr, "/sse?topic=d", &[]);
    sse.read_until("retry: ");
    let uri = format!("ws://{}/ws?topic=d", hub.addr);
    let mut ws = rt.block_on(async {
        ClientBuilder::new()
            .uri(&uri)
            .unwrap()
            .connect()
            .await
            .unwrap()
            .0
    });
    let (status, v) = get_json(&hub, "POST", "/admin/drain?delay_secs=1", &[]);
    assert_eq!((status, v["draining"].as_bool()), (202, Some(true)), "{v}");
    // Not ready while the delay runs (the load balancer's cue), still serving.
    let (status, body) = request(hub.addr, "GET", "/readyz", &[], b"");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("draining"), "{body}");
    let text = sse.read_to_close();
    assert!(text.contains("retry: 2500\n: herald is draining"), "{text}");
    rt.block_on(async {
        let code = loop {
            let msg = tokio::time::timeout(WAIT, ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let Some((code, _)) = msg.as_close() {
                break code;
            }
        };
        assert_eq!(code, CloseCode::SERVICE_RESTART);
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = hub.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < WAIT, "herald did not exit after draining");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn stats_snapshot_and_live_feed() {
    let hub = Hub::start(&["--stats-interval-ms", "100"]);
    publish_id(hub.addr, "s", "one");
    let (status, v) = get_json(&hub, "GET", "/admin/stats", &[]);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["events_published"], 1);
    assert_eq!(v["history"]["events"], 1);
    assert_eq!(v["subscribers"]["sse"], 0);
    assert!(v["time_ms"].as_u64().unwrap() > 0);
    // What the dashboard shows besides: the webhook queue, refused tokens
    // (none in --dev), whether the store takes writes.
    assert_eq!(v["webhook_queue"], 0, "{v}");
    assert_eq!(v["webhook_subscriptions"], 0, "{v}");
    assert_eq!(v["auth_failures"], 0, "{v}");
    assert_eq!(
        v["store"],
        serde_json::json!({"ready": true, "error": null})
    );
    // Nobody watches the feed: nothing is published to it.
    std::thread::sleep(Duration::from_millis(400));
    let (_, v) = get_json(&hub, "GET", "/admin/stats", &[]);
    assert_eq!(
        v["history"]["events"], 1,
        "an unwatched feed stores nothing: {v}"
    );

    let mut feed = Sse::open(hub.addr, "/sse?topic=$herald/stats", &[]);
    feed.read_until("event: stats\n");
    let mut sse = Sse::open(hub.addr, "/sse?topic=s", &[]);
    sse.read_until("retry: ");
    for i in 0..5 {
        publish_id(hub.addr, "s", &format!("x{i}"));
    }
    sse.read_until("data: x4\n\n");
    // A later snapshot shows the subscriber, the publishes and rates.
    let start = Instant::now();
    let snap = loop {
        let text = String::from_utf8_lossy(&feed.buf).to_string();
        let last = text
            .rsplit("event: stats\n")
            .next()
            .and_then(|block| block.lines().find_map(|l| l.strip_prefix("data: ")))
            .and_then(|d| serde_json::from_str::<Value>(d).ok());
        if let Some(v) = last
            && v["events_published"] == 6
            && v["subscribers"]["sse"] == 2
            && v["events_delivered"]["sse"].as_u64() >= Some(5)
            && v.get("rates").is_some()
        {
            break v;
        }
        assert!(
            start.elapsed() < WAIT,
            "no snapshot with the traffic: {text}"
        );
        feed.read_some();
    };
    assert!(
        snap["rates"]["events_in_per_sec"].as_f64().is_some(),
        "{snap}"
    );
    assert!(snap["topics_watched"].as_u64() >= Some(2));
}

#[test]
fn disconnect_ends_a_bosh_session_and_its_held_request() {
    let hub = Hub::start(&[]);
    let ns = "xmlns='http://jabber.org/protocol/httpbind'";
    let post = |body: String| {
        request(
            hub.addr,
            "POST",
            "/bosh",
            &[("Content-Type", "text/xml; charset=utf-8")],
            body.as_bytes(),
        )
    };
    let (status, text) = post(format!(
        "<body {ns} rid='1000' wait='30' hold='1' ver='1.6'/>"
    ));
    assert_eq!(status, 200, "{text}");
    let sid = text
        .split("sid='")
        .nth(1)
        .or_else(|| text.split("sid=\"").nth(1))
        .unwrap();
    let sid = sid[..sid.find(['\'', '"']).unwrap()].to_string();
    let id = conn_id(&hub, "bosh");
    let addr = hub.addr;
    let held = std::thread::spawn(move || {
        request(
            addr,
            "POST",
            "/bosh",
            &[("Content-Type", "text/xml; charset=utf-8")],
            format!("<body {ns} sid='{sid}' rid='1001'/>").as_bytes(),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    let (status, _) = get_json(
        &hub,
        "POST",
        &format!("/admin/connections/{id}/disconnect"),
        &[],
    );
    assert_eq!(status, 202);
    let (_, text) = held.join().unwrap();
    assert!(text.contains("policy-violation"), "{text}");
    let start = Instant::now();
    loop {
        let (_, v) = get_json(&hub, "GET", "/admin/connections", &[]);
        if v["open"] == 0 {
            break;
        }
        assert!(start.elapsed() < WAIT, "the session is still listed: {v}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
