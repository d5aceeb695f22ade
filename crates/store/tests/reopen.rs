//! What a restart keeps (epoch, seqs, ids, trim marks), what a new data dir
//! gets (a new epoch), and the errors an operator sees when opening fails.

mod common;

use std::sync::Arc;
use std::time::Duration;

use herald_core::{Fanout, Log, ReadError, Retention};
use herald_store::{RedbLog, StoreError, StoreOptions};

use common::{draft, keys, opts, topic, wall_ms};

fn open(dir: &std::path::Path, retention: Retention) -> Arc<RedbLog> {
    RedbLog::open(dir, opts(retention), Arc::new(Fanout::new(16))).unwrap()
}

#[tokio::test]
async fn reopen_keeps_epoch_seqs_ids_and_marks() {
    let dir = tempfile::tempdir().unwrap();
    let retention = Retention {
        max_events_per_topic: 2,
        max_bytes: 1 << 20,
        max_age: None,
    };
    let log = open(dir.path(), retention.clone());
    let epoch = log.epoch();
    assert_eq!(epoch >> 48, 0, "epoch is 48 bits");
    for i in 0..5 {
        let id = format!("id{i}");
        log.append(vec![draft(&["a"], &format!("{i}"), Some(&id))], 1)
            .await
            .unwrap();
    }
    log.append(vec![draft(&["b"], "b", None)], 2).await.unwrap();
    let all = vec![topic("a"), topic("b")];
    let history = log.read(all.clone(), 3, 10).await;
    let stats = log.stats();
    log.close().await;
    drop(log);

    let log = open(dir.path(), retention);
    assert_eq!(log.epoch(), epoch);
    assert_eq!(log.last_seq(), 6);
    assert_eq!(log.stats().last_seq, stats.last_seq);
    assert_eq!(
        (log.stats().events, log.stats().bytes, log.stats().first_seq),
        (stats.events, stats.bytes, 4)
    );
    assert_eq!(log.lookup_id("id4".into()).await.unwrap(), Some(5));
    assert_eq!(
        log.lookup_id("id0".into()).await.unwrap(),
        None,
        "trimmed ids are forgotten"
    );
    assert_eq!(
        log.read(all.clone(), 0, 10).await.unwrap_err(),
        ReadError::Expired { oldest_kept: 3 }
    );
    assert_eq!(keys(&log.read(all, 3, 10).await), keys(&history));
    assert_eq!(
        log.append(vec![draft(&["b"], "next", None)], 3)
            .await
            .unwrap()[0]
            .seq,
        7
    );
    log.close().await;

    let other = tempfile::tempdir().unwrap();
    let fresh = open(other.path(), Retention::default());
    assert_ne!(fresh.epoch(), epoch);
    assert_eq!(fresh.last_seq(), 0);
    fresh.close().await;
}

#[tokio::test]
async fn a_second_open_of_the_same_dir_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path(), Retention::default());
    let second = RedbLog::open(
        dir.path(),
        StoreOptions::default(),
        Arc::new(Fanout::new(16)),
    );
    let err = second.err().expect("second open must fail");
    assert!(matches!(err, StoreError::InUse { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "data dir {} is in use by another herald process",
            dir.path().display()
        )
    );
    first.close().await;
}

#[tokio::test]
async fn a_corrupt_file_is_named_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.redb");
    std::fs::write(
        &path,
        b"this is not a database, just some text long enough to look like a header".repeat(100),
    )
    .unwrap();
    let err = RedbLog::open(
        dir.path(),
        StoreOptions::default(),
        Arc::new(Fanout::new(16)),
    )
    .err()
    .expect("garbage must not open");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn an_unusable_dir_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = RedbLog::open(&file, StoreOptions::default(), Arc::new(Fanout::new(16)))
        .err()
        .expect("a file is not a data dir");
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

#[tokio::test]
async fn the_writer_sweeps_old_events_on_its_timer() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        retention: Retention {
            max_age: Some(Duration::from_secs(60)),
            ..Retention::default()
        },
        trim_interval: Duration::from_millis(20),
        ..StoreOptions::default()
    };
    let log = RedbLog::open(dir.path(), options, Arc::new(Fanout::new(16))).unwrap();
    // Accepted two minutes ago by its own clock: only the sweep removes it.
    log.append(vec![draft(&["a"], "old", None)], wall_ms() - 120_000)
        .await
        .unwrap();
    log.append(vec![draft(&["a"], "new", None)], wall_ms())
        .await
        .unwrap();
    for _ in 0..500 {
        if log.stats().events == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!((log.stats().events, log.stats().first_seq), (1, 2));
    assert_eq!(
        log.read(vec![topic("a")], 0, 10).await.unwrap_err(),
        ReadError::Expired { oldest_kept: 1 }
    );
    log.close().await;
}
