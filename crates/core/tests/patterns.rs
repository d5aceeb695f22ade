//! Pattern subscriptions (`/chat/*`, a protocol's own matcher): live events
//! through the hub-wide ring, history through log scans that page past the
//! scan budget, honest resets, and no cost left behind when they end.
//! (The random interleavings of `merge.rs` cover patterns mixed with exact
//! topics.)

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use herald_core::{
    Draft, Fanout, Hub, Limits, MemoryLog, Pattern, Position, ResetReason, Resume, Retention,
    SCAN_BUDGET, Selector, Subscription, Topic,
};

const EPOCH: u64 = 0x9a77;

fn hub(keep: u64) -> (Hub, Arc<Fanout>) {
    let fanout = Arc::new(Fanout::new(8));
    let retention = Retention {
        max_events_per_topic: keep,
        max_bytes: u64::MAX,
        max_age: None,
    };
    let log = Arc::new(MemoryLog::new(EPOCH, retention, fanout.clone()));
    (Hub::new(log, fanout.clone(), Limits::default()), fanout)
}

fn draft(topic: &str, data: &str) -> Draft {
    Draft::new(
        vec![Topic::parse(topic, 256).unwrap()],
        Bytes::from(data.to_string()),
        None,
        None,
        None,
        &Limits::default(),
    )
    .unwrap()
}

fn glob(s: &str) -> Selector {
    Selector::new([], [Pattern::glob(s).unwrap()])
}

async fn next_data(sub: &mut Subscription) -> String {
    let ev = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("an event within 5 s")
        .expect("the subscription goes on");
    String::from_utf8(ev.data.to_vec()).unwrap()
}

fn after(seq: u64) -> Resume {
    Resume::After(Position { epoch: EPOCH, seq }.to_string())
}

#[tokio::test(flavor = "current_thread")]
async fn a_glob_gets_matching_live_events_only_once_each() {
    let (hub, fanout) = hub(0);
    let mut one = hub.subscribe(&glob("/chat/*"), Resume::Now).await.unwrap();
    let mut deep = hub.subscribe(&glob("/chat/**"), Resume::Now).await.unwrap();
    // Exact and pattern clauses that both match an event yield it once.
    let both = Selector::new(
        [Topic::parse("/chat/a", 64).unwrap()],
        [Pattern::glob("/chat/*").unwrap()],
    );
    let mut mixed = hub.subscribe(&both, Resume::Now).await.unwrap();
    assert_eq!(fanout.pattern_watchers(), 3);
    for (t, d) in [
        ("/chat/a", "1"),
        ("/other", "no"),
        ("/chat/a/b", "2"),
        ("/chat/b", "3"),
    ] {
        hub.publish(vec![draft(t, d)], 0).await.unwrap();
    }
    assert_eq!(next_data(&mut one).await, "1");
    assert_eq!(next_data(&mut one).await, "3");
    assert!(one.next().now_or_never().is_none(), "nothing else matches");
    for want in ["1", "2", "3"] {
        assert_eq!(next_data(&mut deep).await, want);
    }
    assert_eq!(next_data(&mut mixed).await, "1");
    assert_eq!(next_data(&mut mixed).await, "3");
    assert!(mixed.try_next().is_none(), "the overlap is yielded once");
    drop((one, deep, mixed));
    assert_eq!(fanout.pattern_watchers(), 0, "the hub-wide ring is gone");
}

#[tokio::test(flavor = "current_thread")]
async fn resuming_a_pattern_pages_past_the_scan_budget() {
    let (hub, _) = hub(0);
    // Matches are sparse: the first scans examine a whole budget and find
    // nothing, and must go on from where they stopped.
    let noise = SCAN_BUDGET * 2 + 17;
    let batch: Vec<Draft> = (0..noise)
        .map(|i| draft("/noise", &i.to_string()))
        .collect();
    for chunk in batch.chunks(1000) {
        hub.publish(chunk.to_vec(), 0).await.unwrap();
    }
    for d in ["a", "b", "c"] {
        hub.publish(vec![draft("/rare/x", d)], 0).await.unwrap();
    }
    let mut sub = hub.subscribe(&glob("/rare/*"), after(0)).await.unwrap();
    assert_eq!(sub.reset(), None);
    for want in ["a", "b", "c"] {
        assert_eq!(next_data(&mut sub).await, want);
    }
    hub.publish(vec![draft("/rare/y", "live")], 0)
        .await
        .unwrap();
    assert_eq!(next_data(&mut sub).await, "live");
    assert!(sub.try_next().is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn a_pattern_resume_past_trimmed_history_is_reset() {
    // Two events kept per topic: /t/x loses its first, /t/y keeps both.
    let (hub, _) = hub(2);
    for (t, d) in [
        ("/t/x", "1"),
        ("/t/y", "2"),
        ("/t/x", "3"),
        ("/t/x", "4"),
        ("/t/y", "5"),
    ] {
        hub.publish(vec![draft(t, d)], 0).await.unwrap();
    }
    let sub = hub.subscribe(&glob("/t/*"), after(0)).await.unwrap();
    assert_eq!(
        sub.reset().map(|r| r.reason),
        Some(ResetReason::Expired),
        "/t/x's first event is gone"
    );
    // A pattern that only matches the untouched topic resumes fine.
    let mut y = hub.subscribe(&glob("/t/y"), after(0)).await.unwrap();
    assert_eq!(y.reset(), None);
    assert_eq!(next_data(&mut y).await, "2");
    assert_eq!(next_data(&mut y).await, "5");
    // After the trim point the pattern resumes without a reset.
    let mut late = hub.subscribe(&glob("/t/*"), after(1)).await.unwrap();
    assert_eq!(late.reset(), None);
    for want in ["2", "3", "4", "5"] {
        assert_eq!(next_data(&mut late).await, want);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_custom_matcher_selects_what_it_says() {
    let (hub, _) = hub(0);
    let even = Pattern::custom("even-length", |t: &str| t.len().is_multiple_of(2));
    let mut sub = hub
        .subscribe(&Selector::new([], [even]), Resume::Now)
        .await
        .unwrap();
    for (t, d) in [("/ab", "odd"), ("/abc", "even"), ("/a", "even2")] {
        hub.publish(vec![draft(t, d)], 0).await.unwrap();
    }
    assert_eq!(next_data(&mut sub).await, "even");
    assert_eq!(next_data(&mut sub).await, "even2");
}
