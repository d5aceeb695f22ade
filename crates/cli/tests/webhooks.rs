//! Webhook deliveries against a real receiving HTTP server in the test
//! process: a receiver that is down and comes back (every event, in order),
//! refused connections, 410 removal, lease expiry and clamping, a restart with
//! deliveries pending, a hanging receiver next to a healthy one, eviction,
//! redirects, events lost to retention, shutdown; and a throughput measurement.
// The hub is another process: waits are wall-clock on purpose.
#![allow(clippy::disallowed_types)]

mod common;
#[path = "webhooks/receiver.rs"]
mod receiver;
#[path = "webhooks/support.rs"]
mod support;

use std::time::{Duration, Instant};

use common::{WAIT, request};
use receiver::{Answer, Receiver};
use support::*;

#[test]
fn receiver_down_then_back_gets_every_event_in_order() {
    let h = hub(&[]);
    let rx = Receiver::start();
    let topic = "orders";
    subscribe(&h, topic, &rx.url("/down"), &[]);
    rx.set_answer(Answer::Status(503));
    let ids: Vec<String> = (0..6)
        .map(|i| common::publish_id(h.addr, topic, &format!("event {i}")))
        .collect();
    // Several attempts fail (with back-off) while it is down.
    rx.wait_for("failed attempts", WAIT, |s| (s.attempts >= 3).then_some(()));
    // The receiver counts an attempt when it answers; the hub counts it once
    // it has read that answer, a moment later.
    let start = Instant::now();
    while metric(h.addr, "herald_webhook_deliveries_total{result=\"failed\"}") < 3.0 {
        assert!(start.elapsed() < WAIT, "failed attempts are counted");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(metric(h.addr, "herald_webhook_queue_depth"), 1.0);
    rx.set_answer(Answer::Ok);
    let got = rx.wait_deliveries("/down", 6);
    let bodies: Vec<String> = got
        .iter()
        .map(|d| String::from_utf8_lossy(&d.body).into())
        .collect();
    let want: Vec<String> = (0..6).map(|i| format!("event {i}")).collect();
    assert_eq!(bodies, want, "every event, in order, once");
    let got_ids: Vec<&str> = got
        .iter()
        .map(|d| d.header("herald-event-id").unwrap())
        .collect();
    assert_eq!(got_ids, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        got[0].header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        metric(h.addr, "herald_webhook_deliveries_total{result=\"ok\"}"),
        6.0
    );
    let start = Instant::now();
    while metric(h.addr, "herald_webhook_queue_depth") != 0.0 {
        assert!(start.elapsed() < WAIT);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn connection_refused_is_retried_until_the_receiver_listens() {
    let h = hub(&[]);
    // The API verifies intent first: register with a live receiver, then
    // stop it, so every delivery meets a refused connection.
    let rx = Receiver::start();
    let body = serde_json::json!({"topic": "late", "callback": rx.url("/late")}).to_string();
    let (status, text) = request(
        h.addr,
        "POST",
        "/webhooks",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(status, 201, "{text}");
    drop(rx); // the receiver is gone: connections are refused
    common::publish_id(h.addr, "late", "while down");
    let start = Instant::now();
    while metric(h.addr, "herald_webhook_deliveries_total{result=\"failed\"}") < 2.0 {
        assert!(
            start.elapsed() < WAIT,
            "refused connections are failures, retried"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        list(h.addr, &[]).len(),
        1,
        "still subscribed while retrying"
    );
}

#[test]
fn gone_410_removes_the_subscription() {
    let h = hub(&[]);
    let rx = Receiver::start();
    subscribe(&h, "t410", &rx.url("/gone"), &[]);
    rx.set_answer(Answer::Status(410));
    common::publish_id(h.addr, "t410", "first");
    wait_list(h.addr, "the 410 removal", |l| l.is_empty());
    assert_eq!(rx.state.lock().unwrap().attempts, 1);
    assert_eq!(
        metric(h.addr, "herald_webhook_removals_total{reason=\"gone\"}"),
        1.0
    );
    common::publish_id(h.addr, "t410", "second");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        rx.state.lock().unwrap().attempts,
        1,
        "no delivery after removal"
    );
}

#[test]
fn lease_expiry_removes_the_subscription() {
    let h = hub(&["--webhook-lease-min-secs", "1"]);
    let rx = Receiver::start();
    subscribe(
        &h,
        "lease",
        &rx.url("/lease"),
        &[("hub.lease_seconds", "1")],
    );
    let v = rx.wait_verifications(1);
    assert_eq!(
        v[0]["hub.lease_seconds"], "1",
        "the granted lease is announced"
    );
    // Before expiry it delivers.
    common::publish_id(h.addr, "lease", "in time");
    rx.wait_deliveries("/lease", 1);
    wait_list(h.addr, "the lease to end", |l| l.is_empty());
    assert_eq!(
        metric(h.addr, "herald_webhook_removals_total{reason=\"expired\"}"),
        1.0
    );
    common::publish_id(h.addr, "lease", "too late");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rx.deliveries_to("/lease").len(), 1);
}

#[test]
fn lease_requests_are_clamped_to_the_bounds() {
    let h = hub(&[
        "--webhook-lease-max-secs",
        "3600",
        "--webhook-lease-default-secs",
        "1800",
    ]);
    let rx = Receiver::start();
    subscribe(
        &h,
        "clamp",
        &rx.url("/a"),
        &[("hub.lease_seconds", "999999999")],
    );
    subscribe(&h, "clamp", &rx.url("/b"), &[]);
    let v = rx.wait_verifications(2);
    assert_eq!(v[0]["hub.lease_seconds"], "3600");
    assert_eq!(v[1]["hub.lease_seconds"], "1800");
}

#[test]
fn restart_with_deliveries_pending_loses_nothing() {
    let mut h = hub(&[]);
    let rx = Receiver::start();
    subscribe(&h, "durable", &rx.url("/durable"), &[("hub.secret", "k")]);
    common::publish_id(h.addr, "durable", "a");
    rx.wait_deliveries("/durable", 1);
    rx.set_answer(Answer::Status(500));
    for d in ["b", "c", "d"] {
        common::publish_id(h.addr, "durable", d);
    }
    rx.wait_for("a failed attempt", WAIT, |s| {
        (s.attempts >= 3).then_some(())
    });
    let mut again = vec!["--dev"];
    again.extend_from_slice(FAST);
    h.kill_and_restart(&again);
    rx.set_answer(Answer::Ok);
    common::publish_id(h.addr, "durable", "e");
    let got = rx.wait_deliveries("/durable", 5);
    let bodies: Vec<String> = got
        .iter()
        .map(|d| String::from_utf8_lossy(&d.body).into())
        .collect();
    assert_eq!(bodies, ["a", "b", "c", "d", "e"]);
    for d in &got {
        assert_signed(d, "k", "sha256");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        rx.deliveries_to("/durable").len(),
        5,
        "nothing delivered twice"
    );
}

#[test]
fn a_hanging_receiver_does_not_delay_a_healthy_one() {
    // One healthy permit: the hanging receiver holds it until its first
    // timeout, is then demoted to the failing pool, and the healthy receiver's
    // later deliveries never wait for it.
    let h = hub(&[
        "--webhook-concurrency",
        "1",
        "--webhook-failing-concurrency",
        "1",
        "--webhook-timeout-ms",
        "3000",
    ]);
    let (hang, ok) = (Receiver::start(), Receiver::start());
    hang.set_answer(Answer::Hang);
    subscribe(&h, "shared", &hang.url("/hang"), &[]);
    subscribe(&h, "shared", &ok.url("/ok"), &[]);
    common::publish_id(h.addr, "shared", "0");
    ok.wait_deliveries("/ok", 1);
    // Until its first attempt times out the hanging receiver may hold the one
    // healthy permit; from then on it is demoted.
    let start = Instant::now();
    while metric(h.addr, "herald_webhook_deliveries_total{result=\"failed\"}") < 1.0 {
        assert!(
            start.elapsed() < WAIT,
            "the hanging delivery never timed out"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 1..=5 {
        let start = Instant::now();
        common::publish_id(h.addr, "shared", &i.to_string());
        ok.wait_deliveries("/ok", i + 1);
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(1000),
            "delivery {i} took {took:?} behind a hanging receiver"
        );
    }
    assert_eq!(hang.state.lock().unwrap().deliveries.len(), 0);
    assert!(hang.state.lock().unwrap().attempts >= 1);
}

#[test]
fn failing_too_often_evicts_the_subscription() {
    let h = hub(&["--webhook-max-failures", "3"]);
    let rx = Receiver::start();
    subscribe(&h, "evict", &rx.url("/evict"), &[]);
    rx.set_answer(Answer::Status(500));
    common::publish_id(h.addr, "evict", "x");
    wait_list(h.addr, "the eviction", |l| l.is_empty());
    assert_eq!(rx.state.lock().unwrap().attempts, 3);
    assert_eq!(metric(h.addr, "herald_webhook_evictions_total"), 1.0);
}

#[test]
fn redirects_are_failures_not_followed() {
    let h = hub(&["--webhook-max-failures", "2"]);
    let rx = Receiver::start();
    subscribe(&h, "redir", &rx.url("/redir"), &[]);
    rx.set_answer(Answer::Status(307));
    common::publish_id(h.addr, "redir", "x");
    wait_list(h.addr, "the eviction", |l| l.is_empty());
    assert_eq!(rx.state.lock().unwrap().attempts, 2);
}

#[test]
fn events_lost_to_retention_are_announced_not_skipped_silently() {
    let retention = ["--retention-events-per-topic", "2"];
    let mut h = hub(&retention);
    let rx = Receiver::start();
    subscribe(&h, "kept", &rx.url("/kept"), &[]);
    rx.set_answer(Answer::Status(503));
    for i in 1..=5 {
        common::publish_id(h.addr, "kept", &format!("e{i}"));
    }
    rx.wait_for("a failed attempt", WAIT, |s| {
        (s.attempts >= 1).then_some(())
    });
    // After a restart the worker reads from its cursor: e1-e3 are gone.
    let mut again = vec!["--dev"];
    again.extend_from_slice(FAST);
    again.extend_from_slice(&retention);
    h.kill_and_restart(&again);
    rx.set_answer(Answer::Ok);
    let got = rx.wait_deliveries("/kept", 2);
    let bodies: Vec<String> = got
        .iter()
        .map(|d| String::from_utf8_lossy(&d.body).into())
        .collect();
    assert_eq!(bodies, ["e4", "e5"]);
    assert_eq!(got[0].header("herald-continuity"), Some("broken"));
    assert_eq!(got[1].header("herald-continuity"), None);
    assert_eq!(
        metric(h.addr, "herald_webhook_continuity_breaks_total"),
        1.0
    );
}

/// Delivery throughput (a measurement, not a check of speed): run with
/// `cargo test -p herald-cli --test webhooks -- --ignored --nocapture throughput`.
#[test]
#[ignore = "a measurement; prints figures"]
fn throughput() {
    for (subscribers, events) in [(1usize, 2000usize), (50, 200)] {
        let h = hub(&[]);
        let rx = Receiver::start();
        for s in 0..subscribers {
            let body = serde_json::json!({"topic": "load", "callback": rx.url(&format!("/s{s}"))})
                .to_string();
            let (status, text) = request(
                h.addr,
                "POST",
                "/webhooks",
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            );
            assert_eq!(status, 201, "{text}");
        }
        let batch: Vec<serde_json::Value> = (0..events)
            .map(|i| serde_json::json!({"topic": "load", "data": format!("event {i}")}))
            .collect();
        let start = Instant::now();
        for chunk in batch.chunks(500) {
            let body = serde_json::to_vec(chunk).unwrap();
            let (status, text) = request(
                h.addr,
                "POST",
                "/publish",
                &[("Content-Type", "application/json")],
                &body,
            );
            assert_eq!(status, 200, "{text}");
        }
        let total = subscribers * events;
        rx.wait_for("every delivery", Duration::from_secs(300), |s| {
            (s.deliveries.len() >= total).then_some(())
        });
        let took = start.elapsed();
        for s in 0..subscribers {
            let got = rx.deliveries_to(&format!("/s{s}"));
            let bodies: Vec<String> = got
                .iter()
                .map(|d| String::from_utf8_lossy(&d.body).into())
                .collect();
            let want: Vec<String> = (0..events).map(|i| format!("event {i}")).collect();
            assert_eq!(bodies, want);
        }
        let commits = metric(h.addr, "herald_store_commits_total");
        println!(
            "{subscribers} subscriber(s) x {events} events: {total} deliveries in {took:?} = {:.0}/s; {commits} store commits",
            total as f64 / took.as_secs_f64()
        );
    }
}

#[test]
fn shutdown_does_not_wait_for_a_hanging_receiver() {
    let mut h = hub(&["--webhook-timeout-ms", "60000"]);
    let rx = Receiver::start();
    subscribe(&h, "stop", &rx.url("/stop"), &[]);
    rx.set_answer(Answer::Hang);
    common::publish_id(h.addr, "stop", "x");
    rx.wait_for("the delivery to start", WAIT, |s| {
        (s.attempts >= 1).then_some(())
    });
    let start = Instant::now();
    assert!(h.terminate().success());
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
}

/// Memory per idle webhook subscription (a measurement): run with
/// `cargo test -p herald-cli --test webhooks -- --ignored --nocapture idle_subscription_cost`.
/// On one shared topic it is the subscription's own cost; on distinct topics
/// each also brings its topic's fan-out ring (`ring_capacity` slots), as any
/// subscriber of a topic nobody else watches does.
#[test]
#[ignore = "a measurement; prints figures"]
fn idle_subscription_cost() {
    for shared_topic in [true, false] {
        let h = hub(&[]);
        let rx = Receiver::start();
        let rss_kib = || {
            let status = std::fs::read_to_string(format!("/proc/{}/status", h.child.id())).unwrap();
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
                .unwrap()
        };
        let create = |from: usize, to: usize| {
            for i in from..to {
                let topic = if shared_topic {
                    "idle".to_string()
                } else {
                    format!("idle/{i}")
                };
                let body =
                    serde_json::json!({"topic": topic, "callback": rx.url(&format!("/idle{i}"))})
                        .to_string();
                let (status, text) = request(
                    h.addr,
                    "POST",
                    "/webhooks",
                    &[("Content-Type", "application/json")],
                    body.as_bytes(),
                );
                assert_eq!(status, 201, "{text}");
            }
        };
        create(0, 200); // warm up the allocator, the client pool, the store's cache
        let before = rss_kib();
        let n = 5000;
        create(200, 200 + n);
        std::thread::sleep(Duration::from_millis(500));
        let after = rss_kib();
        println!(
            "{n} idle webhook subscriptions ({}): RSS {before} KiB -> {after} KiB, {:.2} KiB each",
            if shared_topic {
                "one topic"
            } else {
                "one topic each"
            },
            (after - before) as f64 / n as f64
        );
    }
}
