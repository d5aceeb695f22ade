//! Removing topics from a live subscription (WebSocket `unsubscribe`): the
//! remaining topics continue from the same position with no gap and no
//! duplicate, the removed ones yield nothing more (not even history already
//! read), and their rings are released when no one else watches them.

use std::sync::Arc;

use bytes::Bytes;
use herald_core::{
    Draft, Fanout, Hub, Limits, MemoryLog, Position, Resume, Retention, Selector, Subscription,
    Topic,
};

const EPOCH: u64 = 0x0dd;

fn topic(name: &str) -> Topic {
    Topic::parse(name, 64).unwrap()
}

fn hub() -> (Hub, Arc<Fanout>) {
    let fanout = Arc::new(Fanout::new(8));
    let log = Arc::new(MemoryLog::new(
        EPOCH,
        Retention {
            max_events_per_topic: 1000,
            max_bytes: u64::MAX,
            max_age: None,
        },
        fanout.clone(),
    ));
    (Hub::new(log, fanout.clone(), Limits::default()), fanout)
}

async fn publish(hub: &Hub, names: &[&str]) -> u64 {
    let draft = Draft::new(
        names.iter().map(|n| topic(n)).collect(),
        Bytes::from_static(b"x"),
        None,
        None,
        None,
        &Limits::default(),
    )
    .unwrap();
    hub.publish(vec![draft], 0).await.unwrap()[0].seq
}

fn ready(sub: &mut Subscription) -> Vec<u64> {
    std::iter::from_fn(|| sub.try_next())
        .map(|e| e.seq)
        .collect()
}

#[tokio::test]
async fn removed_topics_stop_and_the_rest_continue_without_a_gap() {
    let (hub, fanout) = hub();
    // History: 1 /a, 2 /b, 3 /a+/b, 4 /b, 5 /a.
    for names in [&["/a"][..], &["/b"], &["/a", "/b"], &["/b"], &["/a"]] {
        publish(&hub, names).await;
    }
    let from = Position {
        epoch: EPOCH,
        seq: 0,
    }
    .to_string();
    let mut sub = hub
        .subscribe(
            &Selector::exact([topic("/a"), topic("/b")]),
            Resume::After(from),
        )
        .await
        .unwrap();
    // The first page (all five) is already read; take two of them.
    assert_eq!(sub.try_next().map(|e| e.seq), Some(1));
    assert_eq!(sub.try_next().map(|e| e.seq), Some(2));
    assert_eq!(fanout.watched_topics(), 2);

    assert!(sub.remove_topics(&[topic("/b"), topic("/not-watched")]));
    assert_eq!(sub.topics(), &[topic("/a")]);
    assert_eq!(fanout.watched_topics(), 1, "the ring of /b is released");
    // Seq 3 carries /a too, so it stays; 4 (/b only) is dropped from the backlog.
    assert_eq!(ready(&mut sub), vec![3, 5]);

    let six = publish(&hub, &["/b"]).await;
    let seven = publish(&hub, &["/a"]).await;
    assert_eq!((six, seven), (6, 7));
    assert_eq!(ready(&mut sub), vec![7]);

    assert!(!sub.remove_topics(&[topic("/a")]), "nothing is left");
    assert_eq!(fanout.watched_topics(), 0);
    publish(&hub, &["/a"]).await;
    assert!(ready(&mut sub).is_empty());
}

#[tokio::test]
async fn a_ring_another_subscriber_watches_is_kept() {
    let (hub, fanout) = hub();
    let mut one = hub
        .subscribe(&Selector::exact([topic("/a"), topic("/b")]), Resume::Now)
        .await
        .unwrap();
    let mut two = hub
        .subscribe(&Selector::exact([topic("/b")]), Resume::Now)
        .await
        .unwrap();
    assert!(one.remove_topics(&[topic("/b")]));
    assert_eq!(fanout.watched_topics(), 2);
    let seq = publish(&hub, &["/b"]).await;
    assert!(ready(&mut one).is_empty());
    assert_eq!(ready(&mut two), vec![seq]);
}
