//! `POST /bosh` against the real binary, request by request: session
//! creation, held requests released by events and by newer requests, `wait`
//! expiry, replay of a repeated `rid`, the `rid` window, acks, polling
//! sessions, inactivity, terminate conditions, legacy clients, shutdown, and
//! resuming in a new session after a restart.
#![allow(clippy::disallowed_types)]

mod common;

use std::net::SocketAddr;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{Hub, publish_id, request};
use serde_json::{Value, json};

const NS: &str = "xmlns='http://jabber.org/protocol/httpbind'";
const RID: u64 = 1_000_000;

fn post(addr: SocketAddr, body: &str) -> (u16, String) {
    request(
        addr,
        "POST",
        "/bosh",
        &[("Content-Type", "text/xml; charset=utf-8")],
        body.as_bytes(),
    )
}

fn post_later(addr: SocketAddr, body: String) -> JoinHandle<(u16, String)> {
    thread::spawn(move || post(addr, &body))
}

/// An attribute of the response's `<body>`.
fn attr(text: &str, name: &str) -> Option<String> {
    let head = &text[..text.find('>')?];
    let start = head.find(&format!(" {name}='"))? + name.len() + 3;
    Some(head[start..start + head[start..].find('\'')?].to_string())
}

/// The Herald operations in a response, as JSON.
fn ops(text: &str) -> Vec<Value> {
    text.split("<op xmlns='urn:herald:1'>")
        .skip(1)
        .map(|s| {
            let json = &s[..s.find("</op>").unwrap()];
            let json = json
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&");
            serde_json::from_str(&json).unwrap()
        })
        .collect()
}

fn op(v: Value) -> String {
    let json = v.to_string().replace('&', "&amp;").replace('<', "&lt;");
    format!("<op xmlns='urn:herald:1'>{json}</op>")
}

struct Session {
    addr: SocketAddr,
    sid: String,
    rid: u64,
}

impl Session {
    /// Creates a session with these creation attributes and payloads.
    fn create(addr: SocketAddr, attrs: &str, payloads: &str) -> (Session, String) {
        let (status, text) = post(
            addr,
            &format!("<body {NS} rid='{RID}' {attrs}>{payloads}</body>"),
        );
        assert_eq!(status, 200, "{text}");
        let sid = attr(&text, "sid").unwrap_or_else(|| panic!("no sid in {text}"));
        (
            Session {
                addr,
                sid,
                rid: RID,
            },
            text,
        )
    }

    fn body(&self, rid: u64, extra: &str, payloads: &str) -> String {
        format!(
            "<body {NS} sid='{}' rid='{rid}' {extra}>{payloads}</body>",
            self.sid
        )
    }

    /// Sends the next request and waits for its answer.
    fn send(&mut self, payloads: &str) -> (u16, String) {
        self.rid += 1;
        post(self.addr, &self.body(self.rid, "", payloads))
    }

    /// Sends the next request from a thread (it may be held).
    fn send_later(&mut self, payloads: &str) -> JoinHandle<(u16, String)> {
        self.rid += 1;
        post_later(self.addr, self.body(self.rid, "", payloads))
    }
}

fn publish(hub: &Hub, topic: &str, data: &str) -> String {
    publish_id(hub.addr, topic, data)
}

#[test]
fn a_session_subscribes_receives_and_publishes() {
    let hub = Hub::start(&[]);
    let (mut s, created) = Session::create(
        hub.addr,
        "wait='5' hold='1' ver='1.6' to='herald'",
        &op(json!({"op": "subscribe", "topics": ["t"], "ref": 1})),
    );
    assert_eq!(attr(&created, "wait").as_deref(), Some("5"));
    assert_eq!(attr(&created, "hold").as_deref(), Some("1"));
    assert_eq!(attr(&created, "requests").as_deref(), Some("2"));
    assert_eq!(attr(&created, "ver").as_deref(), Some("1.6"));
    assert!(attr(&created, "inactivity").is_some() && attr(&created, "polling").is_some());
    assert_eq!(ops(&created), vec![json!({"op": "ok", "ref": 1})]);
    assert!(s.sid.len() >= 32, "128 random bits: {}", s.sid);

    let held = s.send_later("");
    thread::sleep(Duration::from_millis(300));
    let id = publish(&hub, "t", "to <bosh> & back");
    let (status, text) = held.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        ops(&text),
        vec![json!({"op": "event", "topic": "t", "id": id, "data": "to <bosh> & back"})]
    );

    let (_, text) = s.send(&op(
        json!({"op": "publish", "topic": "t", "data": "mine", "ref": "p"}),
    ));
    let answer = &ops(&text)[0];
    assert_eq!(
        (answer["op"].as_str(), answer["ref"].as_str()),
        (Some("ok"), Some("p"))
    );
    let (_, text) = s.send("");
    assert_eq!(
        ops(&text)[0]["id"],
        answer["id"],
        "the page's own event comes next"
    );

    let (_, text) = s.send(&op(
        json!({"op": "subscribe", "topics": ["bad\ntopic"], "ref": 2}),
    ));
    assert_eq!(ops(&text)[0]["error"], "invalid_topic");
    let (_, text) = s.send("<op xmlns='urn:herald:1'>not json</op>");
    assert_eq!(ops(&text)[0]["error"], "invalid_operation");

    let (status, text) = s.send("<presence xmlns='jabber:client' type='unavailable'/>");
    assert_eq!(status, 200, "{text}");
    s.rid += 1;
    let (_, bye) = post(hub.addr, &s.body(s.rid, "type='terminate'", ""));
    assert_eq!(attr(&bye, "type").as_deref(), Some("terminate"));
    let (_, after) = s.send("");
    assert_eq!(attr(&after, "condition").as_deref(), Some("item-not-found"));
}

#[test]
fn held_requests_are_released_by_wait_and_by_newer_requests_in_rid_order() {
    let hub = Hub::start(&[]);
    let (mut s, _) = Session::create(hub.addr, "wait='1' hold='1' ver='1.6'", "");
    let started = Instant::now();
    let (_, text) = s.send("");
    assert_eq!(ops(&text), Vec::<Value>::new());
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "held for wait"
    );

    // rid+2 arrives first (it waits for rid+1), then rid+1: both are handled
    // in order, and rid+1 is released carrying the answer to rid+2's ping.
    let first = s.rid + 1;
    let second = s.rid + 2;
    s.rid = second;
    let early = post_later(
        hub.addr,
        s.body(second, "", &op(json!({"op": "ping", "ref": 2}))),
    );
    thread::sleep(Duration::from_millis(300));
    let (_, text) = post(hub.addr, &s.body(first, "", ""));
    assert_eq!(ops(&text), vec![json!({"op": "pong", "ref": 2})]);
    let (_, text) = early.join().unwrap();
    assert_eq!(ops(&text), Vec::<Value>::new(), "released by wait");
}

#[test]
fn a_repeated_rid_gets_the_same_bytes_and_a_stale_or_future_one_ends_the_session() {
    let hub = Hub::start(&[]);
    let (mut s, _) = Session::create(
        hub.addr,
        "wait='5' hold='1' ver='1.6'",
        &op(json!({"op": "subscribe", "topics": ["r"]})),
    );
    let held = s.send_later("");
    thread::sleep(Duration::from_millis(200));
    publish(&hub, "r", "once");
    let (_, first) = held.join().unwrap();
    assert_eq!(ops(&first).len(), 1);
    // The connection "broke": the client sends the same request again.
    let (_, again) = post(hub.addr, &s.body(s.rid, "", ""));
    assert_eq!(again, first, "the kept answer, byte for byte");

    let (_, stale) = post(hub.addr, &s.body(RID - 5, "", ""));
    assert_eq!(attr(&stale, "condition").as_deref(), Some("item-not-found"));
    let (_, after) = s.send("");
    assert_eq!(
        attr(&after, "condition").as_deref(),
        Some("item-not-found"),
        "the session is over"
    );

    let (mut s, _) = Session::create(hub.addr, "wait='5' hold='1' ver='1.6'", "");
    let (_, future) = post(hub.addr, &s.body(s.rid + 10, "", ""));
    assert_eq!(
        attr(&future, "condition").as_deref(),
        Some("item-not-found")
    );
    let (_, after) = s.send("");
    assert_eq!(attr(&after, "condition").as_deref(), Some("item-not-found"));
}

#[test]
fn acks_are_announced_and_carried() {
    let hub = Hub::start(&[]);
    let (mut s, created) = Session::create(hub.addr, "wait='5' hold='1' ver='1.6' ack='1'", "");
    assert_eq!(attr(&created, "ack"), Some(RID.to_string()));
    let held = s.send_later("");
    thread::sleep(Duration::from_millis(200));
    // A newer request releases the held one, whose answer then acknowledges
    // the newer rid; the newer one is answered by its ping.
    let (_, pong) = s.send(&op(json!({"op": "ping"})));
    let (_, released) = held.join().unwrap();
    assert_eq!(attr(&released, "ack"), Some((RID + 2).to_string()));
    assert_eq!(ops(&released), vec![json!({"op": "pong", "ref": null})]);
    assert_eq!(
        attr(&pong, "ack"),
        None,
        "no ack when it equals the rid answered"
    );
}

#[test]
fn polling_sessions_answer_at_once_and_refuse_floods() {
    let hub = Hub::start(&[]);
    let (mut s, created) = Session::create(hub.addr, "wait='0' hold='0' ver='1.6'", "");
    assert_eq!(attr(&created, "hold").as_deref(), Some("0"));
    let started = Instant::now();
    let (_, first) = s.send("");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(attr(&first, "type"), None);
    let (_, flood) = s.send("");
    assert_eq!(
        attr(&flood, "condition").as_deref(),
        Some("policy-violation")
    );
}

#[test]
fn an_inactive_session_ends() {
    let hub = Hub::start(&["--bosh-inactivity-secs", "1"]);
    let (mut s, created) = Session::create(hub.addr, "wait='5' hold='1' ver='1.6'", "");
    assert_eq!(attr(&created, "inactivity").as_deref(), Some("1"));
    thread::sleep(Duration::from_millis(2500));
    let (_, text) = s.send("");
    assert_eq!(attr(&text, "condition").as_deref(), Some("item-not-found"));
}

#[test]
fn legacy_clients_get_http_statuses_and_bad_bodies_are_refused() {
    let hub = Hub::start(&[]);
    let (s, _) = Session::create(hub.addr, "wait='5' hold='1'", "");
    let (status, _) = post(hub.addr, &s.body(s.rid + 10, "", ""));
    assert_eq!(status, 404);

    let (status, text) = post(hub.addr, "<body rid='1'/>");
    assert_eq!(status, 200);
    assert_eq!(attr(&text, "condition").as_deref(), Some("bad-request"));
    let (status, text) = post(hub.addr, &format!("<body {NS} sid='nope' rid='5'/>"));
    assert_eq!(status, 200);
    assert_eq!(attr(&text, "condition").as_deref(), Some("item-not-found"));
    let (status, _) = request(hub.addr, "GET", "/bosh", &[], b"");
    assert_eq!(status, 405);
}

#[test]
fn shutdown_terminates_held_requests() {
    let mut hub = Hub::start(&[]);
    let (mut s, _) = Session::create(hub.addr, "wait='30' hold='1' ver='1.6'", "");
    let held = s.send_later("");
    thread::sleep(Duration::from_millis(300));
    assert!(hub.terminate().success());
    let (_, text) = held.join().unwrap();
    assert_eq!(attr(&text, "condition").as_deref(), Some("system-shutdown"));
}

#[test]
fn a_new_session_resumes_after_a_restart() {
    let mut hub = Hub::start(&[]);
    let (mut s, _) = Session::create(
        hub.addr,
        "wait='5' hold='1' ver='1.6'",
        &op(json!({"op": "subscribe", "topics": ["k"]})),
    );
    let held = s.send_later("");
    thread::sleep(Duration::from_millis(200));
    let seen = publish(&hub, "k", "before");
    assert_eq!(ops(&held.join().unwrap().1)[0]["id"], seen.as_str());
    hub.kill_and_restart(&["--dev"]);
    let missed = publish(&hub, "k", "while away");
    let (mut s, created) = Session::create(
        hub.addr,
        "wait='5' hold='1' ver='1.6'",
        &op(json!({"op": "subscribe", "topics": ["k"], "last_event_id": seen})),
    );
    assert_eq!(ops(&created).len(), 1, "{created}");
    let (_, text) = s.send("");
    assert_eq!(ops(&text)[0]["id"], missed.as_str());
}
