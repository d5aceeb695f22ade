//! Webhooks: Herald calls subscribers back (a WebSub hub, and a native JSON API).
//!
//! # Layout
//!
//! - `websub.rs`: `POST /websub`, the WebSub form front door: subscribe and
//!   unsubscribe (202 at once, then verification of intent in a task) and
//!   publish pings (`hub.mode=publish`: fetch the topic URL, publish what it
//!   answers with its content type).
//! - `api.rs`: `POST`, `GET`, `DELETE` on `/webhooks`, the native JSON API.
//! - `verify.rs`: the verification-of-intent `GET` with `hub.challenge`.
//! - `worker.rs`: one task per subscription delivering its events in order.
//! - `delivery.rs`: one delivery attempt (the POST, its headers and signature,
//!   and what the answer means).
//! - `guard.rs`: the outbound client and its SSRF guard (checked at connect).
//! - `signature.rs`: `X-Hub-Signature` HMACs; `record.rs`: the durable record.
//! - `cluster.rs`: in a cluster (the store is the broker's, shared), every
//!   node knows every subscription and one node at a time delivers each, by a
//!   lease kept in the record and written with compare-and-set.
//!
//! Data flow: a subscription is a durable [`Record`] in the
//! [`WebhookStore`] (the same redb file as the history) holding a cursor, the
//! last `seq` delivered. Its worker asks [`herald_core::Hub::subscribe`] for
//! the events after the cursor (history, then live: the same merge every
//! transport uses, so events are never copied per subscriber and a publish
//! wakes the worker through the fan-out), POSTs each one until a 2xx, and
//! then advances the cursor, stored in the background (coalesced writes, so
//! a fast receiver does not wait one fsync per event). Order per subscriber is
//! therefore kept, and a restart resumes from the stored cursor, losing
//! nothing (at-least-once: the last few events may be sent again).
//!
//! Failures: a failed attempt waits `min(max, base·2^(failures-1))` with
//! jitter before the next try (the wait is kept in the record, so it survives
//! a restart); a failing subscription takes its permits from a small separate
//! pool (`failing_concurrency`) instead of the healthy one (`concurrency`), so
//! dead receivers never hold back healthy ones; after `max_failures` attempts
//! in a row or `max_failing` of failing it is dropped (logged and counted).

mod api;
mod cluster;
mod delivery;
mod guard;
mod record;
mod signature;
mod verify;
mod websub;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_core::{Hub, RecordOp, WebhookStore};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use api::handle as handle_api;
pub use guard::{UrlError, check_url, forbidden};
pub use record::{Format, Lease, Origin, Record};
pub use signature::Algorithm;
pub use websub::handle as handle_websub;

/// Webhook settings (part of [`crate::ServerOptions`]). Every bound is here.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Allow callbacks and topic URLs on loopback, private, link-local or
    /// multicast addresses (off: refused, also at connect time).
    pub allow_private: bool,
    /// Lease granted when the subscriber asks for none.
    pub lease_default: Duration,
    /// Shortest lease granted (shorter requests are raised to it).
    pub lease_min: Duration,
    /// Longest lease granted (longer requests are lowered to it).
    pub lease_max: Duration,
    /// Time allowed for one whole outbound request (delivery, verification,
    /// topic fetch), connection included.
    pub timeout: Duration,
    /// Deliveries in flight at once to healthy subscribers.
    pub concurrency: usize,
    /// Deliveries in flight at once to failing subscribers (demoted).
    pub failing_concurrency: usize,
    /// Wait after the first failure; doubles with each failure in a row.
    pub backoff_base: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
    /// Failed attempts in a row after which a subscription is dropped (0: no bound).
    pub max_failures: u32,
    /// Time failing after which a subscription is dropped (zero: no bound).
    pub max_failing: Duration,
    /// HMAC hash of `X-Hub-Signature`.
    pub signature: Algorithm,
    /// Most webhook subscriptions at once.
    pub max_subscriptions: usize,
    /// The hub's public URL for `Link: <…>; rel="hub"` (`None`: built from
    /// the request's scheme and `Host`, plus `/websub`).
    pub hub_url: Option<String>,
    /// In a cluster: how long a node's claim on delivering a subscription
    /// lasts without renewal (renewed every third of it). When the node dies,
    /// another takes over within about this time.
    pub cluster_lease: Duration,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            allow_private: false,
            lease_default: Duration::from_secs(10 * 24 * 3600),
            lease_min: Duration::from_secs(60),
            lease_max: Duration::from_secs(30 * 24 * 3600),
            timeout: Duration::from_secs(10),
            concurrency: 64,
            failing_concurrency: 4,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(3600),
            max_failures: 50,
            max_failing: Duration::from_secs(3 * 24 * 3600),
            signature: Algorithm::Sha256,
            max_subscriptions: 10_000,
            hub_url: None,
            cluster_lease: Duration::from_secs(15),
        }
    }
}

/// Counters for `/metrics` (no label per topic or callback).
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Deliveries answered 2xx.
    pub delivered: AtomicU64,
    /// Delivery attempts that failed (they are retried).
    pub failed: AtomicU64,
    /// Subscriptions dropped after failing too long or too often.
    pub evicted: AtomicU64,
    /// Subscriptions removed because the callback answered 410.
    pub gone: AtomicU64,
    /// Subscriptions removed because their lease ended.
    pub expired: AtomicU64,
    /// Verifications of intent that failed.
    pub verification_failures: AtomicU64,
    /// Times retention removed events a subscription had not received.
    pub continuity_breaks: AtomicU64,
    /// Subscriptions holding an event not yet delivered (the queue depth).
    pub pending: AtomicI64,
}

/// One live subscription: its record and its worker's controls.
pub(crate) struct Entry {
    /// The record as it is now; every change goes through [`Webhooks::update`].
    record: Mutex<Record>,
    /// Serializes writes of this record, so they reach the store in order.
    io: tokio::sync::Mutex<()>,
    /// Set once removed: later writes must not bring it back.
    removed: AtomicBool,
    /// Stops the worker.
    stop: CancellationToken,
    /// Set when the record changed and the change is not stored yet.
    dirty: AtomicBool,
    /// Set while a background write of this record runs ([`Webhooks::update_soon`]).
    flushing: AtomicBool,
    /// In a cluster: the record's revision as this node last read or wrote it.
    rev: AtomicU64,
    /// In a cluster: whether this node holds the delivery lease.
    holding: AtomicBool,
    /// In a cluster: until when the lease is known held (the last stored renewal).
    held_until_ms: AtomicU64,
    /// In a cluster: wakes the lease keeper when a write found the lease lost.
    lost: tokio::sync::Notify,
}

impl Entry {
    /// A copy of the record.
    pub(crate) fn snapshot(&self) -> Record {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// `url` with every `%XX` that encodes an unreserved character (RFC 3986:
/// letters, digits, `-`, `.`, `_`, `~`) decoded, for comparisons only.
pub(crate) fn same_url(url: &str) -> std::borrow::Cow<'_, str> {
    if !url.contains('%') {
        return std::borrow::Cow::Borrowed(url);
    }
    let b = url.as_bytes();
    let mut out = String::with_capacity(url.len());
    let mut i = 0;
    while i < b.len() {
        let decoded = (b[i] == b'%')
            .then(|| url.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .filter(|c| c.is_ascii_alphanumeric() || b"-._~".contains(c));
        match decoded {
            Some(c) => {
                out.push(c as char);
                i += 3;
            }
            None => {
                let ch = url[i..].chars().next().unwrap_or_default();
                out.push(ch);
                i += ch.len_utf8().max(1);
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Who owns a new subscription and which private events it may receive
/// (the same rule as a stream opened with that access).
pub(crate) fn owner_and_grants(
    access: &crate::auth::Access,
) -> (Option<String>, Option<herald_auth::Grants>) {
    use crate::auth::Access;
    match access {
        Access::Everything => (None, None),
        Access::Anonymous | Access::Mercure(..) => (None, Some(herald_auth::Grants::none())),
        // A token without `sub` owns as "": such tokens share what they create.
        Access::Token(claims, _) => (
            Some(claims.subject.clone().unwrap_or_default()),
            Some(claims.grants.clone()),
        ),
    }
}

/// Why a subscription was removed (logged and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    /// The subscriber unsubscribed (WebSub) or deleted it (API).
    Unsubscribed,
    /// The callback answered 410 Gone.
    Gone,
    /// The lease ended.
    Expired,
    /// Too many failures, or failing for too long.
    Evicted,
}

/// The webhook subsystem: subscriptions, their workers, the outbound client.
pub struct Webhooks {
    /// Settings.
    pub(crate) opts: WebhookOptions,
    /// Where records are kept.
    store: Arc<dyn WebhookStore>,
    /// The hub events come from (and publish pings go to).
    pub(crate) hub: Hub,
    /// The guarded outbound client (`None` if it could not be built: every
    /// outbound request then fails, and says why).
    client: Option<reqwest::Client>,
    /// Live subscriptions by id.
    entries: Mutex<HashMap<u64, Arc<Entry>>>,
    /// Permits for deliveries to healthy subscribers.
    pub(crate) healthy: Arc<Semaphore>,
    /// Permits for deliveries to failing subscribers.
    pub(crate) failing: Arc<Semaphore>,
    /// Permits for verifications in progress (more are refused with 503).
    pub(crate) verifications: Arc<Semaphore>,
    /// Counters.
    pub stats: WebhookStats,
    /// Fires at shutdown.
    pub(crate) shutdown: CancellationToken,
    /// Workers and verifications, so shutdown waits for them.
    pub(crate) tracker: TaskTracker,
    /// Serializes WebSub activations, so two verifications of one (topic,
    /// callback) pair cannot both create it.
    pub(crate) activation: tokio::sync::Mutex<()>,
    /// In a cluster (the store is shared): this node's lease holder number.
    node: Option<u64>,
}

impl Webhooks {
    /// The subsystem; nothing runs until [`Webhooks::start`].
    pub fn new(
        opts: WebhookOptions,
        store: Arc<dyn WebhookStore>,
        hub: Hub,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Arc<Webhooks> {
        // Fails only if the TLS backend cannot load; an unguarded fallback
        // would be unsafe, so requests then fail instead.
        let client = guard::client(opts.allow_private, opts.timeout)
            .inspect_err(|e| tracing::error!(error = %e, "cannot build the webhook HTTP client; webhook requests will fail"))
            .ok();
        Arc::new(Webhooks {
            healthy: Arc::new(Semaphore::new(opts.concurrency.max(1))),
            failing: Arc::new(Semaphore::new(opts.failing_concurrency.max(1))),
            verifications: Arc::new(Semaphore::new(opts.concurrency.max(1))),
            opts,
            store: store.clone(),
            hub,
            client,
            entries: Mutex::new(HashMap::new()),
            stats: WebhookStats::default(),
            shutdown,
            tracker,
            activation: tokio::sync::Mutex::new(()),
            node: store.shared().then(|| rand::random::<u64>() | 1),
        })
    }

    /// Loads the stored subscriptions and starts their workers.
    pub async fn start(self: &Arc<Self>) {
        let records = match self.store.load().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot load webhook subscriptions; none will be delivered until restart");
                return;
            }
        };
        let count = records.len();
        for (id, bytes) in records {
            match Record::decode(&bytes) {
                Ok(rec) => self.spawn(rec),
                Err(e) => {
                    tracing::error!(id = format!("{id:016x}"), error = %e, "unreadable webhook subscription record skipped")
                }
            }
        }
        if count > 0 {
            tracing::info!(subscriptions = count, "webhook subscriptions resumed");
        }
        if self.node.is_some() {
            self.tracker.spawn(cluster::sync_loop(self.clone()));
        }
    }

    /// The outbound client.
    pub(crate) fn client(&self) -> Result<&reqwest::Client, String> {
        self.client.as_ref().ok_or_else(|| {
            "the webhook HTTP client could not be built (see the start-up log)".into()
        })
    }

    /// Subscriptions now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The WebSub subscription of (topic, callback), if any. URLs are
    /// compared with percent-escapes of unreserved characters decoded
    /// (`%7E` and `~` are the same URL).
    pub(crate) fn find_websub(&self, topic: &str, callback: &str) -> Option<Arc<Entry>> {
        let (topic, callback) = (same_url(topic), same_url(callback));
        self.lock()
            .values()
            .find(|e| {
                let r = e.record.lock().unwrap_or_else(|e| e.into_inner());
                r.origin == Origin::WebSub
                    && same_url(&r.callback) == callback
                    && same_url(&r.topics[0]) == topic
            })
            .cloned()
    }

    /// The subscription with this id.
    pub(crate) fn get(&self, id: u64) -> Option<Arc<Entry>> {
        self.lock().get(&id).cloned()
    }

    /// Every subscription's record.
    pub(crate) fn all(&self) -> Vec<Record> {
        let mut v: Vec<Record> = self.lock().values().map(|e| e.snapshot()).collect();
        v.sort_by_key(|r| r.created_ms);
        v
    }

    /// A fresh id not in use.
    pub(crate) fn new_id(&self) -> u64 {
        let map = self.lock();
        loop {
            let id = rand::random::<u64>();
            if id != 0 && !map.contains_key(&id) {
                return id;
            }
        }
    }

    /// Stores `rec` durably, then starts its worker. Fails when the store
    /// cannot write or the subscription limit is reached.
    pub(crate) async fn create(self: &Arc<Self>, rec: Record) -> Result<(), String> {
        if self.len() >= self.opts.max_subscriptions {
            return Err(format!(
                "this hub holds its maximum of {} webhook subscriptions",
                self.opts.max_subscriptions
            ));
        }
        self.store
            .apply(vec![RecordOp::Put(rec.id, rec.encode())])
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(id = rec.public_id(), origin = ?rec.origin, callback = %guard::for_log(&rec.callback), "webhook subscription created");
        self.spawn(rec);
        Ok(())
    }

    fn spawn(self: &Arc<Self>, rec: Record) {
        let entry = Arc::new(Entry {
            record: Mutex::new(rec.clone()),
            io: tokio::sync::Mutex::new(()),
            removed: AtomicBool::new(false),
            stop: CancellationToken::new(),
            dirty: AtomicBool::new(false),
            flushing: AtomicBool::new(false),
            rev: AtomicU64::new(0),
            holding: AtomicBool::new(false),
            held_until_ms: AtomicU64::new(0),
            lost: tokio::sync::Notify::new(),
        });
        {
            let mut map = self.lock();
            // In a cluster a sync may have started it already: one worker per
            // subscription per node.
            if map.contains_key(&rec.id) {
                return;
            }
            map.insert(rec.id, entry.clone());
        }
        self.tracker.spawn(worker::run(self.clone(), entry));
    }

    /// Changes the record with `f` and stores it; writes of one record reach
    /// the store in the order they were made. Returns the new record.
    pub(crate) async fn update(
        &self,
        entry: &Entry,
        f: impl FnOnce(&mut Record),
    ) -> Result<Record, String> {
        let _order = entry.io.lock().await;
        let rec = {
            let mut r = entry.record.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut r);
            r.clone()
        };
        if entry.removed.load(Ordering::Acquire) {
            return Ok(rec);
        }
        if let Some(node) = self.node {
            // The delivery state: written only by the lease holder.
            return cluster::write(self, entry, node, cluster::Claim::Keep).await;
        }
        self.store
            .apply(vec![RecordOp::Put(rec.id, rec.encode())])
            .await
            .map_err(|e| e.to_string())?;
        Ok(rec)
    }

    /// Changes the subscription's terms (callback details, WebSub lease) with
    /// `f` and stores them. Unlike [`Webhooks::update`], in a cluster any node
    /// may do it: the terms are written over the stored delivery state.
    pub(crate) async fn update_terms(
        &self,
        entry: &Entry,
        f: impl FnOnce(&mut Record),
    ) -> Result<Record, String> {
        if self.node.is_none() {
            return self.update(entry, f).await;
        }
        let _order = entry.io.lock().await;
        f(&mut entry.record.lock().unwrap_or_else(|e| e.into_inner()));
        cluster::write_terms(self, entry).await
    }

    /// In a cluster, learns the subscriptions other nodes created or removed
    /// (also done every half `cluster_lease`); nothing on a single node.
    pub(crate) async fn refresh(self: &Arc<Self>) {
        if self.node.is_some()
            && let Err(e) = cluster::sync(self).await
        {
            tracing::debug!(error = %e, "cannot list the shared webhook subscriptions");
        }
    }

    /// Changes the record with `f` now and stores it in the background: at
    /// most one write per record runs, and it always stores the newest state,
    /// so a run of changes (a cursor advancing delivery after delivery) costs
    /// one write per commit, not one wait per change.
    pub(crate) fn update_soon(self: &Arc<Self>, entry: &Arc<Entry>, f: impl FnOnce(&mut Record)) {
        f(&mut entry.record.lock().unwrap_or_else(|e| e.into_inner()));
        entry.dirty.store(true, Ordering::Release);
        if entry.flushing.swap(true, Ordering::AcqRel) {
            return; // the running write picks the change up
        }
        let (w, entry) = (self.clone(), entry.clone());
        self.tracker.spawn(async move {
            loop {
                entry.dirty.store(false, Ordering::Release);
                if let Err(e) = w.update(&entry, |_| {}).await {
                    tracing::error!(error = %e, "cannot store a webhook subscription; a restart may deliver events again");
                }
                entry.flushing.store(false, Ordering::Release);
                // A change made after `dirty` was cleared needs another write,
                // unless a new writer already took over.
                if !entry.dirty.load(Ordering::Acquire)
                    || entry.flushing.swap(true, Ordering::AcqRel)
                {
                    return;
                }
            }
        });
    }

    /// Removes a subscription (its worker stops), logs and counts why.
    pub(crate) async fn remove(&self, entry: &Entry, why: Removal) {
        let _order = entry.io.lock().await;
        if entry.removed.swap(true, Ordering::AcqRel) {
            return;
        }
        let rec = entry.snapshot();
        let id = rec.public_id();
        // Counted before it leaves the list, so whoever sees it gone sees why.
        match why {
            Removal::Unsubscribed => {
                tracing::info!(id, callback = %guard::for_log(&rec.callback), "webhook subscription removed")
            }
            Removal::Gone => {
                self.stats.gone.fetch_add(1, Ordering::Relaxed);
                tracing::info!(id, callback = %guard::for_log(&rec.callback), "webhook callback answered 410 Gone: subscription removed")
            }
            Removal::Expired => {
                self.stats.expired.fetch_add(1, Ordering::Relaxed);
                tracing::info!(id, callback = %guard::for_log(&rec.callback), "webhook lease ended: subscription removed")
            }
            Removal::Evicted => {
                self.stats.evicted.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(id, callback = %guard::for_log(&rec.callback), failures = rec.failures, failing_since_ms = rec.failing_since_ms, "webhook subscription dropped: its deliveries kept failing")
            }
        }
        self.lock().remove(&rec.id);
        if let Err(e) = self.store.apply(vec![RecordOp::Delete(rec.id)]).await {
            tracing::error!(id, error = %e, "cannot delete the webhook subscription record; it comes back at restart");
        }
        // Last: the worker may be the caller, and stopping it ends this call.
        entry.stop.cancel();
    }

    /// The hub URL a subscriber used: the configured one, else the request's
    /// scheme and host plus `/websub`.
    pub(crate) fn hub_url(
        &self,
        headers: &hyper::HeaderMap,
        uri: &hyper::Uri,
        tls: bool,
    ) -> String {
        if let Some(u) = &self.opts.hub_url {
            return u.clone();
        }
        let host = headers
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()))
            .unwrap_or("localhost");
        let scheme = if tls { "https" } else { "http" };
        format!("{scheme}://{host}/websub")
    }

    /// The lease for a requested number of seconds, clamped to the bounds.
    pub(crate) fn lease(&self, requested: Option<u64>) -> Duration {
        let o = &self.opts;
        requested
            .map(Duration::from_secs)
            .unwrap_or(o.lease_default)
            .clamp(o.lease_min, o.lease_max.max(o.lease_min))
    }
}

#[cfg(test)]
mod tests {
    use super::same_url;

    #[test]
    fn urls_compare_with_unreserved_escapes_decoded() {
        assert_eq!(same_url("https://a/%7Euser/%41b"), "https://a/~user/Ab");
        assert_eq!(same_url("https://a/x%2Fy%20z"), "https://a/x%2Fy%20z");
        assert_eq!(same_url("https://a/%zz%4"), "https://a/%zz%4");
        assert_eq!(same_url("https://ä/%2d%C3"), "https://ä/-%C3");
        assert_eq!(same_url("plain"), "plain");
    }
}
