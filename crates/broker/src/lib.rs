//! Herald's cluster logs: [`herald_core::Log`] over a broker that several hub
//! nodes share, so a publish on any node reaches subscribers on every node and
//! a resume position is valid on every node.
//!
//! # Layout
//!
//! - [`open`]: picks the log from the broker URL (`redis://…` or `nats://…`).
//! - `progress.rs`: what a node's follower did (epoch, highest `seq` handed to
//!   the fan-out, broker reachable or not), shared with the log handle; the
//!   reconnection back-off.
//! - `redis_log.rs` (feature `redis`): the ordered log is one Redis stream whose
//!   entry ids are `0-{seq}`; `redis_log/scripts.rs` holds the Lua scripts that
//!   make an append (seq counter, duplicate-id check, XADD, retention) and a
//!   history read atomic; `redis_log/follow.rs` is the follower task
//!   (`XREAD BLOCK`); `redis_log/reply.rs` parses stream entries.
//! - `nats_log.rs` (feature `nats`): one JetStream stream, one subject per
//!   topic, the stream sequence as `seq`; `nats_log/follow.rs` is the follower
//!   (an ordered pull consumer).
//! - Webhook subscription records ([`open_webhook_store`]): `redis_log/records.rs`
//!   (two hashes, Lua compare-and-set) and `nats_log/records.rs` (a key-value
//!   bucket, revision compare-and-set) implement `herald_core::WebhookStore`
//!   with revisions, so the server can keep one delivering node per
//!   subscription by a lease written in the record.
//! - `broker_log!` (here): the one `Log` impl both logs share, over their
//!   `inner` handles' methods.
//!
//! Data flow on every node: `Hub::publish` → `Log::append` → broker (atomic
//! append, acknowledged) → the node's follower receives every entry in stream
//! order, its own included → `Fanout::deliver` → `append` returns once the
//! follower delivered its events, so `last_seq` covers them as with the
//! embedded log. History reads go to the broker directly.
//!
//! # Invariants the subscription merge relies on (see `herald_core::subscription`)
//!
//! 1. `Fanout::deliver` is called by one task, in `seq` order, with no gap:
//!    an entry the follower could not see (trimmed before it read it) ends
//!    every local subscription instead (they resume from the broker's history
//!    and are told if it expired).
//! 2. `last_seq` is the follower's delivered mark: every event at or below it
//!    has reached the rings, so a subscriber that registers its cursors and
//!    then reads `last_seq` misses nothing above it.
//! 3. `read` may return events above `last_seq` (committed by another node, not
//!    yet delivered here); the ring brings them again and the merge drops them
//!    by `seq`.
//! 4. A position above `last_seq` is not unknown: `catch_up_to` waits for the
//!    follower (bounded) when the broker has it.
//! 5. When the stream is lost (broker restarted empty, a key deleted) the epoch
//!    changes and local subscriptions end: clients resume with a position of
//!    the old epoch and are told "reset", never given a partial replay.

#![warn(missing_docs)]

/// The [`Log`] impl both broker logs share: each has an `inner` with the
/// same methods (`append`, `scan_with`, `lookup_id`, `catch_up_to`, `close`,
/// `health`) and fields (`progress`, `events`, `commits`).
macro_rules! broker_log {
    ($log:ty) => {
        impl herald_core::Log for $log {
            fn epoch(&self) -> u64 {
                self.inner.progress.epoch()
            }

            fn last_seq(&self) -> u64 {
                self.inner.progress.delivered()
            }

            fn append(
                &self,
                batch: Vec<herald_core::Draft>,
                now_ms: u64,
            ) -> herald_core::BoxFuture<
                '_,
                Result<Vec<std::sync::Arc<herald_core::Event>>, herald_core::AppendError>,
            > {
                Box::pin(self.inner.append(batch, now_ms))
            }

            fn read(
                &self,
                topics: Vec<herald_core::Topic>,
                after: u64,
                limit: usize,
            ) -> herald_core::BoxFuture<
                '_,
                Result<Vec<std::sync::Arc<herald_core::Event>>, herald_core::ReadError>,
            > {
                Box::pin(async move {
                    let on_topics =
                        |ev: &herald_core::Event| ev.topics.iter().any(|t| topics.contains(t));
                    let page = self
                        .inner
                        .scan_with(&on_topics, after, limit, usize::MAX)
                        .await?;
                    Ok(page.events)
                })
            }

            fn scan(
                &self,
                selector: herald_core::Selector,
                after: u64,
                limit: usize,
            ) -> herald_core::BoxFuture<'_, Result<herald_core::ScanPage, herald_core::ReadError>>
            {
                Box::pin(async move {
                    let matching = |ev: &herald_core::Event| selector.matches(ev.topics.iter());
                    self.inner
                        .scan_with(&matching, after, limit, herald_core::SCAN_BUDGET)
                        .await
                })
            }

            fn lookup_id(
                &self,
                id: String,
            ) -> herald_core::BoxFuture<'_, Result<Option<u64>, herald_core::ReadError>> {
                Box::pin(self.inner.lookup_id(id))
            }

            fn close(&self) -> herald_core::BoxFuture<'_, ()> {
                Box::pin(self.inner.close())
            }

            fn stats(&self) -> herald_core::LogStats {
                use std::sync::atomic::Ordering::Relaxed;
                herald_core::LogStats {
                    events: self.inner.events.load(Relaxed),
                    bytes: 0,
                    topics: 0,
                    commits: self.inner.commits.load(Relaxed),
                }
            }

            fn catch_up_to(&self, seq: u64) -> herald_core::BoxFuture<'_, u64> {
                Box::pin(self.inner.catch_up_to(seq))
            }

            fn health(&self) -> Result<(), String> {
                self.inner.health()
            }
        }
    };
}

#[cfg(feature = "nats")]
mod nats_log;
mod progress;
#[cfg(feature = "redis")]
mod redis_log;

use std::sync::Arc;
use std::time::Duration;

use herald_core::{AppendError, Draft, Event, EventId, Fanout, Log, Position};

#[cfg(feature = "nats")]
pub use nats_log::{NatsLog, NatsRecords};
#[cfg(feature = "redis")]
pub use redis_log::{RedisLog, RedisRecords};

/// How a node uses the broker.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// `redis://HOST:PORT[/DB]` or `nats://HOST:PORT`.
    pub url: String,
    /// Name of the shared log: the Redis key prefix (`{name}:log`, …) or the
    /// JetStream stream name. Nodes that share it form one cluster.
    pub stream: String,
    /// Most events the stream keeps (0 = no count bound).
    pub max_events: u64,
    /// Oldest event kept (`None` = no age bound).
    pub max_age: Option<Duration>,
    /// Longest one broker operation may take before it fails (a publish then
    /// answers 503).
    pub timeout: Duration,
    /// First delay before reconnecting to a broker that went away.
    pub reconnect_min: Duration,
    /// Longest delay between reconnection attempts.
    pub reconnect_max: Duration,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            url: String::new(),
            stream: "herald".into(),
            max_events: 1_000_000,
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        }
    }
}

/// Why a broker log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The URL names no supported broker, or a broker this build leaves out.
    #[error(
        "broker {0:?}: use redis://HOST:PORT or nats://HOST:PORT (this build supports: {supported})",
        supported = SUPPORTED
    )]
    Scheme(String),
    /// The stream name cannot be used as a key prefix / stream name.
    #[error("broker stream name {0:?}: use 1 to 64 characters among letters, digits, '-' and '_'")]
    StreamName(String),
    /// The broker did not answer, or refused the set-up.
    #[error("broker {url}: {detail}")]
    Unreachable {
        /// The broker URL, credentials hidden.
        url: String,
        /// What went wrong.
        detail: String,
    },
}

const SUPPORTED: &str = if cfg!(all(feature = "redis", feature = "nats")) {
    "redis, nats"
} else if cfg!(feature = "redis") {
    "redis"
} else if cfg!(feature = "nats") {
    "nats"
} else {
    "none"
};

/// Opens the log `options.url` names; its follower hands every event of the
/// stream to `fanout`. Fails when the broker does not answer within
/// `options.timeout` (a node does not start without its log).
pub async fn open(
    options: BrokerOptions,
    fanout: Arc<Fanout>,
) -> Result<Arc<dyn Log>, BrokerError> {
    if options.stream.is_empty()
        || options.stream.len() > 64
        || !options
            .stream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(BrokerError::StreamName(options.stream));
    }
    let scheme = options.url.split_once("://").map(|(s, _)| s);
    match scheme {
        #[cfg(feature = "redis")]
        Some("redis") => Ok(RedisLog::open(options, fanout).await?),
        #[cfg(feature = "nats")]
        Some("nats") => Ok(NatsLog::open(options, fanout).await?),
        _ => {
            let _ = fanout;
            Err(BrokerError::Scheme(redacted(&options.url)))
        }
    }
}

/// Opens the webhook subscription records kept beside the log `options.url`
/// names (Redis hashes, or a JetStream key-value bucket), shared by every node.
pub async fn open_webhook_store(
    options: &BrokerOptions,
) -> Result<Arc<dyn herald_core::WebhookStore>, BrokerError> {
    let scheme = options.url.split_once("://").map(|(s, _)| s);
    match scheme {
        #[cfg(feature = "redis")]
        Some("redis") => Ok(Arc::new(RedisRecords::open(options).await?)),
        #[cfg(feature = "nats")]
        Some("nats") => Ok(Arc::new(NatsRecords::open(options).await?)),
        _ => Err(BrokerError::Scheme(redacted(&options.url))),
    }
}

/// The error for a broker that cannot be reached, from what went wrong.
pub(crate) fn unreachable_error(opts: &BrokerOptions) -> impl Fn(String) -> BrokerError + use<> {
    let url = redacted(&opts.url);
    move |detail| BrokerError::Unreachable {
        url: url.clone(),
        detail,
    }
}

/// `url` with any credentials replaced by `***`, for logs and error messages.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// The committed form of `ev` (built with `seq` 0) at `seq`.
pub(crate) fn with_seq(ev: Event, seq: u64, epoch: u64) -> Event {
    let id = match ev.id {
        EventId::Hub(_) => EventId::Hub(Position { epoch, seq }),
        publisher => publisher,
    };
    Event::new(
        seq, id, ev.topics, ev.kind, ev.data, ev.retry, ev.private, ev.time_ms,
    )
}

/// Refuses a batch that names one publisher id twice.
pub(crate) fn duplicate_in_batch(batch: &[Draft]) -> Result<(), AppendError> {
    let mut seen: Vec<&str> = Vec::new();
    for id in batch.iter().filter_map(|d| d.id.as_deref()) {
        if seen.contains(&id) {
            return Err(AppendError::DuplicateId(id.to_string()));
        }
        seen.push(id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn credentials_never_reach_logs() {
        assert_eq!(redacted("redis://:pw@h:6379/0"), "redis://***@h:6379/0");
        assert_eq!(redacted("nats://u:p@h:4222"), "nats://***@h:4222");
        assert_eq!(redacted("redis://h:6379"), "redis://h:6379");
        assert_eq!(redacted("redis://h:6379/a@b"), "redis://h:6379/a@b");
    }
}
