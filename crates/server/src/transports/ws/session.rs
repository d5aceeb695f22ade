//! One WebSocket session: a task that reads operations, delivers the events of
//! its subscriptions, pings the peer and closes with a reason.
//!
//! A session holds a few [`Subscription`]s, one per `subscribe` that added
//! topics (each resumes from its own position). A topic is in at most one of
//! them: subscribing again to a watched topic keeps it as it is, unless the
//! request names a `last_event_id`, which moves it to the new subscription
//! from that position. `unsubscribe` removes topics with
//! [`Subscription::remove_topics`], so the others go on without a gap. An
//! event published to several topics that sit in different subscriptions is
//! sent once (recent multi-topic events are remembered).
//!
//! Liveness: on every tick of the shared clock the session pings; a peer that
//! sent nothing at all since the previous ping is gone and the socket is
//! dropped. Writes that stall past the write timeout end the session (the
//! client resumes with the ids it received and loses nothing).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_websockets::{CloseCode, Message, Payload, WebSocketStream};

use herald_core::{Event, Resume, Selector, Subscription, SubscriptionEnd, Topic};

use crate::listener::{OpenStream, Shared, Transport};
use crate::publish;
use crate::rejection::Rejection;
use crate::ticker;
use crate::transports::stream::End;
use crate::transports::write::MAX_COALESCE;

use super::ops::{self, Op};

/// How long a closing session waits for the peer's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Multi-topic events remembered to send each once.
const RECENT: usize = 256;

/// Close code for a client that sent a binary frame.
const UNSUPPORTED: CloseCode = CloseCode::UNSUPPORTED_DATA;

/// An open WebSocket and what it is subscribed to.
pub struct Session<S> {
    ws: WebSocketStream<S>,
    shared: Arc<Shared>,
    subs: Vec<Subscription>,
    /// `seq`s of recently sent events that carry several topics.
    recent: VecDeque<u64>,
    /// Whether any frame arrived since the last ping.
    heard: bool,
    /// Whether a ping is waiting for an answer.
    pinged: bool,
    _open: OpenStream,
}

/// Why a session ends, and how it says goodbye.
enum Ending {
    /// The peer closed or vanished: nothing more to send.
    Gone,
    /// The peer did not read for the whole write timeout.
    Stalled,
    /// Close with this code and reason.
    Close(CloseCode, &'static str),
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// A session on an upgraded socket, with the subscription of the
    /// connection's query (if it named topics).
    pub fn new(ws: WebSocketStream<S>, shared: Arc<Shared>, initial: Option<Subscription>) -> Self {
        let _open = shared.stream_guard(Transport::Ws);
        Session {
            ws,
            shared,
            subs: initial.into_iter().collect(),
            recent: VecDeque::new(),
            heard: true,
            pinged: false,
            _open,
        }
    }

    /// Runs until the peer leaves, the hub shuts down or something fails.
    pub async fn run(mut self) {
        let initial_reset = self
            .subs
            .first()
            .and_then(|s| s.reset().map(|r| (r, topic_names(s))));
        let ending = match initial_reset {
            Some((reset, names)) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                let text = ops::reset(&Value::Null, &reset, &names);
                match self.send(vec![Message::text(text)]).await {
                    Ok(()) => self.serve().await,
                    Err(e) => e,
                }
            }
            None => self.serve().await,
        };
        match ending {
            Ending::Gone => {}
            Ending::Stalled => self.shared.stats.stream_ended(&End::Stalled),
            Ending::Close(code, reason) => self.close(code, reason).await,
        }
    }

    async fn serve(&mut self) -> Ending {
        let mut ticks = self.shared.ticks.clone();
        ticks.mark_unchanged();
        if self.shared.shutdown.is_cancelled() {
            return shutting_down();
        }
        loop {
            tokio::select! {
                biased;
                r = ticks.changed() => {
                    if r.is_err() || *ticks.borrow_and_update() == ticker::SHUTDOWN {
                        return shutting_down();
                    }
                    if let Err(e) = self.tick().await {
                        return e;
                    }
                }
                frame = self.ws.next() => {
                    if let Err(e) = self.received(frame).await {
                        return e;
                    }
                }
                (i, r) = next_event(&mut self.subs) => {
                    if let Err(e) = self.deliver(i, r).await {
                        return e;
                    }
                }
            }
        }
    }

    /// Pings, or gives up on a peer that did not answer the previous ping.
    async fn tick(&mut self) -> Result<(), Ending> {
        if self.pinged && !self.heard {
            tracing::debug!("websocket peer did not answer a ping; dropping it");
            return Err(Ending::Gone);
        }
        self.heard = false;
        self.pinged = true;
        self.send(vec![Message::ping(Payload::from(&b"herald"[..]))])
            .await
    }

    /// Handles one frame from the peer.
    async fn received(
        &mut self,
        frame: Option<Result<Message, tokio_websockets::Error>>,
    ) -> Result<(), Ending> {
        let msg = match frame {
            None => return Err(Ending::Gone),
            Some(Err(e)) => {
                // Protocol errors and oversized messages already queued their
                // close frame (1002, 1007, 1009); push it out and stop.
                tracing::debug!(error = %e, "websocket read failed");
                let _ = tokio::time::timeout(CLOSE_GRACE, self.ws.flush()).await;
                return Err(Ending::Gone);
            }
            Some(Ok(msg)) => msg,
        };
        self.heard = true;
        self.pinged = false;
        if msg.is_binary() {
            return Err(Ending::Close(
                UNSUPPORTED,
                "Herald takes JSON operations in text frames",
            ));
        }
        let Some(text) = msg.as_text() else {
            // Ping (answered by the library), pong, or the peer's close
            // (echoed by the library; the next read ends the session).
            return Ok(());
        };
        let answer = match ops::parse(text) {
            Ok(req) => self.apply(req.op, &req.reference).await,
            Err((reference, rej)) => vec![ops::error(&reference, &rej)],
        };
        self.send(answer.into_iter().map(Message::text).collect())
            .await
    }

    /// Carries out one operation; returns the messages that answer it.
    async fn apply(&mut self, op: Op, reference: &Value) -> Vec<String> {
        let result = match op {
            Op::Subscribe {
                topics,
                last_event_id,
            } => return self.subscribe(topics, last_event_id, reference).await,
            Op::Unsubscribe { topics } => {
                self.unsubscribe(&topics).map(|()| ops::ok(reference, None))
            }
            Op::Publish(event) => self
                .publish(event)
                .await
                .map(|id| ops::ok(reference, Some(("id", Value::String(id))))),
            Op::Ping => Ok(ops::pong(reference)),
        };
        vec![result.unwrap_or_else(|rej| ops::error(reference, &rej))]
    }

    async fn subscribe(
        &mut self,
        names: Vec<String>,
        last_event_id: Option<String>,
        reference: &Value,
    ) -> Vec<String> {
        let (max_len, max_topics) = {
            let l = self.shared.hub.limits();
            (l.max_topic_len, l.max_topics)
        };
        let topics = match parse_topics(&names, max_len) {
            Ok(t) => t,
            Err(rej) => return vec![ops::error(reference, &rej)],
        };
        let resume = match crate::query::resume_cursor(last_event_id.as_deref()) {
            Ok(r) => r,
            Err(rej) => return vec![ops::error(reference, &rej)],
        };
        // Watched topics stay as they are unless the client asks to move them.
        let new: Vec<Topic> = if matches!(resume, Resume::Now) {
            topics.into_iter().filter(|t| !self.watches(t)).collect()
        } else {
            self.remove(&topics);
            topics
        };
        let total = self.watched() + new.len();
        if total > max_topics {
            let rej = Rejection::bad_request(
                "too_many_topics",
                format!(
                    "a connection may watch at most {} topics; this subscribe would make it {total}",
                    max_topics
                ),
            );
            return vec![ops::error(reference, &rej)];
        }
        if new.is_empty() {
            return vec![ops::ok(reference, None)];
        }
        match self
            .shared
            .hub
            .subscribe(&Selector::exact(new), resume)
            .await
        {
            Ok(sub) => {
                let mut out = vec![ops::ok(reference, None)];
                if let Some(reset) = sub.reset() {
                    let names = topic_names(&sub);
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    out.push(ops::reset(reference, &reset, &names));
                }
                self.subs.push(sub);
                out
            }
            Err(e) => vec![ops::error(reference, &Rejection::from(e))],
        }
    }

    fn unsubscribe(&mut self, names: &[String]) -> Result<(), Rejection> {
        let topics = parse_topics(names, self.shared.hub.limits().max_topic_len)?;
        self.remove(&topics);
        Ok(())
    }

    async fn publish(&mut self, event: publish::JsonEvent) -> Result<String, Rejection> {
        publish::authorize(&self.shared)?;
        let draft = event.into_draft(self.shared.hub.limits())?;
        let events = publish::publish(&self.shared, vec![draft]).await?;
        Ok(events.first().map(|e| e.id.to_string()).unwrap_or_default())
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

    /// Sends the event subscription `i` yielded, with whatever else is ready.
    async fn deliver(
        &mut self,
        i: usize,
        r: Result<Arc<Event>, SubscriptionEnd>,
    ) -> Result<(), Ending> {
        let first = match r {
            Ok(ev) => ev,
            Err(SubscriptionEnd::Closed) => return Err(shutting_down()),
            Err(SubscriptionEnd::Expired) => return self.restart(i).await,
            Err(SubscriptionEnd::Store(m)) => {
                tracing::warn!(error = %m, "websocket subscription failed");
                return Err(Ending::Close(
                    CloseCode::INTERNAL_SERVER_ERROR,
                    "history store unavailable; reconnect and resume",
                ));
            }
        };
        let mut batch = Vec::with_capacity(8);
        self.push_event(first, &mut batch);
        'gather: while batch.len() < MAX_COALESCE {
            let mut any = false;
            for s in 0..self.subs.len() {
                if let Some(ev) = self.subs[s].try_next() {
                    any = true;
                    self.push_event(ev, &mut batch);
                    if batch.len() >= MAX_COALESCE {
                        break 'gather;
                    }
                }
            }
            if !any {
                break;
            }
        }
        self.send(batch).await
    }

    fn push_event(&mut self, ev: Arc<Event>, batch: &mut Vec<Message>) {
        if ev.topics.len() > 1 {
            if self.recent.contains(&ev.seq) {
                return;
            }
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(ev.seq);
        }
        batch.push(Message::text(Payload::from(ev.json())));
    }

    /// Subscription `i` fell behind retention: it goes on live and the client
    /// is told (`reset`, reason `expired`), as a reconnecting client would be.
    async fn restart(&mut self, i: usize) -> Result<(), Ending> {
        let old = self.subs.swap_remove(i);
        let topics = old.topics().to_vec();
        let position = old.last_seq();
        drop(old);
        let sub = match self
            .shared
            .hub
            .subscribe(&Selector::exact(topics), Resume::Now)
            .await
        {
            Ok(s) => s,
            Err(_) => {
                return Err(Ending::Close(
                    CloseCode::INTERNAL_SERVER_ERROR,
                    "history store unavailable; reconnect and resume",
                ));
            }
        };
        tracing::info!(
            last_seq = position,
            "websocket subscriber fell behind retention; continuing live"
        );
        let reset = herald_core::Reset {
            reason: herald_core::ResetReason::Expired,
            position: self.shared.hub.head(),
        };
        let names = topic_names(&sub);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let text = ops::reset(&Value::Null, &reset, &names);
        self.subs.push(sub);
        self.send(vec![Message::text(text)]).await
    }

    /// Writes `messages` and flushes, within the write timeout.
    async fn send(&mut self, messages: Vec<Message>) -> Result<(), Ending> {
        if messages.is_empty() {
            return Ok(());
        }
        let ws = &mut self.ws;
        let write = async move {
            for m in messages {
                ws.feed(m).await?;
            }
            ws.flush().await
        };
        match tokio::time::timeout(self.shared.opts.write_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Ending::Gone),
            Err(_) => Err(Ending::Stalled),
        }
    }

    /// Sends a close frame and waits (briefly) for the peer's.
    async fn close(&mut self, code: CloseCode, reason: &'static str) {
        let ws = &mut self.ws;
        let _ = tokio::time::timeout(CLOSE_GRACE, async move {
            ws.send(Message::close(Some(code), reason)).await?;
            while let Some(Ok(_)) = ws.next().await {}
            Ok::<(), tokio_websockets::Error>(())
        })
        .await;
    }
}

fn shutting_down() -> Ending {
    Ending::Close(
        CloseCode::GOING_AWAY,
        "herald is shutting down; reconnect and resume from your last id",
    )
}

fn topic_names(sub: &Subscription) -> Vec<String> {
    sub.topics()
        .iter()
        .map(|t| t.as_str().to_string())
        .collect()
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

/// The echo session of `GET /ws/echo`: every text and binary message goes
/// back unchanged; the library answers pings and closes.
pub async fn echo<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    shared: Arc<Shared>,
) {
    loop {
        let msg = tokio::select! {
            _ = shared.shutdown.cancelled() => {
                let _ = ws.send(Message::close(Some(CloseCode::GOING_AWAY), "shutting down")).await;
                return;
            }
            m = ws.next() => m,
        };
        match msg {
            Some(Ok(m)) if m.is_text() || m.is_binary() => {
                if ws.send(m).await.is_err() {
                    return;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) => {
                let _ = tokio::time::timeout(CLOSE_GRACE, ws.flush()).await;
                return;
            }
            None => return,
        }
    }
}
