//! Bayeux wire rules that the CometD and Faye clients (tests/js/bayeux.test.mjs)
//! do not exercise: unknown clients, error strings, `/meta` never forwarded,
//! `/service` request-response, bad JSON, batch limits, form bodies,
//! callback-polling bytes, session expiry, connect holding and tokens in `ext`.
// These tests drive a separate process over real sockets: their clocks are
// wall-clock on purpose, as in the other end-to-end tests.
#![allow(clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{Hub, mint_token, publish, raw_request, request};

/// POSTs `body` to `/bayeux`; returns the status and the parsed answer.
fn post(addr: SocketAddr, body: &Value) -> (u16, Value) {
    let (status, text) = request(
        addr,
        "POST",
        "/bayeux",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, value)
}

fn handshake_msg(ext: Value) -> Value {
    json!([{
        "channel": "/meta/handshake", "id": "1", "version": "1.0",
        "supportedConnectionTypes": ["long-polling"], "ext": ext,
    }])
}

/// Handshakes and returns the client id.
fn handshake(addr: SocketAddr, ext: Value) -> String {
    let (status, r) = post(addr, &handshake_msg(ext));
    assert_eq!(status, 200);
    assert_eq!(r[0]["successful"], true, "{r}");
    r[0]["clientId"].as_str().unwrap().to_string()
}

fn connect(addr: SocketAddr, client: &str, timeout_ms: u64) -> Value {
    post(
        addr,
        &json!([{"channel": "/meta/connect", "clientId": client, "id": "c",
                 "connectionType": "long-polling", "advice": {"timeout": timeout_ms}}]),
    )
    .1
}

fn subscribe(addr: SocketAddr, client: &str, sub: &str) -> Value {
    post(
        addr,
        &json!([{"channel": "/meta/subscribe", "clientId": client, "id": "s", "subscription": sub}]),
    )
    .1[0]
        .clone()
}

/// The deliveries (messages with `data`) in an answer.
fn deliveries(answer: &Value) -> Vec<(String, Value)> {
    answer
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m.get("data").is_some())
        .map(|m| {
            (
                m["channel"].as_str().unwrap().to_string(),
                m["data"].clone(),
            )
        })
        .collect()
}

/// Every retained event of `topic`, as the `/poll` answer (read from the
/// start of the log: the epoch comes from a first poll's reset).
fn history(addr: SocketAddr, topic: &str, headers: &[(&str, &str)]) -> String {
    let probe = format!("/poll?topic={topic}&since=0&timeout=0");
    let (_, probe) = request(addr, "GET", &probe, headers, b"");
    let v: Value = serde_json::from_str(&probe).unwrap();
    let head = v["reset"]["last_event_id"]
        .as_str()
        .expect("a reset for since=0");
    let epoch = head.split('-').next().unwrap();
    let target = format!("/poll?topic={topic}&since={epoch}-0&timeout=0");
    let (status, body) = request(addr, "GET", &target, headers, b"");
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("\"reset\""), "{body}");
    body
}

#[test]
fn an_unknown_client_is_told_to_handshake_again() {
    let hub = Hub::start(&[]);
    for channel in ["/meta/connect", "/meta/subscribe", "/chat/a"] {
        let (status, r) = post(
            hub.addr,
            &json!([{"channel": channel, "clientId": "0123abcd", "id": "9", "subscription": "/x",
                     "connectionType": "long-polling", "data": 1}]),
        );
        assert_eq!(status, 200);
        assert_eq!(r[0]["successful"], false, "{r}");
        assert_eq!(r[0]["error"], "402::Unknown client");
        assert_eq!(r[0]["advice"]["reconnect"], "handshake");
        assert_eq!(r[0]["id"], "9");
        assert_eq!(r[0]["channel"], channel);
    }
}

#[test]
fn handshake_failures_carry_code_args_message() {
    let hub = Hub::start(&[]);
    let cases = [
        (
            json!({"supportedConnectionTypes": ["long-polling"]}),
            "402:version:Missing version",
        ),
        (
            json!({"version": "2.0", "supportedConnectionTypes": ["long-polling"]}),
            "300:2.0:Version mismatch",
        ),
        (
            json!({"version": "1.0", "supportedConnectionTypes": ["flash", "iframe"]}),
            "301:flash,iframe:Connection types not supported",
        ),
        (
            json!({"version": "1.0"}),
            "402:supportedConnectionTypes:Missing supportedConnectionTypes",
        ),
    ];
    for (fields, expected) in cases {
        let mut m = fields;
        m["channel"] = json!("/meta/handshake");
        m["id"] = json!("1");
        let (_, r) = post(hub.addr, &json!([m]));
        assert_eq!(r[0]["successful"], false, "{r}");
        assert_eq!(r[0]["error"], expected);
        assert_eq!(r[0]["id"], "1");
    }
    // The reply to a good handshake, and an id that cannot be guessed.
    let (_, r) = post(hub.addr, &handshake_msg(json!({})));
    let m = &r[0];
    assert_eq!(m["version"], "1.0");
    assert_eq!(
        m["supportedConnectionTypes"],
        json!(["websocket", "long-polling", "callback-polling"])
    );
    assert_eq!(m["advice"]["reconnect"], "retry");
    assert_eq!(m["advice"]["interval"], 0);
    assert_eq!(m["advice"]["timeout"], 25_000);
    let id = m["clientId"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert_ne!(id, handshake(hub.addr, json!({})));
}

#[test]
fn other_messages_in_a_handshake_batch_are_ignored() {
    let hub = Hub::start(&[]);
    let mut batch = handshake_msg(json!({}));
    batch
        .as_array_mut()
        .unwrap()
        .push(json!({"channel": "/chat/a", "data": "x", "clientId": "whatever"}));
    let (_, r) = post(hub.addr, &batch);
    assert_eq!(r.as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r[0]["channel"], "/meta/handshake");
}

#[test]
fn meta_messages_are_never_forwarded() {
    let hub = Hub::start(&[]);
    let watcher = handshake(hub.addr, json!({}));
    assert_eq!(subscribe(hub.addr, &watcher, "/**")["successful"], true);
    let r = subscribe(hub.addr, &watcher, "/meta/*");
    assert_eq!(r["successful"], false);
    assert_eq!(r["error"], "403:/meta/*:Meta channels cannot be subscribed");
    // Another client's whole life cycle, and a publish to a /meta channel.
    let other = handshake(hub.addr, json!({}));
    connect(hub.addr, &other, 0);
    subscribe(hub.addr, &other, "/x/y");
    let (_, r) = post(
        hub.addr,
        &json!([{"channel": "/meta/other", "clientId": other, "data": 1, "id": "m"},
                {"channel": "/meta/disconnect", "clientId": other, "id": "d"}]),
    );
    assert_eq!(r[0]["error"], "404:/meta/other:Unknown Channel");
    assert_eq!(r[1]["successful"], true);
    // The watcher's held connect ends on its timeout with nothing in it.
    connect(hub.addr, &watcher, 0);
    let answer = connect(hub.addr, &watcher, 600);
    assert_eq!(deliveries(&answer), vec![], "{answer}");
    // Nothing reached the hub's log either.
    for topic in ["/meta/handshake", "/meta/other", "/meta/connect"] {
        let poll = history(hub.addr, topic, &[]);
        assert!(poll.contains("\"events\":[]"), "{poll}");
    }
}

#[test]
fn service_channels_answer_the_publisher_only() {
    let hub = Hub::start(&[]);
    let watcher = handshake(hub.addr, json!({}));
    subscribe(hub.addr, &watcher, "/**");
    let r = subscribe(hub.addr, &watcher, "/service/echo");
    assert_eq!(
        r["successful"], true,
        "subscribing to a service is accepted, not recorded"
    );
    let client = handshake(hub.addr, json!({}));
    let (_, r) = post(
        hub.addr,
        &json!([{"channel": "/service/echo", "clientId": client, "id": "e", "data": {"n": [1, 2]}},
                {"channel": "/service/nope", "clientId": client, "id": "n", "data": 1}]),
    );
    assert_eq!(
        r,
        json!([
            {"channel": "/service/echo", "successful": true, "id": "e"},
            {"channel": "/service/echo", "data": {"n": [1, 2]}},
            {"channel": "/service/nope", "successful": false, "id": "n",
             "error": "404:/service/nope:Unknown service"},
        ])
    );
    connect(hub.addr, &watcher, 0);
    assert_eq!(deliveries(&connect(hub.addr, &watcher, 500)), vec![]);
}

#[test]
fn bad_json_and_oversized_batches_get_clear_errors() {
    let hub = Hub::start(&["--bayeux-max-messages", "2"]);
    let bad = [
        &b"[{\"channel\": "[..],
        b"[{\"id\": \"1\"}]",
        b"{\"channel\": 5}",
        b"\xff\xfe",
    ];
    for body in bad {
        let (status, text) = request(
            hub.addr,
            "POST",
            "/bayeux",
            &[("Content-Type", "application/json")],
            body,
        );
        assert_eq!(status, 400, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(v["error"].as_str().unwrap().starts_with("invalid_"), "{v}");
        assert!(v["message"].as_str().unwrap().len() > 20, "{v}");
    }
    let three = json!([{"channel": "/a"}, {"channel": "/b"}, {"channel": "/c"}]);
    let (status, v) = post(hub.addr, &three);
    assert_eq!(status, 413);
    assert_eq!(v["error"], "too_many_messages");
    assert!(v["message"].as_str().unwrap().contains("at most 2"), "{v}");
    // Other methods: 405 with what the endpoint answers.
    let raw = raw_request(hub.addr, "PUT", "/bayeux/connect", &[], b"[]");
    let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 405"), "{text}");
    assert!(text.contains("allow: get, post, options"), "{text}");
    // A GET that is neither callback-polling nor an upgrade says what to send.
    let (status, body) = request(hub.addr, "GET", "/bayeux", &[], b"");
    assert_eq!(status, 400);
    assert!(body.contains("missing_message"), "{body}");
}

#[test]
fn form_bodies_carry_messages_in_message_fields() {
    let hub = Hub::start(&[]);
    let encoded: String = form_urlencoded_pair("message", &handshake_msg(json!({})).to_string());
    let (status, text) = request(
        hub.addr,
        "POST",
        "/bayeux/handshake",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        encoded.as_bytes(),
    );
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v[0]["successful"], true);
    let client = v[0]["clientId"].as_str().unwrap();
    // Two fields in one body, on a CometD suffix URL the channel overrides.
    let body = format!(
        "{}&{}",
        form_urlencoded_pair(
            "message",
            &json!({"channel": "/meta/subscribe", "clientId": client, "subscription": "/f"})
                .to_string()
        ),
        form_urlencoded_pair(
            "message",
            &json!([{"channel": "/f", "clientId": client, "data": "hi"}]).to_string()
        ),
    );
    let (_, text) = request(
        hub.addr,
        "POST",
        "/bayeux/connect",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v[0]["channel"], "/meta/subscribe");
    assert_eq!(v[1]["channel"], "/f");
    assert_eq!(v[1]["successful"], true, "{v}");
}

fn form_urlencoded_pair(name: &str, value: &str) -> String {
    let mut out = format!("{name}=");
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.*".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[test]
fn callback_polling_answers_script_with_jsonp_rules() {
    let hub = Hub::start(&[]);
    let client = handshake(hub.addr, json!({}));
    subscribe(hub.addr, &client, "/j");
    publish(hub.addr, "/publish?topic=/j", "a\u{2028}b</script>");
    let msg = json!([{"channel": "/meta/connect", "clientId": client, "id": "7",
                      "connectionType": "callback-polling", "advice": {"timeout": 0}}]);
    let target = format!(
        "/bayeux/connect?jsonp=_cometd_jsonp_3&{}",
        form_urlencoded_pair("message", &msg.to_string())
    );
    let raw = String::from_utf8(raw_request(hub.addr, "GET", &target, &[], b"")).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/javascript"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(head.contains("cache-control: no-cache, no-store"), "{head}");
    assert!(
        body.starts_with("/**/_cometd_jsonp_3([") && body.ends_with("]);"),
        "{body}"
    );
    assert!(body.contains("a\\u2028b\\u003c/script>"), "{body}");
    assert!(!body.contains('\u{2028}') && !body.contains('<'), "{body}");
    // The default callback name, and a refused one.
    let target = format!(
        "/bayeux?{}",
        form_urlencoded_pair("message", &msg.to_string())
    );
    let (_, body) = request(hub.addr, "GET", &target, &[], b"");
    assert!(body.starts_with("/**/jsonpcallback(["), "{body}");
    let target = format!(
        "/bayeux?jsonp=alert(1)&{}",
        form_urlencoded_pair("message", &msg.to_string())
    );
    let (status, body) = request(hub.addr, "GET", &target, &[], b"");
    assert_eq!(status, 400);
    assert!(body.contains("invalid_callback"), "{body}");
}

#[test]
fn connects_are_held_for_the_advised_timeout_and_released_by_events() {
    let hub = Hub::start(&["--bayeux-connect-timeout-ms", "1500"]);
    let client = handshake(hub.addr, json!({}));
    let start = Instant::now();
    connect(hub.addr, &client, 0);
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "timeout 0 answers at once"
    );
    // The client asks for more than the hub allows: capped.
    let start = Instant::now();
    let r = connect(hub.addr, &client, 60_000);
    let held = start.elapsed();
    assert!(
        held >= Duration::from_millis(1400) && held < Duration::from_secs(5),
        "{held:?}"
    );
    assert_eq!(r[0]["advice"]["timeout"], 1500);
    // An event releases a held connect early.
    subscribe(hub.addr, &client, "/rel");
    let addr = hub.addr;
    let publisher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        publish(addr, "/publish?topic=/rel", "now");
    });
    let start = Instant::now();
    let r = connect(hub.addr, &client, 60_000);
    publisher.join().unwrap();
    assert!(
        start.elapsed() < Duration::from_millis(1400),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(deliveries(&r), vec![("/rel".to_string(), json!("now"))]);
}

#[test]
fn a_session_without_connects_expires_after_max_interval() {
    let hub = Hub::start(&["--bayeux-max-interval-ms", "300"]);
    let client = handshake(hub.addr, json!({}));
    connect(hub.addr, &client, 0);
    std::thread::sleep(Duration::from_millis(1200));
    let r = connect(hub.addr, &client, 0);
    assert_eq!(r[0]["error"], "402::Unknown client", "{r}");
    assert_eq!(r[0]["advice"]["reconnect"], "handshake");
}

#[test]
fn subscriptions_per_session_are_bounded_and_channels_checked() {
    let hub = Hub::start(&["--bayeux-max-subscriptions", "2"]);
    let client = handshake(hub.addr, json!({}));
    assert_eq!(subscribe(hub.addr, &client, "/a")["successful"], true);
    assert_eq!(
        subscribe(hub.addr, &client, "/a")["successful"],
        true,
        "again: no-op"
    );
    assert_eq!(subscribe(hub.addr, &client, "/b/**")["successful"], true);
    let r = subscribe(hub.addr, &client, "/c");
    assert_eq!(
        r["error"],
        "403:/c:a session may hold at most 2 subscriptions"
    );
    let r = subscribe(hub.addr, &client, "/bad channel");
    assert_eq!(r["error"], "405:/bad channel:Invalid channel");
    let (_, r) = post(
        hub.addr,
        &json!([{"channel": "/a/*", "clientId": client, "data": 1, "id": "p"}]),
    );
    assert_eq!(
        r[0]["error"], "405:/a/*:Invalid channel",
        "no publishing to a pattern"
    );
    let (_, r) = post(
        hub.addr,
        &json!([{"channel": "/a", "clientId": client, "id": "p"}]),
    );
    assert_eq!(r[0]["error"], "402:data:Missing data");
    // Connects: a connection type is required, and must be one Herald serves.
    let (_, r) = post(
        hub.addr,
        &json!([{"channel": "/meta/connect", "clientId": client, "id": "c1"},
                {"channel": "/meta/connect", "clientId": client, "id": "c2", "connectionType": "flash"}]),
    );
    assert_eq!(r[0]["error"], "402:connectionType:Missing connectionType");
    assert_eq!(r[1]["error"], "301:flash:Connection type not supported");
}

#[test]
fn tokens_travel_in_ext_and_grants_filter_wildcards() {
    let secret = "bayeux-test-secret-bayeux-test-secret!";
    let hub = Hub::start_secure(secret, &[]);
    let now = std::time::SystemTime::now();
    // No token: refused, with advice not to retry.
    let (_, r) = post(hub.addr, &handshake_msg(json!({})));
    assert_eq!(r[0]["successful"], false);
    assert!(
        r[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("403::Handshake denied: "),
        "{r}"
    );
    assert_eq!(r[0]["advice"]["reconnect"], "none");
    let (_, r) = post(
        hub.addr,
        &handshake_msg(json!({"authToken": "not.a.token"})),
    );
    assert_eq!(r[0]["successful"], false, "{r}");

    let token = mint_token(
        secret,
        &["/chat/a"],
        &["/chat/*"],
        Duration::from_secs(600),
        now,
    );
    let client = handshake(hub.addr, json!({"authToken": token}));
    assert_eq!(subscribe(hub.addr, &client, "/chat/a")["successful"], true);
    let r = subscribe(hub.addr, &client, "/secret");
    assert_eq!(r["successful"], false);
    assert!(
        r["error"].as_str().unwrap().starts_with("403:/secret:"),
        "{r}"
    );
    let pub_to = |channel: &str| {
        post(
            hub.addr,
            &json!([{"channel": channel, "clientId": client, "data": {"v": channel}, "id": "p"}]),
        )
        .1
    };
    assert_eq!(pub_to("/chat/a")[0]["successful"], true);
    let r = pub_to("/chat/b");
    assert!(
        r[0]["error"].as_str().unwrap().starts_with("403:/chat/b:"),
        "{r}"
    );

    // `/**` is allowed, but yields only topics the token may read.
    let wide = handshake(hub.addr, json!({"authToken": token}));
    assert_eq!(subscribe(hub.addr, &wide, "/**")["successful"], true);
    connect(hub.addr, &wide, 0);
    let publisher = mint_token(secret, &["*"], &[], Duration::from_secs(600), now);
    let bearer = format!("Bearer {publisher}");
    for topic in ["/secret/x", "/chat/c"] {
        let (status, _) = request(
            hub.addr,
            "POST",
            &format!("/publish?topic={topic}"),
            &[("Authorization", &bearer)],
            b"\"x\"",
        );
        assert_eq!(status, 200);
    }
    let r = connect(hub.addr, &wide, 1000);
    assert_eq!(
        deliveries(&r),
        vec![("/chat/c".to_string(), json!("x"))],
        "{r}"
    );
}

type Ws =
    tokio_websockets::WebSocketStream<tokio_websockets::MaybeTlsStream<tokio::net::TcpStream>>;

const WAIT: Duration = Duration::from_secs(20);

async fn ws_connect(hub: &Hub, path: &str) -> Ws {
    let uri = format!("ws://{}{path}", hub.addr);
    let builder = tokio_websockets::ClientBuilder::new().uri(&uri).unwrap();
    let (ws, _) = tokio::time::timeout(WAIT, builder.connect())
        .await
        .expect("connect in time")
        .expect("websocket handshake");
    ws
}

async fn ws_send(ws: &mut Ws, v: Value) {
    use futures_util::SinkExt;
    ws.send(tokio_websockets::Message::text(v.to_string()))
        .await
        .unwrap();
}

/// The next frame: a JSON array of messages, or the close code and reason.
async fn ws_recv(ws: &mut Ws) -> Result<Value, (u16, String)> {
    use futures_util::StreamExt;
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .expect("a valid frame");
        if let Some(text) = msg.as_text() {
            return Ok(serde_json::from_str(text).unwrap());
        }
        if let Some((code, reason)) = msg.as_close() {
            return Err((code.into(), reason.to_string()));
        }
    }
}

#[tokio::test]
async fn websocket_carries_the_handshake_and_pushes_events_while_the_connect_is_held() {
    let hub = Hub::start(&[]);
    let mut ws = ws_connect(&hub, "/bayeux").await;
    let mut hs = handshake_msg(json!({}));
    hs[0]["supportedConnectionTypes"] = json!(["websocket"]);
    ws_send(&mut ws, hs).await;
    let r = ws_recv(&mut ws).await.unwrap();
    let client = r[0]["clientId"].as_str().unwrap().to_string();
    ws_send(
        &mut ws,
        json!([{"channel": "/meta/connect", "clientId": client, "id": "2",
                "connectionType": "websocket", "advice": {"timeout": 0}},
               {"channel": "/meta/subscribe", "clientId": client, "id": "3", "subscription": "/w/*"}]),
    )
    .await;
    let r = ws_recv(&mut ws).await.unwrap();
    let channels: Vec<&str> = r
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["/meta/connect", "/meta/subscribe"], "{r}");
    // A held connect; an event is pushed in its own frame meanwhile.
    ws_send(
        &mut ws,
        json!([{"channel": "/meta/connect", "clientId": client, "id": "4", "connectionType": "websocket"}]),
    )
    .await;
    let addr = hub.addr;
    tokio::task::spawn_blocking(move || publish(addr, "/publish?topic=/w/x", "{\"k\":1}"))
        .await
        .unwrap();
    let r = ws_recv(&mut ws).await.unwrap();
    assert_eq!(
        r,
        json!([{"channel": "/w/x", "data": {"k": 1}, "id": r[0]["id"]}])
    );
    // A frame that is not Bayeux JSON closes the socket with the reason.
    ws_send(&mut ws, json!({"no": "channel"})).await;
    let (code, reason) = ws_recv(&mut ws).await.unwrap_err();
    assert_eq!(code, 1007);
    assert!(reason.contains("channel"), "{reason}");
}

#[tokio::test]
async fn shutdown_answers_held_connects_and_closes_sockets_1001() {
    let mut hub = Hub::start(&[]);
    let client = handshake(hub.addr, json!({}));
    connect(hub.addr, &client, 0);
    let addr = hub.addr;
    let held = std::thread::spawn(move || connect(addr, &client, 60_000));
    let mut ws = ws_connect(&hub, "/bayeux").await;
    std::thread::sleep(Duration::from_millis(300));
    assert!(hub.terminate().success());
    let r = held.join().unwrap();
    assert_eq!(r[0]["successful"], true, "{r}");
    assert_eq!(r[0]["advice"]["reconnect"], "retry");
    let (code, _) = ws_recv(&mut ws).await.unwrap_err();
    assert_eq!(code, 1001);
}

#[test]
fn events_for_an_abandoned_connect_wait_for_the_next_one() {
    use std::io::Write;
    let hub = Hub::start(&[]);
    let client = handshake(hub.addr, json!({}));
    subscribe(hub.addr, &client, "/gone");
    connect(hub.addr, &client, 0);
    // A connect whose client goes away while it is held.
    let body =
        json!([{"channel": "/meta/connect", "clientId": client, "connectionType": "long-polling"}])
            .to_string();
    let mut s = std::net::TcpStream::connect(hub.addr).unwrap();
    write!(
        s,
        "POST /bayeux HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(s);
    std::thread::sleep(Duration::from_millis(300));
    publish(hub.addr, "/publish?topic=/gone", "\"kept\"");
    let r = connect(hub.addr, &client, 2000);
    assert_eq!(
        deliveries(&r),
        vec![("/gone".to_string(), json!("kept"))],
        "{r}"
    );
}

#[test]
fn a_publish_without_client_id_uses_the_request_token() {
    let secret = "bayeux-test-secret-bayeux-test-secret!";
    let hub = Hub::start_secure(secret, &[]);
    let msg = json!([{"channel": "/free/a", "data": {"n": 1}, "id": "p"}]);
    let (_, r) = post(hub.addr, &msg);
    assert_eq!(r[0]["successful"], false);
    assert!(
        r[0]["error"].as_str().unwrap().starts_with("403:/free/a:"),
        "{r}"
    );
    let token = mint_token(
        secret,
        &["/free/*"],
        &["/free/*"],
        Duration::from_secs(600),
        std::time::SystemTime::now(),
    );
    let bearer = format!("Bearer {token}");
    let (status, text) = request(
        hub.addr,
        "POST",
        "/bayeux",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &bearer),
        ],
        msg.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    let r: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        r,
        json!([{"channel": "/free/a", "successful": true, "id": "p"}])
    );
    let poll = history(hub.addr, "/free/a", &[("Authorization", &bearer)]);
    assert!(poll.contains(r#""data":"{\"n\":1}""#), "{poll}");
}

#[test]
fn a_websocket_peer_that_answers_no_ping_is_dropped() {
    use std::io::{Read, Write};
    let hub = Hub::start(&["--heartbeat-secs", "1"]);
    let mut s = std::net::TcpStream::connect(hub.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /bayeux HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .unwrap();
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) => panic!("the hub kept a silent peer: {e}"),
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still open");
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(
        seen.windows(2).any(|w| w == [0x89, 6]),
        "a ping was sent first"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_session_ends_when_its_token_expires() {
    let secret = "bayeux-test-secret-bayeux-test-secret!";
    let hub = Hub::start_secure(secret, &[]);
    let now = std::time::SystemTime::now();
    let token = mint_token(secret, &[], &["/t"], Duration::from_secs(2), now);
    let client = handshake(hub.addr, json!({"authToken": token}));
    subscribe(hub.addr, &client, "/t");
    connect(hub.addr, &client, 0);
    let start = Instant::now();
    let r = connect(hub.addr, &client, 20_000);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(r[0]["advice"]["reconnect"], "handshake", "{r}");
    let r = connect(hub.addr, &client, 0);
    assert_eq!(r[0]["error"], "402::Unknown client");
}
