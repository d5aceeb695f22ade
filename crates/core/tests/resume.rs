//! Resuming from a client's cursor: continuity is kept when the history allows
//! it, and when it does not the subscription says why (a [`Reset`] at the
//! head) and carries on live, never with a silent partial replay.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use herald_core::{
    Draft, Fanout, Hub, Limits, MemoryLog, Position, ResetReason, Resume, Retention, Selector,
    Subscription, SubscriptionEnd, Topic,
};

const EPOCH: u64 = 0xe90c;
/// Events kept per topic in [`setup`].
const KEEP: u64 = 3;

fn topic(s: &str) -> Topic {
    Topic::parse(s, 64).unwrap()
}

fn draft(topics: &[&str], id: Option<&str>) -> Draft {
    let topics = topics.iter().map(|t| topic(t)).collect();
    Draft::new(
        topics,
        Bytes::from_static(b"x"),
        None,
        id,
        None,
        &Limits::default(),
    )
    .unwrap()
}

fn hub_with(keep: u64) -> (Hub, Arc<Fanout>) {
    let fanout = Arc::new(Fanout::new(8));
    let retention = Retention {
        max_events_per_topic: keep,
        max_bytes: u64::MAX,
        max_age: None,
    };
    let log = Arc::new(MemoryLog::new(EPOCH, retention, fanout.clone()));
    (Hub::new(log, fanout.clone(), Limits::default()), fanout)
}

/// A hub keeping [`KEEP`] events per topic, holding (seq: topic, id):
/// 1: /a "evt:1", 2: /a, 3: /b, 4: /a "evt:4", 5: /a, 6: /a, 7: /b.
/// On `/a` seqs 1 and 2 are trimmed (kept: 4, 5, 6); `/b` keeps 3 and 7.
async fn setup() -> (Hub, Arc<Fanout>) {
    let (hub, fanout) = hub_with(KEEP);
    for (topics, id) in [
        (&["/a"][..], Some("evt:1")),
        (&["/a"], None),
        (&["/b"], None),
        (&["/a"], Some("evt:4")),
        (&["/a"], None),
        (&["/a"], None),
        (&["/b"], None),
    ] {
        hub.publish(vec![draft(topics, id)], 0).await.unwrap();
    }
    assert_eq!(
        hub.head(),
        Position {
            epoch: EPOCH,
            seq: 7
        }
    );
    (hub, fanout)
}

fn hub_id(epoch: u64, seq: u64) -> String {
    Position { epoch, seq }.to_string()
}

/// Takes every event ready now (history and ring), without waiting.
fn ready(sub: &mut Subscription) -> Vec<u64> {
    let mut out = Vec::new();
    while let Some(r) = sub.next().now_or_never() {
        out.push(r.expect("the subscription is open").seq);
    }
    out
}

/// Publishes one event to each of `topics` in turn and returns their seqs.
async fn publish_live(hub: &Hub, topics: &[&str]) -> Vec<u64> {
    let mut seqs = Vec::new();
    for t in topics {
        seqs.extend(
            hub.publish(vec![draft(&[t], None)], 0)
                .await
                .unwrap()
                .iter()
                .map(|e| e.seq),
        );
    }
    seqs
}

#[derive(Debug)]
enum Outcome {
    /// Continuity kept: these history seqs, then live.
    Replay(&'static [u64]),
    /// Continuity broken: a reset at the head, then live only.
    Reset(ResetReason),
}

#[tokio::test(flavor = "current_thread")]
async fn cursors_resume_or_reset_at_the_head() {
    use Outcome::*;
    let cases: Vec<(&str, &[&str], String, Outcome)> = vec![
        (
            "another epoch",
            &["/a"],
            hub_id(EPOCH + 1, 5),
            Reset(ResetReason::Epoch),
        ),
        (
            "another epoch, seq 0",
            &["/a", "/b"],
            hub_id(0, 0),
            Reset(ResetReason::Epoch),
        ),
        (
            "unknown publisher id",
            &["/a"],
            "evt:nope".into(),
            Reset(ResetReason::Unknown),
        ),
        (
            "seq ahead of the log",
            &["/a"],
            hub_id(EPOCH, 8),
            Reset(ResetReason::Unknown),
        ),
        (
            "seq far ahead of the log",
            &["/b"],
            hub_id(EPOCH, u64::MAX),
            Reset(ResetReason::Unknown),
        ),
        (
            "older than retention",
            &["/a"],
            hub_id(EPOCH, 1),
            Reset(ResetReason::Expired),
        ),
        (
            "the whole history, trimmed",
            &["/a"],
            hub_id(EPOCH, 0),
            Reset(ResetReason::Expired),
        ),
        (
            "expired on one topic of two",
            &["/b", "/a"],
            hub_id(EPOCH, 1),
            Reset(ResetReason::Expired),
        ),
        (
            "publisher id of a trimmed event",
            &["/a"],
            "evt:1".into(),
            Reset(ResetReason::Unknown),
        ),
        (
            "the whole history, kept",
            &["/b"],
            hub_id(EPOCH, 0),
            Replay(&[3, 7]),
        ),
        (
            "exactly the trim mark",
            &["/a"],
            hub_id(EPOCH, 2),
            Replay(&[4, 5, 6]),
        ),
        (
            "the trim mark of one topic of two",
            &["/b", "/a"],
            hub_id(EPOCH, 2),
            Replay(&[3, 4, 5, 6, 7]),
        ),
        (
            "a seq on another topic",
            &["/a"],
            hub_id(EPOCH, 3),
            Replay(&[4, 5, 6]),
        ),
        (
            "mid-history, two topics",
            &["/a", "/b"],
            hub_id(EPOCH, 4),
            Replay(&[5, 6, 7]),
        ),
        ("publisher id", &["/a"], "evt:4".into(), Replay(&[5, 6])),
        (
            "publisher id, other topic",
            &["/b"],
            "evt:4".into(),
            Replay(&[7]),
        ),
        ("the head", &["/a", "/b"], hub_id(EPOCH, 7), Replay(&[])),
    ];
    for (name, topics, cursor, outcome) in cases {
        let (hub, _fanout) = setup().await;
        let head = hub.head();
        let selector = Selector::exact(topics.iter().map(|t| topic(t)));
        let mut sub = hub
            .subscribe(&selector, Resume::After(cursor.clone()))
            .await
            .unwrap();
        let history = match outcome {
            Reset(reason) => {
                let reset = sub
                    .reset()
                    .unwrap_or_else(|| panic!("{name}: no reset for {cursor}"));
                assert_eq!(reset.reason, reason, "{name}");
                assert_eq!(
                    reset.position, head,
                    "{name}: live from the head at subscribe"
                );
                assert_eq!(sub.last_seq(), head.seq, "{name}");
                Vec::new()
            }
            Replay(seqs) => {
                assert_eq!(sub.reset(), None, "{name}");
                seqs.to_vec()
            }
        };
        assert_eq!(ready(&mut sub), history, "{name}: history after {cursor}");
        // Then live: exactly the new events on the selected topics.
        let live = publish_live(&hub, &["/a", "/c", "/b", "/a"]).await;
        let want: Vec<u64> = live
            .iter()
            .zip(["/a", "/c", "/b", "/a"])
            .filter(|(_, t)| topics.contains(t))
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(ready(&mut sub), want, "{name}: live after {cursor}");
    }
}

/// The other resume mode and the id index, checked directly.
#[tokio::test(flavor = "current_thread")]
async fn now_starts_at_the_head_and_ids_resolve_through_the_log() {
    let (hub, _fanout) = setup().await;
    assert_eq!(hub.log().lookup_id("evt:4".into()).await, Ok(Some(4)));
    assert_eq!(
        hub.log().lookup_id("evt:1".into()).await,
        Ok(None),
        "trimmed"
    );
    assert_eq!(hub.log().lookup_id("7".into()).await, Ok(None));

    let mut sub = hub
        .subscribe(&Selector::exact([topic("/a")]), Resume::Now)
        .await
        .unwrap();
    assert_eq!(sub.reset(), None);
    assert_eq!(sub.last_seq(), 7);
    assert!(ready(&mut sub).is_empty());
    assert_eq!(publish_live(&hub, &["/b", "/a"]).await, [8, 9]);
    assert_eq!(ready(&mut sub), [9]);
}

/// A publisher-supplied id resumes after its event even when it is the
/// newest, and a hub id of that same event resumes at the same place.
#[tokio::test(flavor = "current_thread")]
async fn a_publisher_id_and_the_hub_id_of_the_same_event_resume_alike() {
    for cursor in ["urn:one".to_string(), hub_id(EPOCH, 2)] {
        let (hub, _fanout) = hub_with(0);
        hub.publish(
            vec![draft(&["/a"], None), draft(&["/a"], Some("urn:one"))],
            0,
        )
        .await
        .unwrap();
        let mut sub = hub
            .subscribe(
                &Selector::exact([topic("/a")]),
                Resume::After(cursor.clone()),
            )
            .await
            .unwrap();
        assert_eq!(sub.reset(), None, "{cursor}");
        assert_eq!(sub.last_seq(), 2, "{cursor}");
        assert!(ready(&mut sub).is_empty(), "{cursor}");
        let live = publish_live(&hub, &["/a"]).await;
        assert_eq!(ready(&mut sub), live, "{cursor}");
    }
}

/// An empty log: `{epoch:x}-0` is the start (not an error), any other seq is ahead.
#[tokio::test(flavor = "current_thread")]
async fn an_empty_log_resumes_from_zero_and_resets_anything_ahead() {
    let (hub, _fanout) = hub_with(0);
    let sel = Selector::exact([topic("/a")]);
    let mut zero = hub
        .subscribe(&sel, Resume::After(hub_id(EPOCH, 0)))
        .await
        .unwrap();
    assert_eq!(zero.reset(), None);
    let ahead = hub
        .subscribe(&sel, Resume::After(hub_id(EPOCH, 1)))
        .await
        .unwrap();
    assert_eq!(
        ahead.reset().map(|r| (r.reason, r.position.seq)),
        Some((ResetReason::Unknown, 0))
    );
    publish_live(&hub, &["/a"]).await;
    assert_eq!(ready(&mut zero), [1]);
}

#[tokio::test(flavor = "current_thread")]
async fn subscriptions_end_closed_after_the_fanout_closes() {
    let (hub, fanout) = setup().await;
    let mut single = hub
        .subscribe(&Selector::exact([topic("/a")]), Resume::Now)
        .await
        .unwrap();
    let mut multi = hub
        .subscribe(
            &Selector::exact([topic("/a"), topic("/b")]),
            Resume::After(hub_id(EPOCH, 6)),
        )
        .await
        .unwrap();
    // One live event is already in the rings when they close. Whether it is
    // yielded before the end is not promised (a resuming client gets it from
    // the log); what is yielded must be in order and nothing else.
    let live = publish_live(&hub, &["/a"]).await;
    fanout.close();
    assert_eq!(fanout.watched_topics(), 0);
    for (name, sub, want) in [
        ("single", &mut single, live.clone()),
        ("multi", &mut multi, vec![7, live[0]]),
    ] {
        let mut got = Vec::new();
        let end = loop {
            match tokio::time::timeout(Duration::from_secs(5), sub.next()).await {
                Ok(Ok(ev)) => got.push(ev.seq),
                Ok(Err(end)) => break end,
                Err(_) => panic!("{name}: did not end"),
            }
        };
        assert_eq!(end, SubscriptionEnd::Closed, "{name}");
        assert!(
            want.starts_with(&got),
            "{name}: yielded {got:?} before the end; expected a prefix of {want:?}"
        );
        assert!(sub.try_next().is_none(), "{name}");
    }
}

/// A subscriber waiting for the next event is woken by the close.
#[tokio::test(flavor = "current_thread")]
async fn a_waiting_subscription_is_woken_by_close() {
    let (hub, fanout) = hub_with(0);
    for topics in [&["/a"][..], &["/a", "/b", "/c"]] {
        let selector = Selector::exact(topics.iter().map(|t| topic(t)));
        let mut sub = hub.subscribe(&selector, Resume::Now).await.unwrap();
        let waiting = tokio::spawn(async move { sub.next().await.map(|ev| ev.seq) });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "{topics:?}: nothing to yield yet");
        fanout.close();
        let r = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(r, Err(SubscriptionEnd::Closed), "{topics:?}");
    }
}

/// `Resume::Earliest` (Mercure's `earliest`): the whole retained history,
/// from the oldest event kept when retention removed older ones, without a reset.
#[tokio::test(flavor = "current_thread")]
async fn earliest_replays_what_is_retained_without_a_reset() {
    let (hub, _fanout) = setup().await;
    for (topics, want) in [
        (&["/a"][..], &[4u64, 5, 6][..]),
        (&["/b"], &[3, 7]),
        (&["/a", "/b"], &[3, 4, 5, 6, 7]),
    ] {
        let selector = Selector::exact(topics.iter().map(|t| topic(t)));
        let mut sub = hub.subscribe(&selector, Resume::Earliest).await.unwrap();
        assert_eq!(sub.reset(), None, "{topics:?}");
        assert_eq!(ready(&mut sub), want, "{topics:?}");
    }
    let (empty, _f) = hub_with(KEEP);
    let mut sub = empty
        .subscribe(&Selector::exact([topic("/a")]), Resume::Earliest)
        .await
        .unwrap();
    assert_eq!(sub.reset(), None);
    assert!(ready(&mut sub).is_empty());
}
