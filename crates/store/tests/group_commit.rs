//! One writer thread, group commit: concurrent publishers all succeed, share
//! fsyncs, get unique contiguous seqs, and subscribers see them in seq order.

mod common;

use std::sync::Arc;
use std::time::Duration;

use herald_core::{AppendError, Fanout, Hub, Limits, Log, PublishError, Resume, Selector};
use herald_store::{RedbLog, StoreOptions};

use common::{draft, topic, wall_ms};

const APPENDERS: u64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_commits_and_reach_subscribers_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let fanout = Arc::new(Fanout::new(1024));
    let log = RedbLog::open(dir.path(), StoreOptions::default(), fanout.clone()).unwrap();
    let hub = Hub::new(log.clone(), fanout, Limits::default());
    let mut sub = hub
        .subscribe(&Selector::exact([topic("t")]), Resume::Now)
        .await
        .unwrap();

    let tasks: Vec<_> = (0..APPENDERS)
        .map(|i| {
            let hub = hub.clone();
            tokio::spawn(async move {
                let topics: &[&str] = if i % 3 == 0 { &["u", "t"] } else { &["t"] };
                hub.publish(vec![draft(topics, &format!("event {i}"), None)], wall_ms())
                    .await
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        let evs = t.await.unwrap().unwrap();
        seqs.extend(evs.iter().map(|e| e.seq));
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=APPENDERS).collect::<Vec<_>>());

    // A ring fed out of order would make the subscription drop or skip seqs.
    for want in 1..=APPENDERS {
        let ev = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ev.seq, want);
    }
    let stats = log.stats();
    assert_eq!(
        (stats.last_seq, stats.events, stats.topics),
        (APPENDERS, APPENDERS, 2)
    );
    assert!(
        stats.commits < APPENDERS,
        "no group commit happened: {stats:?}"
    );
    eprintln!("{APPENDERS} appends in {} commits", stats.commits);
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_id_fails_its_batch_alone() {
    let dir = tempfile::tempdir().unwrap();
    let log = RedbLog::open(
        dir.path(),
        StoreOptions::default(),
        Arc::new(Fanout::new(16)),
    )
    .unwrap();
    // Pairs of appenders race for the same id, beside appenders without ids.
    let tasks: Vec<_> = (0..60u64)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move {
                let id = format!("id-{}", i / 2);
                let batch = vec![
                    draft(&["t"], "with id", Some(&id)),
                    draft(&["t"], "plain", None),
                ];
                let plain = log.append(vec![draft(&["t"], "alone", None)], 1);
                (id, log.append(batch, 1).await, plain.await)
            })
        })
        .collect();
    let (mut won, mut lost) = (Vec::new(), 0);
    for t in tasks {
        let (id, with_id, plain) = t.await.unwrap();
        assert!(plain.is_ok());
        match with_id {
            Ok(evs) => won.push((id, evs[0].seq)),
            Err(AppendError::DuplicateId(d)) => {
                assert_eq!(d, id);
                lost += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((won.len(), lost), (30, 30));
    assert_eq!(log.last_seq(), 30 * 2 + 60);
    for (id, seq) in won {
        assert_eq!(log.lookup_id(id).await.unwrap(), Some(seq));
    }
    log.close().await;
}

#[tokio::test]
async fn close_flushes_then_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let fanout = Arc::new(Fanout::new(16));
    let log = RedbLog::open(dir.path(), StoreOptions::default(), fanout.clone()).unwrap();
    let hub = Hub::new(log.clone(), fanout, Limits::default());
    let pending = log.append(vec![draft(&["t"], "before close", None)], 1);
    log.close().await;
    assert_eq!(pending.await.unwrap()[0].seq, 1);
    let refused = hub
        .publish(vec![draft(&["t"], "after close", None)], 1)
        .await;
    assert!(matches!(
        refused,
        Err(PublishError::Append(AppendError::Unavailable(_)))
    ));
    assert!(log.read(vec![topic("t")], 0, 10).await.is_err());
    log.close().await; // idempotent
    assert!(log.trim_by_age(1).await.is_err());

    // The file was released: the dir opens again, with the event.
    let again = RedbLog::open(
        dir.path(),
        StoreOptions::default(),
        Arc::new(Fanout::new(16)),
    )
    .unwrap();
    assert_eq!(again.last_seq(), 1);
    again.close().await;
}
