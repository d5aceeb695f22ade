//! [`NatsRecords`]: webhook subscription records in a JetStream key-value
//! bucket `{name}_webhooks`, shared by every node of the cluster.
//!
//! One key per subscription (its id, 16 hex digits), one value kept per key.
//! The bucket's revision of a key is the record's revision, so `put_if` is
//! KV `update` with the expected revision: atomic across nodes. The lease that
//! makes one node deliver a subscription lives in the record itself, so
//! taking, renewing and releasing it, and writing the delivery cursor, are
//! all the same fenced write.
//!
//! `apply` writes its operations one after another (a bucket has no
//! multi-key transaction); the server only ever applies one at a time.

use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation, UpdateErrorKind};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use herald_core::{BoxFuture, RecordError, RecordOp, WebhookStore};

use crate::{BrokerError, BrokerOptions};

/// Webhook records in a JetStream bucket (see the module doc).
pub struct NatsRecords {
    kv: kv::Store,
    timeout: Duration,
}

impl NatsRecords {
    /// Connects (its own connection, beside the log's) and creates the
    /// bucket if it is missing.
    pub async fn open(opts: &BrokerOptions) -> Result<NatsRecords, BrokerError> {
        let unreachable = |detail: String| BrokerError::Unreachable {
            url: crate::redacted(&opts.url),
            detail,
        };
        let (min, max) = (opts.reconnect_min, opts.reconnect_max);
        let connect = async_nats::ConnectOptions::new()
            .connection_timeout(opts.timeout)
            .request_timeout(Some(opts.timeout))
            .reconnect_delay_callback(move |attempts| {
                let exp = 1u32 << attempts.min(16) as u32;
                min.saturating_mul(exp).min(max)
            })
            .connect(opts.url.as_str());
        let client = match tokio::time::timeout(opts.timeout, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => return Err(unreachable(format!("no answer within {:?}", opts.timeout))),
        };
        let mut js = jetstream::new(client);
        js.set_timeout(opts.timeout);
        let bucket = format!("{}_webhooks", opts.stream);
        let kv = match js.get_key_value(&bucket).await {
            Ok(kv) => kv,
            Err(_) => {
                let config = kv::Config {
                    bucket: bucket.clone(),
                    description: "herald webhook subscriptions".into(),
                    history: 1,
                    storage: stream::StorageType::File,
                    ..Default::default()
                };
                match js.create_key_value(config).await {
                    Ok(kv) => kv,
                    // Another node created it first.
                    Err(create) => js.get_key_value(&bucket).await.map_err(|_| {
                        unreachable(format!("cannot create bucket {bucket}: {create}"))
                    })?,
                }
            }
        };
        Ok(NatsRecords {
            kv,
            timeout: opts.timeout,
        })
    }

    async fn timed<T, E: std::fmt::Display>(
        &self,
        fut: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, RecordError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(RecordError(format!("nats: {e}"))),
            Err(_) => Err(RecordError(format!(
                "nats did not answer within {:?}",
                self.timeout
            ))),
        }
    }
}

fn key(id: u64) -> String {
    format!("{id:016x}")
}

impl WebhookStore for NatsRecords {
    fn load(&self) -> BoxFuture<'_, Result<Vec<(u64, Bytes)>, RecordError>> {
        Box::pin(async move {
            let mut keys = self.timed(self.kv.keys()).await?;
            let mut ids = Vec::new();
            loop {
                match tokio::time::timeout(self.timeout, keys.next()).await {
                    Ok(Some(Ok(k))) => {
                        if let Ok(id) = u64::from_str_radix(&k, 16) {
                            ids.push(id);
                        }
                    }
                    Ok(Some(Err(e))) => return Err(RecordError(format!("nats: {e}"))),
                    Ok(None) => break,
                    Err(_) => return Err(RecordError("nats: listing keys timed out".into())),
                }
            }
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some((_, bytes)) = self.get(id).await? {
                    out.push((id, bytes));
                }
            }
            Ok(out)
        })
    }

    fn apply(&self, ops: Vec<RecordOp>) -> BoxFuture<'_, Result<(), RecordError>> {
        Box::pin(async move {
            for op in ops {
                match op {
                    RecordOp::Put(id, bytes) => {
                        self.timed(self.kv.put(key(id), bytes)).await?;
                    }
                    RecordOp::Delete(id) => {
                        self.timed(self.kv.purge(key(id))).await?;
                    }
                }
            }
            Ok(())
        })
    }

    fn shared(&self) -> bool {
        true
    }

    fn get(&self, id: u64) -> BoxFuture<'_, Result<Option<(u64, Bytes)>, RecordError>> {
        Box::pin(async move {
            let entry = self.timed(self.kv.entry(key(id))).await?;
            Ok(entry
                .filter(|e| e.operation == Operation::Put)
                .map(|e| (e.revision, e.value)))
        })
    }

    fn put_if(
        &self,
        id: u64,
        rev: u64,
        bytes: Bytes,
    ) -> BoxFuture<'_, Result<Option<u64>, RecordError>> {
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, self.kv.update(key(id), bytes, rev)).await {
                Ok(Ok(new)) => Ok(Some(new)),
                Ok(Err(e)) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(None),
                Ok(Err(e)) => Err(RecordError(format!("nats: {e}"))),
                Err(_) => Err(RecordError(format!(
                    "nats did not answer within {:?}",
                    self.timeout
                ))),
            }
        })
    }
}
