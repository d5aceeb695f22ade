//! One Bayeux session: a task that owns the client's subscriptions and its
//! held `/meta/connect`, and answers the messages its transports hand it.
//!
//! Transports send each batch as a [`Command`] with a [`Sink`]: a one-shot
//! reply for an HTTP request, or the outgoing queue of a WebSocket. The task:
//!
//! - answers subscribe, unsubscribe, publish and `/service` messages at once;
//! - holds a connect until an event arrives or its timeout passes (the
//!   client's `advice.timeout`, capped by `bayeux_connect_timeout`; `0` answers
//!   at once), and answers a connect at once when its batch carried other
//!   messages; a new connect releases the one held;
//! - over HTTP, events ride on the first response that goes out (the held
//!   connect, or any other request's); over WebSocket they are pushed as they
//!   come, and the held connect is only the heartbeat;
//! - ends when no connect is held for `bayeux_max_interval` (CometD's
//!   `maxInterval`), on `/meta/disconnect`, when its token expires, when a
//!   subscription fell behind retention, and at shutdown; later messages with
//!   its id get `402::Unknown client` and `reconnect: handshake`.
//!
//! Events are not copied into a per-session queue: they wait in the shared
//! rings (and the log) until the session has a response to put them on, at
//! most `bayeux_max_deliveries` per response. Events taken for a held connect
//! whose client just left (or a socket just closed) are kept for the next
//! response: one gather at most.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use herald_core::{Event, Resume, Subscription, SubscriptionEnd};

use crate::auth::Access;
use crate::listener::Shared;

use super::channel::{self, Channel};
use super::message::{self, Message, error, failure, reply};
use super::{publish, selector};

/// Multi-subscription events remembered to deliver each once.
const RECENT: usize = 1024;

/// Where the answer to a batch goes.
pub enum Sink {
    /// An HTTP request waiting for its response.
    Http(oneshot::Sender<Vec<String>>),
    /// A WebSocket's outgoing queue (each item is one frame's messages).
    Ws(mpsc::Sender<Vec<String>>),
}

impl Sink {
    /// Whether nobody waits for this answer any more (the request was
    /// dropped, the socket closed).
    fn is_closed(&self) -> bool {
        match self {
            Sink::Http(tx) => tx.is_closed(),
            Sink::Ws(tx) => tx.is_closed(),
        }
    }

    /// Sends `messages`; false if the client is gone or its queue is full.
    fn send(self, messages: Vec<String>) -> bool {
        match self {
            Sink::Http(tx) => tx.send(messages).is_ok(),
            Sink::Ws(tx) => messages.is_empty() || tx.try_send(messages).is_ok(),
        }
    }
}

/// A batch of messages for one session.
pub struct Command {
    /// The messages, in order (no handshake among them).
    pub messages: Vec<Message>,
    /// Where the replies go.
    pub sink: Sink,
}

/// One subscription of the client.
struct Sub {
    /// The channel or pattern the client named.
    channel: String,
    sub: Subscription,
}

/// What a batch's messages came to.
struct Applied {
    /// Replies, in the batch's order.
    replies: Vec<String>,
    /// The batch's `/meta/connect`, to hold or answer.
    connect: Option<Message>,
    /// Whether the batch asked to end the session.
    disconnect: bool,
}

/// A held `/meta/connect`.
struct Held {
    id: Option<Value>,
    sink: Sink,
    until: Instant,
}

/// The session task's state.
pub struct Session {
    id: Arc<str>,
    shared: Arc<Shared>,
    access: Access,
    peer: Option<IpAddr>,
    rx: mpsc::Receiver<Command>,
    subs: Vec<Sub>,
    /// `seq`s of recent events that matched several subscriptions.
    recent: VecDeque<u64>,
    held: Option<Held>,
    /// The WebSocket the client last spoke on, for pushed deliveries.
    ws: Option<mpsc::Sender<Vec<String>>>,
    /// Deliveries taken for a request or socket that was gone by the time
    /// they were ready (one gather at most): they go on the next response.
    pending: Vec<String>,
    /// When the last connect was answered with none held since.
    idle_since: Instant,
}

/// Why the session ends.
enum End {
    /// Asked by the client, or its socket queue overflowed.
    Quiet,
    /// Its state is gone: the client must handshake again.
    Handshake,
    /// The hub is shutting down.
    Shutdown,
}

impl Session {
    /// A session for the client `id`, with the access its handshake proved.
    pub fn new(
        id: Arc<str>,
        shared: Arc<Shared>,
        access: Access,
        peer: Option<IpAddr>,
        rx: mpsc::Receiver<Command>,
    ) -> Self {
        Session {
            id,
            shared,
            access,
            peer,
            rx,
            subs: Vec::new(),
            recent: VecDeque::new(),
            held: None,
            ws: None,
            pending: Vec::new(),
            idle_since: Instant::now(),
        }
    }

    /// Serves the session until it ends, then forgets it.
    pub async fn run(mut self) {
        let end = self.serve().await;
        self.shared.bayeux.remove(&self.id);
        let advice = match end {
            End::Quiet => None,
            End::Handshake => Some(json!({"reconnect": "handshake", "interval": 0})),
            End::Shutdown => Some(json!({"reconnect": "retry", "interval": 1000})),
        };
        if let (Some(held), Some(advice)) = (self.held.take(), advice) {
            let text = json!({
                "channel": "/meta/connect", "successful": true, "id": held.id, "advice": advice,
            });
            held.sink.send(vec![text.to_string()]);
        }
        // Answer batches that were queued while the session ended.
        self.rx.close();
        while let Ok(cmd) = self.rx.try_recv() {
            let replies = cmd.messages.iter().map(message::unknown_client).collect();
            cmd.sink.send(replies);
        }
        tracing::debug!("bayeux session ended");
    }

    async fn serve(&mut self) -> End {
        let token_deadline = self.access.deadline();
        let max_interval = self.shared.opts.bayeux_max_interval;
        loop {
            let mut deadline = match &self.held {
                Some(h) => h.until,
                None => self.idle_since + max_interval,
            };
            if let Some(t) = token_deadline {
                deadline = deadline.min(t);
            }
            self.flush_pending();
            let ready = self.can_deliver();
            tokio::select! {
                biased;
                _ = self.shared.shutdown.cancelled() => return End::Shutdown,
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => {
                        // Boxed: a batch's work (subscribe, publish) must not size the idle task.
                        if let Some(end) = Box::pin(self.command(cmd)).await {
                            return end;
                        }
                    }
                    None => return End::Quiet,
                },
                r = next_event(&mut self.subs), if ready => match r {
                    Ok((i, ev)) => {
                        let mut out = Vec::new();
                        self.push(i, ev, &mut out);
                        self.gather(&mut out);
                        if !self.deliver(out) {
                            return End::Quiet;
                        }
                    }
                    Err(SubscriptionEnd::Closed) => return End::Shutdown,
                    Err(e) => {
                        tracing::info!(error = %e, "bayeux session fell behind; it must handshake again");
                        return End::Handshake;
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    let now = Instant::now();
                    if token_deadline.is_some_and(|t| t <= now) {
                        return End::Handshake;
                    }
                    match self.held.take() {
                        Some(held) => {
                            self.answer_connect(held, Vec::new());
                        }
                        None => return End::Handshake,
                    }
                }
            }
        }
    }

    /// Whether a delivery could go out now. Events are taken from the
    /// subscriptions only then, so none is taken for a client that left.
    fn can_deliver(&self) -> bool {
        if !self.pending.is_empty() {
            return false;
        }
        match &self.ws {
            Some(ws) if !ws.is_closed() => ws.capacity() > 0,
            _ => self.held.as_ref().is_some_and(|h| !h.sink.is_closed()),
        }
    }

    /// Pushes kept deliveries on a socket that has room again.
    fn flush_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if let Some(ws) = self
            .ws
            .as_ref()
            .filter(|w| !w.is_closed() && w.capacity() > 0)
        {
            let out = std::mem::take(&mut self.pending);
            if let Err(e) = ws.try_send(out) {
                self.pending = e.into_inner();
            }
        }
    }

    /// Sends gathered deliveries: pushed on the WebSocket, or on the held connect.
    fn deliver(&mut self, mut out: Vec<String>) -> bool {
        if let Some(ws) = &self.ws {
            match ws.try_send(out) {
                Ok(()) => return true,
                // Capacity was checked before the events were taken: a full
                // queue now means the client stopped reading.
                Err(mpsc::error::TrySendError::Full(_)) => return false,
                Err(mpsc::error::TrySendError::Closed(back)) => {
                    self.ws = None;
                    out = back;
                }
            }
        }
        match self.held.take() {
            Some(held) if !held.sink.is_closed() => {
                self.answer_connect(held, out);
            }
            _ => {
                self.idle_since = Instant::now();
                self.pending = out;
            }
        }
        true
    }

    /// Answers a connect, with `out` after its reply; false if that failed.
    fn answer_connect(&mut self, held: Held, mut out: Vec<String>) -> bool {
        let opts = &self.shared.opts;
        let text = json!({
            "channel": "/meta/connect",
            "successful": true,
            "id": held.id,
            "advice": message::retry_advice(
                opts.bayeux_connect_timeout.as_millis() as u64,
                opts.bayeux_max_interval.as_millis() as u64,
            ),
        });
        out.insert(0, text.to_string());
        self.idle_since = Instant::now();
        held.sink.send(out)
    }

    /// Handles one batch; `Some` ends the session.
    async fn command(&mut self, cmd: Command) -> Option<End> {
        let Command { messages, sink } = cmd;
        self.idle_since = Instant::now();
        let via_ws = matches!(sink, Sink::Ws(_));
        if let Sink::Ws(tx) = &sink {
            self.ws = Some(tx.clone());
        }
        let others = messages.iter().any(|m| m.channel != "/meta/connect");
        let Applied {
            mut replies,
            connect,
            disconnect,
        } = self.apply(messages).await;
        if disconnect {
            if let Some(held) = self.held.take() {
                self.answer_connect(held, Vec::new());
            }
            sink.send(replies);
            return Some(End::Quiet);
        }
        // A new connect (or any request, over HTTP) takes what is ready.
        let mut out = std::mem::take(&mut self.pending);
        if connect.is_some() || !via_ws {
            self.gather(&mut out);
        }
        replies.append(&mut out);
        let Some(c) = connect else {
            // A socket whose queue is full stopped reading: end the session.
            return (!sink.send(replies) && via_ws).then_some(End::Quiet);
        };
        if let Some(old) = self.held.take() {
            self.answer_connect(old, Vec::new());
        }
        let max = self.shared.opts.bayeux_connect_timeout;
        let hold = c.advice.as_ref().and_then(|a| a.timeout).map_or(max, |ms| {
            std::time::Duration::from_millis(ms.max(0.0) as u64).min(max)
        });
        let held = Held {
            id: c.id,
            sink,
            until: Instant::now() + hold,
        };
        if hold.is_zero() || others || !replies.is_empty() {
            if !self.answer_connect(held, replies) && via_ws {
                return Some(End::Quiet);
            }
        } else {
            self.held = Some(held);
        }
        None
    }

    /// Carries out a batch's messages in order; the connect is kept for the
    /// caller to hold or answer.
    async fn apply(&mut self, messages: Vec<Message>) -> Applied {
        let mut done = Applied {
            replies: Vec::with_capacity(messages.len()),
            connect: None,
            disconnect: false,
        };
        for m in messages {
            if m.client_id.as_deref().is_some_and(|c| c != &*self.id) {
                done.replies.push(message::unknown_client(&m));
                continue;
            }
            let reply = match m.channel.as_str() {
                "/meta/connect" if m.connection_type.as_ref().and_then(Value::as_str).is_none() => {
                    failure(
                        &m,
                        error(402, "connectionType", "Missing connectionType"),
                        None,
                    )
                }
                "/meta/connect" if !known_type(&m) => {
                    let t = m.connection_type.as_ref().and_then(Value::as_str);
                    let why = "Connection type not supported";
                    failure(&m, error(301, t.unwrap_or_default(), why), None)
                }
                "/meta/connect" => match done.connect.replace(m) {
                    Some(old) => failure(&old, error(400, "", "one /meta/connect per batch"), None),
                    None => continue,
                },
                "/meta/disconnect" => {
                    done.disconnect = true;
                    reply(&m, true, json!({}))
                }
                "/meta/subscribe" => self.subscribe(&m).await,
                "/meta/unsubscribe" => self.unsubscribe(&m),
                "/meta/handshake" => {
                    let why = "a handshake must be the first message of its batch";
                    failure(&m, error(400, "", why), None)
                }
                c if c.starts_with("/meta/") => failure(&m, error(404, c, "Unknown Channel"), None),
                _ => {
                    let r = publish::publish(&self.shared, &self.access, self.peer, &m).await;
                    done.replies.extend(r);
                    continue;
                }
            };
            done.replies.push(reply);
        }
        done
    }

    async fn subscribe(&mut self, m: &Message) -> String {
        let names = match names(m) {
            Ok(n) => n,
            Err(e) => return failure(m, e, None),
        };
        let mut added: Vec<Sub> = Vec::new();
        for name in names {
            if self.subs.iter().chain(&added).any(|s| s.channel == name) {
                continue;
            }
            let parsed = channel::parse(&name);
            match parsed {
                None => return failure(m, error(405, &name, "Invalid channel"), None),
                Some(Channel::Meta) => {
                    return failure(
                        m,
                        error(403, &name, "Meta channels cannot be subscribed"),
                        None,
                    );
                }
                // Answers go to the requester only: nothing to record.
                Some(Channel::Service(_)) => continue,
                Some(Channel::Name(_) | Channel::Wild(_)) => {}
            }
            let max = self.shared.opts.bayeux_max_subscriptions;
            if self.subs.len() + added.len() >= max {
                let why = format!("a session may hold at most {max} subscriptions");
                return failure(m, error(403, &name, &why), None);
            }
            match self.open(&name).await {
                Ok(sub) => added.push(Sub { channel: name, sub }),
                Err(e) => return failure(m, e, None),
            }
        }
        self.subs.append(&mut added);
        reply(m, true, json!({ "subscription": m.subscription }))
    }

    /// Authorizes and opens a hub subscription for a channel or pattern.
    async fn open(&self, name: &str) -> Result<Subscription, String> {
        let shared = &self.shared;
        let selector = selector::for_channel(name, shared, &self.access)?;
        let mut sub = shared
            .hub
            .subscribe(&selector, Resume::Now)
            .await
            .map_err(|e| error(500, name, &e.to_string()))?;
        if let Some(filter) = self.access.private_filter() {
            sub.set_private_filter(filter);
        }
        Ok(sub)
    }

    fn unsubscribe(&mut self, m: &Message) -> String {
        match names(m) {
            Ok(names) => {
                self.subs.retain(|s| !names.contains(&s.channel));
                reply(m, true, json!({ "subscription": m.subscription }))
            }
            Err(e) => failure(m, e, None),
        }
    }

    /// Takes what is ready on every subscription, up to the delivery limit.
    fn gather(&mut self, out: &mut Vec<String>) {
        let max = self.shared.opts.bayeux_max_deliveries;
        'gather: while out.len() < max {
            let mut any = false;
            for i in 0..self.subs.len() {
                if let Some(ev) = self.subs[i].sub.try_next() {
                    any = true;
                    self.push(i, ev, out);
                    if out.len() >= max {
                        break 'gather;
                    }
                }
            }
            if !any {
                break;
            }
        }
    }

    /// Adds an event from subscription `i`, once per session.
    fn push(&mut self, i: usize, ev: Arc<Event>, out: &mut Vec<String>) {
        if self.subs.len() > 1 {
            if self.recent.contains(&ev.seq) {
                return;
            }
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(ev.seq);
        }
        let pattern = &self.subs[i].channel;
        let name = ev
            .topics
            .iter()
            .map(|t| t.as_str())
            .find(|t| channel::matches(pattern, t))
            .unwrap_or_else(|| ev.topics[0].as_str());
        out.push(message::delivery(&ev, name));
    }
}

/// Whether a connect names a connection type Herald serves.
fn known_type(m: &Message) -> bool {
    m.connection_type
        .as_ref()
        .and_then(Value::as_str)
        .is_some_and(|t| message::CONNECTION_TYPES.contains(&t))
}

/// The channel names of a subscribe or unsubscribe.
fn names(m: &Message) -> Result<Vec<String>, String> {
    let missing = || error(402, "subscription", "Missing subscription");
    match &m.subscription {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(missing))
            .collect(),
        _ => Err(missing()),
    }
}

/// The next event of any subscription, with its index. Cancel-safe; never
/// ready while there is no subscription.
async fn next_event(subs: &mut [Sub]) -> Result<(usize, Arc<Event>), SubscriptionEnd> {
    match subs {
        [] => std::future::pending().await,
        [one] => one.sub.next().await.map(|ev| (0, ev)),
        many => {
            let futs = many
                .iter_mut()
                .enumerate()
                .map(|(i, s)| Box::pin(async move { s.sub.next().await.map(|ev| (i, ev)) }));
            futures_util::future::select_all(futs).await.0
        }
    }
}
