//! Cluster scenarios, run once per broker (`cluster_redis.rs`,
//! `cluster_nats.rs`): three real herald nodes sharing a real broker.
#![allow(dead_code, unreachable_pub)]
// Separate processes over real sockets: wall-clock deadlines on purpose.
#![allow(clippy::disallowed_types)]

pub mod broker;
pub mod clients;
pub mod sessions;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker::{Broker, Kind};
use clients::{Reader, Seen, Sent, Transport, publish, seq, try_request};

use crate::common::Hub;

const WAIT: Duration = Duration::from_secs(30);

/// A broker and three nodes on it.
pub struct Cluster {
    /// First: nodes stop before their broker does.
    pub nodes: Vec<Hub>,
    pub broker: Broker,
}

impl Cluster {
    pub fn start(kind: Kind, persistent: bool) -> Cluster {
        Cluster::start_with(kind, persistent, &[])
    }

    /// Three nodes with `extra` flags too.
    pub fn start_with(kind: Kind, persistent: bool, extra: &[&str]) -> Cluster {
        let broker = Broker::start(kind, persistent);
        let mut args = node_args(&broker.url());
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let nodes = (0..3).map(|_| Hub::start(&args)).collect();
        Cluster { nodes, broker }
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.addr).collect()
    }

    /// SIGKILL node `i` and start it again on the same port.
    pub fn restart_node(&mut self, i: usize) {
        let mut args = vec!["--dev".to_string()];
        args.extend(node_args(&self.broker.url()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.nodes[i].kill_and_restart(&args);
    }

    /// Waits until every node answers /readyz with 200.
    pub fn wait_ready(&self) {
        for addr in self.addrs() {
            let start = Instant::now();
            loop {
                if try_request(addr, "GET", "/readyz", "").is_some_and(|(s, _)| s == 200) {
                    break;
                }
                assert!(start.elapsed() < WAIT, "node {addr} not ready in {WAIT:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The log's epoch, from a probe publish.
    pub fn epoch(&self) -> String {
        self.nodes[0].epoch()
    }
}

/// Scenarios of one test binary run one at a time: each starts a broker and
/// three nodes, and several at once on a two-core machine make timing-bound
/// steps (a follower catching up, a reconnect) much slower than any
/// deployment would see.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Node settings: the default `broker_timeout_ms` (5 s), which also bounds
/// how long a node waits for its follower to reach a position a client got
/// from another node; `burst_reaches_every_node_promptly` guards it.
fn node_args(url: &str) -> Vec<String> {
    ["--broker", url, "--broker-reconnect-max-ms", "500"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The default `broker_timeout_ms`.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

/// Bursts published at once on one node reach subscribers on the other
/// nodes within the broker timeout (in practice milliseconds), and a client
/// resuming from a burst's last id on another node is never told "reset"
/// (which it would be if that node's follower lagged past the timeout: the
/// NATS follower once held the last event of a burst for seconds).
pub fn burst_reaches_every_node_promptly(kind: Kind) {
    let _one = one_at_a_time();
    let c = Cluster::start(kind, false);
    let from = format!("{}-0", c.epoch());
    let readers: Vec<Reader> = [1, 2]
        .map(|i| Reader::start(Transport::Sse, &["b"], c.addrs(), i, from.clone()))
        .into();
    let sent = Arc::new(Mutex::new(Sent::default()));
    let origin = c.nodes[0].addr;
    for round in 0..4 {
        let publishers: Vec<_> = (0..4)
            .map(|p| {
                let sent = sent.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let data = format!("b|r{round}-p{p}-{i}");
                        assert_eq!(publish(origin, "b", &data, &sent), 200);
                    }
                })
            })
            .collect();
        for p in publishers {
            p.join().unwrap();
        }
        let last = sent
            .lock()
            .unwrap()
            .acked
            .iter()
            .max_by_key(|g| seq(&g.id))
            .cloned()
            .unwrap();
        for r in &readers {
            r.wait_for(&last.data, BROKER_TIMEOUT);
        }
        for node in &c.nodes[1..] {
            let path = format!("/poll?topic=b&since={}&timeout=0", last.id);
            let (s, body) = try_request(node.addr, "GET", &path, "").unwrap();
            assert_eq!(s, 200, "{body}");
            assert!(
                !body.contains("\"reset\""),
                "round {round}: resuming from {} on another node was told reset: {body}",
                last.id
            );
        }
        // Idle between bursts, as a quiet topic is.
        std::thread::sleep(Duration::from_millis(1500));
    }
    let sent = sent.lock().unwrap();
    for (i, r) in readers.into_iter().enumerate() {
        assert_exact(&format!("reader {i}"), &r.finish(), &["b".into()], &sent, 0);
    }
}

/// Asserts that `seen` is exactly the acknowledged events on its topics (in
/// log order, each once), plus possibly events whose publish outcome was
/// unknown, with no reset.
fn assert_exact(what: &str, seen: &Seen, topics: &[String], sent: &Sent, after_seq: u64) {
    assert!(
        seen.resets.is_empty(),
        "{what}: unexpected resets {:?}",
        seen.resets
    );
    let on_topics = |data: &str| topics.iter().any(|t| data.starts_with(&format!("{t}|")));
    let seqs: Vec<u64> = seen.events.iter().map(|g| seq(&g.id)).collect();
    if let Some(w) = seqs.windows(2).find(|w| w[0] >= w[1]) {
        panic!("{what}: out of order or duplicated: {} then {}", w[0], w[1]);
    }
    let got: HashMap<&str, &str> = seen
        .events
        .iter()
        .map(|g| (g.id.as_str(), g.data.as_str()))
        .collect();
    let mut missing = Vec::new();
    for a in sent
        .acked
        .iter()
        .filter(|a| on_topics(&a.data) && seq(&a.id) > after_seq)
    {
        match got.get(a.id.as_str()) {
            Some(d) => assert_eq!(*d, a.data, "{what}: event {} has other data", a.id),
            None => missing.push(a.id.clone()),
        }
    }
    assert!(
        missing.is_empty(),
        "{what}: {} acknowledged events lost, first {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let acked: HashSet<&str> = sent.acked.iter().map(|a| a.id.as_str()).collect();
    let uncertain: HashSet<&str> = sent.uncertain.iter().map(String::as_str).collect();
    for g in &seen.events {
        assert!(
            on_topics(&g.data),
            "{what}: event {g:?} is on another topic"
        );
        assert!(
            acked.contains(g.id.as_str()) || uncertain.contains(g.data.as_str()),
            "{what}: event {g:?} was never published"
        );
    }
}

/// A publish on any node reaches subscribers on every node, over every
/// transport, in the same order; publisher ids resume on another node.
pub fn cross_node_delivery(kind: Kind) {
    let _one = one_at_a_time();
    let c = Cluster::start(kind, false);
    let epoch = c.epoch();
    let from = format!("{epoch}-0");
    let sent = Mutex::new(Sent::default());
    let readers: Vec<Reader> = (0..3)
        .flat_map(|i| {
            [Transport::Sse, Transport::Ndjson, Transport::Poll]
                .map(|t| Reader::start(t, &["x"], c.addrs(), i, from.clone()))
        })
        .collect();
    for round in 0..5 {
        for (i, addr) in c.addrs().into_iter().enumerate() {
            assert_eq!(publish(addr, "x", &format!("x|n{i}-{round}"), &sent), 200);
        }
    }
    // A publisher-supplied id, used as a resume cursor on another node.
    let (s, body) = try_request(
        c.nodes[0].addr,
        "POST",
        "/publish?topic=x&id=mine-1",
        "x|mine",
    )
    .unwrap();
    assert_eq!(s, 200, "{body}");
    let (s, body) = try_request(
        c.nodes[2].addr,
        "POST",
        "/publish?topic=x&id=mine-1",
        "x|again",
    )
    .unwrap();
    assert_eq!(s, 409, "a duplicate id is refused on every node: {body}");
    assert!(body.contains("duplicate_id"), "{body}");
    assert_eq!(publish(c.nodes[1].addr, "x", "x|last", &sent), 200);
    for r in &readers {
        r.wait_for("x|last", WAIT);
    }
    let mut orders = Vec::new();
    for r in readers {
        let topics = r.topics.clone();
        let what = format!("{:?}", r.transport);
        let mut seen = r.finish();
        seen.events.retain(|g| g.data != "x|mine");
        assert_exact(&what, &seen, &topics, &sent.lock().unwrap(), 0);
        orders.push(seen.events);
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "every reader saw one order"
    );
    assert_eq!(orders[0].len(), 16);

    // Resume after the publisher's id on a node that did not take it.
    let (s, body) = try_request(
        c.nodes[1].addr,
        "GET",
        "/poll?topic=x&since=mine-1&timeout=0",
        "",
    )
    .unwrap();
    assert_eq!(s, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let datas: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    assert_eq!(datas, ["x|last"], "{body}");
}

/// A node killed with SIGKILL mid-stream: its subscriber resumes on another
/// node from its last id and loses nothing, duplicates nothing.
pub fn node_killed_mid_stream(kind: Kind) {
    let _one = one_at_a_time();
    let mut c = Cluster::start(kind, false);
    let from = format!("{}-0", c.epoch());
    let reader = Reader::start(Transport::Sse, &["k"], c.addrs(), 0, from);
    let sent = Arc::new(Mutex::new(Sent::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (sent, stop, addr) = (sent.clone(), stop.clone(), c.nodes[1].addr);
        std::thread::spawn(move || {
            for i in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                assert_eq!(publish(addr, "k", &format!("k|{i}"), &sent), 200);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    reader.wait_for("k|50", WAIT);
    c.nodes[0].kill9();
    let start = Instant::now();
    while sent.lock().unwrap().acked.len() < 300 {
        assert!(start.elapsed() < WAIT, "publishing stalled");
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    let n = sent.lock().unwrap().acked.len();
    reader.wait_for(&format!("k|{}", n - 1), WAIT);
    let seen = reader.finish();
    assert!(seen.connections >= 2, "the reader moved to another node");
    assert_exact(
        "resumed reader",
        &seen,
        &["k".into()],
        &sent.lock().unwrap(),
        0,
    );
}

/// The broker goes away: publishes fail with 503 and a clear message, nodes
/// say they are not ready, then reconnect by themselves. With the stream kept
/// (`wipe` false) nothing is lost; with the stream lost the epoch changes
/// and a resuming client is told "reset".
pub fn broker_restart(kind: Kind, wipe: bool) {
    let _one = one_at_a_time();
    let persistent = !wipe;
    let mut c = Cluster::start(kind, persistent);
    let epoch = c.epoch();
    let from = format!("{epoch}-0");
    let reader = Reader::start(Transport::Sse, &["r"], c.addrs(), 2, from.clone());
    let sent = Mutex::new(Sent::default());
    for i in 0..20 {
        assert_eq!(
            publish(c.nodes[i % 3].addr, "r", &format!("r|{i}"), &sent),
            200
        );
    }
    reader.wait_for("r|19", WAIT);

    c.broker.kill9();
    let start = Instant::now();
    loop {
        let (s, body) = try_request(c.nodes[0].addr, "GET", "/readyz", "").unwrap();
        if s == 503 {
            assert!(body.contains("broker out of reach"), "{body}");
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "/readyz stayed ready with the broker down"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Refused clearly (and not stored later: the test's readers would see it).
    let (status, body) =
        try_request(c.nodes[0].addr, "POST", "/publish?topic=r", "r|down").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("store_unavailable"), "{body}");

    c.broker.restart(wipe);
    c.wait_ready();
    if wipe {
        // The connected reader is ended and told of the new epoch before
        // anything else is published (live delivery starts from there).
        reader.wait_reset(WAIT);
    }
    let new_epoch = c.epoch();
    // The publisher-id index works after the restart, on every node.
    let (s, body) = try_request(
        c.nodes[0].addr,
        "POST",
        "/publish?topic=r2&id=after-restart",
        "x",
    )
    .unwrap();
    assert_eq!(s, 200, "{body}");
    let (s, body) = try_request(
        c.nodes[1].addr,
        "GET",
        "/poll?topic=r2&since=after-restart&timeout=0",
        "",
    )
    .unwrap();
    assert_eq!(s, 200, "{body}");
    assert!(
        !body.contains("reset"),
        "the id resolves on another node: {body}"
    );
    for i in 20..40 {
        assert_eq!(
            publish(c.nodes[i % 3].addr, "r", &format!("r|{i}"), &sent),
            200
        );
    }
    if !wipe {
        assert_eq!(new_epoch, epoch, "the stream survived: same epoch");
        reader.wait_for("r|39", WAIT);
        let seen = reader.finish();
        assert_exact(
            "reader across the restart",
            &seen,
            &["r".into()],
            &sent.lock().unwrap(),
            0,
        );
        return;
    }
    assert_ne!(new_epoch, epoch, "a lost stream starts a new epoch");
    // A client resuming from the old epoch is told, never given a partial replay.
    let (s, body) = try_request(
        c.nodes[0].addr,
        "GET",
        &format!("/poll?topic=r&since={epoch}-19&timeout=0"),
        "",
    )
    .unwrap();
    assert_eq!(s, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["reset"]["reason"], "epoch", "{body}");
    // The reader that was connected resumes and is told the same.
    reader.wait_for("r|39", WAIT);
    let seen = reader.finish();
    assert!(
        seen.resets.iter().any(|r| r.contains("epoch")),
        "reader told of the new epoch: {:?}",
        seen.resets
    );
    let datas: Vec<&str> = seen.events.iter().map(|g| g.data.as_str()).collect();
    let expected: Vec<String> = (0..40).map(|i| format!("r|{i}")).collect();
    assert_eq!(datas, expected, "every acknowledged event once, in order");
}

/// The long run: publishers on every node, readers on every node over SSE,
/// NDJSON and long-poll, one node killed and restarted mid-run; every
/// reader's sequence is compared exactly with what was published.
pub fn mixed_run(kind: Kind) {
    let _one = one_at_a_time();
    let secs: u64 = std::env::var("HERALD_CLUSTER_MIXED_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let mut c = Cluster::start(kind, false);
    let from = format!("{}-0", c.epoch());
    let topics = ["m0", "m1", "m2"];
    let choices: [(&[&str], Transport); 3] = [
        (&["m0", "m1"], Transport::Sse),
        (&["m1", "m2"], Transport::Ndjson),
        (&["m0", "m2"], Transport::Poll),
    ];
    let readers: Vec<Reader> = (0..3)
        .flat_map(|node| {
            let (addrs, from) = (c.addrs(), from.clone());
            choices.map(|(t, tr)| Reader::start(tr, t, addrs.clone(), node, from.clone()))
        })
        .collect();
    let sent = Arc::new(Mutex::new(Sent::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let publishers: Vec<_> = c
        .addrs()
        .into_iter()
        .enumerate()
        .map(|(n, addr)| {
            let (sent, stop) = (sent.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0..1_000_000u64 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let topic = topics[(i % 3) as usize];
                    if publish(addr, topic, &format!("{topic}|p{n}-{i}"), &sent) != 200 {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs / 2));
    c.nodes[0].kill9();
    std::thread::sleep(Duration::from_secs(2));
    c.restart_node(0);
    std::thread::sleep(Duration::from_secs(secs.saturating_sub(secs / 2 + 2)));
    stop.store(true, Ordering::Relaxed);
    for p in publishers {
        p.join().unwrap();
    }
    c.wait_ready();
    for t in topics {
        assert_eq!(publish(c.nodes[1].addr, t, &format!("{t}|end"), &sent), 200);
    }
    let sent = sent.lock().unwrap().clone();
    assert!(
        sent.acked.len() > 1000,
        "enough traffic: {} events",
        sent.acked.len()
    );
    for r in &readers {
        for t in &r.topics {
            r.wait_for(&format!("{t}|end"), Duration::from_secs(60));
        }
    }
    for (i, r) in readers.into_iter().enumerate() {
        let what = format!("reader {i} ({:?} on {:?})", r.transport, r.topics);
        let topics = r.topics.clone();
        let seen = r.finish();
        assert_exact(&what, &seen, &topics, &sent, 0);
    }
    eprintln!(
        "mixed run ({kind:?}, {secs}s): {} acknowledged, {} uncertain publishes",
        sent.acked.len(),
        sent.uncertain.len()
    );
}

/// A node whose broker is gone still stops on SIGTERM, cleanly (the NATS
/// client's final flush used to wait for a reconnection that never came).
pub fn stops_with_the_broker_gone(kind: Kind) {
    let _one = one_at_a_time();
    let mut c = Cluster::start(kind, false);
    let sent = Mutex::new(Sent::default());
    assert_eq!(publish(c.nodes[0].addr, "g", "g|0", &sent), 200);
    c.broker.kill9();
    for node in &mut c.nodes {
        // `terminate` fails the test if the node is still running after 20 s.
        assert!(node.terminate().success());
    }
}
