//! One BOSH session: a task that owns the session's state and handles its
//! requests in `rid` order (XEP-0124 sections 4–7).
//!
//! HTTP handlers hand each request to the task with a one-shot reply channel.
//! The task holds up to `hold` requests; an event (or an answer to an
//! operation) releases the oldest held request at once; a request held for
//! `wait` is answered empty; a new request beyond `hold` releases the oldest.
//! Every answer is kept by `rid` (the last `requests`, or every one the client
//! has not acknowledged, up to [`KEPT_MAX`]), so a request repeated after a
//! broken connection gets the same bytes again and no event is lost. When no
//! request is held for `inactivity`, the session ends silently.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::auth::Access;
use crate::listener::{OpenStream, Shared, Transport};
use crate::transports::ops;
use crate::transports::subscriptions::{Out, SetEnd, SubscriptionSet};
use crate::transports::write::MAX_COALESCE;

use super::body::{self, Request};

/// Answers kept for replay when the client acknowledges, at most.
const KEPT_MAX: usize = 64;

/// A request handed to the session task.
pub struct Incoming {
    /// The parsed body.
    pub body: Request,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Answer>,
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// 200, or 400/403/404 for legacy clients' errors.
    pub status: StatusCode,
    /// The `<body/>`.
    pub body: Bytes,
    /// The content type the session answers with.
    pub content_type: Arc<str>,
}

/// What a session was created with (after capping to the hub's limits).
#[derive(Debug, Clone)]
pub struct Terms {
    /// The session id.
    pub sid: String,
    /// Longest a request is held.
    pub wait: Duration,
    /// Most requests held at once (0: a polling session).
    pub hold: usize,
    /// Most requests in flight.
    pub requests: u64,
    /// Shortest interval between empty polls.
    pub polling: Duration,
    /// Longest time with no request held before the session ends.
    pub inactivity: Duration,
    /// Whether answers carry `ack`.
    pub acks: bool,
    /// No `ver` at creation: errors are HTTP statuses.
    pub legacy: bool,
    /// The response content type.
    pub content_type: Arc<str>,
}

/// A request waiting for something to send.
struct Held {
    rid: u64,
    reply: oneshot::Sender<Answer>,
    until: Instant,
}

/// The session task's state.
pub struct Session {
    terms: Terms,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Incoming>,
    set: SubscriptionSet,
    /// Highest `rid` handled, with every lower one handled too.
    last_rid: u64,
    /// Requests that arrived ahead of a missing `rid`.
    early: BTreeMap<u64, Incoming>,
    held: VecDeque<Held>,
    /// Payloads waiting for a request to carry them.
    outbox: Vec<Bytes>,
    /// Answers by `rid`, for replay.
    kept: BTreeMap<u64, Bytes>,
    /// When the last request was answered while none stayed held.
    idle_since: Instant,
    /// When the last empty answer to an empty poll went out (polling sessions).
    last_empty_poll: Option<Instant>,
    _open: OpenStream,
}

/// Whether the session goes on.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    End,
}

impl Session {
    /// A session whose creation request had `rid`.
    pub fn new(
        terms: Terms,
        rid: u64,
        shared: Arc<Shared>,
        access: Access,
        peer: Option<std::net::IpAddr>,
        rx: mpsc::Receiver<Incoming>,
    ) -> Self {
        let mut opening = access.opening(Vec::new());
        opening.peer = peer.map(|ip| std::net::SocketAddr::new(ip, 0));
        let _open = shared.stream_guard(Transport::Bosh, opening);
        Session {
            terms,
            shared,
            rx,
            set: SubscriptionSet::new(access, peer, None),
            last_rid: rid,
            early: BTreeMap::new(),
            held: VecDeque::new(),
            outbox: Vec::new(),
            kept: BTreeMap::new(),
            idle_since: Instant::now(),
            last_empty_poll: None,
            _open,
        }
    }

    /// Answers the creation request (carrying answers to its operations),
    /// then serves the session until it ends.
    pub async fn run(mut self, creation: Incoming, creation_attrs: Vec<(&'static str, String)>) {
        let answers = self.apply_ops(&creation.body.ops).await;
        self.outbox.extend(answers);
        let payloads = std::mem::take(&mut self.outbox);
        let bytes = Bytes::from(body::render(
            &creation_attrs,
            payloads.iter().map(|b| b.as_ref()),
        ));
        self.keep(creation.body.rid, bytes.clone());
        let _ = creation.reply.send(self.answer_ok(bytes));
        self.serve().await;
        let reason = if self._open.is_kicked() {
            "disconnected_by_admin"
        } else {
            "session_ended"
        };
        self._open.closed(reason);
        self.shared.bosh.remove(&self.terms.sid);
        tracing::debug!(sid = %self.terms.sid, "bosh session ended");
    }

    async fn serve(&mut self) {
        let token_deadline = self.set.deadline();
        // The shared clock, only to hear of an admin's disconnect.
        let mut ticks = self.shared.ticks.clone();
        ticks.mark_unchanged();
        let mut ticking = true;
        loop {
            let deadline = match self.held.front() {
                Some(h) => h.until,
                None => self.idle_since + self.terms.inactivity,
            };
            if token_deadline.is_some_and(|t| t <= Instant::now()) {
                tracing::debug!(sid = %self.terms.sid, "bosh session token expired");
                self.terminate_held("policy-violation");
                return;
            }
            let deadline = token_deadline.map_or(deadline, |t| t.min(deadline));
            let flow = tokio::select! {
                biased;
                _ = self.shared.shutdown.cancelled() => {
                    self.terminate_held("system-shutdown");
                    Flow::End
                }
                r = ticks.changed(), if ticking => {
                    ticking = r.is_ok();
                    if self._open.is_kicked() {
                        tracing::debug!(sid = %self.terms.sid, "bosh session disconnected by an administrator");
                        self.terminate_held("policy-violation");
                        Flow::End
                    } else {
                        Flow::Continue
                    }
                }
                inc = self.rx.recv() => match inc {
                    Some(inc) => self.incoming(inc).await,
                    None => Flow::End,
                },
                out = self.set.next(&self.shared, MAX_COALESCE), if !self.held.is_empty() => match out {
                    Ok(out) => {
                        self.outbox.extend(out.into_iter().map(payload));
                        self.release(true);
                        Flow::Continue
                    }
                    Err(SetEnd::Shutdown) => {
                        self.terminate_held("system-shutdown");
                        Flow::End
                    }
                    Err(SetEnd::Store(m)) => {
                        tracing::warn!(error = %m, "bosh subscription failed");
                        self.terminate_held("internal-server-error");
                        Flow::End
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    if token_deadline.is_some_and(|t| t <= Instant::now()) {
                        Flow::Continue
                    } else if self.held.is_empty() {
                        tracing::debug!(sid = %self.terms.sid, "bosh session inactive; dropping it");
                        Flow::End
                    } else {
                        self.expire();
                        Flow::Continue
                    }
                }
            };
            if flow == Flow::End {
                return;
            }
        }
    }

    /// One request, in whatever order it arrived.
    async fn incoming(&mut self, inc: Incoming) -> Flow {
        let rid = inc.body.rid;
        if rid <= self.last_rid {
            // A repeat: of a request still held (its connection broke), of an
            // answered one (replay the same bytes), or of one long gone.
            if let Some(h) = self.held.iter_mut().find(|h| h.rid == rid) {
                h.reply = inc.reply;
                return Flow::Continue;
            }
            if let Some(bytes) = self.kept.get(&rid) {
                let _ = inc.reply.send(self.answer_ok(bytes.clone()));
                return Flow::Continue;
            }
            return self.terminate(inc.reply, "item-not-found");
        }
        if rid > self.last_rid + self.terms.requests {
            return self.terminate(inc.reply, "item-not-found");
        }
        if rid != self.last_rid + 1 {
            if self.early.len() as u64 >= self.terms.requests {
                return self.terminate(inc.reply, "policy-violation");
            }
            self.early.insert(rid, inc);
            return Flow::Continue;
        }
        let mut next = Some(inc);
        while let Some(inc) = next {
            if self.process(inc).await == Flow::End {
                return Flow::End;
            }
            next = self.early.remove(&(self.last_rid + 1));
        }
        Flow::Continue
    }

    /// Handles the next request in `rid` order.
    async fn process(&mut self, inc: Incoming) -> Flow {
        let Incoming { body, reply } = inc;
        self.last_rid = body.rid;
        if let Some(ack) = body.ack {
            self.kept.retain(|rid, _| *rid > ack);
        }
        let answers = self.apply_ops(&body.ops).await;
        self.outbox.extend(answers);
        if body.terminate {
            self.release_all();
            let bytes = Bytes::from(body::render(&[("type", "terminate".into())], []));
            let _ = reply.send(self.answer_ok(bytes));
            return Flow::End;
        }
        let now = Instant::now();
        if self.terms.hold == 0 || self.terms.wait.is_zero() {
            // A polling session: answer at once, but refuse empty polls that
            // come faster than `polling` after an empty answer.
            if body.ops.is_empty() && self.outbox.is_empty() {
                if self
                    .last_empty_poll
                    .is_some_and(|t| now.duration_since(t) < self.terms.polling)
                {
                    return self.terminate(reply, "policy-violation");
                }
                self.last_empty_poll = Some(now);
            } else {
                self.last_empty_poll = None;
            }
            self.held.push_back(Held {
                rid: body.rid,
                reply,
                until: now,
            });
            self.release(true);
            return Flow::Continue;
        }
        if self.held.len() > self.terms.hold {
            return self.terminate(reply, "policy-violation");
        }
        self.held.push_back(Held {
            rid: body.rid,
            reply,
            until: now + self.terms.wait,
        });
        self.release(false);
        Flow::Continue
    }

    async fn apply_ops(&mut self, ops_text: &[String]) -> Vec<Bytes> {
        let mut out = Vec::new();
        for text in ops_text {
            let answers = match ops::parse(text) {
                Ok(req) => self.set.apply(&self.shared, req.op, &req.reference).await,
                Err((reference, rej)) => vec![ops::error(&reference, &rej)],
            };
            out.extend(answers.into_iter().map(Bytes::from));
        }
        if !ops_text.is_empty() {
            self._open.topics_changed(self.set.topics());
        }
        out
    }

    /// Answers held requests while more than `hold` are held, or while there
    /// are payloads to send (`force`: answer the oldest even if empty).
    fn release(&mut self, force: bool) {
        let mut forced = force;
        while let Some(front) = self.held.front() {
            let over = self.held.len() > self.terms.hold;
            let due = front.until <= Instant::now();
            if !(over || forced || due || !self.outbox.is_empty()) {
                break;
            }
            forced = false;
            let Some(h) = self.held.pop_front() else {
                break;
            };
            self.answer(h);
        }
        if self.held.is_empty() {
            self.idle_since = Instant::now();
        }
    }

    /// Answers requests whose `wait` is over.
    fn expire(&mut self) {
        self.release(false);
    }

    fn release_all(&mut self) {
        while let Some(h) = self.held.pop_front() {
            self.answer(h);
        }
    }

    /// Answers one held request with the outbox.
    fn answer(&mut self, h: Held) {
        let payloads = std::mem::take(&mut self.outbox);
        let mut attrs = Vec::new();
        if self.terms.acks && self.last_rid != h.rid {
            attrs.push(("ack", self.last_rid.to_string()));
        }
        let bytes = Bytes::from(body::render(&attrs, payloads.iter().map(|b| b.as_ref())));
        self.keep(h.rid, bytes.clone());
        let _ = h.reply.send(self.answer_ok(bytes));
    }

    fn keep(&mut self, rid: u64, bytes: Bytes) {
        self.kept.insert(rid, bytes);
        let cap = if self.terms.acks {
            KEPT_MAX
        } else {
            self.terms.requests as usize
        };
        while self.kept.len() > cap {
            self.kept.pop_first();
        }
    }

    fn answer_ok(&self, body: Bytes) -> Answer {
        Answer {
            status: StatusCode::OK,
            body,
            content_type: self.terms.content_type.clone(),
        }
    }

    /// Ends the session with `condition`, answering `reply` and every held request.
    fn terminate(&mut self, reply: oneshot::Sender<Answer>, condition: &'static str) -> Flow {
        let _ = reply.send(terminate_answer(
            condition,
            self.terms.legacy,
            &self.terms.content_type,
        ));
        self.terminate_held(condition);
        Flow::End
    }

    fn terminate_held(&mut self, condition: &'static str) {
        while let Some(h) = self.held.pop_front() {
            let _ = h.reply.send(terminate_answer(
                condition,
                self.terms.legacy,
                &self.terms.content_type,
            ));
        }
    }
}

/// A payload: an event's shared JSON, or a control message.
fn payload(out: Out) -> Bytes {
    match out {
        Out::Event(ev) => ev.json(),
        Out::Text(t) => Bytes::from(t),
    }
}

/// `<body type='terminate' condition='…'/>`, or for legacy clients the HTTP
/// status XEP-0124 gives them.
pub fn terminate_answer(condition: &'static str, legacy: bool, content_type: &Arc<str>) -> Answer {
    let status = match (legacy, condition) {
        (true, "bad-request") => StatusCode::BAD_REQUEST,
        (true, "policy-violation") => StatusCode::FORBIDDEN,
        (true, "item-not-found") => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    };
    let attrs = [
        ("type", "terminate".to_string()),
        ("condition", condition.to_string()),
    ];
    Answer {
        status,
        body: Bytes::from(body::render(&attrs, [])),
        content_type: content_type.clone(),
    }
}
