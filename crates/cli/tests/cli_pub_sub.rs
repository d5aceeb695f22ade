//! `herald pub` and `herald sub` against a real hub, including resume.

mod common;

use std::process::{Command, Stdio};

use common::*;

#[test]
fn pub_prints_the_id_and_sub_prints_events_then_resumes() {
    let hub = Hub::start(&[]);
    let url = format!("http://{}", hub.addr);
    let bin = env!("CARGO_BIN_EXE_herald");
    let out = Command::new(bin)
        .args([
            "pub",
            "--hub",
            &url,
            "--type",
            "greeting",
            "news",
            "hello world",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let second = publish_id(hub.addr, "news", "line1\nline2");

    let epoch = first.split('-').next().unwrap();
    let sub = Command::new(bin)
        .args([
            "sub",
            "--hub",
            &url,
            "--json",
            "--count",
            "2",
            "--last-event-id",
            &format!("{epoch}-0"),
            "news",
        ])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        sub.status.success(),
        "{}",
        String::from_utf8_lossy(&sub.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(sub.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], first);
    assert_eq!(lines[0]["type"], "greeting");
    assert_eq!(lines[0]["data"], "hello world");
    assert_eq!(lines[1]["id"], second);
    assert_eq!(lines[1]["data"], "line1\nline2");

    let refused = Command::new(bin)
        .args(["pub", "--hub", &url, "bad\ntopic", "x"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("400"));

    // A refused subscription says why, over every transport.
    for transport in ["sse", "poll", "ws"] {
        let refused = Command::new(bin)
            .args([
                "sub",
                "--hub",
                &url,
                "--transport",
                transport,
                "--count",
                "1",
            ])
            .arg("x".repeat(2000))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{transport}");
        assert!(
            err.contains("400") && err.contains("topic"),
            "{transport}: {err}"
        );
    }
}

#[test]
fn sub_over_long_polling_and_websocket_replays_then_follows_live_events() {
    for transport in ["poll", "ws"] {
        replays_then_follows(transport);
    }
}

fn replays_then_follows(transport: &str) {
    let hub = Hub::start(&[]);
    let url = format!("http://{}", hub.addr);
    let bin = env!("CARGO_BIN_EXE_herald");
    let from = format!("{}-0", hub.epoch());
    let a = publish_id(hub.addr, "lp", "a");
    let child = spawn_bounded(Command::new(bin).args([
        "sub",
        "--hub",
        &url,
        "--transport",
        transport,
        "--json",
        "--count",
        "3",
        "--last-event-id",
        &from,
        "lp",
    ]));
    let b = publish_id(hub.addr, "lp", "b");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let c = publish_id(hub.addr, "lp", "c");
    let out = child.wait_with_output().unwrap();
    let ids: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, vec![a, b, c], "{transport}");
}

#[test]
fn sub_reconnects_and_resumes_across_a_restart() {
    for transport in ["sse", "poll", "ws"] {
        resumes_across_a_restart(transport);
    }
}

fn resumes_across_a_restart(transport: &str) {
    let mut hub = Hub::start(&[]);
    let url = format!("http://{}", hub.addr);
    let bin = env!("CARGO_BIN_EXE_herald");
    // Start from the beginning of the log so the test does not race the connect.
    let from = format!("{}-0", hub.epoch());
    let child = spawn_bounded(Command::new(bin).args([
        "sub",
        "--hub",
        &url,
        "--transport",
        transport,
        "--count",
        "4",
        "--last-event-id",
        &from,
        "t",
    ]));
    let a = publish_id(hub.addr, "t", "a");
    let b = publish_id(hub.addr, "t", "b");
    std::thread::sleep(std::time::Duration::from_millis(300));
    hub.kill_and_restart(&["--dev"]);
    let c = publish_id(hub.addr, "t", "c");
    let d = publish_id(hub.addr, "t", "d");
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let ids: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(ids, vec![a.as_str(), &b, &c, &d], "{transport}: {text}");
}
