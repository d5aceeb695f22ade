//! Webhook records live in the history file: they survive a reopen, change
//! atomically with the writer's group commits, and agree with the in-memory
//! model; content types stored with events come back after a reopen.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use herald_core::{Fanout, Log, MemoryWebhookStore, RecordOp, WebhookStore};
use herald_store::{RedbLog, StoreOptions};

fn open(dir: &std::path::Path) -> Arc<RedbLog> {
    RedbLog::open(dir, StoreOptions::default(), Arc::new(Fanout::new(16))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_records_survive_a_reopen_and_match_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let model = MemoryWebhookStore::default();
    assert!(log.load().await.unwrap().is_empty());
    let steps = vec![
        vec![
            RecordOp::Put(7, Bytes::from("seven")),
            RecordOp::Put(3, Bytes::from("three")),
        ],
        vec![
            RecordOp::Put(7, Bytes::from("seven v2")),
            RecordOp::Delete(42),
        ],
        vec![RecordOp::Delete(3)],
    ];
    for ops in steps {
        log.apply(ops.clone()).await.unwrap();
        model.apply(ops).await.unwrap();
        assert_eq!(log.load().await.unwrap(), model.load().await.unwrap());
    }
    // Appends and record changes share the writer; both are durable.
    let mut d = common::draft(&["t"], "x", None);
    d.content_type = Some(Box::from("text/plain"));
    log.append(vec![d], 1).await.unwrap();
    log.close().await;

    let log = open(dir.path());
    assert_eq!(
        log.load().await.unwrap(),
        vec![(7, Bytes::from("seven v2"))]
    );
    let back = log.read(vec![common::topic("t")], 0, 10).await.unwrap();
    assert_eq!(back[0].content_type.as_deref(), Some("text/plain"));
    log.close().await;
}
