//! Fan-out: one bounded broadcast ring per watched topic.
//!
//! A log calls [`Fanout::deliver`] with every committed batch, in `seq` order.
//! Each subscriber holds a cursor (a `broadcast::Receiver`) into the ring of
//! every topic it watches, so an idle subscriber costs a cursor, not a queue. A
//! cursor that falls a whole ring behind gets `Lagged` and its subscription
//! switches to catch-up from the log (see [`crate::subscription`]).
//!
//! Ordering across topics: `deliver` pushes an event into all its rings, then
//! raises the high-water mark to its `seq`. A subscriber merging several rings
//! only yields ring events at or below the mark, so it never yields `seq` 5
//! from one ring while `seq` 4 is still on its way into another.
//!
//! Pattern subscriptions (`/chat/*`, URI templates) cannot be looked up by
//! topic: while one exists, every event also goes into one hub-wide ring, and
//! each pattern subscription's cursor there tests the events it reads. The
//! ring exists only while a pattern subscription does, so exact-topic
//! subscribers pay nothing for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::broadcast;

use crate::event::Event;
use crate::topic::Topic;

/// The per-topic rings and fan-out counters.
pub struct Fanout {
    /// Rings of topics that someone watches; a ring is dropped with its last cursor.
    rings: RwLock<Rings>,
    /// Slots per ring: how far a subscriber may fall behind before catch-up.
    capacity: usize,
    /// Highest `seq` pushed into every ring it belongs to.
    high_water: AtomicU64,
    /// Times a subscriber fell a whole ring behind (slow-subscriber metric).
    lagged: AtomicU64,
    /// Events delivered into at least one ring.
    delivered: AtomicU64,
}

#[derive(Default)]
struct Rings {
    by_topic: HashMap<Topic, broadcast::Sender<Arc<Event>>>,
    /// Every event, while some pattern subscription watches it.
    all: Option<broadcast::Sender<Arc<Event>>>,
}

impl Fanout {
    /// Rings of `capacity` slots (at least 1).
    pub fn new(capacity: usize) -> Fanout {
        Fanout {
            rings: RwLock::new(Rings::default()),
            capacity: capacity.max(1),
            high_water: AtomicU64::new(0),
            lagged: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
        }
    }

    /// Hands committed events to every ring they belong to. Must be called in
    /// `seq` order, never concurrently (logs call it from their commit path).
    pub fn deliver(&self, events: &[Arc<Event>]) {
        let rings = self.rings.read().unwrap_or_else(|e| e.into_inner());
        for ev in events {
            let mut any = false;
            for t in ev.topics.iter() {
                if let Some(tx) = rings.by_topic.get(t) {
                    any |= tx.send(ev.clone()).is_ok();
                }
            }
            if let Some(tx) = &rings.all {
                any |= tx.send(ev.clone()).is_ok();
            }
            if any {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            self.high_water.store(ev.seq, Ordering::Release);
        }
    }

    /// Highest `seq` fully pushed into its rings.
    pub fn high_water(&self) -> u64 {
        self.high_water.load(Ordering::Acquire)
    }

    /// A cursor into `topic`'s ring, created if needed. It sees events
    /// delivered after this call.
    pub(crate) fn watch(&self, topic: &Topic) -> broadcast::Receiver<Arc<Event>> {
        if let Some(tx) = self
            .rings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_topic
            .get(topic)
        {
            return tx.subscribe();
        }
        let mut rings = self.rings.write().unwrap_or_else(|e| e.into_inner());
        rings
            .by_topic
            .entry(topic.clone())
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }

    /// Drops `topic`'s ring if no cursor is left on it.
    pub(crate) fn release(&self, topic: &Topic) {
        let mut rings = self.rings.write().unwrap_or_else(|e| e.into_inner());
        if rings
            .by_topic
            .get(topic)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            rings.by_topic.remove(topic);
        }
    }

    /// A cursor into the hub-wide ring of every event (created if needed),
    /// for a pattern subscription. It sees events delivered after this call.
    pub(crate) fn watch_all(&self) -> broadcast::Receiver<Arc<Event>> {
        let mut rings = self.rings.write().unwrap_or_else(|e| e.into_inner());
        let capacity = self.capacity;
        rings
            .all
            .get_or_insert_with(|| broadcast::channel(capacity).0)
            .subscribe()
    }

    /// Drops the hub-wide ring if no pattern subscription is left on it.
    pub(crate) fn release_all(&self) {
        let mut rings = self.rings.write().unwrap_or_else(|e| e.into_inner());
        if rings
            .all
            .as_ref()
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            rings.all = None;
        }
    }

    /// Closes every ring: subscriptions end with [`crate::SubscriptionEnd::Closed`].
    pub fn close(&self) {
        let mut rings = self.rings.write().unwrap_or_else(|e| e.into_inner());
        rings.by_topic.clear();
        rings.all = None;
    }

    pub(crate) fn count_lag(&self) {
        self.lagged.fetch_add(1, Ordering::Relaxed);
    }

    /// Topics with at least one watcher.
    pub fn watched_topics(&self) -> usize {
        self.rings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_topic
            .len()
    }

    /// Subscriptions watching `topic` through its ring (pattern subscriptions
    /// that may match it are not counted: see [`Fanout::pattern_watchers`]).
    pub fn watchers(&self, topic: &Topic) -> usize {
        self.rings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_topic
            .get(topic)
            .map_or(0, |tx| tx.receiver_count())
    }

    /// Pattern subscriptions open now.
    pub fn pattern_watchers(&self) -> usize {
        self.rings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .all
            .as_ref()
            .map_or(0, |tx| tx.receiver_count())
    }

    /// Times a subscriber fell a whole ring behind and went back to the log.
    pub fn lagged(&self) -> u64 {
        self.lagged.load(Ordering::Relaxed)
    }

    /// Events that reached at least one ring.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
}
