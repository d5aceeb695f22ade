//! Bayeux 1.0 (CometD and Faye clients) at `/bayeux` and every path below it.
//!
//! - [`http`] (`accept`): long-polling (`POST`, a JSON array or form
//!   `message=` fields) and callback-polling (`GET ?message=…&jsonp=…`, JSONP);
//!   CometD's URL suffixes (`/handshake`, `/connect`, `/disconnect`, `/`) are
//!   ignored: the message's `channel` decides.
//! - [`ws`]: the `websocket` transport on the same URL; each text frame holds
//!   a JSON array of messages.
//! - [`message`]: the message model (serde), replies, deliveries, error
//!   strings `code:args:message` and advice.
//! - [`channel`]: the channel grammar, `/a/*` and `/a/**` patterns, and the
//!   reserved `/meta/**` and `/service/**` trees.
//! - [`selector`]: a channel or pattern as a hub selector, authorized.
//! - [`publish`]: a publish to a topic (one draft) or to a `/service` channel.
//! - [`session`]: one task per client (`deliver`, `close`): its
//!   subscriptions and its held `/meta/connect`.
//! - [`Registry`] and [`handshake`] here: sessions by client id, bounded.
//!
//! Bayeux channels are Herald topics: a Bayeux publish to `/chat/room1` is an
//! event on the topic `/chat/room1` (its `data`, as the JSON text sent) that
//! SSE and WebSocket subscribers receive, and a native publish reaches Bayeux
//! subscribers of `/chat/room1`, `/chat/*` and `/chat/**`.

pub mod channel;
pub mod http;
pub mod message;
pub mod publish;
pub mod selector;
pub mod session;
pub mod ws;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::auth::{self, Access};
use crate::listener::Shared;
use crate::rejection::Rejection;

use message::{CONNECTION_TYPES, Message, VERSION, error, failure, reply};
use session::{Command, Session, Sink};

/// Batches queued for one session task.
const QUEUE: usize = 16;

/// The open sessions, by client id.
#[derive(Default)]
pub struct Registry {
    sessions: Mutex<HashMap<Arc<str>, mpsc::Sender<Command>>>,
}

impl Registry {
    fn get(&self, id: &str) -> Option<mpsc::Sender<Command>> {
        self.lock().get(id).cloned()
    }

    /// Forgets a session (its task calls this when it ends).
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Open sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a session unless `max` are open.
    fn insert(&self, id: Arc<str>, tx: mpsc::Sender<Command>, max: usize) -> bool {
        let mut map = self.lock();
        if map.len() >= max {
            return false;
        }
        map.insert(id, tx);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, mpsc::Sender<Command>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Answers a `/meta/handshake`: checks the version, the connection types and
/// the token (`ext.authToken`, else the request's own), then opens a session.
/// `request` is the access the HTTP request or WebSocket upgrade carried.
pub fn handshake(
    shared: &Arc<Shared>,
    m: &Message,
    request: Result<Access, Rejection>,
    peer: Option<IpAddr>,
) -> String {
    let opts = &shared.opts;
    match m.version.as_ref().and_then(Value::as_str) {
        None => return failure(m, error(402, "version", "Missing version"), None),
        Some(v) if v != "1" && !v.starts_with("1.") => {
            return failure(m, error(300, v, "Version mismatch"), None);
        }
        Some(_) => {}
    }
    let Some(types) = &m.connection_types else {
        let e = error(
            402,
            "supportedConnectionTypes",
            "Missing supportedConnectionTypes",
        );
        return failure(m, e, None);
    };
    let types: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
    if !types.iter().any(|t| CONNECTION_TYPES.contains(t)) {
        let e = error(301, &types.join(","), "Connection types not supported");
        return reply(
            m,
            false,
            json!({ "error": e, "supportedConnectionTypes": CONNECTION_TYPES, "version": VERSION }),
        );
    }
    let access = match m.token() {
        Some(token) => auth::access_from_token(opts, token),
        None => request,
    }
    .and_then(|a| a.may_open_session(opts).map(|()| a));
    let access = match access {
        Ok(a) => a,
        Err(rej) => {
            let e = error(403, "", &format!("Handshake denied: {}", rej.message));
            return failure(m, e, Some(json!({"reconnect": "none"})));
        }
    };
    let id: Arc<str> = Arc::from(new_client_id());
    let (tx, rx) = mpsc::channel(QUEUE);
    if !shared
        .bayeux
        .insert(id.clone(), tx, opts.bayeux_max_sessions)
    {
        let why = format!(
            "Too many sessions (the limit is {}); try again later",
            opts.bayeux_max_sessions
        );
        return failure(
            m,
            error(503, "", &why),
            Some(json!({"reconnect": "handshake", "interval": 5000})),
        );
    }
    let session = Session::new(id.clone(), shared.clone(), access, peer, rx);
    shared.tracker.spawn(session.run());
    let advice = message::retry_advice(
        opts.bayeux_connect_timeout.as_millis() as u64,
        opts.bayeux_max_interval.as_millis() as u64,
    );
    reply(
        m,
        true,
        json!({
            "version": VERSION,
            "supportedConnectionTypes": CONNECTION_TYPES,
            "clientId": &*id,
            "advice": advice,
        }),
    )
}

/// Where a batch goes: answered here (a handshake, or an unknown client), or
/// to its session.
pub enum Route {
    /// The replies, complete.
    Answered(Vec<String>),
    /// The session that answers, and the batch.
    Session(mpsc::Sender<Command>, Vec<Message>),
    /// Publishes without a `clientId` (the specification allows it): carried
    /// out with the request's own access, no session involved.
    Sessionless(Result<Access, Rejection>, Vec<Message>),
}

/// Routes a batch. A handshake is answered alone (the rest of its batch is
/// ignored, as the specification says); any other batch goes to the session
/// its first `clientId` names.
pub fn route(
    shared: &Arc<Shared>,
    mut messages: Vec<Message>,
    request: impl FnOnce() -> Result<Access, Rejection>,
    peer: Option<IpAddr>,
) -> Route {
    let Some(first) = messages.first() else {
        return Route::Answered(Vec::new());
    };
    if first.channel == "/meta/handshake" {
        messages.truncate(1);
        return Route::Answered(vec![handshake(shared, &messages[0], request(), peer)]);
    }
    let id = messages.iter().find_map(|m| m.client_id.as_deref());
    if id.is_none() && messages.iter().all(|m| !m.channel.starts_with("/meta/")) {
        return Route::Sessionless(request(), messages);
    }
    match id.and_then(|id| shared.bayeux.get(id)) {
        Some(tx) => Route::Session(tx, messages),
        None => Route::Answered(messages.iter().map(message::unknown_client).collect()),
    }
}

/// Hands a batch to its session; if the session just ended, answers as for
/// an unknown client.
pub async fn submit(
    tx: &mpsc::Sender<Command>,
    messages: Vec<Message>,
    sink: Sink,
) -> Option<Vec<String>> {
    match tx.send(Command { messages, sink }).await {
        Ok(()) => None,
        Err(mpsc::error::SendError(cmd)) => {
            Some(cmd.messages.iter().map(message::unknown_client).collect())
        }
    }
}

/// Answers publishes that name no session.
pub async fn sessionless(
    shared: &Shared,
    access: Result<Access, Rejection>,
    peer: Option<IpAddr>,
    messages: &[Message],
) -> Vec<String> {
    let mut replies = Vec::with_capacity(messages.len());
    for m in messages {
        match &access {
            Ok(access) => replies.extend(publish::publish(shared, access, peer, m).await),
            Err(rej) => replies.push(failure(m, error(403, &m.channel, &rej.message), None)),
        }
    }
    replies
}

/// 128 random bits, hex: unpredictable, so a client id cannot be guessed.
fn new_client_id() -> String {
    let bits: u128 = rand::rng().random();
    format!("{bits:032x}")
}
