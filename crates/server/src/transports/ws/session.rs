//! One WebSocket session: a task that reads operations, delivers the events of
//! its [`SubscriptionSet`], pings the peer and closes with a reason.
//!
//! Liveness: on every tick of the shared clock the session pings; a peer that
//! sent nothing at all since the previous ping is gone and the socket is
//! dropped. Writes that stall past the write timeout end the session (the
//! client resumes with the ids it received and loses nothing).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use tokio_websockets::{CloseCode, Message, Payload};

use herald_core::Subscription;

use crate::auth::Access;
use crate::listener::{OpenStream, Shared, Transport};
use crate::ticker;
use crate::transports::ops;
use crate::transports::stream::End;
use crate::transports::subscriptions::{Out, SetEnd, SubscriptionSet};
use crate::transports::write::MAX_COALESCE;

use super::conn::{Conn, Socket};

/// How long a closing session waits for the peer's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// An open WebSocket and what it is subscribed to.
pub struct Session<S> {
    conn: Conn<S>,
    shared: Arc<Shared>,
    set: SubscriptionSet,
    /// Whether any frame arrived since the last ping.
    heard: bool,
    /// Whether a ping is waiting for an answer.
    pinged: bool,
    /// Registers the session; logs its close.
    open: OpenStream,
    /// On the lean path, the opening request's id: a `request` span is made
    /// for the close line and rare log lines, not kept open (a span held for
    /// the session's life cost ~0.35 KiB of RSS per idle socket).
    request_id: Option<Box<str>>,
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

impl<S: Socket> Session<S> {
    /// A session on an upgraded socket, with the subscription of the
    /// connection's query (if it named topics).
    pub fn new(
        conn: Conn<S>,
        shared: Arc<Shared>,
        access: Access,
        peer: Option<IpAddr>,
        initial: Option<Subscription>,
    ) -> Self {
        let mut opening =
            access.opening(initial.as_ref().map_or(Vec::new(), |s| s.topics().to_vec()));
        opening.peer = peer.map(|ip| std::net::SocketAddr::new(ip, 0));
        let _open = shared.stream_guard(Transport::Ws, opening);
        Session {
            conn,
            shared,
            set: SubscriptionSet::new(access, peer, initial),
            heard: true,
            pinged: false,
            open: _open,
            request_id: None,
        }
    }

    /// Carries `id` into the session's log lines (see `request_id`).
    pub fn with_request_id(mut self, id: &hyper::header::HeaderValue) -> Self {
        self.request_id = id.to_str().ok().map(Box::from);
        self
    }

    /// The span the session's log lines go in: the request's, made anew on
    /// the lean path; else the current one (hyper's task is in it already).
    fn span(&self) -> tracing::Span {
        match &self.request_id {
            Some(id) => {
                tracing::info_span!("request", request_id = &**id)
            }
            None => tracing::Span::current(),
        }
    }

    /// Runs until the peer leaves, the hub shuts down or something fails.
    pub async fn run(mut self) {
        let ending = match self.set.initial_reset() {
            Some(text) => match Box::pin(self.send(vec![Message::text(text)])).await {
                Ok(()) => self.serve().await,
                Err(e) => e,
            },
            None => self.serve().await,
        };
        let reason = match ending {
            Ending::Gone => End::PeerClosed.reason(),
            Ending::Stalled => {
                self.shared.stats.stream_ended(&End::Stalled);
                End::Stalled.reason()
            }
            Ending::Close(code, reason) => {
                Box::pin(self.close(code, reason)).await;
                if reason == KICKED {
                    End::Kicked.reason()
                } else {
                    close_reason(code)
                }
            }
        };
        self.span().in_scope(|| self.open.closed(reason));
    }

    async fn serve(&mut self) -> Ending {
        let mut ticks = self.shared.ticks.clone();
        ticks.mark_unchanged();
        if self.shared.shutdown.is_cancelled() {
            return self.shutting_down();
        }
        // Boxed, and only with a token that expires: an idle session's
        // future holds what waits, not what handles (see `handle`).
        let mut expiry = self
            .set
            .deadline()
            .map(|at| Box::pin(tokio::time::sleep_until(at)));
        loop {
            let wake = tokio::select! {
                biased;
                () = expired(&mut expiry) => return Ending::Close(
                    CloseCode::POLICY_VIOLATION,
                    "token expired; reconnect with a new token and resume",
                ),
                r = ticks.changed() => {
                    let tick = *ticks.borrow_and_update();
                    if r.is_err() || tick == ticker::SHUTDOWN {
                        return self.shutting_down();
                    }
                    if self.open.is_kicked() {
                        return Ending::Close(CloseCode::POLICY_VIOLATION, KICKED);
                    }
                    // A wake-up out of turn must not count as a ping interval.
                    if !ticker::is_heartbeat(tick) {
                        continue;
                    }
                    Wake::Heartbeat
                }
                frame = self.conn.next() => Wake::Frame(frame),
                out = self.set.next(&self.shared, MAX_COALESCE) => match out {
                    Ok(out) => Wake::Events(out),
                    Err(SetEnd::Shutdown) => return self.shutting_down(),
                    Err(SetEnd::Store(m)) => {
                        tracing::warn!(error = %m, "websocket subscription failed");
                        return Ending::Close(
                            CloseCode::INTERNAL_SERVER_ERROR,
                            "history store unavailable; reconnect and resume",
                        );
                    }
                },
            };
            let step = match wake {
                // The peer's operations log in the request's span; event
                // batches and heartbeats, for every socket, make none.
                Wake::Frame(_) => {
                    let span = self.span();
                    Box::pin(tracing::Instrument::instrument(self.handle(wake), span)).await
                }
                _ => Box::pin(self.handle(wake)).await,
            };
            if let Err(e) = step {
                return e;
            }
            // Between messages the socket alone is kept (`conn.rs`).
            self.conn.settle().await;
        }
    }

    /// Does what woke the session (boxed by the caller, so the writes and the
    /// operations it may wait on do not size every idle session).
    async fn handle(&mut self, wake: Wake) -> Result<(), Ending> {
        match wake {
            Wake::Heartbeat => self.tick().await,
            Wake::Frame(frame) => self.received(frame).await,
            Wake::Events(out) => {
                let n = out.iter().filter(|o| matches!(o, Out::Event(_))).count();
                self.open.delivered(n);
                self.send(out.into_iter().map(message).collect()).await
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
                let _ = tokio::time::timeout(CLOSE_GRACE, self.conn.ws().flush()).await;
                return Err(Ending::Gone);
            }
            Some(Ok(msg)) => msg,
        };
        self.heard = true;
        self.pinged = false;
        if msg.is_binary() {
            return Err(Ending::Close(
                CloseCode::UNSUPPORTED_DATA,
                "Herald takes JSON operations in text frames",
            ));
        }
        let Some(text) = msg.as_text() else {
            // Ping (answered by the library), pong, or the peer's close
            // (echoed by the library; the next read ends the session).
            return Ok(());
        };
        let answer = match ops::parse(text) {
            Ok(req) => {
                let changes_topics = matches!(
                    req.op,
                    ops::Op::Subscribe { .. } | ops::Op::Unsubscribe { .. }
                );
                let answer = self.set.apply(&self.shared, req.op, &req.reference).await;
                if changes_topics {
                    self.open.topics_changed(self.set.topics());
                }
                answer
            }
            Err((reference, rej)) => vec![ops::error(&reference, &rej)],
        };
        self.send(answer.into_iter().map(Message::text).collect())
            .await
    }

    /// Writes `messages` and flushes, within the write timeout.
    async fn send(&mut self, messages: Vec<Message>) -> Result<(), Ending> {
        if messages.is_empty() {
            return Ok(());
        }
        let ws = self.conn.ws();
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
        let conn = &mut self.conn;
        let _ = tokio::time::timeout(CLOSE_GRACE, async move {
            conn.ws().send(Message::close(Some(code), reason)).await?;
            while let Some(Ok(_)) = conn.next().await {}
            Ok::<(), tokio_websockets::Error>(())
        })
        .await;
    }
}

/// What woke an idle session.
enum Wake {
    /// The shared clock's heartbeat: ping, or drop a silent peer.
    Heartbeat,
    /// A message from the peer, its error, or the end of the socket.
    Frame(Option<Result<Message, tokio_websockets::Error>>),
    /// Events (and control texts) to deliver.
    Events(Vec<Out>),
}

/// Waits for a token's expiry, or forever without one.
async fn expired(expiry: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match expiry {
        Some(at) => at.as_mut().await,
        None => std::future::pending().await,
    }
}

/// An event as its shared JSON bytes, or a control message.
fn message(out: Out) -> Message {
    match out {
        Out::Event(ev) => Message::text(Payload::from(ev.json())),
        Out::Text(text) => Message::text(text),
    }
}

/// The close reason of a session an administrator disconnected.
const KICKED: &str = "disconnected by an administrator";

impl<S> Session<S> {
    /// How a session ends when the hub stops: 1012 (service restart) while
    /// draining, so clients reconnect (elsewhere) soon; else 1001.
    fn shutting_down(&self) -> Ending {
        if self.shared.ops.draining() {
            Ending::Close(
                CloseCode::SERVICE_RESTART,
                "herald is draining; reconnect (to another node) and resume from your last id",
            )
        } else {
            Ending::Close(
                CloseCode::GOING_AWAY,
                "herald is shutting down; reconnect and resume from your last id",
            )
        }
    }
}

/// The connection log's reason for a close this side sent.
fn close_reason(code: CloseCode) -> &'static str {
    match u16::from(code) {
        1001 => "shutdown",
        1012 => "drain",
        1008 => "policy",
        _ => "closed",
    }
}

/// The echo session of `GET /ws/echo`: every text and binary message goes
/// back unchanged; the library answers pings and closes.
pub async fn echo<S: Socket>(mut conn: Conn<S>, shared: Arc<Shared>) {
    loop {
        let msg = tokio::select! {
            _ = shared.shutdown.cancelled() => {
                let bye = Message::close(Some(CloseCode::GOING_AWAY), "shutting down");
                let _ = conn.ws().send(bye).await;
                return;
            }
            m = conn.next() => m,
        };
        match msg {
            Some(Ok(m)) if m.is_text() || m.is_binary() => {
                if conn.ws().send(m).await.is_err() {
                    return;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) => {
                let _ = tokio::time::timeout(CLOSE_GRACE, conn.ws().flush()).await;
                return;
            }
            None => return,
        }
        conn.settle().await;
    }
}
