//! [`NatsRecords`]: webhook subscription records in a JetStream stream
//! `{name}_webhooks`, shared by every node of the cluster.
//!
//! One subject per subscription (`{name}_webhooks.{id, 16 hex digits}`), one
//! message kept per subject (a key-value layout on a plain stream, which
//! nats-server 2.9 serves; the `kv` client of async-nats expects newer
//! servers). The stream sequence of a subject's message is the record's
//! revision, so `put_if` is a publish with "expected last subject sequence":
//! atomic across nodes. The lease that makes one node deliver a subscription
//! lives in the record itself, so taking, renewing and releasing it, and
//! writing the delivery cursor, are all the same fenced write.
//!
//! `apply` writes its operations one after another (there is no multi-subject
//! transaction); the server only ever applies one at a time.

use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, LastRawMessageErrorKind};
use async_nats::jetstream::{self, Context};
use bytes::Bytes;
use futures_util::StreamExt;
use herald_core::{BoxFuture, RecordError, RecordOp, WebhookStore};

use crate::{BrokerError, BrokerOptions};

/// Webhook records in a JetStream stream (see the module doc).
pub struct NatsRecords {
    js: Context,
    name: String,
    timeout: Duration,
}

impl NatsRecords {
    /// Connects (its own connection, beside the log's) and creates the
    /// stream if it is missing.
    pub async fn open(opts: &BrokerOptions) -> Result<NatsRecords, BrokerError> {
        let client = super::connect(opts, super::connect_options(opts)).await?;
        let mut js = jetstream::new(client);
        js.set_timeout(opts.timeout);
        let name = format!("{}_webhooks", opts.stream);
        let records = NatsRecords {
            js,
            name,
            timeout: opts.timeout,
        };
        records
            .ensure()
            .await
            .map_err(crate::unreachable_error(opts))?;
        Ok(records)
    }

    /// The stream, created if missing (a broker restarted without its data).
    async fn ensure(&self) -> Result<stream::Stream, String> {
        if let Ok(s) = self.js.get_stream(&self.name).await {
            return Ok(s);
        }
        let config = stream::Config {
            name: self.name.clone(),
            description: Some("herald webhook subscriptions".into()),
            subjects: vec![format!("{}.>", self.name)],
            max_messages_per_subject: 1,
            storage: stream::StorageType::File,
            allow_direct: true,
            ..Default::default()
        };
        match self.js.create_stream(config).await {
            Ok(s) => Ok(s),
            // Another node created it first.
            Err(create) => self
                .js
                .get_stream(&self.name)
                .await
                .map_err(|_| format!("cannot create stream {}: {create}", self.name)),
        }
    }

    fn subject(&self, id: u64) -> String {
        format!("{}.{}", self.name, key(id))
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

    /// Publishes `bytes` on `subject`, only if its last message is `expect`
    /// (when given); `None` when it is not.
    async fn publish(
        &self,
        subject: String,
        bytes: Bytes,
        expect: Option<u64>,
    ) -> Result<Option<u64>, RecordError> {
        let mut msg = PublishMessage::build().payload(bytes);
        if let Some(rev) = expect {
            msg = msg.expected_last_subject_sequence(rev);
        }
        let ack = self.timed(self.js.send_publish(subject, msg)).await?;
        match tokio::time::timeout(self.timeout, ack).await {
            Ok(Ok(ack)) => Ok(Some(ack.sequence)),
            Ok(Err(e)) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(None),
            Ok(Err(e)) => Err(RecordError(format!("nats: {e}"))),
            Err(_) => Err(RecordError(format!(
                "nats did not acknowledge within {:?}",
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
            let stream = self.ensure().await.map_err(RecordError)?;
            let filter = format!("{}.>", self.name);
            let mut subjects = self.timed(stream.info_with_subjects(filter)).await?;
            let mut ids = Vec::new();
            loop {
                match tokio::time::timeout(self.timeout, subjects.next()).await {
                    Ok(Some(Ok((subject, _)))) => {
                        let id = subject
                            .rsplit('.')
                            .next()
                            .and_then(|k| u64::from_str_radix(k, 16).ok());
                        ids.extend(id);
                    }
                    Ok(Some(Err(e))) => return Err(RecordError(format!("nats: {e}"))),
                    Ok(None) => break,
                    Err(_) => return Err(RecordError("nats: listing records timed out".into())),
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
                        self.publish(self.subject(id), bytes, None).await?;
                    }
                    RecordOp::Delete(id) => {
                        let stream = self.ensure().await.map_err(RecordError)?;
                        self.timed(stream.purge().filter(self.subject(id)).into_future())
                            .await?;
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
            let stream = self.ensure().await.map_err(RecordError)?;
            let subject = self.subject(id);
            match tokio::time::timeout(
                self.timeout,
                stream.get_last_raw_message_by_subject(&subject),
            )
            .await
            {
                Ok(Ok(msg)) => Ok(Some((msg.sequence, msg.payload))),
                Ok(Err(e)) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
                Ok(Err(e)) => Err(RecordError(format!("nats: {e}"))),
                Err(_) => Err(RecordError(format!(
                    "nats did not answer within {:?}",
                    self.timeout
                ))),
            }
        })
    }

    fn put_if(
        &self,
        id: u64,
        rev: u64,
        bytes: Bytes,
    ) -> BoxFuture<'_, Result<Option<u64>, RecordError>> {
        Box::pin(async move {
            if rev == 0 {
                // Revision 0 would mean "no message": never a stored record.
                return Ok(None);
            }
            self.publish(self.subject(id), bytes, Some(rev)).await
        })
    }
}
