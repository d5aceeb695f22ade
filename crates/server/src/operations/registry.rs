//! The connection registry: every open stream and session, by id, for the
//! admin API (list, disconnect), presence, and the connection lifecycle log
//! (one info line at open, one at close).
//!
//! Streams hold an [`OpenStream`] (an `Arc<Shared>` and the id: 16 bytes, the
//! same as the counter guard it replaces), so the lean path's task does not
//! grow. What an operator wants to know about a connection lives here, in
//! one map entry, not in the task. Disconnecting does not need a waker per
//! stream either: the id goes into a small "kicked" set and the shared
//! heartbeat clock ticks once out of turn; every stream checks the set on a
//! tick only while it is non-empty.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use herald_auth::Claims;
use herald_core::Topic;
use tokio::sync::Notify;

use crate::listener::{Shared, Transport};

/// A connection's id: a counter, with its transport in the low 4 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(u64);

impl ConnId {
    fn new(n: u64, t: Transport) -> ConnId {
        ConnId(n << 4 | t as u64)
    }

    /// The transport the connection uses.
    pub fn transport(self) -> Transport {
        Transport::ALL[(self.0 & 0xf) as usize % Transport::ALL.len()]
    }

    /// The id as clients of the admin API see it.
    pub fn get(self) -> u64 {
        self.0
    }

    /// Parses an id from the admin API.
    pub fn parse(s: &str) -> Option<ConnId> {
        s.parse().ok().map(ConnId)
    }
}

/// What the registry knows about one connection: 64 bytes (plus its
/// topics), since every open stream has one.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The client's address, when known.
    pub peer: Option<SocketAddr>,
    /// Topics it watches: a stream's from its request, a session's as its
    /// operations change them.
    pub topics: Box<[Topic]>,
    /// The verified token it opened with (shared with the request, not copied).
    pub claims: Option<Arc<Claims>>,
    /// When it opened, in ms since the Unix epoch.
    pub opened_ms: u64,
}

impl Entry {
    /// The token's `sub`.
    pub fn subject(&self) -> Option<&str> {
        self.claims.as_ref()?.subject.as_deref()
    }

    /// The token's `payload` claim (presence shows it to who may see it).
    pub fn payload(&self) -> Option<&serde_json::Value> {
        self.claims.as_ref()?.payload.as_ref()
    }
}

/// Who opens a connection: what goes into its [`Entry`].
#[derive(Debug, Default, Clone)]
pub struct Opening {
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// Topics subscribed at open.
    pub topics: Vec<Topic>,
    /// The verified token, if any.
    pub claims: Option<Arc<Claims>>,
}

/// Every open connection.
#[derive(Default)]
pub struct Registry {
    next: AtomicU64,
    entries: Mutex<HashMap<ConnId, Entry>>,
    /// Connections told to go; checked by streams on a tick while non-empty.
    kicked: Mutex<HashSet<ConnId>>,
    kicks: AtomicUsize,
    /// Ticks the shared clock out of turn (see `ticker::start`).
    pub(crate) tick_now: Arc<Notify>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<ConnId, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn kicked(&self) -> MutexGuard<'_, HashSet<ConnId>> {
        self.kicked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a connection; returns its id.
    fn open(&self, transport: Transport, o: Opening) -> ConnId {
        let id = ConnId::new(self.next.fetch_add(1, Ordering::Relaxed) + 1, transport);
        let entry = Entry {
            peer: o.peer,
            topics: o.topics.into_boxed_slice(),
            claims: o.claims,
            opened_ms: crate::now_ms(),
        };
        self.lock().insert(id, entry);
        id
    }

    fn close(&self, id: ConnId) -> Option<Entry> {
        if self.kicks.load(Ordering::Relaxed) > 0 && self.kicked().remove(&id) {
            self.kicks.fetch_sub(1, Ordering::Relaxed);
        }
        self.lock().remove(&id)
    }

    /// A copy of up to `limit` entries with ids above `after`, in id order.
    pub fn list(&self, after: u64, limit: usize) -> Vec<(ConnId, Entry)> {
        let map = self.lock();
        let mut ids: Vec<ConnId> = map.keys().copied().filter(|id| id.0 > after).collect();
        ids.sort_unstable_by_key(|id| id.0);
        ids.truncate(limit);
        ids.into_iter()
            .filter_map(|id| map.get(&id).map(|e| (id, e.clone())))
            .collect()
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` on every entry (under the lock: keep `f` short).
    pub fn for_each(&self, mut f: impl FnMut(ConnId, &Entry)) {
        for (id, e) in self.lock().iter() {
            f(*id, e);
        }
    }

    /// Replaces connection `id`'s topics (a session subscribed or
    /// unsubscribed); returns the topics it joined and left.
    fn set_topics(
        &self,
        id: ConnId,
        topics: Vec<Topic>,
    ) -> Option<(Entry, Vec<Topic>, Vec<Topic>)> {
        let mut map = self.lock();
        let e = map.get_mut(&id)?;
        let joined: Vec<_> = topics
            .iter()
            .filter(|t| !e.topics.contains(t))
            .cloned()
            .collect();
        let left: Vec<_> = e
            .topics
            .iter()
            .filter(|t| !topics.contains(t))
            .cloned()
            .collect();
        e.topics = topics.into_boxed_slice();
        Some((e.clone(), joined, left))
    }

    /// Tells connection `id` to close; `false` if no such connection is open.
    pub fn kick(&self, id: ConnId) -> bool {
        if !self.lock().contains_key(&id) {
            return false;
        }
        if self.kicked().insert(id) {
            self.kicks.fetch_add(1, Ordering::Relaxed);
        }
        self.tick_now.notify_one();
        true
    }

    /// Whether connection `id` was told to close. Cheap while nobody was.
    pub fn is_kicked(&self, id: ConnId) -> bool {
        self.kicks.load(Ordering::Relaxed) > 0 && self.kicked().contains(&id)
    }
}

/// An open stream or session: counted, registered and logged until dropped.
/// 24 bytes: what the lean path's task pays for all of it.
pub struct OpenStream {
    shared: Arc<Shared>,
    id: ConnId,
    /// Events written to this client (only its own task writes it).
    sent: AtomicU64,
}

impl OpenStream {
    /// Counts and registers a connection and logs its opening.
    pub(crate) fn new(shared: Arc<Shared>, transport: Transport, o: Opening) -> OpenStream {
        shared.stats.open_streams[transport as usize].fetch_add(1, Ordering::Relaxed);
        let (peer, topics) = (o.peer, o.topics.len());
        if shared.opts.presence_events {
            shared.ops.presence.note(
                &o.topics,
                o.claims.as_ref().and_then(|c| c.payload.as_ref()),
                true,
            );
        }
        let id = shared.ops.registry.open(transport, o);
        if transport == Transport::Poll {
            tracing::debug!(
                conn = id.0,
                transport = transport.name(),
                ?peer,
                topics,
                "poll held"
            );
        } else {
            tracing::info!(
                conn = id.0,
                transport = transport.name(),
                ?peer,
                topics,
                "connection opened"
            );
        }
        OpenStream {
            shared,
            id,
            sent: AtomicU64::new(0),
        }
    }

    /// The shared state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Whether an administrator told this connection to close.
    pub fn is_kicked(&self) -> bool {
        self.shared.ops.registry.is_kicked(self.id)
    }

    /// Counts `n` events written to this connection's client.
    pub fn delivered(&self, n: usize) {
        self.shared.ops.telemetry.delivered(self.id.transport(), n);
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Records that a session now watches `topics` (after its `subscribe`
    /// and `unsubscribe` operations), for presence.
    pub fn topics_changed(&self, topics: Vec<Topic>) {
        let changed = self.shared.ops.registry.set_topics(self.id, topics);
        if let Some((e, joined, left)) = changed
            && self.shared.opts.presence_events
        {
            let presence = &self.shared.ops.presence;
            presence.note(&joined, e.payload(), true);
            presence.note(&left, e.payload(), false);
        }
    }

    /// Unregisters the connection and logs why it closed and what it sent.
    pub fn closed(&self, reason: &str) {
        let events_sent = self.sent.load(Ordering::Relaxed);
        if let Some(e) = self.shared.ops.registry.close(self.id) {
            if self.shared.opts.presence_events {
                self.shared.ops.presence.note(&e.topics, e.payload(), false);
            }
            let secs = crate::now_ms().saturating_sub(e.opened_ms) as f64 / 1000.0;
            let transport = self.id.transport().name();
            if self.id.transport() == Transport::Poll {
                tracing::debug!(
                    conn = self.id.0,
                    transport,
                    reason,
                    events_sent,
                    secs,
                    "poll answered"
                );
            } else {
                tracing::info!(
                    conn = self.id.0,
                    transport,
                    reason,
                    duration_secs = secs,
                    events_sent,
                    "connection closed"
                );
            }
        }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        // A path that did not say why (a dropped future) closes as "dropped".
        self.closed("dropped");
        self.shared.stats.open_streams[self.id.transport() as usize]
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every open stream pays for its guard in its task and for its entry in
    /// the map: keep both small.
    #[test]
    fn guard_and_entry_stay_small() {
        assert_eq!(std::mem::size_of::<OpenStream>(), 24);
        assert!(
            std::mem::size_of::<Entry>() <= 64,
            "{}",
            std::mem::size_of::<Entry>()
        );
    }

    #[test]
    fn ids_carry_their_transport() {
        for t in Transport::ALL {
            let id = ConnId::new(12345, t);
            assert_eq!(id.transport(), t);
            assert_eq!(ConnId::parse(&id.get().to_string()), Some(id));
        }
        assert_eq!(ConnId::parse("x"), None);
    }
}
