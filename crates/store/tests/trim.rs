//! Trimming and deleting one topic's history (the admin API) through the
//! durable log and the model, which must agree: what is left, the counts,
//! and that a replay from before the trim is refused (`Expired`), never
//! served with a gap; events shared with another topic stay in it; and the
//! trim survives a reopen.

mod common;

use std::sync::Arc;

use common::*;
use herald_core::{Fanout, Log, MemoryLog, ReadError, Retention, Trim};
use herald_store::RedbLog;

async fn fill(log: &dyn Log) {
    for i in 1..=6 {
        let topics: &[&str] = if i == 3 { &["a", "b"] } else { &["a"] };
        log.append(vec![draft(topics, &format!("e{i}"), None)], 1_000)
            .await
            .unwrap();
    }
}

async fn seqs(log: &dyn Log, t: &str, after: u64) -> Result<Vec<u64>, ReadError> {
    Ok(log
        .read(vec![topic(t)], after, 100)
        .await?
        .iter()
        .map(|e| e.seq)
        .collect())
}

async fn check(log: &dyn Log) {
    fill(log).await;
    assert_eq!(log.trim(topic("a"), Trim::KeepLast(4)).await.unwrap(), 2);
    assert_eq!(seqs(log, "a", 2).await.unwrap(), vec![3, 4, 5, 6]);
    assert_eq!(
        seqs(log, "a", 0).await,
        Err(ReadError::Expired { oldest_kept: 2 })
    );
    assert_eq!(log.trim(topic("a"), Trim::Before(5)).await.unwrap(), 2);
    assert_eq!(seqs(log, "a", 4).await.unwrap(), vec![5, 6]);
    assert!(matches!(
        seqs(log, "a", 3).await,
        Err(ReadError::Expired { .. })
    ));
    // Event 3 left "a" but is still "b"'s.
    assert_eq!(seqs(log, "b", 0).await.unwrap(), vec![3]);
    assert_eq!(log.stats().events, 3);
    let listed = log.topics(None, 10).await.unwrap();
    let listed: Vec<(String, u64)> = listed
        .iter()
        .map(|t| (t.topic.as_str().to_string(), t.events))
        .collect();
    assert_eq!(listed, vec![("a".into(), 2), ("b".into(), 1)]);
    assert_eq!(log.topics(Some(topic("a")), 10).await.unwrap().len(), 1);
    // Delete: nothing left, and resuming anywhere before the end is refused.
    assert_eq!(log.trim(topic("a"), Trim::KeepLast(0)).await.unwrap(), 2);
    assert_eq!(
        seqs(log, "a", 5).await,
        Err(ReadError::Expired { oldest_kept: 6 })
    );
    assert_eq!(seqs(log, "a", 6).await.unwrap(), Vec::<u64>::new());
    assert_eq!(log.topics(None, 10).await.unwrap().len(), 1);
    assert_eq!(
        log.trim(topic("nothing"), Trim::KeepLast(0)).await.unwrap(),
        0
    );
    // New events after a delete are served from the mark on.
    log.append(vec![draft(&["a"], "e7", None)], 1_000)
        .await
        .unwrap();
    assert_eq!(seqs(log, "a", 6).await.unwrap(), vec![7]);
}

#[tokio::test]
async fn trims_agree_between_the_model_and_the_store_and_survive_reopen() {
    let fanout = Arc::new(Fanout::new(8));
    check(&MemoryLog::new(1, Retention::default(), fanout.clone())).await;

    let dir = tempfile::tempdir().unwrap();
    let log = RedbLog::open(dir.path(), opts(Retention::default()), fanout.clone()).unwrap();
    check(&*log).await;
    log.close().await;
    let log = RedbLog::open(dir.path(), opts(Retention::default()), fanout).unwrap();
    assert_eq!(seqs(&*log, "a", 6).await.unwrap(), vec![7]);
    assert!(matches!(
        seqs(&*log, "a", 5).await,
        Err(ReadError::Expired { .. })
    ));
    assert_eq!(seqs(&*log, "b", 0).await.unwrap(), vec![3]);
    assert_eq!(log.stats().events, 2);
    log.close().await;
}
