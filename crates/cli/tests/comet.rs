//! Long-polling, short polling, JSONP, NDJSON streaming and the forever iframe,
//! against the real binary: exact bodies and headers, resume, resets, limits.

mod common;

use common::*;
use serde_json::Value;

fn get(hub: &Hub, target: &str) -> (u16, String, String) {
    let raw = String::from_utf8(raw_request(hub.addr, "GET", target, &[], b"")).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn poll(hub: &Hub, target: &str) -> Value {
    let (status, head, body) = get(hub, target);
    assert_eq!(status, 200, "{target}: {body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    serde_json::from_str(&body).unwrap()
}

fn datas(v: &Value) -> Vec<String> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn long_poll_answers_at_once_pages_with_more_and_resumes_without_loss() {
    let hub = Hub::start(&[]);
    let epoch = hub.epoch();
    let ids: Vec<String> = (0..5)
        .map(|i| publish_id(hub.addr, "p", &format!("e{i}")))
        .collect();
    let v = poll(&hub, &format!("/poll?topic=p&since={epoch}-0&max=2"));
    assert_eq!(datas(&v), ["e0", "e1"]);
    assert_eq!(v["more"], true);
    assert_eq!(v["last_event_id"], ids[1]);
    assert_eq!(v["events"][0]["op"], "event");
    assert_eq!(v["events"][0]["topic"], "p");
    assert_eq!(v["events"][0]["id"], ids[0]);
    let v = poll(&hub, &format!("/poll?topic=p&since={}&max=2", ids[1]));
    assert_eq!(datas(&v), ["e2", "e3"]);
    let v = poll(&hub, &format!("/poll?topic=p&since={}&max=2", ids[3]));
    assert_eq!(
        (datas(&v), &v["more"]),
        (vec!["e4".to_string()], &Value::Bool(false))
    );
    // Short poll with nothing new: empty, and the cursor stays where it was.
    let v = poll(&hub, &format!("/poll?topic=p&since={}&timeout=0", ids[4]));
    assert_eq!(
        v,
        serde_json::json!({"events": [], "last_event_id": ids[4], "more": false})
    );
    // No cursor: the answer's cursor is the head, from which nothing is lost.
    let v = poll(&hub, "/poll?topic=p&timeout=0");
    assert_eq!(v["events"], serde_json::json!([]));
    let head = v["last_event_id"].as_str().unwrap().to_string();
    let next = publish_id(hub.addr, "p", "after-head");
    let v = poll(&hub, &format!("/poll?topic=p&since={head}&timeout=0"));
    assert_eq!(v["events"][0]["id"], next);
}

#[test]
fn a_held_poll_is_answered_by_the_next_event() {
    let hub = Hub::start(&[]);
    let since = publish_id(hub.addr, "held", "old");
    let addr = hub.addr;
    let target = format!("/poll?topic=held&since={since}&timeout=20");
    let waiter = std::thread::spawn(move || request(addr, "GET", &target, &[], b""));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let id = publish_id(hub.addr, "held", "new");
    let (status, body) = waiter.join().unwrap();
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(datas(&v), ["new"]);
    assert_eq!(v["last_event_id"], id);
}

#[test]
fn a_poll_from_an_unusable_cursor_says_reset() {
    let hub = Hub::start(&[]);
    publish_id(hub.addr, "r", "x");
    let v = poll(&hub, "/poll?topic=r&since=ffff0000-3&timeout=0");
    assert_eq!(v["events"], serde_json::json!([]));
    assert_eq!(v["reset"]["op"], "reset");
    assert_eq!(v["reset"]["reason"], "epoch");
    assert_eq!(v["reset"]["last_event_id"], v["last_event_id"]);
}

#[test]
fn jsonp_wraps_a_script_safe_body_and_refuses_bad_callbacks() {
    let hub = Hub::start(&[]);
    let epoch = hub.epoch();
    publish(
        hub.addr,
        "/publish?topic=j",
        "</script><script>alert(1)</script>\u{2028}",
    );
    let (status, head, body) = get(
        &hub,
        &format!("/poll?topic=j&since={epoch}-0&callback=app.recv_1"),
    );
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: application/javascript"),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(body.starts_with("/**/app.recv_1({\"events\":[{"), "{body}");
    assert!(body.ends_with("});"), "{body}");
    assert!(!body.contains('<') && !body.contains('\u{2028}'), "{body}");
    let json = &body["/**/app.recv_1(".len()..body.len() - 2];
    let v: Value = serde_json::from_str(json).unwrap();
    assert_eq!(
        v["events"][0]["data"],
        "</script><script>alert(1)</script>\u{2028}"
    );
    for bad in ["1x", "a-b", "alert(1)", "a%3Bb", "%3C%2Fscript%3E", ""] {
        let (status, head, body) = get(&hub, &format!("/poll?topic=j&callback={bad}"));
        assert_eq!(status, 400, "{bad}");
        assert!(head.contains("application/json"), "{head}");
        assert!(body.contains("invalid_callback"), "{body}");
    }
    for (q, code) in [
        ("timeout=soon", "invalid_timeout"),
        ("max=0", "invalid_max"),
        ("", "missing_topic"),
    ] {
        let target = if q.is_empty() {
            "/poll".to_string()
        } else {
            format!("/poll?topic=j&{q}")
        };
        let (status, _, body) = get(&hub, &target);
        assert_eq!(status, 400, "{q}");
        assert!(body.contains(code), "{body}");
    }
}

#[test]
fn ndjson_stream_sends_json_lines_and_resumes() {
    let hub = Hub::start(&[]);
    let first = publish_id(hub.addr, "n", "one");
    let mut s = Sse::open(
        hub.addr,
        &format!("/stream?topic=n&last_event_id={}", hub.epoch() + "-0"),
        &[],
    );
    let text = s.read_until("\"data\":\"one\"}\n");
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("Content-Type: application/x-ndjson"),
        "{head}"
    );
    assert!(
        !head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some("{\"op\":\"heartbeat\"}"));
    let one: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        one,
        serde_json::json!({"op": "event", "topic": "n", "id": first, "data": "one"})
    );
    let ct = [("Content-Type", "application/json")];
    request(
        hub.addr,
        "POST",
        "/publish",
        &ct,
        br#"{"topic":"n","data":"two\nlines","type":"t"}"#,
    );
    let text = s.read_until("\"type\":\"t\",\"data\":\"two\\nlines\"}\n");
    assert!(text.ends_with("}\n"));
}

#[test]
fn forever_iframe_pads_escapes_and_ends_after_its_budget() {
    let hub = Hub::start(&["--iframe-max-bytes", "3000"]);
    let mut s = Sse::open(
        hub.addr,
        "/stream?topic=f&format=iframe&callback=app.on",
        &[],
    );
    let text = s.read_until("-->\n");
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("Content-Type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(head.contains("X-Content-Type-Options: nosniff"), "{head}");
    assert!(body.len() >= 2048, "at least 2 KiB before the first script");
    let id = publish_id(hub.addr, "f", "</script><!-- x");
    let expected = format!(
        "<script>parent.app.on({{\"op\":\"event\",\"topic\":\"f\",\"id\":\"{id}\",\"data\":\"\\u003c/script>\\u003c!-- x\"}});</script>\n"
    );
    s.read_until(&expected);
    // Past the budget the stream ends after a complete script; the page reopens it.
    for i in 0..40 {
        publish(
            hub.addr,
            "/publish?topic=f",
            &format!("filler {i} {}", "z".repeat(100)),
        );
    }
    let all = s.read_to_close();
    assert!(all.ends_with("</script>\n"), "{all:?}");
    assert!(
        all.matches("<script>").count() < 41,
        "ended early, at its budget"
    );
    let (status, _, body) = get(&hub, "/stream?topic=f&format=xml");
    assert_eq!(status, 400);
    assert!(body.contains("invalid_format"));
    let (status, _, body) = get(&hub, "/stream?topic=f&format=iframe&callback=x%28%29");
    assert_eq!(status, 400);
    assert!(body.contains("invalid_callback"));
}

/// The ids of the complete events in an NDJSON or iframe body, in order.
fn json_ids(text: &str) -> Vec<String> {
    text.split("{\"op\":\"event\"")
        .skip(1)
        .filter_map(|rest| {
            let start = rest.find("\"id\":\"")? + 6;
            let end = start + rest[start..].find('"')?;
            rest[end..]
                .contains('}')
                .then(|| rest[start..end].to_string())
        })
        .collect()
}

#[test]
fn ndjson_and_iframe_resume_after_a_hub_restart_without_loss_or_duplicate() {
    for format in ["ndjson", "iframe"] {
        let mut hub = Hub::start(&[]);
        let mut expected: Vec<String> = (0..3)
            .map(|i| publish_id(hub.addr, "rs", &format!("a{i}")))
            .collect();
        let from = format!("{}-0", expected[0].split('-').next().unwrap());
        let target =
            |cursor: &str| format!("/stream?topic=rs&format={format}&last_event_id={cursor}");
        let mut first = Sse::open(hub.addr, &target(&from), &[]);
        first.read_until("\"data\":\"a2\"}");
        let seen = json_ids(&String::from_utf8_lossy(&first.buf));
        assert_eq!(seen, expected, "{format}");
        hub.kill_and_restart(&["--dev"]);
        first.read_to_close();
        expected.extend((0..3).map(|i| publish_id(hub.addr, "rs", &format!("b{i}"))));
        let mut second = Sse::open(hub.addr, &target(seen.last().unwrap()), &[]);
        second.read_until("\"data\":\"b2\"}");
        let mut all = seen.clone();
        all.extend(json_ids(&String::from_utf8_lossy(&second.buf)));
        assert_eq!(all, expected, "{format}: no loss, no duplicate");
    }
}
