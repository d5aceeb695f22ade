//! Webhooks in a cluster: every node knows every subscription (the records
//! live in the broker, a shared [`herald_core::WebhookStore`]), and each
//! subscription is delivered by one node at a time.
//!
//! - **Lease.** The record carries a [`Lease`] (holder node, `until_ms`). A
//!   node's worker takes it when it is free or expired, with a compare-and-set
//!   on the record's revision ([`herald_core::WebhookStore::put_if`]); the holder renews it
//!   every third of `cluster_lease`, and releases it at shutdown. Only the
//!   holder runs the delivery loop.
//! - **Fenced writes.** The delivery state (cursor, failures, retry time) is
//!   written only by the holder, in the same compare-and-set as the lease: a
//!   node that lost the lease cannot move the cursor, because its write finds
//!   another revision, reads the record and sees another holder. It then stops
//!   delivering at once, and stops anyway before its last stored renewal ends,
//!   even if the broker cannot be reached to tell it.
//! - **Terms** (callback, topics, secret, lease of a WebSub subscription)
//!   change on any node ([`Webhooks::update_terms`]): written over the stored
//!   delivery state, so they never move a cursor; the holder picks them up at
//!   its next write.
//! - **Discovery.** Every node lists the records every half lease (and before
//!   answering the `/webhooks` API): new ones get a worker that waits for the
//!   lease, removed ones stop.
//!
//! So while the holder lives, each event is POSTed by one node; when it dies,
//! another node takes over within `cluster_lease` and continues from the
//! stored cursor (at least once: events delivered after the last stored
//! cursor are sent again; receivers drop them by `Herald-Event-Id`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Entry, Lease, Record, Webhooks};
use crate::now_ms;

/// What a holder's write does with its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Claim {
    /// Renew it (every holder write also renews).
    Keep,
    /// Give it up (shutdown): another node may take it at once.
    Release,
}

/// Attempts of one write against concurrent changes before giving up.
const WRITE_ATTEMPTS: usize = 8;

/// Copies the subscription's terms (everything but the delivery state and
/// the lease) from `from`.
fn take_terms(into: &mut Record, from: &Record) {
    into.origin = from.origin;
    into.topics = from.topics.clone();
    into.callback = from.callback.clone();
    into.secret = from.secret.clone();
    into.hub_url = from.hub_url.clone();
    into.format = from.format;
    into.grants = from.grants.clone();
    into.owner = from.owner.clone();
    into.expires_ms = from.expires_ms;
    into.created_ms = from.created_ms;
}

fn decode(bytes: &[u8]) -> Result<Record, String> {
    Record::decode(bytes).map_err(|e| format!("unreadable webhook record: {e}"))
}

fn lock(entry: &Entry) -> std::sync::MutexGuard<'_, Record> {
    entry.record.lock().unwrap_or_else(|e| e.into_inner())
}

/// The subscription was removed on another node: stop it here.
fn gone(w: &Webhooks, entry: &Entry) {
    if entry.removed.swap(true, Ordering::AcqRel) {
        return;
    }
    entry.holding.store(false, Ordering::Release);
    let id = lock(entry).id;
    w.lock().remove(&id);
    tracing::debug!(
        id = format!("{id:016x}"),
        "webhook subscription removed on another node"
    );
    entry.stop.cancel();
}

/// Marks the lease lost and wakes the keeper.
fn lost(entry: &Entry) {
    entry.holding.store(false, Ordering::Release);
    entry.lost.notify_one();
}

/// Reads the stored record; `None` when it was removed (and stops it here).
async fn read(w: &Webhooks, entry: &Entry) -> Result<Option<(u64, Record)>, String> {
    let id = lock(entry).id;
    match w.store.get(id).await.map_err(|e| e.to_string())? {
        None => {
            gone(w, entry);
            Ok(None)
        }
        Some((rev, bytes)) => Ok(Some((rev, decode(&bytes)?))),
    }
}

/// A holder's write of the delivery state (and its lease), fenced by the
/// record's revision. The caller holds `entry.io`.
pub(super) async fn write(
    w: &Webhooks,
    entry: &Entry,
    node: u64,
    claim: Claim,
) -> Result<Record, String> {
    let ttl = w.opts.cluster_lease.as_millis() as u64;
    for _ in 0..WRITE_ATTEMPTS {
        if !entry.holding.load(Ordering::Acquire) {
            return Err("this node no longer holds the delivery lease".into());
        }
        let until_ms = now_ms() + ttl;
        let new = {
            let mut r = lock(entry);
            r.lease = match claim {
                Claim::Keep => Some(Lease {
                    holder: node,
                    until_ms,
                }),
                Claim::Release => None,
            };
            r.clone()
        };
        let rev = entry.rev.load(Ordering::Acquire);
        let written = w
            .store
            .put_if(new.id, rev, new.encode())
            .await
            .map_err(|e| e.to_string())?;
        if let Some(rev) = written {
            entry.rev.store(rev, Ordering::Release);
            match claim {
                Claim::Keep => entry.held_until_ms.store(until_ms, Ordering::Release),
                Claim::Release => entry.holding.store(false, Ordering::Release),
            }
            return Ok(new);
        }
        // Changed since: new terms from another node, or another holder.
        let Some((rev, stored)) = read(w, entry).await? else {
            return Err("the subscription was removed".into());
        };
        entry.rev.store(rev, Ordering::Release);
        let ours = stored
            .lease
            .is_some_and(|l| l.holder == node && l.until_ms > now_ms());
        if !ours {
            lost(entry);
            return Err("another node took the delivery lease".into());
        }
        take_terms(&mut lock(entry), &stored);
    }
    Err("the record kept changing; will retry".into())
}

/// A change of the subscription's terms from any node: applied over the
/// stored record (its delivery state and lease untouched). The caller holds
/// `entry.io` and already applied the change to the local record.
pub(super) async fn write_terms(w: &Webhooks, entry: &Entry) -> Result<Record, String> {
    if entry.holding.load(Ordering::Acquire) {
        let node = w.node.unwrap_or_default();
        return write(w, entry, node, Claim::Keep).await;
    }
    let local = entry.snapshot();
    for _ in 0..WRITE_ATTEMPTS {
        let Some((rev, mut stored)) = read(w, entry).await? else {
            return Err("the subscription was removed".into());
        };
        take_terms(&mut stored, &local);
        let written = w
            .store
            .put_if(stored.id, rev, stored.encode())
            .await
            .map_err(|e| e.to_string())?;
        if let Some(rev) = written {
            entry.rev.store(rev, Ordering::Release);
            *lock(entry) = stored.clone();
            return Ok(stored);
        }
    }
    Err("the record kept changing; try again".into())
}

/// Waits until this node holds the lease of `entry`: `true` then, with the
/// stored record (and its cursor) loaded; `false` when it was removed.
/// Cancel-safe.
pub(super) async fn acquire(w: &Webhooks, entry: &Entry, node: u64) -> bool {
    let ttl = w.opts.cluster_lease;
    loop {
        if entry.removed.load(Ordering::Acquire) {
            return false;
        }
        match try_acquire(w, entry, node).await {
            Ok(true) => return true,
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "cannot claim a webhook subscription yet"),
        }
        if entry.removed.load(Ordering::Acquire) {
            return false;
        }
        // A quarter of the lease, with jitter so nodes do not ask in step.
        let wait = (ttl / 4).mul_f64(0.75 + rand::random::<f64>() / 2.0);
        tokio::time::sleep(wait.max(Duration::from_millis(20))).await;
    }
}

async fn try_acquire(w: &Webhooks, entry: &Entry, node: u64) -> Result<bool, String> {
    let _order = entry.io.lock().await;
    let Some((rev, stored)) = read(w, entry).await? else {
        return Ok(false);
    };
    let now = now_ms();
    let free = stored
        .lease
        .is_none_or(|l| l.holder == node || l.until_ms <= now);
    if !free {
        *lock(entry) = stored;
        entry.rev.store(rev, Ordering::Release);
        return Ok(false);
    }
    let until_ms = now + w.opts.cluster_lease.as_millis() as u64;
    let mut claimed = stored;
    claimed.lease = Some(Lease {
        holder: node,
        until_ms,
    });
    let written = w
        .store
        .put_if(claimed.id, rev, claimed.encode())
        .await
        .map_err(|e| e.to_string())?;
    let Some(rev) = written else {
        return Ok(false);
    };
    *lock(entry) = claimed;
    entry.rev.store(rev, Ordering::Release);
    entry.held_until_ms.store(until_ms, Ordering::Release);
    entry.holding.store(true, Ordering::Release);
    Ok(true)
}

/// Renews the lease every third of it; returns when it is lost, or when it
/// could not be renewed and is about to end (so a holder cut off from the
/// broker stops delivering before another node may start). Cancel-safe.
pub(super) async fn keep(w: &Webhooks, entry: &Entry) {
    let every = w.opts.cluster_lease / 3;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = entry.lost.notified() => return,
        }
        if !entry.holding.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = w.update(entry, |_| {}).await {
            if entry.removed.load(Ordering::Acquire) {
                return;
            }
            let until = entry.held_until_ms.load(Ordering::Acquire);
            let margin = every.as_millis() as u64;
            if !entry.holding.load(Ordering::Acquire) || now_ms() + margin >= until {
                tracing::warn!(error = %e, "webhook delivery lease not renewed; this node stops delivering it");
                entry.holding.store(false, Ordering::Release);
                return;
            }
        }
    }
}

/// Gives the lease up (shutdown), so another node continues at once.
pub(super) async fn release(w: &Webhooks, entry: &Entry, node: u64) {
    let _order = entry.io.lock().await;
    if entry.holding.load(Ordering::Acquire)
        && let Err(e) = write(w, entry, node, Claim::Release).await
    {
        tracing::debug!(error = %e, "webhook delivery lease not released; it ends by itself");
    }
}

/// Lists the stored records: starts a worker for each one this node does not
/// know, stops the ones removed elsewhere, and refreshes the records of those
/// it does not deliver.
pub(super) async fn sync(w: &Arc<Webhooks>) -> Result<(), String> {
    let stored = w.store.load().await.map_err(|e| e.to_string())?;
    let mut seen = std::collections::HashSet::with_capacity(stored.len());
    for (id, bytes) in stored {
        seen.insert(id);
        let rec = match decode(&bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(id = format!("{id:016x}"), error = %e, "skipped");
                continue;
            }
        };
        match w.get(id) {
            None => w.spawn(rec),
            Some(entry) if !entry.holding.load(Ordering::Acquire) => {
                if let Ok(_order) = entry.io.try_lock() {
                    *lock(&entry) = rec;
                }
            }
            Some(_) => {}
        }
    }
    let missing: Vec<Arc<Entry>> = w
        .lock()
        .iter()
        .filter(|(id, _)| !seen.contains(id))
        .map(|(_, e)| e.clone())
        .collect();
    for entry in missing {
        // Created here after the listing? Asked again before stopping it.
        read(w, &entry).await?;
    }
    Ok(())
}

/// Runs [`sync`] every half lease until shutdown.
pub(super) async fn sync_loop(w: Arc<Webhooks>) {
    let every = (w.opts.cluster_lease / 2).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = w.shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = sync(&w).await {
            tracing::debug!(error = %e, "cannot list the shared webhook subscriptions yet");
        }
    }
}
