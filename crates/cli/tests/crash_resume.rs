//! A hub killed with SIGKILL mid-stream loses no acknowledged event: after a
//! restart on the same data dir every acknowledged event is there, in order,
//! and a subscriber resumes from where it was with no gap and no duplicate.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::*;

#[test]
fn sigkill_mid_stream_loses_no_acknowledged_event() {
    let mut hub = Hub::start(&[]);
    let addr = hub.addr;
    let mut sse = Sse::open(addr, "/sse?topic=c", &[]);
    sse.read_until("retry: ");

    // Publishers keep publishing while the hub is killed under them.
    let acked = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0..100_000 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let data = format!("w{w}-{i}");
                    let raw = std::panic::catch_unwind(|| publish(addr, "/publish?topic=c", &data));
                    match raw {
                        Ok((200, body)) => {
                            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                            acked
                                .lock()
                                .unwrap()
                                .push((v["id"].as_str().unwrap().to_string(), data));
                        }
                        _ => return, // the hub is gone; unacknowledged events may or may not exist
                    }
                }
            })
        })
        .collect();
    while acked.lock().unwrap().len() < 200 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    sse.read_until("data: ");
    hub.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let received = sse.read_to_close();
    let got_before = sse_ids(&received);
    assert!(!got_before.is_empty());

    hub.kill_and_restart(&["--dev"]);
    let acked = acked.lock().unwrap().clone();
    let seq = |id: &str| id.rsplit('-').next().unwrap().parse::<u64>().unwrap();

    // Everything from the beginning of the log: every acknowledged event, in order.
    let epoch = acked[0].0.split('-').next().unwrap().to_string();
    let mut all = Sse::open(addr, &format!("/sse?topic=c&last_event_id={epoch}-0"), &[]);
    let last_acked = acked.iter().map(|(id, _)| seq(id)).max().unwrap();
    let marker = publish_id(addr, "c", "after-restart");
    all.read_until("data: after-restart\n\n");
    let ids = all.ids();
    let seqs: Vec<u64> = ids.iter().map(|i| seq(i)).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicate"
    );
    for (id, _) in &acked {
        assert!(
            ids.contains(id),
            "acknowledged event {id} lost (last acked {last_acked})"
        );
    }
    assert_eq!(ids.last(), Some(&marker));

    // The interrupted subscriber resumes from its last id: no gap, no duplicate.
    let last_seen = got_before.last().unwrap().clone();
    let mut resumed = Sse::open(addr, "/sse?topic=c", &[("Last-Event-ID", &last_seen)]);
    resumed.read_until("data: after-restart\n\n");
    let mut joined = got_before.clone();
    joined.extend(resumed.ids());
    assert_eq!(
        joined, ids,
        "first connection + resumed one = the whole log"
    );
}
