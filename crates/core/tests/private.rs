//! Private events reach only subscribers whose filter lets them through, from
//! history and live alike; hidden events still advance the position.

use std::sync::Arc;

use bytes::Bytes;
use herald_core::{
    Draft, Fanout, Hub, Limits, MemoryLog, Position, PrivateFilter, Resume, Retention, Selector,
    Subscription, Topic,
};

const EPOCH: u64 = 0xabc;

fn topic(name: &str) -> Topic {
    Topic::parse(name, 64).unwrap()
}

fn hub() -> Hub {
    let fanout = Arc::new(Fanout::new(8));
    let retention = Retention {
        max_events_per_topic: 100,
        max_bytes: u64::MAX,
        max_age: None,
    };
    let log = Arc::new(MemoryLog::new(EPOCH, retention, fanout.clone()));
    Hub::new(log, fanout, Limits::default())
}

async fn publish(hub: &Hub, names: &[&str], private: bool) -> u64 {
    let mut d = Draft::new(
        names.iter().map(|n| topic(n)).collect(),
        Bytes::from_static(b"x"),
        None,
        None,
        None,
        &Limits::default(),
    )
    .unwrap();
    d.private = private;
    hub.publish(vec![d], 0).await.unwrap()[0].seq
}

fn ready(sub: &mut Subscription) -> Vec<u64> {
    std::iter::from_fn(|| sub.try_next())
        .map(|e| e.seq)
        .collect()
}

#[tokio::test]
async fn private_events_are_hidden_from_history_and_live_unless_allowed() {
    let hub = hub();
    let public = publish(&hub, &["/a"], false).await;
    let secret = publish(&hub, &["/a"], true).await;
    let shared = publish(&hub, &["/a", "/team"], true).await;
    let from = Resume::After(
        Position {
            epoch: EPOCH,
            seq: 0,
        }
        .to_string(),
    );

    let mut everyone = hub
        .subscribe(&Selector::exact([topic("/a")]), from.clone())
        .await
        .unwrap();
    let mut anonymous = hub
        .subscribe(&Selector::exact([topic("/a")]), from.clone())
        .await
        .unwrap();
    let none: PrivateFilter = Arc::new(|_| false);
    anonymous.set_private_filter(none);
    let mut team = hub
        .subscribe(&Selector::exact([topic("/a")]), from)
        .await
        .unwrap();
    let team_only: PrivateFilter = Arc::new(|ev| ev.topics.iter().any(|t| t.as_str() == "/team"));
    team.set_private_filter(team_only);

    assert_eq!(ready(&mut everyone), vec![public, secret, shared]);
    assert_eq!(ready(&mut anonymous), vec![public]);
    assert_eq!(ready(&mut team), vec![public, shared]);
    assert_eq!(
        anonymous.last_seq(),
        shared,
        "hidden events advance the position"
    );

    let live_secret = publish(&hub, &["/a"], true).await;
    let live_public = publish(&hub, &["/a"], false).await;
    assert_eq!(ready(&mut anonymous), vec![live_public]);
    assert_eq!(ready(&mut everyone), vec![live_secret, live_public]);
}
