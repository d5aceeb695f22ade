//! Checks that one topic's events arrive in order, each once, none missing.
//!
//! The bench numbers events globally and sends event `g` to topic `g % T`, so
//! a topic's events are `t, t+T, t+2T, …`; a subscriber turns each into its
//! index `k = g / T` on the topic and feeds it here. Memory stays bounded by
//! the number of events that arrived ahead of a gap, not by the run's length.

use std::collections::BTreeSet;

#[cfg(test)]
mod tests;

/// What [`SeqChecker::observe`] made of one index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// First time this index arrived, in order.
    InOrder,
    /// First time, but after a higher index (a reorder).
    Reordered,
    /// Already received.
    Duplicate,
}

/// Per-topic sequence state of one subscriber.
#[derive(Debug, Default)]
pub(crate) struct SeqChecker {
    /// Every index below this one has arrived.
    next: u64,
    /// Indices that arrived beyond a gap (above `next`).
    ahead: BTreeSet<u64>,
    /// The highest index received, if any.
    max_seen: Option<u64>,
    /// Indices received again.
    duplicated: u64,
    /// Indices received after a higher one.
    out_of_order: u64,
}

impl SeqChecker {
    /// A checker that has seen nothing.
    pub(crate) fn new() -> SeqChecker {
        SeqChecker::default()
    }

    /// Records the arrival of index `k`.
    pub(crate) fn observe(&mut self, k: u64) -> Seen {
        if k < self.next || self.ahead.contains(&k) {
            self.duplicated += 1;
            return Seen::Duplicate;
        }
        let seen = match self.max_seen {
            Some(max) if k < max => {
                self.out_of_order += 1;
                Seen::Reordered
            }
            _ => Seen::InOrder,
        };
        self.max_seen = Some(self.max_seen.map_or(k, |m| m.max(k)));
        if k == self.next {
            self.next += 1;
            while self.ahead.remove(&self.next) {
                self.next += 1;
            }
        } else {
            self.ahead.insert(k);
        }
        seen
    }

    /// Distinct indices received.
    pub(crate) fn distinct(&self) -> u64 {
        self.next + self.ahead.len() as u64
    }

    /// Of the indices `0..expected`, how many never arrived.
    pub(crate) fn lost(&self, expected: u64) -> u64 {
        let below = self.next.min(expected) + self.ahead.range(..expected).count() as u64;
        expected - below
    }

    /// Indices received more than once (each extra copy counts).
    pub(crate) fn duplicated(&self) -> u64 {
        self.duplicated
    }

    /// Indices that arrived after a higher one.
    pub(crate) fn out_of_order(&self) -> u64 {
        self.out_of_order
    }
}

/// How many of the events `0..events` go to topic `t` of `topics` (`g % topics == t`).
pub(crate) fn expected_on_topic(events: u64, topics: u64, t: u64) -> u64 {
    events / topics + u64::from(t < events % topics)
}
