//! BOSH and Bayeux sessions in a cluster: they live on the node that created
//! them. A request for one on another node, or after its node died, gets the
//! protocol's "unknown session" answer, and the client starts again anywhere
//! from its last event id without losing anything.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::broker::Kind;
use super::clients::try_request;
use super::{Cluster, WAIT, one_at_a_time};
use crate::common::request;

const NS: &str = "xmlns='http://jabber.org/protocol/httpbind'";
const OP: &str = "<op xmlns='urn:herald:1'>";

fn bosh(addr: SocketAddr, body: &str) -> (u16, String) {
    request(
        addr,
        "POST",
        "/bosh",
        &[("Content-Type", "text/xml; charset=utf-8")],
        body.as_bytes(),
    )
}

/// An attribute of the answer's `<body>`.
fn attr(text: &str, name: &str) -> Option<String> {
    let head = &text[..text.find('>')?];
    let start = head.find(&format!(" {name}='"))? + name.len() + 3;
    Some(head[start..start + head[start..].find('\'')?].to_string())
}

fn op(v: Value) -> String {
    format!(
        "{OP}{}</op>",
        v.to_string().replace('&', "&amp;").replace('<', "&lt;")
    )
}

/// Creates a BOSH session on `addr`; returns its sid.
fn bosh_session(addr: SocketAddr, attrs: &str, payloads: &str) -> String {
    let (s, text) = bosh(
        addr,
        &format!("<body {NS} rid='100' wait='1' hold='1' {attrs}>{payloads}</body>"),
    );
    assert_eq!(s, 200, "{text}");
    attr(&text, "sid").unwrap_or_else(|| panic!("no sid in {text}"))
}

fn bayeux(addr: SocketAddr, body: &Value) -> Value {
    let (s, text) = request(
        addr,
        "POST",
        "/bayeux",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(s, 200, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn handshake(addr: SocketAddr) -> String {
    let r = bayeux(
        addr,
        &json!([{"channel": "/meta/handshake", "id": "1", "version": "1.0",
                 "supportedConnectionTypes": ["long-polling"]}]),
    );
    assert_eq!(r[0]["successful"], true, "{r}");
    r[0]["clientId"].as_str().unwrap().to_string()
}

/// A Bayeux `/meta/connect` for `client` must be answered "unknown client,
/// handshake again".
fn assert_unknown_client(addr: SocketAddr, client: &str) {
    let r = bayeux(
        addr,
        &json!([{"channel": "/meta/connect", "clientId": client, "id": "c",
                 "connectionType": "long-polling"}]),
    );
    assert_eq!(r[0]["successful"], false, "{r}");
    assert_eq!(r[0]["error"], "402::Unknown client", "{r}");
    assert_eq!(r[0]["advice"]["reconnect"], "handshake", "{r}");
}

/// A BOSH request for `sid` must end the session as unknown.
fn assert_unknown_sid(addr: SocketAddr, sid: &str) {
    let (s, text) = bosh(
        addr,
        &format!("<body {NS} sid='{sid}' rid='101' ver='1.6'/>"),
    );
    assert_eq!(s, 200, "{text}");
    assert_eq!(attr(&text, "type").as_deref(), Some("terminate"), "{text}");
    assert_eq!(
        attr(&text, "condition").as_deref(),
        Some("item-not-found"),
        "{text}"
    );
}

fn publish(addr: SocketAddr, topic: &str, data: &str) -> String {
    let (s, body) = try_request(addr, "POST", &format!("/publish?topic={topic}"), data).unwrap();
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["id"].as_str().unwrap().to_string()
}

pub fn sessions_answer_cleanly_on_another_node(kind: Kind) {
    let _one = one_at_a_time();
    let mut c = Cluster::start(kind, false);
    let addrs = c.addrs();

    // BOSH: the session lives on node 0.
    let sid = bosh_session(
        addrs[0],
        "ver='1.6'",
        &op(json!({"op": "subscribe", "topics": ["s"]})),
    );
    assert_unknown_sid(addrs[1], &sid);
    // The same for a client that sent no `ver` (the node does not know the
    // session, so not its version either: always the terminate body, 200).
    let legacy = bosh_session(addrs[0], "", "");
    let (s, text) = bosh(addrs[2], &format!("<body {NS} sid='{legacy}' rid='101'/>"));
    assert_eq!(s, 200, "{text}");
    assert_eq!(attr(&text, "condition").as_deref(), Some("item-not-found"));

    // Bayeux: the client lives on node 0.
    let client = handshake(addrs[0]);
    assert_unknown_client(addrs[1], &client);

    // Node 0 dies: its sessions are unknown everywhere; clients start again
    // on another node from their last id and lose nothing.
    let seen = publish(addrs[1], "s", "s|one");
    publish(addrs[2], "s", "s|two");
    c.nodes[0].kill9();
    assert_unknown_sid(addrs[2], &sid);
    assert_unknown_client(addrs[2], &client);
    let again = handshake(addrs[2]);
    assert_ne!(again, client);

    let resume = op(json!({"op": "subscribe", "topics": ["s"], "last_event_id": seen}));
    let (s, mut text) = bosh(
        addrs[1],
        &format!("<body {NS} rid='500' wait='1' hold='1' ver='1.6'>{resume}</body>"),
    );
    assert_eq!(s, 200, "{text}");
    let sid = attr(&text, "sid").unwrap();
    let start = Instant::now();
    let mut rid = 500;
    while !text.contains("s|two") {
        assert!(
            start.elapsed() < WAIT,
            "the resumed session missed s|two: {text}"
        );
        rid += 1;
        let (s, next) = bosh(addrs[1], &format!("<body {NS} sid='{sid}' rid='{rid}'/>"));
        assert_eq!(s, 200, "{next}");
        text = next;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!text.contains("s|one"), "resumed after s|one: {text}");
}
