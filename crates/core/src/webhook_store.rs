//! [`WebhookStore`]: where webhook subscriptions live between restarts.
//!
//! A webhook subscription is a small record (callback, topics, secret, lease,
//! the `seq` delivered so far, failure state) that the server encodes itself;
//! the store keeps opaque bytes under a `u64` id. Events are not copied per
//! subscriber: they stay in the [`crate::Log`], and a record's cursor says how
//! far its deliveries got. The embedded store keeps the records in the same
//! file as the history; [`MemoryWebhookStore`] keeps them in memory (tests,
//! and a model for broker-backed stores).

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;

use crate::log::BoxFuture;

/// One change to the records, applied with others atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOp {
    /// Inserts or replaces the record `id`.
    Put(u64, Bytes),
    /// Removes the record `id` (nothing happens if there is none).
    Delete(u64),
}

/// Why the records could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook store unavailable: {0}")]
pub struct RecordError(pub String);

/// Durable webhook subscription records.
pub trait WebhookStore: Send + Sync + 'static {
    /// Every stored record, by id.
    fn load(&self) -> BoxFuture<'_, Result<Vec<(u64, Bytes)>, RecordError>>;

    /// Applies `ops` atomically and durably, in order.
    fn apply(&self, ops: Vec<RecordOp>) -> BoxFuture<'_, Result<(), RecordError>>;

    /// Whether several nodes share these records (a cluster's broker). Each
    /// subscription's deliveries then run on one node at a time: the record
    /// carries a lease, taken, renewed and released with [`WebhookStore::put_if`],
    /// and only the lease holder writes the delivery state (a fenced write).
    fn shared(&self) -> bool {
        false
    }

    /// The record `id` and its revision (a number that changes with every
    /// write of it); `None` when there is none. Stores that are not
    /// [`shared`](WebhookStore::shared) need not support it.
    fn get(&self, id: u64) -> BoxFuture<'_, Result<Option<(u64, Bytes)>, RecordError>> {
        let _ = id;
        Box::pin(async { Err(RecordError("revisions are not kept by this store".into())) })
    }

    /// Writes `bytes` as record `id` only if it is still at revision `rev`
    /// (compare-and-set); returns the new revision, or `None` when the record
    /// changed or was removed since `rev` was read.
    fn put_if(
        &self,
        id: u64,
        rev: u64,
        bytes: Bytes,
    ) -> BoxFuture<'_, Result<Option<u64>, RecordError>> {
        let _ = (id, rev, bytes);
        Box::pin(async { Err(RecordError("revisions are not kept by this store".into())) })
    }
}

/// Records kept in memory: lost at exit.
#[derive(Debug, Default)]
pub struct MemoryWebhookStore {
    records: Mutex<BTreeMap<u64, Bytes>>,
}

impl WebhookStore for MemoryWebhookStore {
    fn load(&self) -> BoxFuture<'_, Result<Vec<(u64, Bytes)>, RecordError>> {
        let all = self
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        Box::pin(async move { Ok(all) })
    }

    fn apply(&self, ops: Vec<RecordOp>) -> BoxFuture<'_, Result<(), RecordError>> {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        for op in ops {
            match op {
                RecordOp::Put(id, bytes) => {
                    records.insert(id, bytes);
                }
                RecordOp::Delete(id) => {
                    records.remove(&id);
                }
            }
        }
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn puts_replace_and_deletes_remove() {
        let s = MemoryWebhookStore::default();
        s.apply(vec![
            RecordOp::Put(2, Bytes::from("b")),
            RecordOp::Put(1, Bytes::from("a")),
            RecordOp::Put(2, Bytes::from("b2")),
            RecordOp::Delete(9),
        ])
        .await
        .unwrap();
        assert_eq!(
            s.load().await.unwrap(),
            vec![(1, Bytes::from("a")), (2, Bytes::from("b2"))]
        );
        s.apply(vec![RecordOp::Delete(1)]).await.unwrap();
        assert_eq!(s.load().await.unwrap(), vec![(2, Bytes::from("b2"))]);
    }
}
