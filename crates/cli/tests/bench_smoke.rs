//! `herald bench` against the real hub: 50 subscribers over 5 topics, 200
//! events as fast as possible, over SSE, WebSocket and long-polling; every
//! event reaches every subscriber of its topic once, in order, and the JSON
//! line says so.
#![allow(clippy::disallowed_types)] // wall-clock bound on a child process

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Hub;

fn bench(hub: &Hub, route: &str, extra: &[&str]) -> (std::process::ExitStatus, String, String) {
    let sub = format!("http://{}/{route}?topic={{topic}}", hub.addr);
    let publ = format!("http://{}/publish?topic={{topic}}", hub.addr);
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("bench")
        .args(["--sub-url", &sub, "--pub-url", &publ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start herald bench");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("herald bench did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bench_delivers_every_event_once_in_order_and_reports_json() {
    for transport in ["sse", "ws", "poll"] {
        smoke(transport);
    }
}

fn smoke(transport: &str) {
    let hub = Hub::start(&[]);
    let pid = hub.child.id().to_string();
    let (status, stdout, stderr) = bench(
        &hub,
        transport,
        &[
            "--transport",
            transport,
            "--subscribers",
            "50",
            "--topics",
            "5",
            "--events",
            "200",
            "--idle-secs",
            "0.2",
            "--timeout",
            "20",
            "--server-pid",
            &pid,
            "--label",
            "smoke",
        ],
    );
    assert!(status.success(), "exit {status}\n{stdout}\n{stderr}");
    let line = stdout.lines().last().expect("a JSON line");
    let v: serde_json::Value = serde_json::from_str(line).expect(line);
    assert_eq!(v["scenario"], "smoke", "{transport}");
    assert_eq!(v["connected"], 50, "{transport}: {line}");
    assert_eq!(v["published"], 200, "{line}");
    assert_eq!(v["deliveries"], 50 * 200 / 5, "{line}");
    for field in ["lost", "duplicated", "out_of_order", "unexpected"] {
        assert_eq!(v[field], 0, "{transport} {field}: {line}");
    }
    assert_eq!(v["timed_out"], false);
    assert!(v["p50_ms"].as_f64().unwrap() > 0.0, "{line}");
    assert!(v["p99_ms"].as_f64().unwrap() >= v["p50_ms"].as_f64().unwrap());
    assert!(v["server_rss_kib_per_conn"].is_number(), "{line}");
    assert!(v["server_cpu_us_per_delivery"].is_number(), "{line}");
    assert!(v["server_writes_per_delivery"].is_number(), "{line}");
}

#[test]
fn bench_paced_run_loses_nothing() {
    let hub = Hub::start(&[]);
    let (status, stdout, stderr) = bench(
        &hub,
        "sse",
        &[
            "--subscribers",
            "20",
            "--topics",
            "4",
            "--events",
            "40",
            "--rate",
            "200",
            "--idle-secs",
            "0",
            "--timeout",
            "20",
        ],
    );
    assert!(status.success(), "exit {status}\n{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["deliveries"], 20 * 40 / 4);
    assert_eq!(v["lost"], 0);
    assert!(v["server_cpu_us_per_delivery"].is_null());
}

#[test]
fn bench_workers_share_the_subscribers_and_add_up() {
    let hub = Hub::start(&[]);
    let pid = hub.child.id().to_string();
    let (status, stdout, stderr) = bench(
        &hub,
        "sse",
        &[
            "--workers",
            "3",
            "--subscribers",
            "31",
            "--topics",
            "4",
            "--events",
            "80",
            "--idle-secs",
            "0.2",
            "--server-pid",
            &pid,
        ],
    );
    assert!(status.success(), "exit {status}\n{stdout}\n{stderr}");
    let line = stdout.lines().last().expect("a JSON line");
    let v: serde_json::Value = serde_json::from_str(line).expect(line);
    assert_eq!(v["connected"], 31, "{line}");
    // Topic t has subscribers t, t+4, …: 8, 8, 8 and 7 of them, 20 events each.
    assert_eq!(v["deliveries"], 31 * 20, "{line}");
    for field in ["lost", "duplicated", "out_of_order", "unexpected"] {
        assert_eq!(v[field], 0, "{field}: {line}");
    }
    assert!(
        v["p50_ms"].as_f64().unwrap() > 0.0,
        "latencies came back from the workers: {line}"
    );
    assert!(v["server_rss_kib_per_conn"].is_number(), "{line}");
}

#[test]
fn bench_json_batches_keep_each_topic_in_order() {
    let hub = Hub::start(&[]);
    let batch_url = format!("http://{}/publish", hub.addr);
    let (status, stdout, stderr) = bench(
        &hub,
        "sse",
        &[
            "--subscribers",
            "10",
            "--topics",
            "2",
            "--events",
            "100",
            "--batch",
            "25",
            "--batch-url",
            &batch_url,
            "--idle-secs",
            "0",
        ],
    );
    assert!(status.success(), "exit {status}\n{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["published"], 100);
    assert_eq!(v["deliveries"], 10 * 100 / 2);
    for field in ["lost", "duplicated", "out_of_order", "unexpected"] {
        assert_eq!(v[field], 0, "{field}");
    }
}

#[test]
fn bench_several_publishes_in_flight_per_topic_are_checked_per_lane() {
    let hub = Hub::start(&[]);
    let (status, stdout, stderr) = bench(
        &hub,
        "sse",
        &[
            "--subscribers",
            "20",
            "--topics",
            "1",
            "--events",
            "203",
            "--in-flight",
            "4",
            "--idle-secs",
            "0",
        ],
    );
    assert!(status.success(), "exit {status}\n{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["published"], 203);
    // Every subscriber gets all 203 (the run waits for the last event of every
    // lane, including the short ones), and no lane sees its events reordered.
    assert_eq!(v["deliveries"], 20 * 203);
    for field in ["lost", "duplicated", "out_of_order", "unexpected"] {
        assert_eq!(v[field], 0, "{field}");
    }
}

#[test]
fn bench_refuses_bad_arguments_and_unreachable_hubs() {
    let exe = env!("CARGO_BIN_EXE_herald");
    let out = Command::new(exe)
        .args(["bench", "--sub-url", "ftp://x/{topic}"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sub-url"));
    let out = Command::new(exe)
        .args(["bench", "--topics", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    // Nothing listens on port 1: every connect fails, the run is abandoned.
    let out = Command::new(exe)
        .args([
            "bench",
            "--subscribers",
            "3",
            "--connect-timeout",
            "2",
            "--sub-url",
            "http://127.0.0.1:1/sse?topic={topic}",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("3 of 3 subscribers failed to connect"),
        "{err}"
    );
}

#[test]
fn bench_storm_resumes_every_subscriber_with_last_event_id() {
    let hub = Hub::start(&[]);
    let pid = hub.child.id().to_string();
    let (status, stdout, stderr) = bench(
        &hub,
        "sse",
        &[
            "--storm",
            "--subscribers",
            "30",
            "--topics",
            "3",
            "--events",
            "30",
            "--storm-events",
            "60",
            "--reconnect-concurrency",
            "10",
            "--idle-secs",
            "0",
            "--timeout",
            "20",
            "--server-pid",
            &pid,
        ],
    );
    assert!(status.success(), "exit {status}\n{stdout}\n{stderr}");
    let line = stdout.lines().last().expect("a JSON line");
    let v: serde_json::Value = serde_json::from_str(line).expect(line);
    // 90 events over 3 topics: 30 per topic, 10 subscribers each.
    assert_eq!(v["published"], 90, "{line}");
    assert_eq!(v["deliveries"], 30 * 30, "{line}");
    for field in [
        "lost",
        "duplicated",
        "out_of_order",
        "unexpected",
        "closed_early",
    ] {
        assert_eq!(v[field], 0, "{field}: {line}");
    }
    assert_eq!(v["timed_out"], false, "{line}");
    assert_eq!(v["storm_away_events"], 60, "{line}");
    assert_eq!(v["storm_away_published"], 60, "{line}");
    assert_eq!(v["storm_reconnected"], 30, "{line}");
    assert_eq!(v["storm_not_caught_up"], 0, "{line}");
    let after_drop = v["storm_caught_up_after_drop_secs"].as_f64().unwrap();
    let after_reconnect = v["storm_caught_up_after_reconnect_secs"].as_f64().unwrap();
    assert!(after_reconnect > 0.0, "{line}");
    assert!(after_drop > after_reconnect, "{line}");
    assert!(
        v["storm_catch_up_p99_ms"].as_f64().unwrap()
            >= v["storm_catch_up_p50_ms"].as_f64().unwrap(),
        "{line}"
    );
    assert!(
        stdout.contains("caught up"),
        "the table has the storm: {stdout}"
    );
}

#[test]
fn bench_publishing_scenario_with_many_keep_alive_publishers() {
    // Scenario (d) in small: one subscriber per topic checks delivery.
    let hub = Hub::start(&[]);
    let batch_url = format!("http://{}/publish", hub.addr);
    for extra in [&[][..], &["--batch", "20", "--batch-url", &batch_url][..]] {
        let mut args = vec![
            "--subscribers",
            "16",
            "--topics",
            "16",
            "--publishers",
            "16",
            "--events",
            "800",
            "--idle-secs",
            "0",
        ];
        args.extend_from_slice(extra);
        let (status, stdout, stderr) = bench(&hub, "sse", &args);
        assert!(status.success(), "exit {status}\n{stdout}\n{stderr}");
        let line = stdout.lines().last().unwrap();
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["published"], 800, "{extra:?}: {line}");
        assert_eq!(v["deliveries"], 800, "{extra:?}: {line}");
        assert!(v["publish_per_sec"].as_f64().unwrap() > 0.0, "{line}");
        for field in ["lost", "duplicated", "out_of_order"] {
            assert_eq!(v[field], 0, "{extra:?} {field}: {line}");
        }
    }
}

#[test]
fn bench_plot_is_written_from_one_process_and_from_workers() {
    let dir = tempfile::tempdir().unwrap();
    for workers in ["1", "2"] {
        let hub = Hub::start(&[]);
        let path = dir.path().join(format!("run-{workers}.svg"));
        let (status, stdout, stderr) = bench(
            &hub,
            "sse",
            &[
                "--workers",
                workers,
                "--subscribers",
                "10",
                "--topics",
                "2",
                "--events",
                "100",
                "--rate",
                "200",
                "--idle-secs",
                "0",
                "--quiet",
                "--plot",
                path.to_str().unwrap(),
            ],
        );
        assert!(status.success(), "exit {status}\n{stdout}\n{stderr}");
        let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(v["deliveries"], 10 * 100 / 2, "{stdout}");
        let svg = std::fs::read_to_string(&path).expect("the plot");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // Deliveries over time came back from the workers: the red series
        // has a point per 100 ms interval over the ~0.5 s of publishing.
        let rate = svg
            .split("<polyline")
            .find(|l| l.contains("stroke=\"#FF0000\""))
            .expect("the deliveries/s series");
        assert!(rate.matches(',').count() >= 4, "{workers}: {rate}");
        // Not a terminal: no progress bar on stderr (only plain lines).
        assert!(!stderr.contains('\u{1b}'), "{stderr}");
    }
}
