//! The subscriptions of one bidirectional session (a WebSocket, a BOSH
//! session): what `subscribe`, `unsubscribe` and `publish` operations change,
//! and the events they yield.
//!
//! A set holds a few [`Subscription`]s, one per `subscribe` that added topics
//! (each resumes from its own position). A topic is in at most one of them:
//! subscribing again to a watched topic keeps it as it is, unless the request
//! names a `last_event_id`, which moves it to the new subscription from that
//! position. `unsubscribe` removes topics with [`Subscription::remove_topics`],
//! so the others go on without a gap. An event published to several topics
//! that sit in different subscriptions is yielded once (recent multi-topic
//! events are remembered).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::Value;

use herald_core::{
    Event, Reset, ResetReason, Resume, Selector, Subscription, SubscriptionEnd, Topic,
};

use crate::auth::Access;
use crate::listener::Shared;
use crate::publish;
use crate::rejection::Rejection;
use crate::transports::ops::{self, Op};

/// Multi-topic events remembered to yield each once.
const RECENT: usize = 256;

/// The subscriptions of one session.
pub struct SubscriptionSet {
    /// What the session's token allows.
    access: Access,
    /// The client's address (publish rate limits).
    peer: Option<IpAddr>,
    subs: Vec<Subscription>,
    /// `seq`s of recently yielded events that carry several topics.
    recent: VecDeque<u64>,
}

/// Why a set stopped yielding events.
#[derive(Debug)]
pub enum SetEnd {
    /// The hub is shutting down.
    Shutdown,
    /// The history store failed.
    Store(String),
}

impl SubscriptionSet {
    /// A set for a session with `access`, starting with `initial` (the
    /// subscription a connect URL asked for, already authorized).
    pub fn new(access: Access, peer: Option<IpAddr>, initial: Option<Subscription>) -> Self {
        SubscriptionSet {
            access,
            peer,
            subs: initial.into_iter().collect(),
            recent: VecDeque::new(),
        }
    }

    /// When the session must end (its token's `exp`), on tokio's clock.
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        self.access.deadline()
    }

    /// The `reset` message owed for the initial subscription, if its resume
    /// position could not be honoured.
    pub fn initial_reset(&self) -> Option<String> {
        let sub = self.subs.first()?;
        Some(reset_text(&Value::Null, &sub.reset()?, sub))
    }

    /// Carries out one operation; returns the messages that answer it.
    pub async fn apply(&mut self, shared: &Shared, op: Op, reference: &Value) -> Vec<String> {
        let result = match op {
            Op::Subscribe {
                topics,
                last_event_id,
            } => {
                return self
                    .subscribe(shared, topics, last_event_id, reference)
                    .await;
            }
            Op::Unsubscribe { topics } => {
                let max_len = shared.hub.limits().max_topic_len;
                parse_topics(&topics, max_len).map(|t| {
                    self.remove(&t);
                    ops::ok(reference, None)
                })
            }
            Op::Publish(event) => publish_one(shared, &self.access, self.peer, event)
                .await
                .map(|id| ops::ok(reference, Some(("id", Value::String(id))))),
            Op::Ping => Ok(ops::pong(reference)),
        };
        vec![result.unwrap_or_else(|rej| ops::error(reference, &rej))]
    }

    async fn subscribe(
        &mut self,
        shared: &Shared,
        names: Vec<String>,
        last_event_id: Option<String>,
        reference: &Value,
    ) -> Vec<String> {
        let limits = shared.hub.limits();
        let topics = match parse_topics(&names, limits.max_topic_len) {
            Ok(t) => t,
            Err(rej) => return vec![ops::error(reference, &rej)],
        };
        let resume = match crate::query::resume_cursor(last_event_id.as_deref()) {
            Ok(r) => r,
            Err(rej) => return vec![ops::error(reference, &rej)],
        };
        if let Err(rej) = self.access.may_subscribe(&shared.opts, &topics) {
            return vec![ops::error(reference, &rej)];
        }
        // Watched topics stay as they are unless the client asks to move them.
        let new: Vec<Topic> = if matches!(resume, Resume::Now) {
            topics.into_iter().filter(|t| !self.watches(t)).collect()
        } else {
            self.remove(&topics);
            topics
        };
        let total = self.watched() + new.len();
        if total > limits.max_topics {
            let rej = Rejection::bad_request(
                "too_many_topics",
                format!(
                    "a session may watch at most {} topics; this subscribe would make it {total}",
                    limits.max_topics
                ),
            );
            return vec![ops::error(reference, &rej)];
        }
        if new.is_empty() {
            return vec![ops::ok(reference, None)];
        }
        match shared.hub.subscribe(&Selector::exact(new), resume).await {
            Ok(mut sub) => {
                if let Some(filter) = self.access.private_filter() {
                    sub.set_private_filter(filter);
                }
                let mut out = vec![ops::ok(reference, None)];
                if let Some(reset) = sub.reset() {
                    out.push(reset_text(reference, &reset, &sub));
                }
                self.subs.push(sub);
                out
            }
            Err(e) => vec![ops::error(reference, &Rejection::from(e))],
        }
    }

    /// Every topic the set watches now (for the connection registry).
    pub fn topics(&self) -> Vec<Topic> {
        self.subs
            .iter()
            .flat_map(|s| s.topics().iter().cloned())
            .collect()
    }

    fn watches(&self, topic: &Topic) -> bool {
        self.subs.iter().any(|s| s.topics().contains(topic))
    }

    fn watched(&self) -> usize {
        self.subs.iter().map(|s| s.topics().len()).sum()
    }

    fn remove(&mut self, topics: &[Topic]) {
        self.subs.retain_mut(|s| s.remove_topics(topics));
    }

    /// Waits for events and returns the messages that carry them: the first
    /// ready event with whatever else is ready (up to `max`), each as its
    /// shared JSON, or a `reset` if a subscription fell behind retention and
    /// continues live. Cancel-safe; never ready while nothing is subscribed.
    pub async fn next(&mut self, shared: &Shared, max: usize) -> Result<Vec<Out>, SetEnd> {
        loop {
            let (i, r) = next_event(&mut self.subs).await;
            match r {
                Ok(first) => {
                    let out = self.gather(first, max);
                    if !out.is_empty() {
                        return Ok(out);
                    }
                }
                Err(SubscriptionEnd::Closed) => return Err(SetEnd::Shutdown),
                // Boxed: rare, and it would size every waiting session.
                Err(SubscriptionEnd::Expired) => return Box::pin(self.restart(shared, i)).await,
                Err(SubscriptionEnd::Store(m)) => return Err(SetEnd::Store(m)),
            }
        }
    }

    fn gather(&mut self, first: Arc<Event>, max: usize) -> Vec<Out> {
        let mut out = Vec::with_capacity(8);
        self.push(first, &mut out);
        'gather: while out.len() < max {
            let mut any = false;
            for s in 0..self.subs.len() {
                if let Some(ev) = self.subs[s].try_next() {
                    any = true;
                    self.push(ev, &mut out);
                    if out.len() >= max {
                        break 'gather;
                    }
                }
            }
            if !any {
                break;
            }
        }
        out
    }

    fn push(&mut self, ev: Arc<Event>, out: &mut Vec<Out>) {
        if ev.topics.len() > 1 {
            if self.recent.contains(&ev.seq) {
                return;
            }
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(ev.seq);
        }
        out.push(Out::Event(ev));
    }

    /// Subscription `i` fell behind retention: it goes on live and the client
    /// is told (`reset`, reason `expired`), as a reconnecting client would be.
    async fn restart(&mut self, shared: &Shared, i: usize) -> Result<Vec<Out>, SetEnd> {
        let old = self.subs.swap_remove(i);
        let topics = old.topics().to_vec();
        let last_seq = old.last_seq();
        drop(old);
        let mut sub = shared
            .hub
            .subscribe(&Selector::exact(topics), Resume::Now)
            .await
            .map_err(|e| SetEnd::Store(e.to_string()))?;
        if let Some(filter) = self.access.private_filter() {
            sub.set_private_filter(filter);
        }
        tracing::info!(
            last_seq,
            "session subscriber fell behind retention; continuing live"
        );
        let reset = Reset {
            reason: ResetReason::Expired,
            position: shared.hub.head(),
        };
        let text = reset_text(&Value::Null, &reset, &sub);
        self.subs.push(sub);
        Ok(vec![Out::Text(text)])
    }
}

/// A message a set yields: an event (its shared JSON) or a control message.
pub enum Out {
    /// An event.
    Event(Arc<Event>),
    /// A `reset` message.
    Text(String),
}

async fn publish_one(
    shared: &Shared,
    access: &Access,
    peer: Option<IpAddr>,
    event: publish::JsonEvent,
) -> Result<String, Rejection> {
    access.may_publish_something()?;
    let draft = event.into_draft(shared.hub.limits())?;
    access.may_publish(&draft.topics)?;
    shared.publish_limits.check(peer, access, 1)?;
    let events = publish::publish(shared, vec![draft]).await?;
    Ok(events.first().map(|e| e.id.to_string()).unwrap_or_default())
}

fn reset_text(reference: &Value, reset: &Reset, sub: &Subscription) -> String {
    let names: Vec<&str> = sub.topics().iter().map(|t| t.as_str()).collect();
    ops::reset(reference, reset, &names)
}

fn parse_topics(names: &[String], max_len: usize) -> Result<Vec<Topic>, Rejection> {
    if names.is_empty() {
        return Err(Rejection::bad_request(
            "missing_topic",
            "name at least one topic in \"topics\"",
        ));
    }
    let mut topics: Vec<Topic> = Vec::with_capacity(names.len());
    for name in names {
        let t = Topic::parse(name, max_len)?;
        if !topics.contains(&t) {
            topics.push(t);
        }
    }
    Ok(topics)
}

/// The next event of any subscription, with its index. Cancel-safe, as
/// [`Subscription::next`] is; never ready when there is none.
async fn next_event(subs: &mut [Subscription]) -> (usize, Result<Arc<Event>, SubscriptionEnd>) {
    match subs {
        [] => std::future::pending().await,
        [one] => (0, one.next().await),
        many => {
            let futs = many
                .iter_mut()
                .enumerate()
                .map(|(i, s)| Box::pin(async move { (i, s.next().await) }));
            futures_util::future::select_all(futs).await.0
        }
    }
}
