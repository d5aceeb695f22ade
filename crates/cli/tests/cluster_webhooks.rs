//! Webhooks in a cluster, per broker: a subscription made through one node
//! is known to every node and delivered by exactly one of them; when that
//! node is killed another takes over within the lease and continues from the
//! stored cursor; deleting it through any node stops deliveries.
// Separate processes over real sockets: wall-clock deadlines on purpose.
#![allow(clippy::disallowed_types)]

mod cluster;
mod common;
#[path = "webhooks/receiver.rs"]
mod receiver;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::Cluster;
use cluster::broker::{Kind, available};
use cluster::clients::{Sent, publish, try_request};
use common::request;
use receiver::{Delivery, Receiver};

#[test]
fn redis_webhooks_are_delivered_once_and_move_when_their_node_dies() {
    if available(Kind::Redis) {
        webhooks_once_across_the_cluster(Kind::Redis);
    }
}

#[test]
fn nats_webhooks_are_delivered_once_and_move_when_their_node_dies() {
    if available(Kind::Nats) {
        webhooks_once_across_the_cluster(Kind::Nats);
    }
}

/// The delivery lease in these tests (short: takeover is awaited).
const LEASE_MS: u64 = 1500;
const WAIT: Duration = Duration::from_secs(30);

/// Deliveries that reached `/w`, as (event id, body).
fn received(rx: &Receiver) -> Vec<(String, String)> {
    rx.deliveries_to("/w")
        .iter()
        .map(|d: &Delivery| {
            (
                d.header("herald-event-id").unwrap_or_default().to_string(),
                String::from_utf8_lossy(&d.body).to_string(),
            )
        })
        .collect()
}

/// Waits until `data` was delivered.
fn wait_body(rx: &Receiver, data: &str, limit: Duration) {
    let start = Instant::now();
    while !received(rx).iter().any(|(_, b)| b == data) {
        assert!(
            start.elapsed() < limit,
            "{data:?} not delivered within {limit:?}; got {:?}",
            received(rx).last()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Successful deliveries this node made.
fn delivered_by(addr: SocketAddr) -> f64 {
    let Some((_, text)) = try_request(addr, "GET", "/metrics", "") else {
        return 0.0;
    };
    text.lines()
        .find_map(|l| {
            l.strip_prefix("herald_webhook_deliveries_total{result=\"ok\"} ")?
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

fn webhooks_once_across_the_cluster(kind: Kind) {
    let _one = cluster::one_at_a_time();
    let lease = LEASE_MS.to_string();
    let mut c = Cluster::start_with(
        kind,
        false,
        &[
            "--webhook-allow-private",
            "--webhook-backoff-base-ms",
            "50",
            "--webhook-backoff-max-ms",
            "200",
            "--broker-webhook-lease-ms",
            &lease,
        ],
    );
    let addrs = c.addrs();
    let rx = Receiver::start();
    let body = serde_json::json!({"topic": "w", "callback": rx.url("/w")}).to_string();
    let (status, text) = request(
        addrs[0],
        "POST",
        "/webhooks",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(status, 201, "{text}");
    let id = serde_json::from_str::<serde_json::Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Every node knows it.
    for &addr in &addrs {
        let (s, body) = request(addr, "GET", &format!("/webhooks/{id}"), &[], b"");
        assert_eq!(
            s, 200,
            "node {addr} does not know subscription {id}: {body}"
        );
    }

    // Normal case: published through node 1, delivered once each, in order.
    let sent = Arc::new(Mutex::new(Sent::default()));
    let mut published = Vec::new();
    for i in 0..40 {
        let data = format!("w|{i}");
        assert_eq!(publish(addrs[1], "w", &data, &sent), 200);
        published.push(data);
    }
    wait_body(&rx, "w|39", WAIT);
    // Room for a second node's duplicate to show up, if there were one.
    std::thread::sleep(Duration::from_millis(LEASE_MS));
    let bodies: Vec<String> = received(&rx).into_iter().map(|(_, b)| b).collect();
    assert_eq!(bodies, published, "each event once, in order");
    let holders: Vec<usize> = (0..3).filter(|&i| delivered_by(addrs[i]) > 0.0).collect();
    assert_eq!(holders.len(), 1, "one node delivers: {holders:?}");
    let holder = holders[0];

    // SIGKILL the delivering node mid-stream: another continues.
    let other = (holder + 1) % 3;
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (sent, stop, addr) = (sent.clone(), stop.clone(), addrs[other]);
        std::thread::spawn(move || {
            let mut mine = Vec::new();
            for i in 40..140 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let data = format!("w|{i}");
                assert_eq!(publish(addr, "w", &data, &sent), 200);
                mine.push(data);
                std::thread::sleep(Duration::from_millis(15));
            }
            mine
        })
    };
    wait_body(&rx, "w|60", WAIT);
    c.nodes[holder].kill9();
    let killed_at = Instant::now();
    published.extend(publisher.join().unwrap());
    let last = published.last().unwrap().clone();
    wait_body(&rx, &last, WAIT);
    assert!(
        killed_at.elapsed() < Duration::from_millis(LEASE_MS * 6) + Duration::from_secs(5),
        "deliveries resumed within the lease (took {:?})",
        killed_at.elapsed()
    );
    let mut seen = HashSet::new();
    let firsts: Vec<String> = received(&rx)
        .into_iter()
        .filter(|(id, _)| seen.insert(id.clone()))
        .map(|(_, b)| b)
        .collect();
    assert_eq!(
        firsts, published,
        "every event at least once, in order after de-duplicating by Herald-Event-Id"
    );
    let alive: Vec<usize> = (0..3).filter(|&i| i != holder).collect();
    assert!(
        alive.iter().any(|&i| delivered_by(addrs[i]) > 0.0),
        "a surviving node took the deliveries over"
    );

    // Deleted through a surviving node that does not deliver it (when there
    // is one): deliveries stop everywhere.
    let new_holder = alive
        .iter()
        .copied()
        .find(|&i| delivered_by(addrs[i]) > 0.0)
        .unwrap();
    let deleter = alive.iter().copied().find(|&i| i != new_holder).unwrap();
    let (s, body) = request(
        addrs[deleter],
        "DELETE",
        &format!("/webhooks/{id}"),
        &[],
        b"",
    );
    assert_eq!(s, 204, "{body}");
    // The deliverer learns of it at its next lease renewal (a third of it).
    std::thread::sleep(Duration::from_millis(LEASE_MS));
    let before = received(&rx).len();
    for i in 0..5 {
        assert_eq!(
            publish(addrs[new_holder], "w", &format!("w|after-{i}"), &sent),
            200
        );
    }
    std::thread::sleep(Duration::from_millis(LEASE_MS * 2));
    assert_eq!(
        received(&rx).len(),
        before,
        "no delivery after the subscription was deleted"
    );
    for i in alive {
        let (s, _) = request(addrs[i], "GET", &format!("/webhooks/{id}"), &[], b"");
        assert_eq!(s, 404, "node {i} forgot the deleted subscription");
    }
}
