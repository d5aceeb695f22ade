//! [`NatsLog`]: the ordered log is one JetStream stream shared by every node.
//!
//! - Each event is one message on `{name}.t.{topic}` (the first topic,
//!   base64url so any topic is one safe subject token); the message holds the
//!   whole event (all its topics) and its stream sequence is `seq`.
//! - The epoch is written in the stream's description when the stream is
//!   created, so a deleted or recreated stream has another one.
//! - Publisher ids live in a second stream `{name}_ids`, one subject per id
//!   (`{name}_ids.{epoch}.{id, base64url}`, one message kept per subject, holding the
//!   event's `seq`): lookups read the subject's last message, an index, never
//!   a scan. An id is reserved before its event is published with "expected
//!   last subject sequence 0", which refuses a duplicate atomically across nodes.
//! - Every node's follower (`follow.rs`) reads the stream with an ordered
//!   consumer and hands each message to its own fan-out; `append` returns once
//!   the stream acknowledged every event and the follower delivered them.
//! - History reads use a short-lived consumer from the requested sequence.

mod follow;
mod records;

pub use records::NatsRecords;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, consumer, stream};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures_util::StreamExt;
use herald_core::{AppendError, Draft, Event, EventId, Fanout, ReadError, ScanPage, Topic};
use tokio::sync::Notify;

use crate::progress::{Progress, new_epoch};
use crate::{BrokerError, BrokerOptions, duplicate_in_batch, with_seq};

/// Messages fetched per history round trip.
const READ_PAGE: usize = 512;
/// Prefix of the stream description that carries the epoch.
const EPOCH_TAG: &str = "herald log, epoch ";

/// A [`Log`] over a JetStream stream. Cheap to share (`Arc`).
pub struct NatsLog {
    inner: Arc<Inner>,
}

struct Inner {
    opts: BrokerOptions,
    client: async_nats::Client,
    js: jetstream::Context,
    /// The id index stream's name (publisher id → `seq`, one subject per id).
    ids: String,
    progress: Progress,
    fanout: Arc<Fanout>,
    /// Set by `close`: appends fail, the follower stops.
    closed: AtomicBool,
    /// Wakes the follower at close.
    stop: Notify,
    /// Set when an operation found the stream gone: the follower re-checks it.
    check_now: AtomicBool,
    /// Messages in the stream, as the follower last saw (metrics).
    events: AtomicU64,
    /// Appends this node committed (metrics).
    commits: AtomicU64,
    /// The connection's state as its events tell it.
    link: Arc<Link>,
}

/// What the client's connection events say, for the follower and `/readyz`.
#[derive(Default)]
struct Link {
    /// Set at a disconnection; cleared once the follower checked the stream
    /// again after the reconnection (a restarted broker may have lost it:
    /// the node is not ready until it knows its epoch).
    stale: AtomicBool,
    /// Wakes the follower at a reconnection, so it checks the stream and
    /// follows it again at once rather than at its next periodic check.
    reconnected: Notify,
}

impl NatsLog {
    /// Connects, creates the stream and the id bucket if they are missing,
    /// and starts the follower from the stream's current end.
    pub async fn open(
        opts: BrokerOptions,
        fanout: Arc<Fanout>,
    ) -> Result<Arc<NatsLog>, BrokerError> {
        let link = Arc::new(Link::default());
        let events = link.clone();
        let options = connect_options(&opts).event_callback(move |event| {
            match event {
                async_nats::Event::Disconnected => events.stale.store(true, Ordering::Release),
                async_nats::Event::Connected => events.reconnected.notify_one(),
                _ => {}
            }
            std::future::ready(())
        });
        let client = connect(&opts, options).await?;
        let unreachable = crate::unreachable_error(&opts);
        let mut js = jetstream::new(client.clone());
        js.set_timeout(opts.timeout);
        let info = ensure_stream(&js, &opts).await.map_err(&unreachable)?;
        let epoch = epoch_of(&info);
        let ids = ensure_ids(&js, &opts).await.map_err(&unreachable)?;
        tracing::info!(
            url = %crate::redacted(&opts.url),
            stream = %opts.stream,
            epoch = format!("{epoch:x}"),
            last_seq = info.state.last_sequence,
            "following the JetStream stream"
        );
        let inner = Arc::new(Inner {
            progress: Progress::new(epoch, info.state.last_sequence),
            events: AtomicU64::new(info.state.messages),
            opts,
            client,
            js,
            ids,
            fanout,
            closed: AtomicBool::new(false),
            stop: Notify::new(),
            check_now: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            link,
        });
        tokio::spawn(follow::run(inner.clone()));
        Ok(Arc::new(NatsLog { inner }))
    }
}

/// The stream's info, creating the stream (with a fresh epoch) if it is missing.
async fn ensure_stream(
    js: &jetstream::Context,
    opts: &BrokerOptions,
) -> Result<stream::Info, String> {
    if let Ok(s) = js.get_stream(&opts.stream).await {
        return Ok(s.cached_info().clone());
    }
    let config = stream::Config {
        name: opts.stream.clone(),
        subjects: vec![format!("{}.t.>", opts.stream)],
        description: Some(format!("{EPOCH_TAG}{:x}", new_epoch())),
        max_messages: if opts.max_events == 0 {
            -1
        } else {
            opts.max_events as i64
        },
        max_age: opts.max_age.unwrap_or_default(),
        storage: stream::StorageType::File,
        allow_direct: true,
        ..Default::default()
    };
    match js.create_stream(config).await {
        Ok(s) => Ok(s.cached_info().clone()),
        // Another node created it first: use theirs.
        Err(create) => match js.get_stream(&opts.stream).await {
            Ok(s) => Ok(s.cached_info().clone()),
            Err(_) => Err(format!("cannot create stream {}: {create}", opts.stream)),
        },
    }
}

/// The id index stream, created if missing; returns its name.
async fn ensure_ids(js: &jetstream::Context, opts: &BrokerOptions) -> Result<String, String> {
    let name = format!("{}_ids", opts.stream);
    if js.get_stream(&name).await.is_ok() {
        return Ok(name);
    }
    let config = stream::Config {
        name: name.clone(),
        subjects: vec![format!("{name}.>")],
        max_messages_per_subject: 1,
        max_age: opts.max_age.unwrap_or_default(),
        storage: stream::StorageType::File,
        allow_direct: true,
        ..Default::default()
    };
    match js.create_stream(config).await {
        Ok(_) => Ok(name),
        Err(create) => match js.get_stream(&name).await {
            Ok(_) => Ok(name),
            Err(_) => Err(format!("cannot create stream {name}: {create}")),
        },
    }
}

/// The connection settings every NATS client of a node shares: the broker
/// timeout for connecting and for requests, exponential reconnection delays.
fn connect_options(opts: &BrokerOptions) -> async_nats::ConnectOptions {
    let (min, max) = (opts.reconnect_min, opts.reconnect_max);
    async_nats::ConnectOptions::new()
        .connection_timeout(opts.timeout)
        .request_timeout(Some(opts.timeout))
        .reconnect_delay_callback(move |attempts| {
            let exp = 1u32 << attempts.min(16) as u32;
            min.saturating_mul(exp).min(max)
        })
}

/// Connects with `options`, giving up after the broker timeout.
async fn connect(
    opts: &BrokerOptions,
    options: async_nats::ConnectOptions,
) -> Result<async_nats::Client, BrokerError> {
    let unreachable = crate::unreachable_error(opts);
    match tokio::time::timeout(opts.timeout, options.connect(opts.url.as_str())).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!("no answer within {:?}", opts.timeout))),
    }
}

/// The epoch written in the stream's description (or, for a stream made by
/// hand without one, derived from its creation time).
fn epoch_of(info: &stream::Info) -> u64 {
    info.config
        .description
        .as_deref()
        .and_then(|d| d.strip_prefix(EPOCH_TAG))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or_else(|| (info.created.unix_timestamp_nanos() as u64 & ((1 << 48) - 1)).max(1))
}

/// The subject of an event: `{name}.t.{first topic, base64url}`.
fn subject(stream: &str, topic: &Topic) -> String {
    format!("{stream}.t.{}", URL_SAFE_NO_PAD.encode(topic.as_str()))
}

/// The subject of a publisher id in the index stream. The epoch is part of
/// it: ids of a lost stream's events are never found in its successor.
fn id_subject(ids: &str, epoch: u64, id: &str) -> String {
    format!("{ids}.{epoch:x}.{}", URL_SAFE_NO_PAD.encode(id))
}

fn unavailable(e: impl std::fmt::Display) -> AppendError {
    AppendError::Unavailable(format!("nats: {e}"))
}

impl Inner {
    fn connected(&self) -> Result<(), String> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            other => Err(format!("nats: not connected ({other:?})")),
        }
    }

    async fn stream(&self) -> Result<stream::Stream, String> {
        self.js.get_stream(&self.opts.stream).await.map_err(|e| {
            self.check_now.store(true, Ordering::Release);
            format!("nats: stream {}: {e}", self.opts.stream)
        })
    }

    async fn append(&self, batch: Vec<Draft>, now_ms: u64) -> Result<Vec<Arc<Event>>, AppendError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(AppendError::Unavailable("log is closed".into()));
        }
        // Nothing is sent while disconnected: a publish buffered now could be
        // stored after its caller was told it failed.
        self.connected().map_err(AppendError::Unavailable)?;
        duplicate_in_batch(&batch)?;
        let epoch = self.progress.epoch();
        let events: Vec<Event> = batch
            .into_iter()
            .map(|d| Event::from_draft(d, 0, epoch, now_ms))
            .collect();
        let mut reserved = Vec::new();
        let result = self.append_reserved(&events, epoch, &mut reserved).await;
        let seqs = match result {
            Ok(seqs) => seqs,
            Err(e) => {
                for (subject, _) in reserved {
                    self.release(&subject).await;
                }
                if matches!(e, AppendError::Unavailable(_)) {
                    self.progress.mark_down(e.to_string());
                }
                return Err(e);
            }
        };
        self.commits.fetch_add(1, Ordering::Relaxed);
        let id_seqs = events
            .iter()
            .zip(&seqs)
            .filter(|(e, _)| matches!(e.id, EventId::Publisher(_)))
            .map(|(_, s)| *s);
        for ((subject, _), seq) in reserved.iter().zip(id_seqs) {
            let value = Bytes::from(seq.to_string());
            let stored = match self.js.publish(subject.clone(), value).await {
                Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = stored {
                tracing::warn!(error = %e, "event stored but its id is not indexed");
            }
        }
        let last = seqs.iter().copied().max().unwrap_or(0);
        let out: Vec<Arc<Event>> = events
            .into_iter()
            .zip(seqs)
            .map(|(ev, seq)| Arc::new(with_seq(ev, seq, epoch)))
            .collect();
        if !self
            .progress
            .wait_delivered(epoch, last, self.opts.timeout)
            .await
        {
            tracing::warn!(
                seq = last,
                "event stored in JetStream but not yet delivered by this node's follower"
            );
        }
        Ok(out)
    }

    /// Reserves the batch's ids, then publishes every event in order and
    /// waits for each acknowledgement; returns the sequences.
    async fn append_reserved(
        &self,
        events: &[Event],
        epoch: u64,
        reserved: &mut Vec<(String, u64)>,
    ) -> Result<Vec<u64>, AppendError> {
        for ev in events {
            if let EventId::Publisher(id) = &ev.id {
                let subject = id_subject(&self.ids, epoch, id);
                let at = self.reserve(&subject, id).await?;
                reserved.push((subject, at));
            }
        }
        let mut acks = Vec::with_capacity(events.len());
        for ev in events {
            let bytes = herald_store::event_codec::encode(ev).map_err(AppendError::Unavailable)?;
            let subject = subject(&self.opts.stream, &ev.topics[0]);
            let mut msg = PublishMessage::build().payload(Bytes::from(bytes));
            if let EventId::Publisher(id) = &ev.id {
                // JetStream's duplicate window: a retry of a publish whose
                // acknowledgement was lost (its id reservation was released)
                // gets the stored event's sequence instead of a second copy.
                msg = msg.message_id(format!("{epoch:x}:{id}"));
            }
            // Sent one after another on one connection: stored in this order.
            acks.push(
                self.js
                    .send_publish(subject, msg)
                    .await
                    .map_err(unavailable)?,
            );
        }
        let mut seqs = Vec::with_capacity(acks.len());
        for ack in acks {
            seqs.push(ack.await.map_err(unavailable)?.sequence);
        }
        Ok(seqs)
    }

    /// Reserves an id: a message on its subject, published only if the
    /// subject holds none, or holds one whose event retention removed (taken
    /// over). Anything else is a duplicate. Returns the reservation's sequence.
    async fn reserve(&self, subject: &str, id: &str) -> Result<u64, AppendError> {
        let mut expect = 0;
        for _ in 0..2 {
            let msg = PublishMessage::build()
                .payload(Bytes::new())
                .expected_last_subject_sequence(expect);
            let ack = self
                .js
                .send_publish(subject.to_string(), msg)
                .await
                .map_err(unavailable)?;
            match ack.await {
                Ok(ack) => return Ok(ack.sequence),
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence && expect == 0 => {}
                Err(e) => {
                    return Err(if e.kind() == PublishErrorKind::WrongLastSequence {
                        AppendError::DuplicateId(id.to_string())
                    } else {
                        unavailable(e)
                    });
                }
            }
            let ids = self.js.get_stream(&self.ids).await.map_err(unavailable)?;
            let held = ids
                .get_last_raw_message_by_subject(subject)
                .await
                .map_err(|_| AppendError::DuplicateId(id.to_string()))?;
            let seq = std::str::from_utf8(&held.payload)
                .ok()
                .and_then(|s| s.parse::<u64>().ok());
            let first = self
                .stream()
                .await
                .map_err(AppendError::Unavailable)?
                .cached_info()
                .state
                .first_sequence;
            match seq {
                Some(seq) if seq < first => expect = held.sequence,
                _ => return Err(AppendError::DuplicateId(id.to_string())),
            }
        }
        Err(AppendError::DuplicateId(id.to_string()))
    }

    /// Drops a reservation whose event was not stored.
    async fn release(&self, subject: &str) {
        if let Ok(ids) = self.js.get_stream(&self.ids).await {
            let _ = ids.purge().filter(subject).await;
        }
    }

    /// Examines retained events after `after` in order, keeping those
    /// `matches` accepts, until `limit` kept or `budget` examined.
    async fn scan_with(
        &self,
        matches: &(dyn Fn(&Event) -> bool + Sync),
        after: u64,
        limit: usize,
        budget: usize,
    ) -> Result<ScanPage, ReadError> {
        let epoch = self.progress.epoch();
        let s = self.stream().await.map_err(ReadError::Unavailable)?;
        let info = s.cached_info();
        if epoch_of(info) != epoch {
            self.check_now.store(true, Ordering::Release);
            return Err(ReadError::Unavailable(
                "the JetStream stream was recreated".into(),
            ));
        }
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        let floor = first.saturating_sub(1);
        if after < floor {
            return Err(ReadError::Expired { oldest_kept: floor });
        }
        let mut page = ScanPage {
            through: after,
            ..ScanPage::default()
        };
        if after >= last || limit == 0 || budget == 0 {
            page.more = after < last;
            return Ok(page);
        }
        let consumer = s
            .create_consumer(consumer::pull::Config {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
                ack_policy: consumer::AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                memory_storage: true,
                ..Default::default()
            })
            .await
            .map_err(|e| ReadError::Unavailable(format!("nats: {e}")))?;
        let scanned = self
            .scan_consumer(&consumer, matches, &mut page, last, limit, budget, epoch)
            .await;
        let name = consumer.cached_info().name.clone();
        let _ = s.delete_consumer(&name).await;
        scanned.map(|()| page)
    }

    /// Fetches pages from `consumer` into `page` until `last`, `limit`
    /// matches or `budget` examined.
    #[allow(clippy::too_many_arguments)]
    async fn scan_consumer(
        &self,
        consumer: &consumer::Consumer<consumer::pull::Config>,
        matches: &(dyn Fn(&Event) -> bool + Sync),
        page: &mut ScanPage,
        last: u64,
        limit: usize,
        budget: usize,
        epoch: u64,
    ) -> Result<(), ReadError> {
        let err = |e: &dyn std::fmt::Display| ReadError::Unavailable(format!("nats: {e}"));
        let mut examined = 0;
        while page.through < last {
            let mut batch = consumer
                .fetch()
                .max_messages(READ_PAGE.min(budget - examined))
                .expires(self.opts.timeout)
                .messages()
                .await
                .map_err(|e| err(&e))?;
            let mut got = 0;
            while let Some(msg) = batch.next().await {
                let msg = msg.map_err(|e| err(&e))?;
                let seq = msg.info().map_err(|e| err(&e))?.stream_sequence;
                got += 1;
                if seq != page.through + 1 {
                    // Retention removed events while this scan was running.
                    return Err(ReadError::Expired {
                        oldest_kept: seq - 1,
                    });
                }
                examined += 1;
                page.through = seq;
                let ev = herald_store::event_codec::decode(seq, epoch, &msg.payload)
                    .map_err(ReadError::Unavailable)?;
                if matches(&ev) {
                    page.events.push(Arc::new(ev));
                }
                if page.events.len() >= limit || examined >= budget {
                    page.more = seq < last;
                    return Ok(());
                }
                if seq >= last {
                    return Ok(());
                }
            }
            if got == 0 {
                return Err(ReadError::Unavailable(
                    "nats: history read returned nothing".into(),
                ));
            }
        }
        Ok(())
    }

    async fn lookup_id(&self, id: String) -> Result<Option<u64>, ReadError> {
        let ids = self
            .js
            .get_stream(&self.ids)
            .await
            .map_err(|e| ReadError::Unavailable(format!("nats: {e}")))?;
        let subject = id_subject(&self.ids, self.progress.epoch(), &id);
        match ids.get_last_raw_message_by_subject(&subject).await {
            Ok(msg) => Ok(std::str::from_utf8(&msg.payload)
                .ok()
                .and_then(|s| s.parse().ok())),
            Err(e)
                if e.kind()
                    == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                Ok(None)
            }
            Err(e) => Err(ReadError::Unavailable(format!("nats: {e}"))),
        }
    }

    /// Stops the follower; later appends fail; sends what is buffered.
    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.stop.notify_one();
        // Bounded: while the server is out of reach a flush waits for the
        // reconnection, and shutting down must not wait for the broker.
        if tokio::time::timeout(self.opts.timeout, self.client.flush())
            .await
            .is_err()
        {
            tracing::warn!(
                "broker out of reach at shutdown: the client's buffered messages were not flushed"
            );
        }
    }

    fn health(&self) -> Result<(), String> {
        self.connected()
            .map_err(|e| format!("broker out of reach: {e}"))?;
        if self.link.stale.load(Ordering::Acquire) {
            return Err("broker out of reach: reconnected, checking the stream".into());
        }
        self.progress.health()
    }

    async fn catch_up_to(&self, seq: u64) -> u64 {
        let delivered = self.progress.delivered();
        if seq <= delivered {
            return delivered;
        }
        let epoch = self.progress.epoch();
        // Wait unless the stream says the position does not exist yet (when
        // it cannot be asked, waiting costs at most the timeout; a false
        // `unknown` would cost the client a reset).
        let may_exist = match self.stream().await {
            Ok(s) => s.cached_info().state.last_sequence >= seq,
            Err(_) => true,
        };
        if may_exist {
            self.progress
                .wait_delivered(epoch, seq, self.opts.timeout)
                .await;
        }
        self.progress.delivered()
    }
}

broker_log!(NatsLog);
