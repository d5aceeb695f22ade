//! The catch-up/live merge: the heart of "nothing lost".
//!
//! A [`Subscription`] is created with its ring cursors already registered
//! (see [`crate::Hub::subscribe`]). It then yields:
//!
//! 1. history from the log, page by page, after the resume position, until a
//!    page comes back short (everything committed so far has been read);
//! 2. live events from the rings, dropping every `seq` it already yielded.
//!
//! Because events are committed to the log before they enter a ring, and the
//! cursors were registered before the first history read, every event is in
//! the history read, in a ring, or both: none is missed, and the `seq` filter
//! drops the overlap. A cursor that falls a whole ring behind (`Lagged`) sends
//! the subscription back to step 1 from its last yielded `seq`, so a slow
//! subscriber costs one page of memory and loses nothing.
//!
//! A subscription with patterns also holds a cursor into the fan-out's
//! hub-wide ring (the last cursor) and skips the events there that no pattern
//! matches; its history comes from [`Log::scan`] instead of the per-topic
//! index, page by page, remembering how far the scan got.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::TryRecvError};

use crate::event::Event;
use crate::fanout::Fanout;
use crate::log::{Log, ReadError};
use crate::position::Position;
use crate::topic::{Pattern, Selector, Topic};

/// Events read from the log per catch-up page.
pub(crate) const PAGE: usize = 256;

/// Why continuity could not be kept for a resuming client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// The cursor names no retained event (unknown id, or ahead of the log).
    Unknown,
    /// Retention removed events after the cursor.
    Expired,
    /// The cursor comes from another epoch of the log (wiped data, new stream).
    Epoch,
}

impl ResetReason {
    /// Stable name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetReason::Unknown => "unknown",
            ResetReason::Expired => "expired",
            ResetReason::Epoch => "epoch",
        }
    }
}

/// The subscription could not resume: it continues live from `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reset {
    /// Why.
    pub reason: ResetReason,
    /// Where live delivery starts; a client that resumes from here loses nothing more.
    pub position: Position,
}

/// Why a subscription stopped yielding events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionEnd {
    /// The hub is shutting down.
    #[error("the hub is shutting down")]
    Closed,
    /// The subscriber fell so far behind that retention removed events it had
    /// not received yet; it must resume (and will be told of the gap).
    #[error("the subscriber fell behind the retained history")]
    Expired,
    /// The log could not be read.
    #[error("{0}")]
    Store(String),
}

/// Decides whether a private event may reach a subscriber.
pub type PrivateFilter = Arc<dyn Fn(&Event) -> bool + Send + Sync>;

/// What few subscriptions carry.
#[derive(Default)]
struct Rare {
    /// Set when the resume cursor could not be honoured.
    reset: Option<Reset>,
    /// Set for subscribers that may not see every private event.
    private_filter: Option<PrivateFilter>,
    /// Patterns watched through the hub-wide ring (its cursor is the last one).
    patterns: Box<[Pattern]>,
    /// How far history scans got (patterns only): the next scan starts after
    /// the higher of this and the last yielded `seq`.
    scanned: u64,
}

struct Cursor {
    rx: broadcast::Receiver<Arc<Event>>,
    /// One event taken from the ring but not yet yielded (multi-topic merge).
    peek: Option<Arc<Event>>,
}

enum Step {
    Event(Arc<Event>),
    Empty,
    /// Events are waiting above the high-water mark: a delivery is in progress.
    Racing,
    Lagged,
    Closed,
}

/// A live, resumable stream of events for one selector. Dropping it releases
/// its cursors.
pub struct Subscription {
    log: Arc<dyn Log>,
    fanout: Arc<Fanout>,
    topics: Box<[Topic]>,
    cursors: Box<[Cursor]>,
    /// Highest `seq` yielded (or the start position): nothing at or below it is yielded.
    last: u64,
    /// History read but not yet yielded (at most one page).
    backlog: VecDeque<Arc<Event>>,
    /// More history may follow the backlog.
    catching_up: bool,
    /// What few subscriptions carry (boxed: every idle subscriber carries
    /// this struct, so it stays one pointer wide).
    rare: Option<Box<Rare>>,
    /// Whether this subscription already counted and logged a lag.
    lag_reported: bool,
}

impl Subscription {
    pub(crate) fn new(
        log: Arc<dyn Log>,
        fanout: Arc<Fanout>,
        topics: Box<[Topic]>,
        patterns: Box<[Pattern]>,
        last: u64,
    ) -> Self {
        let mut cursors: Vec<Cursor> = topics
            .iter()
            .map(|t| Cursor {
                rx: fanout.watch(t),
                peek: None,
            })
            .collect();
        let rare = if patterns.is_empty() {
            None
        } else {
            cursors.push(Cursor {
                rx: fanout.watch_all(),
                peek: None,
            });
            Some(Box::new(Rare {
                patterns,
                ..Rare::default()
            }))
        };
        Subscription {
            log,
            fanout,
            topics,
            cursors: cursors.into_boxed_slice(),
            last,
            backlog: VecDeque::new(),
            catching_up: false,
            rare,
            lag_reported: false,
        }
    }

    /// The patterns this subscription watches.
    pub fn patterns(&self) -> &[Pattern] {
        self.rare.as_deref().map_or(&[], |r| &r.patterns)
    }

    /// Starts catch-up after `seq`, reading the first page now so an expired
    /// position is known before anything is sent.
    pub(crate) async fn start_after(&mut self, seq: u64) -> Result<(), ReadError> {
        let live_from = self.last;
        self.last = seq;
        self.catching_up = true;
        if let Err(e) = self.read_page().await {
            self.last = live_from;
            self.catching_up = false;
            self.backlog.clear();
            return Err(e);
        }
        Ok(())
    }

    /// Starts live delivery after `seq` (nothing at or below it is yielded).
    pub(crate) fn start_live(&mut self, seq: u64) {
        self.last = seq;
    }

    pub(crate) fn set_reset(&mut self, reset: Reset) {
        self.rare.get_or_insert_default().reset = Some(reset);
    }

    /// Hides private events for which `visible` answers `false` (a subscriber
    /// whose token does not cover them). Hidden events still advance the
    /// position, so a resume after them does not see them either.
    pub fn set_private_filter(&mut self, visible: PrivateFilter) {
        self.rare.get_or_insert_default().private_filter = Some(visible);
    }

    /// Set when the client's resume cursor could not be honoured; transports
    /// tell the client before the first event.
    pub fn reset(&self) -> Option<Reset> {
        self.rare.as_deref().and_then(|r| r.reset)
    }

    /// The topics this subscription watches.
    pub fn topics(&self) -> &[Topic] {
        &self.topics
    }

    /// Whether history remains to be read before live delivery (a poller
    /// answering now should say more is waiting).
    pub fn catching_up(&self) -> bool {
        self.catching_up || !self.backlog.is_empty()
    }

    /// Stops watching every topic of `remove` this subscription watches (others
    /// are ignored), and drops history already read that only those topics
    /// carried. Returns whether any topic or pattern is still watched; the
    /// position is unchanged, so the rest continues without a gap.
    pub fn remove_topics(&mut self, remove: &[Topic]) -> bool {
        let has_patterns = !self.patterns().is_empty();
        if !self.topics.iter().any(|t| remove.contains(t)) {
            return !self.topics.is_empty() || has_patterns;
        }
        let topics = std::mem::take(&mut self.topics).into_vec();
        let mut cursors = std::mem::take(&mut self.cursors).into_vec();
        let all_cursor = if has_patterns { cursors.pop() } else { None };
        let (mut kept_topics, mut kept_cursors) = (Vec::new(), Vec::new());
        for (topic, cursor) in topics.into_iter().zip(cursors) {
            if remove.contains(&topic) {
                drop(cursor);
                self.fanout.release(&topic);
            } else {
                kept_topics.push(topic);
                kept_cursors.push(cursor);
            }
        }
        kept_cursors.extend(all_cursor);
        self.topics = kept_topics.into_boxed_slice();
        self.cursors = kept_cursors.into_boxed_slice();
        let watched = &self.topics;
        let patterns = self.rare.as_deref().map_or(&[][..], |r| &r.patterns);
        self.backlog.retain(|ev| {
            ev.topics.iter().any(|t| watched.contains(t))
                || patterns.iter().any(|p| p.matches_any(ev.topics.iter()))
        });
        let watching = !self.topics.is_empty() || has_patterns;
        if !watching {
            self.catching_up = false;
        }
        watching
    }

    /// Highest `seq` yielded so far (or the start position).
    pub fn last_seq(&self) -> u64 {
        self.last
    }

    /// The next event, waiting if none is ready.
    ///
    /// Cancel-safe: if the future is dropped, no event is lost or skipped.
    pub async fn next(&mut self) -> Result<Arc<Event>, SubscriptionEnd> {
        loop {
            if let Some(ev) = self.take_backlog() {
                return Ok(ev);
            }
            if self.catching_up {
                self.read_page().await.map_err(|e| match e {
                    ReadError::Expired { .. } => SubscriptionEnd::Expired,
                    ReadError::Unavailable(m) => SubscriptionEnd::Store(m),
                })?;
                continue;
            }
            match self.step() {
                Step::Event(ev) => {
                    if let Some(ev) = self.accept(ev) {
                        return Ok(ev);
                    }
                }
                Step::Empty => self.wait().await?,
                Step::Racing => tokio::task::yield_now().await,
                Step::Lagged => self.lagged(),
                Step::Closed => return Err(SubscriptionEnd::Closed),
            }
        }
    }

    /// The next event if one is ready without waiting (for coalescing writes).
    pub fn try_next(&mut self) -> Option<Arc<Event>> {
        loop {
            if let Some(ev) = self.take_backlog() {
                return Some(ev);
            }
            if self.catching_up {
                return None;
            }
            match self.step() {
                Step::Event(ev) => {
                    if let Some(ev) = self.accept(ev) {
                        return Some(ev);
                    }
                }
                Step::Lagged => {
                    self.lagged();
                    return None;
                }
                Step::Empty | Step::Racing | Step::Closed => return None,
            }
        }
    }

    fn take_backlog(&mut self) -> Option<Arc<Event>> {
        while let Some(ev) = self.backlog.pop_front() {
            if let Some(ev) = self.accept(ev) {
                return Some(ev);
            }
        }
        None
    }

    fn accept(&mut self, ev: Arc<Event>) -> Option<Arc<Event>> {
        if ev.seq <= self.last {
            return None;
        }
        self.last = ev.seq;
        if ev.private
            && let Some(visible) = self.rare.as_ref().and_then(|r| r.private_filter.as_ref())
            && !visible(&ev)
        {
            return None;
        }
        Some(ev)
    }

    async fn read_page(&mut self) -> Result<(), ReadError> {
        if let Some(rare) = self.rare.as_deref().filter(|r| !r.patterns.is_empty()) {
            let selector =
                Selector::new(self.topics.iter().cloned(), rare.patterns.iter().cloned());
            let after = self.last.max(rare.scanned);
            let page = self.log.scan(selector, after, PAGE).await?;
            self.catching_up = page.more;
            self.backlog.extend(page.events);
            if let Some(rare) = self.rare.as_deref_mut() {
                rare.scanned = page.through;
            }
            return Ok(());
        }
        let page = self.log.read(self.topics.to_vec(), self.last, PAGE).await?;
        self.catching_up = page.len() == PAGE;
        self.backlog.extend(page);
        Ok(())
    }

    fn lagged(&mut self) {
        for c in &mut self.cursors {
            c.peek = None;
        }
        self.catching_up = true;
        if !self.lag_reported {
            self.lag_reported = true;
            self.fanout.count_lag();
            tracing::info!(
                topics = self.topics.len(),
                last_seq = self.last,
                "slow subscriber fell a whole ring behind; catching up from the log"
            );
        }
    }

    /// Takes the lowest ready ring event without waiting.
    fn step(&mut self) -> Step {
        let single = self.cursors.len() == 1;
        let hw = if single {
            u64::MAX
        } else {
            self.fanout.high_water()
        };
        let patterns = self.rare.as_deref().map_or(&[][..], |r| &r.patterns);
        // With patterns, the last cursor reads every event: skip the others.
        let all_cursor = (!patterns.is_empty()).then(|| self.cursors.len() - 1);
        for (i, c) in self.cursors.iter_mut().enumerate() {
            loop {
                if c.peek.is_none() {
                    match c.rx.try_recv() {
                        Ok(ev) => c.peek = Some(ev),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Lagged(_)) => return Step::Lagged,
                        Err(TryRecvError::Closed) => return Step::Closed,
                    }
                }
                match &c.peek {
                    Some(ev)
                        if all_cursor == Some(i)
                            && !patterns.iter().any(|p| p.matches_any(ev.topics.iter())) =>
                    {
                        c.peek = None;
                    }
                    _ => break,
                }
            }
        }
        let mut best: Option<(usize, u64)> = None;
        let mut pending = false;
        for (i, c) in self.cursors.iter().enumerate() {
            if let Some(ev) = &c.peek {
                pending = true;
                if ev.seq <= hw && best.is_none_or(|(_, s)| ev.seq < s) {
                    best = Some((i, ev.seq));
                }
            }
        }
        match best {
            Some((i, _)) => match self.cursors[i].peek.take() {
                Some(ev) => Step::Event(ev),
                None => Step::Empty,
            },
            None if pending => Step::Racing,
            None => Step::Empty,
        }
    }

    /// Waits until some cursor has an event (stored in its `peek`). Cancel-safe.
    async fn wait(&mut self) -> Result<(), SubscriptionEnd> {
        let r = if let [c] = &mut self.cursors[..] {
            // The common case, without the allocations of a multi-way select.
            if c.peek.is_some() {
                return Ok(());
            }
            c.rx.recv().await.map(|ev| c.peek = Some(ev))
        } else {
            let futs: Vec<_> = self
                .cursors
                .iter_mut()
                .filter(|c| c.peek.is_none())
                .map(|c| Box::pin(async move { c.rx.recv().await.map(|ev| c.peek = Some(ev)) }))
                .collect();
            if futs.is_empty() {
                return Ok(());
            }
            futures_util::future::select_all(futs).await.0
        };
        match r {
            Ok(()) => Ok(()),
            Err(broadcast::error::RecvError::Lagged(_)) => {
                self.lagged();
                Ok(())
            }
            Err(broadcast::error::RecvError::Closed) => Err(SubscriptionEnd::Closed),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.cursors = Box::new([]);
        for t in self.topics.iter() {
            self.fanout.release(t);
        }
        if !self.patterns().is_empty() {
            self.fanout.release_all();
        }
    }
}
