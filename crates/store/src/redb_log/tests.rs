//! Storage failures: an append whose commit fails is answered `Unavailable`,
//! and nothing of it is stored (the reopened history is the one before it).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use herald_core::{AppendError, Draft, Fanout, Log, Topic};
use redb::StorageBackend;
use redb::backends::InMemoryBackend;

use super::RedbLog;
use crate::StoreOptions;

/// Memory that refuses every write and sync while `fail` is set, like a disk
/// that is full or gone.
#[derive(Debug, Clone)]
struct Flaky {
    mem: Arc<InMemoryBackend>,
    fail: Arc<AtomicBool>,
}

impl Flaky {
    fn check(&self) -> Result<(), io::Error> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected disk failure"));
        }
        Ok(())
    }
}

impl StorageBackend for Flaky {
    fn len(&self) -> Result<u64, io::Error> {
        self.mem.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.mem.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.check()?;
        self.mem.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.check()?;
        self.mem.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.check()?;
        self.mem.write(offset, data)
    }
}

fn start(backend: Flaky) -> Arc<RedbLog> {
    let db = redb::Database::builder()
        .create_with_backend(backend)
        .unwrap();
    let path = PathBuf::from("mem/history.redb");
    RedbLog::start(
        db,
        Path::new("mem"),
        path,
        StoreOptions::default(),
        Arc::new(Fanout::new(16)),
    )
    .unwrap()
}

fn draft(data: &'static str, id: &str) -> Draft {
    Draft {
        topics: vec![Topic::parse("t", 10).unwrap()],
        data: Bytes::from_static(data.as_bytes()),
        kind: None,
        id: Some(Box::from(id)),
        retry: None,
        private: false,
        content_type: None,
    }
}

#[tokio::test]
async fn a_failed_commit_fails_its_appenders_and_stores_nothing() {
    let backend = Flaky {
        mem: Arc::new(InMemoryBackend::new()),
        fail: Arc::new(AtomicBool::new(false)),
    };
    let log = start(backend.clone());
    log.append(vec![draft("kept", "k")], 1).await.unwrap();
    assert_eq!(log.ready(), Ok(()));

    backend.fail.store(true, Ordering::SeqCst);
    let a = log.append(vec![draft("lost", "l1")], 2);
    let b = log.append(vec![draft("lost too", "l2")], 2);
    for r in [a.await, b.await] {
        match r {
            Err(AppendError::Unavailable(m)) => assert!(m.contains("mem/history.redb"), "{m}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    assert_eq!(log.last_seq(), 1);
    assert_eq!(log.stats().events, 1);
    // Readiness says so (a load balancer stops sending publishers here).
    assert!(log.ready().is_err());
    backend.fail.store(false, Ordering::SeqCst);
    // redb refuses further writes after an I/O error until it is reopened:
    // the store stays unavailable rather than guessing what reached the disk.
    let again = log.append(vec![draft("again", "x")], 2).await;
    assert!(
        matches!(again, Err(AppendError::Unavailable(_))),
        "{again:?}"
    );
    log.close().await;
    assert!(
        log.ready().unwrap_err().contains("closed"),
        "{:?}",
        log.ready()
    );
    drop(log);

    let log = start(backend);
    assert_eq!(log.ready(), Ok(()));
    assert_eq!(log.last_seq(), 1);
    assert_eq!(log.lookup_id("k".into()).await.unwrap(), Some(1));
    assert_eq!(log.lookup_id("l1".into()).await.unwrap(), None);
    let t = vec![Topic::parse("t", 10).unwrap()];
    assert_eq!(log.read(t, 0, 10).await.unwrap().len(), 1);
    assert_eq!(
        log.append(vec![draft("next", "l1")], 3).await.unwrap()[0].seq,
        2
    );
    log.close().await;
}
