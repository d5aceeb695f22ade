//! [`Hub`]: the one `publish` and the one `subscribe` that every front door and
//! every transport calls. Protocols are adapters around it.

use std::sync::Arc;

use crate::event::{Draft, Event, Limits};
use crate::fanout::Fanout;
use crate::log::{AppendError, Log, ReadError};
use crate::position::{Position, Resume};
use crate::subscription::{Reset, ResetReason, Subscription};
use crate::topic::Selector;

/// Why a publish failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The batch holds no event.
    #[error("nothing to publish: the batch is empty")]
    Empty,
    /// The batch holds more events than the limit.
    #[error("a batch may hold at most {max} events; this one holds {count}")]
    BatchTooLarge {
        /// Events in the batch.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The log refused or failed the append.
    #[error(transparent)]
    Append(#[from] AppendError),
}

/// Why a subscribe failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// The selector names nothing.
    #[error("subscribe to at least one topic")]
    NoTopic,
    /// The selector names more topics than the limit.
    #[error("a subscription may name at most {max} topics; this one names {count}")]
    TooManyTopics {
        /// Topics named.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The history could not be read.
    #[error("history store unavailable: {0}")]
    Store(String),
}

/// The hub: a log, its fan-out, and the limits every front door shares.
#[derive(Clone)]
pub struct Hub {
    log: Arc<dyn Log>,
    fanout: Arc<Fanout>,
    limits: Arc<Limits>,
}

impl Hub {
    /// A hub over `log`, which must deliver its commits to `fanout`.
    pub fn new(log: Arc<dyn Log>, fanout: Arc<Fanout>, limits: Limits) -> Hub {
        Hub {
            log,
            fanout,
            limits: Arc::new(limits),
        }
    }

    /// The limits drafts and subscriptions are checked against.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The fan-out (for counters).
    pub fn fanout(&self) -> &Fanout {
        &self.fanout
    }

    /// The log.
    pub fn log(&self) -> &Arc<dyn Log> {
        &self.log
    }

    /// The position just after the newest committed event.
    pub fn head(&self) -> Position {
        Position {
            epoch: self.log.epoch(),
            seq: self.log.last_seq(),
        }
    }

    /// Appends `batch` (atomically, in order, durably) and fans it out.
    /// Returns once the events are durable.
    pub async fn publish(
        &self,
        batch: Vec<Draft>,
        now_ms: u64,
    ) -> Result<Vec<Arc<Event>>, PublishError> {
        if batch.is_empty() {
            return Err(PublishError::Empty);
        }
        if batch.len() > self.limits.max_batch {
            return Err(PublishError::BatchTooLarge {
                count: batch.len(),
                max: self.limits.max_batch,
            });
        }
        Ok(self.log.append(batch, now_ms).await?)
    }

    /// Subscribes to `selector` from `resume`. Cursors are registered before
    /// history is read (see [`crate::subscription`]). If the resume cursor can't
    /// be honoured the subscription carries a [`Reset`] and starts live.
    pub async fn subscribe(
        &self,
        selector: &Selector,
        resume: Resume,
    ) -> Result<Subscription, SubscribeError> {
        if selector.is_empty() {
            return Err(SubscribeError::NoTopic);
        }
        if selector.len() > self.limits.max_topics {
            return Err(SubscribeError::TooManyTopics {
                count: selector.len(),
                max: self.limits.max_topics,
            });
        }
        let topics = selector.exact_topics().cloned().collect();
        let patterns = selector.patterns().cloned().collect();
        let mut sub = Subscription::new(self.log.clone(), self.fanout.clone(), topics, patterns, 0);
        // Read after the cursors exist: anything committed later reaches a ring.
        let head = self.head();
        sub.start_live(head.seq);
        let reset = match resume {
            Resume::Now => None,
            Resume::After(cursor) => match self.resolve(&cursor, head).await? {
                Ok(seq) => match sub.start_after(seq).await {
                    Ok(()) => None,
                    Err(ReadError::Expired { .. }) => Some(ResetReason::Expired),
                    Err(ReadError::Unavailable(m)) => return Err(SubscribeError::Store(m)),
                },
                Err(reason) => Some(reason),
            },
            Resume::Earliest => match sub.start_after(0).await {
                Err(ReadError::Expired { oldest_kept }) => match sub.start_after(oldest_kept).await
                {
                    Ok(()) => None,
                    Err(ReadError::Expired { .. }) => Some(ResetReason::Expired),
                    Err(ReadError::Unavailable(m)) => return Err(SubscribeError::Store(m)),
                },
                Ok(()) => None,
                Err(ReadError::Unavailable(m)) => return Err(SubscribeError::Store(m)),
            },
        };
        if let Some(reason) = reset {
            sub.set_reset(Reset {
                reason,
                position: head,
            });
        }
        Ok(sub)
    }

    /// Maps a client cursor to a `seq` in this epoch, or says why it can't.
    async fn resolve(
        &self,
        cursor: &str,
        head: Position,
    ) -> Result<Result<u64, ResetReason>, SubscribeError> {
        if let Some(p) = Position::parse(cursor) {
            if p.epoch != head.epoch {
                return Ok(Err(ResetReason::Epoch));
            }
            // A position another node handed out may be a little ahead of this one.
            if p.seq > head.seq && p.seq > self.log.catch_up_to(p.seq).await {
                return Ok(Err(ResetReason::Unknown));
            }
            return Ok(Ok(p.seq));
        }
        match self.log.lookup_id(cursor.to_string()).await {
            Ok(Some(seq)) => Ok(Ok(seq)),
            Ok(None) => Ok(Err(ResetReason::Unknown)),
            Err(e) => Err(SubscribeError::Store(e.to_string())),
        }
    }
}
