//! The `Log` contract for both broker logs, against real servers: two logs on
//! one stream stand for two nodes. Appends from one are read, scanned (with a
//! pattern), looked up and delivered on the other; ids are unique across
//! them; retention makes an old position `Expired`, never a partial replay;
//! a position another node handed out resumes here.
#![allow(clippy::disallowed_types)]

#[path = "../../cli/tests/cluster/broker.rs"]
#[allow(dead_code, unreachable_pub)]
mod broker;

use std::sync::Arc;
use std::time::Duration;

use broker::{Broker, Kind, available};
use bytes::Bytes;
use herald_broker::BrokerOptions;
use herald_core::topic::Pattern;
use herald_core::{
    AppendError, Draft, Fanout, Hub, Limits, Log, ReadError, Resume, Selector, Topic,
};

fn topic(s: &str) -> Topic {
    Topic::parse(s, 1024).unwrap()
}

fn draft(topics: &[&str], data: &str, id: Option<&str>) -> Draft {
    Draft {
        topics: topics.iter().map(|t| topic(t)).collect(),
        data: Bytes::from(data.to_string()),
        kind: None,
        id: id.map(Box::from),
        retry: None,
        private: false,
        content_type: None,
    }
}

async fn node(url: &str, stream: &str, max_events: u64) -> (Arc<dyn Log>, Arc<Fanout>) {
    let fanout = Arc::new(Fanout::new(64));
    let opts = BrokerOptions {
        url: url.into(),
        stream: stream.into(),
        max_events,
        timeout: Duration::from_secs(3),
        ..BrokerOptions::default()
    };
    let log = herald_broker::open(opts, fanout.clone()).await.unwrap();
    (log, fanout)
}

fn datas(events: &[Arc<herald_core::Event>]) -> Vec<String> {
    events
        .iter()
        .map(|e| String::from_utf8_lossy(&e.data).to_string())
        .collect()
}

async fn contract(kind: Kind) {
    let server = Broker::start(kind, false);
    let (a, _) = node(&server.url(), "contract", 0).await;
    let (b, b_fanout) = node(&server.url(), "contract", 0).await;
    assert_eq!(a.epoch(), b.epoch(), "one stream, one epoch");

    let batch = vec![
        draft(&["/chat/1"], "one", None),
        draft(&["/news"], "two", Some("pub-2")),
        draft(&["/chat/2", "/news"], "three", None),
    ];
    let appended = a.append(batch, 1_000).await.unwrap();
    let seqs: Vec<u64> = appended.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let last = *seqs.last().unwrap();
    assert!(a.last_seq() >= last, "append returns after local delivery");
    assert!(
        b.catch_up_to(last).await >= last,
        "the other node catches up"
    );
    assert_eq!(b_fanout.high_water(), b.last_seq());

    let news = b.read(vec![topic("/news")], 0, 10).await.unwrap();
    assert_eq!(datas(&news), ["two", "three"]);
    assert_eq!(
        b.read(vec![topic("/news")], seqs[1], 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        b.read(vec![topic("/news")], 0, 1).await.unwrap().len(),
        1,
        "limit"
    );

    let chats = Selector::new([], [Pattern::glob("/chat/*").unwrap()]);
    let page = b.scan(chats, 0, 10).await.unwrap();
    assert_eq!(datas(&page.events), ["one", "three"]);
    assert_eq!(page.through, last);
    assert!(!page.more);
    let first_only = Selector::new([], [Pattern::glob("/chat/*").unwrap()]);
    let page = b.scan(first_only, 0, 1).await.unwrap();
    assert_eq!(datas(&page.events), ["one"]);
    assert!(page.more && page.through < last);

    assert_eq!(b.lookup_id("pub-2".into()).await.unwrap(), Some(seqs[1]));
    assert_eq!(b.lookup_id("nope".into()).await.unwrap(), None);
    let dup = b
        .append(vec![draft(&["/x"], "again", Some("pub-2"))], 1_000)
        .await;
    assert_eq!(dup.unwrap_err(), AppendError::DuplicateId("pub-2".into()));
    let twice = vec![
        draft(&["/x"], "a", Some("k")),
        draft(&["/x"], "b", Some("k")),
    ];
    assert!(matches!(
        a.append(twice, 1_000).await,
        Err(AppendError::DuplicateId(_))
    ));

    // A hub on the other node resumes after an id this one handed out.
    let hub = Hub::new(b.clone(), b_fanout.clone(), Limits::default());
    let after = appended[0].id.to_string();
    let mut sub = hub
        .subscribe(&Selector::exact([topic("/chat/2")]), Resume::After(after))
        .await
        .unwrap();
    assert!(sub.reset().is_none());
    let ev = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&ev.data[..], b"three");
    let live = a
        .append(vec![draft(&["/chat/2"], "four", None)], 1_000)
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.seq, live[0].seq, "live delivery on the other node");

    a.close().await;
    b.close().await;
    assert!(matches!(
        a.append(vec![draft(&["/x"], "late", None)], 1_000).await,
        Err(AppendError::Unavailable(_))
    ));
}

async fn retention(kind: Kind) {
    let server = Broker::start(kind, false);
    let (log, _) = node(&server.url(), "small", 10).await;
    let mut last = 0;
    for i in 0..300 {
        last = log
            .append(vec![draft(&["/t"], &format!("e{i}"), None)], 1_000)
            .await
            .unwrap()[0]
            .seq;
    }
    match log.read(vec![topic("/t")], 0, 10).await {
        Err(ReadError::Expired { oldest_kept }) => assert!(oldest_kept > 0 && oldest_kept < last),
        other => panic!("a trimmed position must be Expired, got {other:?}"),
    }
    let scan = Selector::new([], [Pattern::glob("/*").unwrap()]);
    assert!(matches!(
        log.scan(scan, 0, 10).await,
        Err(ReadError::Expired { .. })
    ));
    let tail = log.read(vec![topic("/t")], last - 5, 10).await.unwrap();
    assert_eq!(tail.len(), 5, "the newest events are kept");
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_log_keeps_the_log_contract() {
    if available(Kind::Redis) {
        contract(Kind::Redis).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_log_keeps_the_log_contract() {
    if available(Kind::Nats) {
        contract(Kind::Nats).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_retention_makes_old_positions_expired() {
    if available(Kind::Redis) {
        retention(Kind::Redis).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_retention_makes_old_positions_expired() {
    if available(Kind::Nats) {
        retention(Kind::Nats).await;
    }
}
