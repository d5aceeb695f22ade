//! BOSH sessions at `POST /bosh` (XEP-0124): a bidirectional session over
//! synchronous HTTP requests.
//!
//! - [`handle`] (`accept`): reads and parses the `<body/>` ([`body`]), creates
//!   a session (no `sid`) or hands the request to its session task, and waits
//!   for the answer;
//! - [`session`]: one task per session, holding requests and releasing them
//!   with events or operation answers, in `rid` order (`deliver`, `close`);
//! - [`Registry`]: the open sessions by `sid`.
//!
//! The payloads are Herald's JSON operations ([`crate::transports::ops`]) in
//! `<op xmlns="urn:herald:1">` elements, so a session subscribes, publishes and
//! receives exactly as a WebSocket does.

pub mod body;
pub mod session;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Incoming as HyperIncoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response};
use rand::Rng;
use tokio::sync::{mpsc, oneshot};

use crate::auth::{self, Access};
use crate::cors;
use crate::listener::{ConnInfo, Shared};
use crate::publish::read_body;
use crate::rejection::Rejection;
use crate::transports::stream::Body;

use session::{Answer, Incoming, Session, Terms, terminate_answer};

/// The content type of answers unless the session asked for another.
const XML: &str = "text/xml; charset=utf-8";

/// The highest BOSH version Herald speaks.
const VERSION: (u32, u32) = (1, 11);

/// Requests queued for one session task.
const QUEUE: usize = 16;

/// Extra time an HTTP handler waits beyond `wait` for its session's answer.
const ANSWER_SLACK: Duration = Duration::from_secs(10);

/// The open sessions.
#[derive(Default)]
pub struct Registry {
    sessions: Mutex<HashMap<String, mpsc::Sender<Incoming>>>,
}

impl Registry {
    fn get(&self, sid: &str) -> Option<mpsc::Sender<Incoming>> {
        self.lock().get(sid).cloned()
    }

    /// Forgets a session (its task calls this when it ends).
    pub fn remove(&self, sid: &str) {
        self.lock().remove(sid);
    }

    /// Open sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<Incoming>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Handles `POST /bosh`.
pub async fn handle(
    req: Request<HyperIncoming>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Rejection> {
    // The creation request's token governs the session; later requests are
    // bound to it by the sid, a 128-bit secret.
    let peer = req.extensions().get::<ConnInfo>().map(|c| c.peer.ip());
    let access = auth::access(&shared.opts, req.headers(), req.uri().query()).and_then(|a| {
        if a.from_cookie() {
            cors::check_cookie_origin(&shared.opts, req.headers())?;
        }
        Ok(a)
    });
    let raw = read_body(req, shared.opts.max_body_bytes).await?;
    if raw.iter().all(u8::is_ascii_whitespace) {
        // Not a BOSH request at all (a BOSH client always sends a <body/>).
        return Err(Rejection::bad_request(
            "missing_body",
            "POST one <body xmlns='http://jabber.org/protocol/httpbind'/> element",
        ));
    }
    let xml: Arc<str> = Arc::from(XML);
    let text = match std::str::from_utf8(&raw) {
        Ok(t) => t,
        Err(_) => return Ok(respond(terminate_answer("bad-request", false, &xml))),
    };
    let body = match body::parse(text) {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(error = %e, "bad bosh body");
            return Ok(respond(terminate_answer("bad-request", false, &xml)));
        }
    };
    let (reply, answer) = oneshot::channel();
    let incoming = Incoming { body, reply };
    let wait = match incoming.body.sid.clone() {
        None => {
            let access = access?;
            access.may_open_session(&shared.opts)?;
            create(incoming, access, peer, &shared)?
        }
        Some(sid) => {
            let Some(tx) = shared.bosh.get(&sid) else {
                return Ok(respond(terminate_answer("item-not-found", false, &xml)));
            };
            if tx.send(incoming).await.is_err() {
                return Ok(respond(terminate_answer("item-not-found", false, &xml)));
            }
            shared.opts.bosh_wait_max
        }
    };
    let answer = match tokio::time::timeout(wait + ANSWER_SLACK, answer).await {
        Ok(Ok(a)) => a,
        // The session ended without answering (shutdown, or it was dropped).
        _ => terminate_answer("item-not-found", false, &xml),
    };
    Ok(respond(answer))
}

/// Creates a session and starts its task; returns how long to wait for the
/// creation answer.
fn create(
    inc: Incoming,
    access: Access,
    peer: Option<std::net::IpAddr>,
    shared: &Arc<Shared>,
) -> Result<Duration, Rejection> {
    let opts = &shared.opts;
    let b = &inc.body;
    let legacy = b.ver.is_none();
    let content_type: Arc<str> = b
        .content
        .as_deref()
        .filter(|c| HeaderValue::from_str(c).is_ok())
        .map_or_else(|| Arc::from(XML), Arc::from);
    if shared.bosh.len() >= opts.bosh_max_sessions {
        let _ = inc
            .reply
            .send(terminate_answer("policy-violation", legacy, &content_type));
        return Ok(Duration::ZERO);
    }
    let wait =
        Duration::from_secs(b.wait.unwrap_or(opts.bosh_wait_max.as_secs())).min(opts.bosh_wait_max);
    let hold = b.hold.unwrap_or(1).min(opts.bosh_hold_max as u64) as usize;
    let requests = (hold as u64 + 1).max(2);
    let ver = b.ver.map_or(VERSION, |v| v.min(VERSION));
    let sid = new_sid();
    let terms = Terms {
        sid: sid.clone(),
        wait,
        hold,
        requests,
        polling: opts.bosh_polling,
        inactivity: opts.bosh_inactivity,
        acks: b.ack == Some(1),
        legacy,
        content_type,
    };
    let mut attrs: Vec<(&'static str, String)> = vec![
        ("sid", sid.clone()),
        ("wait", wait.as_secs().to_string()),
        ("hold", hold.to_string()),
        ("requests", requests.to_string()),
        ("polling", opts.bosh_polling.as_secs().to_string()),
        ("inactivity", opts.bosh_inactivity.as_secs().to_string()),
        ("ver", format!("{}.{}", ver.0, ver.1)),
    ];
    if terms.acks {
        attrs.push(("ack", b.rid.to_string()));
    }
    let (tx, rx) = mpsc::channel(QUEUE);
    shared.bosh.lock().insert(sid, tx);
    let session = Session::new(terms, b.rid, shared.clone(), access, peer, rx);
    shared.tracker.spawn(session.run(inc, attrs));
    Ok(wait)
}

/// 128 random bits, hex.
fn new_sid() -> String {
    let bits: u128 = rand::rng().random();
    format!("{bits:032x}")
}

fn respond(a: Answer) -> Response<Body> {
    let len = a.body.len();
    let mut r = Response::new(Full::new(a.body).boxed_unsync());
    *r.status_mut() = a.status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&a.content_type).unwrap_or(HeaderValue::from_static(XML)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests;
